"""Processes for the benchmark: servers and sandboxes on loopback ports, their environment, CPU and memory.

Every process started here runs in its own session and is stopped (SIGTERM, then SIGKILL) however the block ends;
every wait has a timeout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx2
from mcp.client.stdio import get_default_environment

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HELLO = str(REPO / "benchmarks" / "hello_server.py")
SERVE = [PYTHON, "-m", "poolpilot.server", "serve"]
SPAWN_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 300.0
# The sandbox allows 250 requests per minute per token (DigitalOcean's burst limit): every phase that talks to
# a sandbox uses its own token and stays below that, so no 429 (and no retry) ever lands in a measurement.
DO_BURST_LIMIT = 250

Call = Callable[[], Awaitable[None]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(**extra: str) -> dict[str, str]:
    """The environment the SDK's stdio client gives a server (no inherited credentials), plus `extra`."""
    return get_default_environment() | {"PYTHONUNBUFFERED": "1"} | extra


def live_env(
    sandbox_url: str, token: str, audit_dir: str, toolsets: str = "digitalocean", **extra: str
) -> dict[str, str]:
    """poolpilot in live mode, its DigitalOcean client pointed at a sandbox served on a loopback port."""
    return server_env(
        POOLPILOT_DIGITALOCEAN_URL=sandbox_url,
        DIGITALOCEAN_TOKEN=token,
        POOLPILOT_TOOLSETS=toolsets,
        POOLPILOT_AUDIT_LOG=str(Path(audit_dir) / "audit.jsonl"),
        **extra,
    )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def spawned(args: list[str], env: dict[str, str], log: TextIO) -> Iterator[subprocess.Popen[bytes]]:
    """A background process (its own session), stopped with SIGTERM then SIGKILL however the block ends."""
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


async def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Until something accepts TCP on `port` (uvicorn binds after its start-up), or fail when the process dies
    or SPAWN_TIMEOUT_S passes. A TCP probe, not a GET: a GET on a streamable HTTP endpoint opens an endless stream."""
    with anyio.fail_after(SPAWN_TIMEOUT_S):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before port {port} opened")
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)
            else:
                await stream.aclose()
                return


@asynccontextmanager
async def sandbox(log: TextIO, *faults: str) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """`poolpilot sandbox` (DigitalOcean and TaurusDB fakes, seeded) on a free loopback port, ready to answer."""
    port = free_port()
    args = [PYTHON, "-m", "poolpilot.server", "sandbox", "--port", str(port)]
    for rule in faults:
        args += ["--fault", rule]
    with spawned(args, server_env(), log) as proc:
        await wait_port(port, proc)
        yield f"http://127.0.0.1:{port}", proc


async def timed(fn: Callable[[], Awaitable[object]], count: int, into: list[float]) -> None:
    for _ in range(count):
        start = time.perf_counter()
        await fn()
        into.append(time.perf_counter() - start)


def direct_client(url: str, token: str) -> httpx2.AsyncClient:
    """httpx2 straight to a sandbox: the upstream request without poolpilot (enter it with `async with`)."""
    return httpx2.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(10.0))


def direct_get(client: httpx2.AsyncClient, path: str) -> Call:
    async def call() -> None:
        response = await client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")

    return call


def check_result(tool: str, result: Any) -> None:
    """A benchmark of failures would be meaningless: every poolpilot call must succeed, from the live backend."""
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")
    data = result.structured_content or {}
    if data.get("backend") not in (None, "live"):
        raise RuntimeError(f"{tool} answered from backend {data.get('backend')!r}, expected live")
