"""The import drawing of the code (issue 16): the kernel imports no provider and no shell module, providers import
no other provider, no two files import each other in a circle, no module is over 400 lines, and nothing under
server/ names a provider outside the registry's one line per provider."""

from __future__ import annotations

import ast
from pathlib import Path

from poolpilot.server.shell.registry import faces

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    name = ".".join(("poolpilot", *parts))
    return name.removesuffix(".__init__")


def _modules() -> dict[str, Path]:
    return {
        _module(p): p
        for folder in ("server", "tools")
        for p in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in p.parts
    }


def _typing_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under `if TYPE_CHECKING:`: names for the type checker, never imported at run time."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            ids.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return ids


def _imports(path: Path, module: str, *, typing: bool = True) -> set[str]:
    """Every poolpilot module `path` imports, wherever the import statement stands (lazy ones count too; those
    under `if TYPE_CHECKING:` only when `typing`)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if typing else _typing_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    modules = _modules()
    return {name for name in found if name in modules}


def _graph(*, typing: bool = True) -> dict[str, set[str]]:
    return {name: _imports(path, name, typing=typing) - {name} for name, path in _modules().items()}


def _provider(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if parts[:2] == ["poolpilot", "tools"] and len(parts) > 2 else None


def test_kernel_imports_no_provider_and_no_shell() -> None:
    bad = [
        f"{src} -> {dst}"
        for src, dsts in _graph().items()
        if src.startswith("poolpilot.server.kernel")
        for dst in dsts
        if dst.startswith(("poolpilot.tools", "poolpilot.server.shell"))
    ]
    assert bad == []


def test_providers_import_no_other_provider_and_no_shell() -> None:
    bad = []
    for src, dsts in _graph().items():
        own = _provider(src)
        if own is None:
            continue
        for dst in dsts:
            other = _provider(dst)
            if dst.startswith("poolpilot.server.shell") or (other is not None and other != own):
                bad.append(f"{src} -> {dst}")
    assert bad == []


def test_no_circle_across_files() -> None:
    # Imports made for annotations only (`if TYPE_CHECKING:`) are no edge: nothing is imported at run time, and
    # the contract module names the types it declares from below.
    graph = _graph(typing=False)
    circles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodules is how a package re-exports: not a circle.
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert circles == []


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in _modules().values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_server_names_no_provider_outside_the_registry_lines() -> None:
    names = [f.name for f in faces() if not f.name.startswith("pools")]
    registry = ROOT / "server" / "shell" / "registry.py"
    found = []
    for path in (ROOT / "server").rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if path == registry and line.strip().startswith('"poolpilot.tools.'):
                continue  # the one registry line per provider
            lowered = line.lower()
            found += [f"{path.relative_to(ROOT)}:{number}: {n}" for n in names if n in lowered]
    assert found == []
