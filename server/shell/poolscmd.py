"""`poolpilot export | plan FILE | apply FILE`: pools as code from a terminal or CI, through an in-process MCP
client on the `pools_export`, `pools_plan` and `pools_apply` tools (the same guard as every other client).

Exit codes: `plan` 0 no changes, 2 changes, 1 error (like `terraform plan -detailed-exitcode`); `apply` 0 applied
(or nothing to do), 1 error or stopped at a failed step, 2 not applied (confirmation needed, or declined);
`export` 0 or 1. Documents are JSON; YAML (`.yaml`, `.yml`) needs the `yaml` extra (PyYAML's safe loader).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.text import quote, shown
from poolpilot.server.shell.callargs import UsageError
from poolpilot.server.shell.terminal import Progress, program, question

if TYPE_CHECKING:
    from poolpilot.server.shell.calling import Local

__all__ = ["run_apply", "run_export", "run_plan"]

_YAML_HINT = "reading or writing YAML needs the yaml extra: pip install 'poolpilot[yaml]' (or use a .json file)"


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise UsageError(_YAML_HINT) from None
    return yaml


def read_document(path: str) -> object:
    """The document in `path` (`-`: standard input, JSON): JSON, or YAML through PyYAML's safe loader."""
    is_yaml = path.endswith((".yaml", ".yml"))
    loader = _yaml() if is_yaml else None
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {quote(path)}: {exc.strerror or exc}") from None
    try:
        return loader.safe_load(text) if loader is not None else json.loads(text)
    except (ValueError, getattr(loader, "YAMLError", ValueError)) as exc:
        line = getattr(exc, "lineno", None) or getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line})" if line is not None else ""
        raise UsageError(f"{quote(path)} is not valid {'YAML' if is_yaml else 'JSON'}{where}") from None


async def _session(local: Local, tool: str, args: dict[str, object], progress: Progress) -> tuple[bool, dict[str, Any]]:
    from mcp import Client
    from mcp.client.session import ClientRequestContext
    from mcp_types import ElicitRequestParams, ElicitResult

    from poolpilot.server.shell.app import build_app

    app = build_app(local.settings, sandbox=local.sandbox, store=local.store)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()

    async def ask(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        progress.done()
        print(question(params.message), file=sys.stderr)
        answer = await anyio.to_thread.run_sync(lambda: input("Apply this plan? [y/N] "))
        if answer.strip().lower() in ("y", "yes"):
            return ElicitResult(action="accept", content={"confirm": True})
        return ElicitResult(action="decline")

    async with Client(app, elicitation_callback=ask if interactive and tool == "pools_apply" else None) as client:
        try:
            result = await client.call_tool(tool, args, progress_callback=progress)
        finally:
            progress.done()
    data: dict[str, Any] = result.structured_content or {"message": str(result.content)}
    return result.is_error, data


def _call(settings: Settings, tool: str, args: dict[str, object]) -> tuple[bool, dict[str, Any]]:
    from poolpilot.server.shell.calling import persistent, with_toolset_of

    # The tool's toolset is off by default (it keeps an agent's list short); the command names it, so it is on.
    return anyio.run(_session, persistent(with_toolset_of(settings, tool)), tool, args, Progress())


def _error(command: str, data: dict[str, Any]) -> int:
    hint = f" Next: {data['hint']}" if data.get("hint") else ""
    print(f"poolpilot {command}: {data.get('code', 'error')}: {data.get('message', '')}{hint}", file=sys.stderr)
    return 1


def run_export(settings: Settings, *, provider: str | None, location: str | None, as_yaml: bool) -> int:
    args = {k: v for k, v in (("provider", provider), ("location", location)) if v is not None}
    yaml = _yaml() if as_yaml else None
    failed, data = _call(settings, "pools_export", dict(args))
    if failed:
        return _error("export", data)
    if yaml is not None:
        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
    else:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    return 0


def _show_plan(plan: dict[str, Any]) -> None:
    for step in plan["steps"]:
        diff = ", ".join(f"{c['field']} {shown(c['before'])} → {shown(c['after'])}" for c in step["changes"])
        where = f"{step['provider']} {quote(step['location'])} {quote(step['pool'])}"
        print(f"{step['n']:>3}. {step['action']:<6} {where}" + (f": {diff}" if diff else ""))
    for budget in plan["budgets"]:
        if budget["before"] != budget["after"]:
            limit = budget["max"] if budget["max"] is not None else "unknown"
            print(
                f"     budget {budget['provider']} {quote(budget['location'])}: {budget['before']} → "
                f"{budget['after']} of {limit} (peak {budget['peak']})"
            )
    print(f"{plan['summary']} plan_id {plan['plan_id']}")


def _document(command: str, path: str) -> object | None:
    """The document, or None after printing why it cannot be read (exit 1, never 2: 2 means "changes")."""
    try:
        return read_document(path)
    except UsageError as exc:
        print(f"poolpilot {command}: {exc}", file=sys.stderr)
        return None


def run_plan(settings: Settings, path: str, *, as_json: bool) -> int:
    document = _document("plan", path)
    if document is None:
        return 1
    failed, data = _call(settings, "pools_plan", {"document": document})
    if failed:
        return _error("plan", data)
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _show_plan(data)
    return 2 if data["changes"] else 0


def _without_options(argv: Sequence[str], names: tuple[str, ...]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True  # its value follows
        elif not arg.startswith(tuple(f"{n}=" for n in names)):
            kept.append(arg)
    return kept


def run_apply(
    settings: Settings, path: str, *, plan_id: str | None, token: str | None, argv: Sequence[str], as_json: bool
) -> int:
    document = _document("apply", path)
    if document is None:
        return 1
    if plan_id is None:
        if token is not None:
            raise UsageError("--confirm-token needs the --plan-id it was issued for")
        failed, plan = _call(settings, "pools_plan", {"document": document})
        if failed:
            return _error("apply", plan)
        if not as_json:
            _show_plan(plan)
        if not plan["changes"]:
            return 0
        plan_id = plan["plan_id"]
    args: dict[str, object] = {"document": document, "plan_id": plan_id}
    if token is not None:
        args["confirm_token"] = token
    failed, data = _call(settings, "pools_apply", args)
    if failed:
        return _error("apply", data)
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(data["message"])
    if data["outcome"] == "confirmation_required":
        kept = _without_options(argv, ("--plan-id", "--confirm-token"))
        again = shlex.join([*kept, "--plan-id", plan_id, "--confirm-token", str(data["confirm_token"])])
        print(f"To apply it, run:\n  {program()} {again}", file=sys.stderr)
        return 2
    if data["outcome"] in ("declined", "cancelled"):
        return 2
    return 1 if data.get("failed") else 0
