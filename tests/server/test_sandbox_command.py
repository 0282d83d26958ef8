"""`poolpilot sandbox --port N` as a real process: both fake APIs on one port, its faults, its clean stop."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from poolpilot.server.shell.cli import main
from poolpilot.tools.pgbouncer.local import missing_binaries
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
PG_SMALL = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"


@contextmanager
def _sandbox(*flags: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "poolpilot.server", "sandbox", "--port", str(port), *flags],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded readiness wait for the port
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the sandbox did not listen in time"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_sandbox_command_serves_both_apis_and_prints_the_credentials() -> None:
    with _sandbox() as (url, proc):
        do = httpx2.get(f"{url}/v2/databases/{PG_SMALL}/pools", headers={"Authorization": "Bearer t"}, timeout=5)
        unsigned = httpx2.get(f"{url}/v3/054e292c9880d4992f02c0196d3ea468/instances", timeout=5)
        anonymous = httpx2.get(f"{url}/v2/databases", timeout=5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert do.status_code == 200 and do.json()["pools"][0]["name"] == "web"
    assert do.headers["ratelimit-limit"].isdigit()
    assert (unsigned.status_code, unsigned.json()["error_code"]) == (401, "APIG.0301")
    assert (anonymous.status_code, anonymous.json()["id"]) == (401, "unauthorized")
    assert "HPUAEXAMPLEAK0000001" in err and "any bearer token" in err
    assert "Traceback" not in err


def test_sandbox_command_applies_fault_rules_and_required_token() -> None:
    with _sandbox("--fault", "503@databases_list_clusters#1", "--require-token", "right") as (url, _):
        first = httpx2.get(f"{url}/v2/databases", headers={"Authorization": "Bearer right"}, timeout=5)
        second = httpx2.get(f"{url}/v2/databases", headers={"Authorization": "Bearer right"}, timeout=5)
        wrong = httpx2.get(f"{url}/v2/databases", headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert first.status_code == 503 and "retry-after" not in first.headers
    assert second.status_code == 200
    assert wrong.status_code == 401


def test_sandbox_command_rejects_a_bad_fault_rule_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "poolpilot.server", "sandbox", "--port", "0", "--fault", "explode"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "KIND[@TARGET]" in done.stderr


def test_sandbox_command_busy_port_is_one_line_and_no_banner() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "poolpilot.server", "sandbox", "--port", port],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("poolpilot: --port:") and port in done.stderr


def test_sandbox_fault_target_must_exist(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--port", "0", "--fault", "500@databases_list_cluster"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'databases_list_clusters'" in err
    assert main(["sandbox", "--port", "0", "--fault", "500@nowhere"]) == 2
    assert "not a provider or endpoint" in capsys.readouterr().err


def _stopped_within(proc: subprocess.Popen[str], sig: signal.Signals, limit_s: float) -> float:
    started = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=limit_s + 5)  # bounded; the assertion below is the real limit
    return time.monotonic() - started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sandbox_command_stops_within_2_s_with_a_request_held_by_a_timeout_fault(sig: signal.Signals) -> None:
    with _sandbox("--fault", "timeout@databases_list_clusters") as (url, proc):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as held:
            held.sendall(b"GET /v2/databases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n")
            held.settimeout(0.5)
            with pytest.raises(TimeoutError):
                held.recv(1)  # the fault holds the answer: the request is in flight
            elapsed = _stopped_within(proc, sig, 2)
        err = proc.stderr.read() if proc.stderr else ""
    assert elapsed < 2, f"took {elapsed:.2f} s"
    assert proc.returncode == 0 and "Traceback" not in err


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited; only its parent's wait is missing


@pytest.mark.skipif(bool(missing_binaries()), reason="needs PostgreSQL and PgBouncer binaries")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sandbox_with_pgbouncer_stops_both_servers_and_removes_the_userlist(sig: signal.Signals) -> None:
    with _sandbox("--with-pgbouncer") as (_, proc):
        assert proc.stderr is not None
        line = next(line for line in proc.stderr if "POOLPILOT_PGBOUNCER_LOCAL_INI=" in line)
        ini = next(w for w in shlex.split(line) if w.startswith("POOLPILOT_PGBOUNCER_LOCAL_INI="))
        root = Path(ini.partition("=")[2]).parent
        pids = [int((root / "pgbouncer.pid").read_text().split()[0])]
        pids.append(int((root / "pg" / "postmaster.pid").read_text().split()[0]))
        assert all(_alive(pid) for pid in pids) and (root / "userlist.txt").exists()
        elapsed = _stopped_within(proc, sig, 2)
    assert elapsed < 2, f"took {elapsed:.2f} s"
    assert proc.returncode == 0
    assert not root.exists()  # userlist.txt (the admin password) went with it
    assert not any(_alive(pid) for pid in pids)
