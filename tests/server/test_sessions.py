"""Stateful streamable HTTP sessions stay bounded (issue 19): per client address, in total, oldest idle evicted first;
and a real `serve` process flooded with never-closed sessions keeps serving legitimate clients in bounded memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.types import Message, Receive, Scope, Send

from poolpilot.server.shell.sessions import StreamLimits
from poolpilot.server.shell.transports import http_app
from tests.support import free_port, make_app, ok_data

ROOT = Path(__file__).resolve().parents[2]
PG_SMALL = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"
VERSION = "2025-11-25"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}},
}


async def _open_session(http: httpx2.AsyncClient) -> str | None:
    """An initialised session that is never closed (what a flood leaves behind); None when refused."""
    opened = await http.post("/mcp", json=INIT, headers=HEADERS)
    session = opened.headers.get("mcp-session-id")
    if opened.status_code != 200 or session is None:
        return None
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    await http.post("/mcp", json=done, headers={**HEADERS, "mcp-session-id": session, "mcp-protocol-version": VERSION})
    return session


async def _alive(http: httpx2.AsyncClient, session: str) -> bool:
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    answer = await http.post(
        "/mcp", json=ping, headers={**HEADERS, "mcp-session-id": session, "mcp-protocol-version": VERSION}
    )
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


@asynccontextmanager
async def _in_process(tmp_path: Path, **limits: Any) -> AsyncIterator[dict[str, httpx2.AsyncClient]]:
    """The real streamable HTTP app (stateful) in process; one HTTP client per client address a, b, c."""
    app, _, _ = make_app(tmp_path / "audit.jsonl", transport="streamable-http", **limits)
    asgi = http_app(app, app.state.settings)
    async with app.session_manager.run():
        http = {
            name: httpx2.AsyncClient(
                transport=httpx2.ASGITransport(asgi, client=(address, 5000)), base_url="http://127.0.0.1:8000"
            )
            for name, address in (("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.0.0.3"))
        }
        try:
            yield http
        finally:
            for client in http.values():
                await client.aclose()


async def test_sessions_per_client_address_evict_that_clients_oldest_idle_session(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with _in_process(tmp_path, max_sessions=10, max_sessions_per_client=2) as http:
            first, second = await _open_session(http["a"]), await _open_session(http["a"])
            other = await _open_session(http["b"])
            assert first and second and other
            third = await _open_session(http["a"])  # a's third: a's oldest idle session makes room
            assert third is not None
            assert not await _alive(http["a"], first)
            assert await _alive(http["a"], second) and await _alive(http["a"], third)
            assert await _alive(http["b"], other)  # another address is not touched


async def test_sessions_beyond_the_total_evict_the_least_recently_used_idle_session(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with _in_process(tmp_path, max_sessions=3, max_sessions_per_client=3) as http:
            a1, a2, b1 = await _open_session(http["a"]), await _open_session(http["a"]), await _open_session(http["b"])
            assert a1 and a2 and b1
            assert await _alive(http["a"], a1)  # a1 used again: a2 is now the least recently used
            c1 = await _open_session(http["c"])
            assert c1 is not None and await _alive(http["c"], c1)
            assert not await _alive(http["a"], a2)
            assert await _alive(http["a"], a1) and await _alive(http["b"], b1)


# -- a real process under a flood ------------------------------------------------------------------


def _rss_kib(pid: int) -> int | None:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return None
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1])


@contextmanager
def _serve(
    tmp_path: Path, transport: str = "streamable-http", **env_extra: str
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_", "POOLPILOT_"))}
    env.update(PYTHONPATH=str(ROOT), POOLPILOT_AUDIT_LOG=str(tmp_path / "audit.jsonl"), **env_extra)
    err = tmp_path / "stderr.txt"
    with err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "poolpilot.server", "serve", "--transport", transport, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 20
        while True:  # bounded readiness polling of the subprocess's port
            assert process.poll() is None, err.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not listen in time"
                time.sleep(0.05)
        yield port, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


FLOOD = 600
LIMIT = 40


async def test_session_flood_leaves_legitimate_clients_working_in_bounded_memory(tmp_path: Path) -> None:
    limits = {"POOLPILOT_MAX_SESSIONS": str(LIMIT), "POOLPILOT_MAX_SESSIONS_PER_CLIENT": str(LIMIT)}
    args = {"cluster_id": PG_SMALL}
    with _serve(tmp_path, **limits) as (port, process), anyio.fail_after(60):
        base = f"http://127.0.0.1:{port}"
        async with (
            httpx2.AsyncClient(base_url=base, timeout=30) as http,
            Client(streamable_http_client(f"{base}/mcp", http_client=http), mode="legacy") as legit,
        ):
            ok_data(await legit.call_tool("digitalocean_list_pools", args))  # warm: first calls allocate for good
            early = [await _open_session(http) for _ in range(5)]
            before = _rss_kib(process.pid)
            opened: list[str | None] = []
            limiter = anyio.Semaphore(8)

            async def flood() -> None:
                async with limiter:
                    opened.append(await _open_session(http))

            async with anyio.create_task_group() as tg:
                for _ in range(FLOOD):
                    tg.start_soon(flood)
            after = _rss_kib(process.pid)
            assert sum(1 for s in opened if s) >= FLOOD * 0.9  # new clients are admitted, not locked out
            assert not any([await _alive(http, s) for s in early if s])  # the oldest idle ones were evicted
            ok_data(await legit.call_tool("digitalocean_list_pools", args))  # its open event stream kept it
            async with Client(streamable_http_client(f"{base}/mcp", http_client=http), mode="legacy") as late:
                ok_data(await late.call_tool("digitalocean_list_pools", args))
        if before is not None and after is not None:
            # Unbounded, FLOOD sessions would hold ~37 KiB each (22 MiB); LIMIT of them about 1.5 MiB.
            assert after - before < 8 * 1024, f"RSS grew {after - before} KiB under the flood"


# -- legacy SSE: a session is its open event stream --------------------------------------------------------------


async def test_sse_streams_beyond_a_limit_are_refused_and_a_closed_one_makes_room(tmp_path: Path) -> None:
    limits = {"POOLPILOT_MAX_SESSIONS": "10", "POOLPILOT_MAX_SESSIONS_PER_CLIENT": "2"}
    with _serve(tmp_path, "sse", **limits) as (port, _), anyio.fail_after(30):
        async with (
            httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
            AsyncExitStack() as stack,
        ):
            readers = []  # kept: a line iterator collected early closes its stream

            async def open_stream() -> httpx2.Response:
                response = await stack.enter_async_context(http.stream("GET", "/sse"))
                if response.status_code == 200:  # admitted: the SDK's first event names the session's endpoint
                    readers.append(response.aiter_lines())
                    assert await anext(readers[-1]) == "event: endpoint"
                return response

            first, second = await open_stream(), await open_stream()
            third = await open_stream()
            assert [first.status_code, second.status_code, third.status_code] == [200, 200, 503]
            assert third.headers["retry-after"] == "5"
            await first.aclose()
            for _ in range(50):  # the server notices the closed stream and frees its place
                fourth = await open_stream()
                if fourth.status_code == 200:
                    break
                await anyio.sleep(0.1)
            assert fourth.status_code == 200


async def test_sse_stream_limits_count_each_client_and_all_together() -> None:
    release = anyio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await release.wait()
        await send({"type": "http.response.body", "body": b""})

    limits = StreamLimits(stream, max_sessions=3, per_client=2)
    statuses: dict[str, list[int]] = {}

    async def get(client: str, method: str = "GET") -> None:
        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.setdefault(client, []).append(message["status"])

        async def receive() -> Message:
            return {"type": "http.disconnect"}

        scope = {"type": "http", "method": method, "path": "/sse", "headers": [], "client": (client, 1)}
        await limits(scope, receive, send)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for client in ("a", "a", "a", "b", "c"):  # a's third: over its 2; c: over the 3 in all
                tg.start_soon(get, client)
                await anyio.sleep(0.01)
            tg.start_soon(get, "c", "POST")  # a message POST is not a stream: never counted or refused
            await anyio.sleep(0.05)
            assert limits.open.total == 3 and statuses == {"a": [200, 200, 503], "b": [200], "c": [503, 200]}
            release.set()
    assert limits.open.total == 0 and limits.open.by_client == {}
