"""The installed distribution claims one import name, `poolpilot` (issue 16), and ships every module of the tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _wheel(tmp_path: Path) -> zipfile.ZipFile:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("poolpilot-*.whl")
    return zipfile.ZipFile(wheel)


def test_wheel_installs_only_the_poolpilot_namespace_with_every_module(tmp_path: Path) -> None:
    names = _wheel(tmp_path).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"poolpilot"}
    shipped = {n for n in names if n.endswith(".py")}
    tree = {
        f"poolpilot/{p.relative_to(ROOT).as_posix()}"
        for folder in ("server", "tools")
        for p in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert tree <= shipped, sorted(tree - shipped)
    assert "poolpilot/tools/pools/desired-state.schema.json" in names  # pools_plan's input schema reads it
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)


def test_license_file_is_the_apache_2_text_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text and "9. Accepting Warranty or Additional Liability." in text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_no_module_imports_the_bare_source_folder_names() -> None:
    offenders = []
    for folder in ("server", "tools", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                stripped = line.strip()
                if stripped.startswith(("from server", "import server", "from tools", "import tools")):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {stripped}")
    assert offenders == []
