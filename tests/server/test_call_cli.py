"""`poolpilot call` as an operator uses it: state and tokens that survive the process, typed values, help per tool,
progress, did-you-mean, a closed pipe. Each test has its own XDG_STATE_HOME."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from poolpilot.server.shell.callargs import UsageError, parse_pairs
from poolpilot.server.shell.cli import main
from poolpilot.server.shell.localstate import FileStore

ROOT = Path(__file__).resolve().parents[2]
PG_SMALL = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"
PG_MAIN = "7f3d9a4b-2c6e-4b8f-a1d2-5e9c0b7a4f02"
PROD = "af315b8e6aaa41799bd9a31f2de15abcin07"
SWITCHABLE = "5881e1ca66af4aefbc64dc2874e55b3fpo01"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_", "POOLPILOT_"))}
    env.update(
        POOLPILOT_AUDIT_LOG=str(tmp_path / "audit.jsonl"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def _cli(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "poolpilot.server", *args]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cli(tmp_path, *args),
        env=_env(tmp_path),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """For in-process `main([...])` calls: the same per-test state dir the subprocesses get."""
    for name in list(os.environ):
        if name.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_", "POOLPILOT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("POOLPILOT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return tmp_path / "state" / "poolpilot"


def _pools(capsys: pytest.CaptureFixture[str], cluster: str = PG_SMALL) -> list[str]:
    assert main(["call", "digitalocean_list_pools", f"cluster_id={cluster}"]) == 0
    return [row["name"] for row in json.loads(capsys.readouterr().out)["rows"]]


def test_call_token_from_one_process_applies_in_the_next_and_the_change_persists(
    tmp_path: Path, state_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preview = _run(tmp_path, "call", "digitalocean_delete_pool", f"cluster_id={PG_SMALL}", "pool_name=web")
    assert preview.returncode == 0, preview.stderr
    token = json.loads(preview.stdout)["confirm_token"]
    command = preview.stderr.strip().splitlines()[-1].strip()
    argv = shlex.split(command)
    assert argv[-1] == f"confirm_token={token}" and "digitalocean_delete_pool" in argv

    applied = subprocess.run(
        argv, env=_env(tmp_path), cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert result["outcome"] == "executed" and result["backend"] == "sandbox"
    assert "web" not in _pools(capsys)

    replay = subprocess.run(argv, env=_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert replay.returncode == 1 and json.loads(replay.stdout)["code"] in ("not_found", "confirmation_invalid")

    assert main(["sandbox", "reset"]) == 0
    assert "web" in _pools(capsys)


def test_call_state_dir_and_files_are_private(
    tmp_path: Path, state_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["call", "digitalocean_create_database", f"cluster_id={PG_SMALL}", "database_name=2024"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "2024"  # a string, not the number 2024
    assert stat.S_IMODE(state_home.stat().st_mode) == 0o700
    for name in ("confirm-secret", "sandbox.json"):
        assert stat.S_IMODE((state_home / name).stat().st_mode) == 0o600
    saved = json.loads((state_home / "sandbox.json").read_text())
    assert "2024" in saved["digitalocean"][PG_SMALL]["dbs"]
    assert "password" not in (state_home / "sandbox.json").read_text()  # users and their passwords stay seeded


def test_call_waits_for_the_state_lock_and_loses_no_change(
    tmp_path: Path, state_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_home.mkdir(parents=True, mode=0o700)
    held = FileStore(state_home)
    held.acquire()  # another call in the middle of its request
    proc = subprocess.Popen(
        _cli(tmp_path, "call", "digitalocean_create_database", f"cluster_id={PG_MAIN}", "database_name=later"),
        env=_env(tmp_path),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)  # bounded: it must still be waiting for the lock
        held.save({"version": 1, "digitalocean": {PG_MAIN: {"dbs": ["defaultdb", "first"], "pools": []}}})
    finally:
        held.release()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert main(["call", "digitalocean_list_databases", f"cluster_id={PG_MAIN}", "page_size=100"]) == 0
    listed = [row["name"] for row in json.loads(capsys.readouterr().out)["rows"]]
    assert listed == ["defaultdb", "first", "later"]  # built on the state saved under the lock, not on its own


def test_call_without_state_forgets_and_says_the_token_is_not_kept(
    tmp_path: Path, state_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["call", "--no-sandbox-state", "digitalocean_delete_pool", f"cluster_id={PG_SMALL}", "pool_name=web"]
    assert main(args) == 0
    assert "dies with this process" in capsys.readouterr().err
    assert not state_home.exists()


def test_call_values_follow_the_schema(state_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "digitalocean_list_clusters", "page_size=1", "cursor=1"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert len(page["rows"]) == 1 and page["next_cursor"] == "2"  # cursor=1 stayed the string "1"
    assert main(["call", "digitalocean_get_database", f"cluster_id={PG_SMALL}", "database_name=null"]) == 1
    assert '"null"' in json.loads(capsys.readouterr().out)["message"]  # looked up by that name, not None


SCHEMA = {
    "properties": {
        "name": {"type": "string"},
        "note": {"type": ["string", "null"]},
        "size": {"type": "integer"},
        "limit": {"type": ["integer", "null"]},
        "ratio": {"type": "number"},
        "wait": {"type": "boolean"},
        "tags": {"type": "array"},
    }
}


def test_parse_pairs_types_each_value_by_the_schema(tmp_path: Path) -> None:
    doc = tmp_path / "tags.json"
    doc.write_text('["a", "b"]')
    pairs = ["name=2024", "note=null", "size=-3", "limit=null", "ratio=.5", "wait=false", f"tags=@{doc}"]
    assert parse_pairs("t", pairs, SCHEMA) == {
        "name": "2024",
        "note": "null",
        "size": -3,
        "limit": None,
        "ratio": 0.5,
        "wait": False,
        "tags": ["a", "b"],
    }
    assert parse_pairs("t", ['name:="x y"', "size:=7", "name2=1"][:2], SCHEMA) == {"name": "x y", "size": 7}
    assert parse_pairs("t", ["name=a=b", "note=\u2028"], SCHEMA) == {"name": "a=b", "note": "\u2028"}


@pytest.mark.parametrize(
    "pair,words",
    [
        ("size=1.0", "integer"),
        ("size=true", "integer"),
        ("size=٣", "integer"),  # a Unicode digit is not an ASCII integer
        ("wait=yes", "true or false"),
        ("wait=True", "true or false"),
        ("tags=[1,", "not valid JSON"),
        ("nmae=x", "did you mean 'name'"),
        ("size", "not key=value"),
        ("name=@/nonexistent/file.json", "cannot read"),
    ],
)
def test_parse_pairs_rejects_without_echoing_the_value(pair: str, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_pairs("t", [pair], SCHEMA)
    assert words in str(caught.value)
    value = pair.partition("=")[2]
    if len(value) > 3 and not value.startswith("@"):
        assert value not in str(caught.value)


def test_parse_pairs_does_not_echo_a_value_typed_without_its_key() -> None:
    with pytest.raises(UsageError) as caught:
        parse_pairs("t", ["name=x", "hunter2-secret"], SCHEMA)
    assert "argument 2 is not key=value" in str(caught.value) and "hunter2" not in str(caught.value)


def test_parse_pairs_refuses_a_key_given_twice() -> None:
    with pytest.raises(UsageError, match="twice"):
        parse_pairs("t", ["size=1", "size=2"], SCHEMA)


@pytest.mark.parametrize(
    "argv,words",
    [
        (["call", "digitalocean_list_clusters", "page_sise=1"], "did you mean 'page_size'"),
        (["call", "digitalocean_list_cluster"], "did you mean 'digitalocean_list_clusters'"),
        (["call", "digitalocean_list_pools", "--cluster-id", PG_SMALL], "cluster_id=…"),
        (["tools", "taurusdb_get_jbo"], "did you mean 'taurusdb_get_job'"),
    ],
)
def test_call_mistakes_are_one_line_with_a_suggestion(
    state_home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and words in err


@pytest.mark.parametrize(
    "argv", [["call", "digitalocean_update_pool", "--help"], ["tools", "digitalocean_update_pool"]]
)
def test_help_per_tool_lists_types_defaults_choices_and_safety(
    state_home: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "safety: destructive" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "required" in lines["cluster_id"] and "uuid" in lines["cluster_id"]
    assert "session|transaction|statement" in lines["mode"] and "optional" in lines["mode"]
    assert "integer" in lines["size"] and "1-25000" in lines["size"]
    assert "default false" in lines["inbound_user"]


def test_call_progress_goes_to_stderr_one_line_per_step(tmp_path: Path) -> None:
    done = _run(
        tmp_path,
        "call",
        "--confirm",
        "off",
        "--sandbox-job-seconds",
        "0.5",
        "taurusdb_set_proxy_pool_type",
        f"instance_id={PROD}",
        f"proxy_id={SWITCHABLE}",
        "pool_type=SESSION",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["wait_outcome"] == "finished"
    steps = [line for line in done.stderr.splitlines() if line.startswith("progress: ")]
    assert len(steps) >= 2 and "accepted" in steps[0] and steps[-1].startswith("progress: 100%")
    assert "\r" not in done.stderr


def test_call_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    reader_gone = subprocess.Popen(
        _cli(tmp_path, "call", "digitalocean_list_clusters"),
        env=_env(tmp_path),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader_gone.stdout is not None and reader_gone.stderr is not None
    reader_gone.stdout.close()  # `| head -0`: nobody reads the result
    err = reader_gone.stderr.read().decode()
    assert reader_gone.wait(60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("poolpilot ")


def test_call_token_works_once_across_calls(state_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["call", "digitalocean_update_pool", f"cluster_id={PG_SMALL}", "pool_name=web", "size=12"]
    assert main(args) == 0
    token = json.loads(capsys.readouterr().out)["confirm_token"]
    assert main([*args, f"confirm_token={token}"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "executed"
    assert main([*args, f"confirm_token={token}"]) == 1  # each call builds its own server, as a new process does
    refused = json.loads(capsys.readouterr().out)
    assert refused["code"] == "confirmation_invalid" and "already used" in refused["message"]
