"""The CLI: one-line start-up errors (never a traceback), `tools`, `call`, `--help` and usage errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from poolpilot.server.shell.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["serve", "sandbox", "tools", "call", "doctor", "config"]


def _run(args: list[str], tmp_path: Path, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_", "POOLPILOT_"))}
    env.update(POOLPILOT_AUDIT_LOG=str(tmp_path / "audit.jsonl"), PYTHONPATH=str(ROOT), **env_extra)
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return subprocess.run(
        [sys.executable, "-m", "poolpilot.server", *args],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


STARTUP_ERRORS = [
    pytest.param(["serve", "--toolsets", "digitalocean,nope"], {}, "--toolsets", None, id="unknown-toolset"),
    pytest.param(["serve"], {"DIGITALOCEAN_TOKEN": "dop_v1_abc\n"}, "DIGITALOCEAN_TOKEN", "dop_v1_abc", id="do-token"),
    pytest.param(
        ["serve"],
        {"HUAWEICLOUD_SDK_AK": "HPUAEXAMPLEAK0000001", "HUAWEICLOUD_SDK_SK": "sk with spaces"},
        "HUAWEICLOUD_SDK_SK",
        "sk with spaces",
        id="huawei-sk",
    ),
    pytest.param(["serve"], {"HUAWEICLOUD_SDK_PROJECT_ID": "short"}, "HUAWEICLOUD_SDK_PROJECT_ID", None, id="project"),
    pytest.param(["serve"], {"HUAWEICLOUD_SDK_REGION": "mars-north-1"}, "HUAWEICLOUD_SDK_REGION", None, id="region"),
    pytest.param(
        ["serve", "--transport", "streamable-http", "--host", "0.0.0.0"], {}, "--host", None, id="off-loopback"
    ),
    pytest.param(
        ["serve", "--transport", "sse", "--host", "0.0.0.0"],
        {"POOLPILOT_AUTH_TOKEN": "a-long-enough-bearer-token"},
        "--allowed-hosts",
        "a-long-enough-bearer-token",
        id="wildcard-without-hosts",
    ),
    pytest.param(
        ["serve"],
        {"POOLPILOT_PGBOUNCER_MAIN_DSN": "postgresql://admin:pgb-secret-pw@db:6432/postgres"},
        "POOLPILOT_PGBOUNCER_MAIN_DSN",
        "pgb-secret-pw",
        id="pgbouncer-dsn",
    ),
]


@pytest.mark.parametrize("args,env,setting,secret", STARTUP_ERRORS)
def test_serve_startup_error_is_one_line_naming_the_setting(
    tmp_path: Path, args: list[str], env: dict[str, str], setting: str, secret: str | None
) -> None:
    done = _run(args, tmp_path, **env)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("poolpilot: ") and setting in lines[0] and "Fix:" in lines[0]
    if secret is not None:
        assert secret not in done.stderr


def test_serve_busy_port_is_one_line_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        done = _run(["serve", "--transport", "streamable-http", "--port", port], tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolpilot: --port:") and port in lines[0]


def test_tools_lists_every_provider_tool_with_its_class(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "--json", "--toolsets", "digitalocean,taurusdb"]) == 0
    rows = json.loads(capsys.readouterr().out)["tools"]
    by_name = {row["name"]: row["safety"] for row in rows}
    assert by_name["digitalocean_list_clusters"] == "read"
    assert by_name["digitalocean_delete_pool"] == "destructive"
    assert any(name.startswith("taurusdb_") for name in by_name)


def test_tools_read_only_hides_changing_tools(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "--read-only", "--toolsets", "digitalocean,taurusdb"]) == 0
    out = capsys.readouterr().out
    assert "digitalocean_list_clusters" in out and "digitalocean_delete_pool" not in out
    assert "hidden by --read-only" in out


def test_call_list_clusters_prints_json(tmp_path: Path) -> None:
    done = _run(["call", "digitalocean_list_clusters", "page_size=2"], tmp_path)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["backend"] == "sandbox" and len(payload["rows"]) == 2 and payload["next_cursor"]


def test_call_unknown_tool_exits_2_in_one_line(tmp_path: Path) -> None:
    done = _run(["call", "digitalocean_list_nothing"], tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and 'no tool named "digitalocean_list_nothing"' in done.stderr


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_exits_0(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"] if command else ["--help"])
    assert exit_info.value.code == 0
    assert "usage: poolpilot" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--no-such-flag"],
        ["serve", "--auth-token", "visible-in-ps"],
        ["serve", "--transport", "carrier-pigeon"],
        ["serve", "--transport", "http"],
        ["serve", "--port", "abc"],
        ["sandbox", "--port", "70000"],
        ["sandbox", "resett"],
        ["config", "emacs"],
        ["frobnicate"],
    ],
)
def test_bad_flag_exits_2_in_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("poolpilot") and "--help`" in err and "usage:" not in err
    assert "visible-in-ps" not in err


def test_banner_names_poolpilot_by_full_path_unless_it_is_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from poolpilot.server.kernel.config import load_settings
    from poolpilot.server.shell.commands import banner

    script = Path(sys.executable).parent / "poolpilot"
    if not script.is_file():
        pytest.skip("not running from an environment with the poolpilot script")
    monkeypatch.setenv("POOLPILOT_AUDIT_LOG", "-")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert f"`{script} call digitalocean_list_clusters`" in banner(load_settings({}))
    monkeypatch.setenv("PATH", str(script.parent))
    assert "`poolpilot call digitalocean_list_clusters`" in banner(load_settings({}))


def test_install_hint_fits_a_clone() -> None:
    from poolpilot.tools.pgbouncer.extra import install_hint

    assert install_hint() == f"pip install -e '.[pgbouncer]' in {ROOT}"  # the tests run from a clone


def test_doctor_warns_when_confirmation_is_off(tmp_path: Path) -> None:
    import anyio

    from poolpilot.server.shell.doctor import diagnose

    report = anyio.run(diagnose, {"confirm": "off"}, {"POOLPILOT_AUDIT_LOG": str(tmp_path / "a.jsonl")})
    check = next(c for c in report.checks if c.name == "confirm mode")
    assert check.status == "warn" and "WITHOUT asking" in check.detail
