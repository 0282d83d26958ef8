"""One scenario against a real `python -m poolpilot.server serve` subprocess over stdio, SSE and streamable HTTP.

The scenario: initialize, list tools, a read call, a guarded call through the token path, and a TaurusDB job
waited on with progress notifications. The HTTP servers run on a free loopback port with a bearer token and
end with SIGTERM, which must exit 0 without a traceback. The environment holds no provider credentials, so the
embedded sandbox answers; its jobs are shortened through POOLPILOT_SANDBOX_JOB_SECONDS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from anyio.abc import Process
from mcp import Client
from mcp.client.client import ConnectMode
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from poolpilot.server.kernel.config import Settings
from poolpilot.server.shell.transports import security_settings
from poolpilot.tools.taurusdb.sandbox_seed import INSTANCE_PROD, PROXY_SWITCHABLE
from tests.support import free_port

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-bearer-token-0123456789abcdef"
PG_SMALL = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"
STARTUP_S = 20.0
MODERN = "2026-07-28"
# auto: the 2026-07-28 protocol (server/discover); legacy: the initialize handshake (and, on stateless HTTP, no
# back-channel: destructive calls must take the token path there).
MODES = pytest.mark.parametrize("mode", ["auto", "legacy"])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment minus credentials and poolpilot settings, plus an audit log in tmp and quick jobs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_", "POOLPILOT_"))}
    env.update(
        POOLPILOT_AUDIT_LOG=str(tmp_path / "audit.jsonl"),
        POOLPILOT_SANDBOX_JOB_SECONDS="0.3",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


@asynccontextmanager
async def _http_server(tmp_path: Path, *args: str) -> AsyncIterator[tuple[int, Process, Path]]:
    """Start `serve` with `args` on a free port; wait (bounded) until it accepts connections."""
    port = free_port()
    err_path = tmp_path / f"stderr-{port}.txt"
    with err_path.open("wb") as err:
        process = await anyio.open_process(
            [sys.executable, "-m", "poolpilot.server", "serve", "--port", str(port), *args],
            env=_env(tmp_path, POOLPILOT_AUTH_TOKEN=TOKEN),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        with anyio.fail_after(STARTUP_S):
            while True:
                assert process.returncode is None, await anyio.Path(err_path).read_text()
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", port)
                except OSError:
                    await anyio.sleep(0.05)  # bounded readiness polling of the subprocess port
                    continue
                await stream.aclose()
                break
        yield port, process, err_path
    finally:
        if process.returncode is None:
            process.kill()
            with anyio.move_on_after(5):
                await process.wait()


async def _terminate(process: Process, err_path: Path) -> None:
    process.send_signal(signal.SIGTERM)
    await _exits_cleanly(process, err_path)


async def _exits_cleanly(process: Process, err_path: Path) -> None:
    with anyio.fail_after(15):
        code = await process.wait()
    stderr = await anyio.Path(err_path).read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr


async def _toolsets(client: Client, dynamic: bool) -> None:
    """toolsets_enable lasts for the session where there is one (handshake-era, not stateless); elsewhere it says
    to use --toolsets."""
    enabled = await client.call_tool("toolsets_enable", {"toolset": "digitalocean_databases"})
    names = {tool.name for tool in (await client.list_tools(cache_mode="bypass")).tools}
    listed = await client.call_tool("digitalocean_list_databases", {"cluster_id": PG_SMALL})
    assert enabled.structured_content is not None
    if dynamic:
        assert not enabled.is_error and "digitalocean_list_databases" in names and not listed.is_error
    else:
        assert enabled.is_error and enabled.structured_content["code"] == "not_supported"
        assert "digitalocean_list_databases" not in names and listed.is_error


async def _scenario(client: Client, mode: ConnectMode, stateless: bool = False) -> None:
    assert (client.protocol_version == MODERN) == (mode == "auto")  # legacy: the initialize handshake
    await _toolsets(client, dynamic=mode == "legacy" and not stateless)
    assert client.server_info is not None and client.server_info.name == "poolpilot"
    listed = await client.list_tools()
    names = {tool.name for tool in listed.tools}
    assert {"digitalocean_list_clusters", "digitalocean_delete_pool", "taurusdb_set_proxy_pool_type"} <= names

    clusters = await client.call_tool("digitalocean_list_clusters", {})
    assert not clusters.is_error and clusters.structured_content is not None
    assert clusters.structured_content["backend"] == "sandbox"
    assert PG_SMALL in {row["id"] for row in clusters.structured_content["rows"]}

    args = {"cluster_id": PG_SMALL, "pool_name": "web"}
    preview = await client.call_tool("digitalocean_delete_pool", args)  # no elicitation callback: token path
    assert not preview.is_error and preview.structured_content is not None
    assert preview.structured_content["confirmation_required"] is True
    assert preview.structured_content["executed"] is False
    token = preview.structured_content["confirm_token"]
    done = await client.call_tool("digitalocean_delete_pool", {**args, "confirm_token": token})
    assert not done.is_error and done.structured_content is not None
    assert done.structured_content["executed"] is True

    switch = {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE, "pool_type": "SESSION"}
    offer = await client.call_tool("taurusdb_set_proxy_pool_type", switch)
    assert offer.structured_content is not None and offer.structured_content["confirm_token"]
    updates: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(progress)

    confirmed = {**switch, "wait": True, "confirm_token": offer.structured_content["confirm_token"]}
    result = await client.call_tool("taurusdb_set_proxy_pool_type", confirmed, progress_callback=on_progress)
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["executed"] is True
    assert result.structured_content["wait_outcome"] == "finished"
    assert result.structured_content["pool_type_now"] == "SESSION"
    assert updates, "no progress notification arrived"


@MODES
async def test_stdio_scenario_runs_end_to_end(tmp_path: Path, mode: ConnectMode) -> None:
    env = _env(tmp_path)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "poolpilot.server", "serve"],
        env={k: env[k] for k in ("POOLPILOT_AUDIT_LOG", "POOLPILOT_SANDBOX_JOB_SECONDS", "PYTHONPATH")},
        cwd=ROOT,
    )
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as errlog, anyio.fail_after(60):
        async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
            await _scenario(client, mode)
    stderr = await anyio.Path(err_path).read_text()
    assert "Traceback" not in stderr
    assert "poolpilot:" in stderr  # the banner went to stderr, stdout carried only the protocol


@MODES
async def test_sse_scenario_runs_end_to_end(tmp_path: Path, mode: ConnectMode) -> None:
    async with _http_server(tmp_path, "--transport", "sse") as (port, process, err_path):
        transport = sse_client(f"http://127.0.0.1:{port}/sse", headers={"Authorization": f"Bearer {TOKEN}"})
        with anyio.fail_after(60):
            async with Client(transport, mode=mode) as client:
                await _scenario(client, mode)
        await _terminate(process, err_path)


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
@MODES
async def test_streamable_http_scenario_runs_end_to_end(tmp_path: Path, stateless: bool, mode: ConnectMode) -> None:
    extra = ["--stateless"] if stateless else []
    async with _http_server(tmp_path, "--transport", "streamable-http", *extra) as (port, process, err_path):
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
        async with http:
            transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
            with anyio.fail_after(60):
                async with Client(transport, mode=mode) as client:
                    await _scenario(client, mode, stateless)
        await _terminate(process, err_path)


def _client(transport: str, port: int, http: httpx2.AsyncClient) -> Client:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    if transport == "sse":
        return Client(sse_client(f"http://127.0.0.1:{port}/sse", headers=auth))
    return Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http))


@pytest.mark.parametrize("transport", ["sse", "streamable-http"])
async def test_http_sigterm_with_a_connected_client_exits_cleanly(tmp_path: Path, transport: str) -> None:
    async with (
        _http_server(tmp_path, "--transport", transport) as (port, process, err_path),
        create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        with anyio.fail_after(30):
            async with _client(transport, port, http) as client:  # holds an event stream open, idle
                await client.list_tools()
                await _terminate(process, err_path)  # the idle stream is closed, not waited out and cancelled


async def test_streamable_http_sigterm_lets_an_in_flight_call_finish(tmp_path: Path) -> None:
    switch = {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE, "pool_type": "SESSION", "wait": True}
    async with (
        _http_server(tmp_path, "--transport", "streamable-http") as (port, process, err_path),
        create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        with anyio.fail_after(30):
            async with _client("streamable-http", port, http) as client:
                offer = await client.call_tool("taurusdb_set_proxy_pool_type", switch)
                assert offer.structured_content is not None
                in_flight = anyio.Event()
                results = []

                async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                    in_flight.set()

                async def call() -> None:
                    token = offer.structured_content["confirm_token"] if offer.structured_content else None
                    args = {**switch, "confirm_token": token}
                    results.append(await client.call_tool("taurusdb_set_proxy_pool_type", args, None, on_progress))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    await in_flight.wait()  # the job is accepted and being followed
                    process.send_signal(signal.SIGTERM)
        await _exits_cleanly(process, err_path)
    assert results[0].structured_content is not None
    assert results[0].structured_content["executed"] is True
    assert results[0].structured_content["wait_outcome"] == "finished"


@pytest.mark.parametrize("transport,path", [("streamable-http", "/mcp"), ("sse", "/sse")])
async def test_http_request_without_right_token_gets_401(tmp_path: Path, transport: str, path: str) -> None:
    async with _http_server(tmp_path, "--transport", transport) as (port, process, err_path):
        url = f"http://127.0.0.1:{port}{path}"
        async with httpx2.AsyncClient(timeout=10) as http:
            for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
                response = await http.get(url, headers=headers)
                assert response.status_code == 401
                assert response.headers["www-authenticate"].startswith("Bearer")
            query = await http.get(f"{url}?access_token={TOKEN}")  # never a query-string token
            assert query.status_code == 401
        await _terminate(process, err_path)


async def test_http_bad_origin_and_host_are_rejected(tmp_path: Path) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}
    async with _http_server(tmp_path, "--transport", "streamable-http") as (port, process, err_path):
        url = f"http://127.0.0.1:{port}/mcp"
        async with httpx2.AsyncClient(timeout=10) as http:
            origin = await http.post(url, json=body, headers={**auth, "Origin": "https://evil.example"})
            assert origin.status_code == 403
            host = await http.post(url, json=body, headers={**auth, "Host": "evil.example"})
            assert host.status_code == 421
        await _terminate(process, err_path)


def test_off_loopback_bind_without_token_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "poolpilot.server", "serve", "--transport", "streamable-http", "--host", "0.0.0.0"],
        env=_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "POOLPILOT_AUTH_TOKEN" in lines[0] and "--host" in lines[0]


async def test_stdio_sigterm_exits_cleanly(tmp_path: Path) -> None:
    err_path = tmp_path / "stderr.txt"
    with err_path.open("wb") as err:
        process = await anyio.open_process(
            [sys.executable, "-m", "poolpilot.server", "serve"],
            env=_env(tmp_path),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        with anyio.fail_after(STARTUP_S):
            while "poolpilot:" not in await anyio.Path(err_path).read_text():  # signals are handled by now
                assert process.returncode is None
                await anyio.sleep(0.05)
        await _terminate(process, err_path)
        assert process.stdout is not None
        with pytest.raises(anyio.EndOfStream):  # nothing but protocol on stdout, and no protocol was spoken
            await process.stdout.receive()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_security_settings_off_loopback_take_the_operators_hosts_and_origins() -> None:
    settings = Settings(
        transport="streamable-http",
        host="10.0.0.5",
        auth_token="t" * 32,
        allowed_hosts=("mcp.example.com", "10.0.0.5:8443"),
        allowed_origins=("https://app.example.com",),
    )
    security = security_settings(settings)
    assert security.enable_dns_rebinding_protection
    assert security.allowed_hosts == ["mcp.example.com", "mcp.example.com:*", "10.0.0.5:8443"]
    assert security.allowed_origins == ["https://app.example.com"]
    bare = security_settings(Settings(transport="sse", host="10.0.0.5", auth_token="t" * 32))
    assert bare.allowed_hosts == ["10.0.0.5", "10.0.0.5:*"] and bare.allowed_origins == []


def test_security_settings_on_loopback_keep_loopback_names_and_add_extras() -> None:
    security = security_settings(Settings(transport="sse", allowed_origins=("https://app.example.com",)))
    assert "127.0.0.1:*" in security.allowed_hosts and "localhost:*" in security.allowed_hosts
    assert security.allowed_origins[-1] == "https://app.example.com"
    assert "http://localhost:*" in security.allowed_origins
