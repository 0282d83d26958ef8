"""`poolpilot export | plan | apply` on the persistent local sandbox: the exit codes CI reads, the token path for
automation, YAML with and without the extra. Each test has its own XDG_STATE_HOME (`state_home`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from poolpilot.server.shell.cli import main
from tests.server.test_call_cli import PG_MAIN, ROOT, _env, state_home

__all__ = ["state_home"]


def _export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["export"]) == 0
    path = tmp_path / "pools.json"
    path.write_text(capsys.readouterr().out)
    return path


def _shrunk(path: Path) -> Path:
    doc = json.loads(path.read_text())
    next(p for p in doc["pools"] if (p["location"], p["pool"]) == (PG_MAIN, "app-tx"))["spec"]["size"] = 5
    out = path.with_name("shrunk.json")
    out.write_text(json.dumps(doc))
    return out


def test_poolpilot_plan_exits_0_without_changes_and_2_with_changes(
    state_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = _export(tmp_path, capsys)
    assert main(["plan", str(exported)]) == 0
    assert "No changes" in capsys.readouterr().out
    assert main(["plan", str(_shrunk(exported)), "--json"]) == 2
    plan = json.loads(capsys.readouterr().out)
    assert [(s["action"], s["pool"]) for s in plan["steps"]] == [("update", "app-tx")]


def test_poolpilot_plan_exits_1_on_an_unreadable_or_refused_document(
    state_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(tmp_path / "missing.json")]) == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["plan", str(broken)]) == 1
    over = tmp_path / "over.json"
    spec = {"mode": "session", "size": 500, "db": "app"}
    over.write_text(
        json.dumps({"pools": [{"provider": "digitalocean", "location": PG_MAIN, "pool": "big", "spec": spec}]})
    )
    assert main(["plan", str(over)]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "is not valid JSON" in err and "over budget" in err


def test_poolpilot_apply_without_a_terminal_prints_the_command_that_applies_the_reviewed_plan(
    state_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shrunk = _shrunk(_export(tmp_path, capsys))
    assert main(["apply", str(shrunk), "--json"]) == 2
    out = capsys.readouterr()
    preview = json.loads(out.out)
    assert preview["outcome"] == "confirmation_required" and preview["executed"] is False
    assert f"--plan-id {preview['plan_id']} --confirm-token" in out.err
    confirmed = ["apply", str(shrunk), "--plan-id", preview["plan_id"], "--confirm-token", preview["confirm_token"]]
    assert main(confirmed) == 0
    assert "Applied all 1 steps" in capsys.readouterr().out
    assert main(["plan", str(shrunk)]) == 0
    assert main(confirmed) == 1  # the plan is done: its plan_id no longer matches
    assert "plan_id no longer matches" in capsys.readouterr().err


def test_poolpilot_plan_reads_yaml_and_names_the_extra_when_pyyaml_is_missing(
    state_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--yaml"]) == 0
    document = tmp_path / "pools.yaml"
    document.write_text(capsys.readouterr().out)
    assert main(["plan", str(document)]) == 0
    blocked = "import sys; sys.modules['yaml'] = None; from poolpilot.server.shell.cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", blocked, "plan", str(document)],
        env=_env(tmp_path),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "pip install 'poolpilot[yaml]'" in result.stderr
