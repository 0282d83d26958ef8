"""`poolpilot doctor` against the sandbox on a real port (in a thread, served as `poolpilot sandbox` serves it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from poolpilot.server.shell.doctor import Check, DoctorReport, diagnose, render
from poolpilot.tools.taurusdb.sandbox_seed import SANDBOX_AK, SANDBOX_PROJECT_ID, SANDBOX_SK
from tests.support import Sandbox, served

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
DO_TOKEN = "right-token-for-doctor-tests"


def _env(base: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "DIGITALOCEAN_TOKEN": DO_TOKEN,
        "POOLPILOT_DIGITALOCEAN_URL": base,
        "HUAWEICLOUD_SDK_AK": SANDBOX_AK,
        "HUAWEICLOUD_SDK_SK": SANDBOX_SK,
        "HUAWEICLOUD_SDK_PROJECT_ID": SANDBOX_PROJECT_ID,
        "POOLPILOT_TAURUSDB_URL": base,
        "POOLPILOT_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "HOME": str(tmp_path),
    }
    env.update(extra)
    return env


def _check(report: DoctorReport, name: str) -> Check:
    return next(c for c in report.checks if c.name == name)


async def test_doctor_reports_all_ok_against_the_sandbox(tmp_path: Path) -> None:
    with served(Sandbox(do_require_token=DO_TOKEN)) as base:
        report = await diagnose({}, _env(base, tmp_path))
    assert report.ok, render(report)
    assert all(c.status == "ok" for c in report.checks), render(report)
    names = [c.name for c in report.checks]
    for name in ("digitalocean credentials", "taurusdb credentials", "confirm secret", "audit log"):
        assert name in names
    assert names.index("versions") < names.index("settings") < names.index("digitalocean endpoint")
    assert report.settings["digitalocean_token"].value == "set"
    assert report.settings["digitalocean_url"].source == "env POOLPILOT_DIGITALOCEAN_URL"


async def test_doctor_wrong_digitalocean_token_fails_naming_the_variable(tmp_path: Path) -> None:
    with served(Sandbox(do_require_token=DO_TOKEN)) as base:
        report = await diagnose({"toolsets": "digitalocean"}, _env(base, tmp_path, DIGITALOCEAN_TOKEN="wrong"))
    assert not report.ok
    check = _check(report, "digitalocean credentials")
    assert check.status == "fail"
    assert "DIGITALOCEAN_TOKEN" in check.detail and check.fix is not None and "DIGITALOCEAN_TOKEN" in check.fix
    assert _check(report, "digitalocean endpoint").status == "ok"


async def test_doctor_reports_taurusdb_clock_skew_after_one_signature(tmp_path: Path) -> None:
    sandbox = Sandbox(taurus_clock_skew_s=1200)
    with served(sandbox) as base:
        report = await diagnose({"toolsets": "taurusdb"}, _env(base, tmp_path))
    check = _check(report, "taurusdb credentials")
    assert check.status == "fail"
    assert "clock" in check.detail and "20 minutes" in check.detail
    assert check.fix is not None and "clock" in check.fix
    assert sandbox.requests == 1  # a rejected signature is never repeated


async def test_doctor_unreachable_endpoint_fails_within_the_timeout(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with anyio.fail_after(5):
            report = await diagnose({"toolsets": "digitalocean"}, _env(base, tmp_path), timeout_s=0.5)
    check = _check(report, "digitalocean endpoint")
    assert check.status == "fail" and "0.5 s" in check.detail
    assert check.fix is not None and "POOLPILOT_DIGITALOCEAN_URL" in check.fix
    assert not report.ok


async def test_doctor_bad_setting_fails_with_its_fix(tmp_path: Path) -> None:
    report = await diagnose({}, {"HUAWEICLOUD_SDK_REGION": "mars-north-1", "HOME": str(tmp_path)})
    check = _check(report, "settings")
    assert check.status == "fail" and "HUAWEICLOUD_SDK_REGION" in check.detail
    assert check.fix is not None and "cn-north-4" in check.fix
    assert not report.ok


async def test_doctor_http_checks_report_a_busy_port_and_missing_hosts(tmp_path: Path) -> None:
    env = {"POOLPILOT_AUDIT_LOG": str(tmp_path / "audit.jsonl"), "POOLPILOT_AUTH_TOKEN": "t" * 32}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        flags = {"transport": "streamable-http", "port": port, "backend": "sandbox"}
        report = await diagnose(flags, env)
        assert _check(report, "http port").status == "fail"
    wide = await diagnose({"transport": "streamable-http", "host": "0.0.0.0", "backend": "sandbox"}, env)
    hosts = _check(wide, "http hosts")
    assert hosts.status == "fail" and hosts.fix is not None and "--allowed-hosts" in hosts.fix


async def test_doctor_sandbox_only_setup_is_ok_and_says_so(tmp_path: Path) -> None:
    report = await diagnose({}, {"POOLPILOT_AUDIT_LOG": str(tmp_path / "a.jsonl")})
    assert report.ok, render(report)
    assert "sandbox" in _check(report, "digitalocean").detail
    assert not any(c.name.endswith("endpoint") for c in report.checks)  # nothing is sent in sandbox mode


def test_doctor_json_output_validates_against_its_model(tmp_path: Path) -> None:
    with served(Sandbox(do_require_token=DO_TOKEN)) as base:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_", "POOLPILOT_"))}
        env.update(_env(base, tmp_path), PYTHONPATH=str(ROOT))
        done = subprocess.run(
            [sys.executable, "-m", "poolpilot.server", "doctor", "--json"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    report = DoctorReport.model_validate_json(done.stdout)
    assert report.ok
    for secret in (DO_TOKEN, SANDBOX_SK):
        assert secret not in done.stdout
