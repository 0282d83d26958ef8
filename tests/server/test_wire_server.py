"""WireServer (server/kernel/wire_server.py), the sandbox port's HTTP/1.1 server: the app sees each request as it
saw it under uvicorn, keep-alive and pipelining keep their order, refusals for what parsers disagree on, bounds,
broken answers and a graceful stop."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from poolpilot.server.kernel import wire_server
from poolpilot.server.kernel.wire_server import WireServer

pytestmark = pytest.mark.anyio


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what it was given: the scope's request fields and the body, as JSON."""
    if scope["type"] != "http":
        return
    message = await receive()
    body = message["body"]
    if scope["path"].endswith("/fail"):
        raise RuntimeError("the app failed")
    if scope["path"].endswith("/drop"):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise RuntimeError("broken off")
    if scope["path"].endswith("/hold"):
        while (await receive())["type"] != "http.disconnect":
            pass
        HELD.append("disconnect")
        return
    if scope["path"].endswith("/slow"):
        await asyncio.sleep(float(scope["query_string"] or b"0.2"))
    seen = {
        "method": scope["method"],
        "http_version": scope["http_version"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "headers": [
            [k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"] if k not in (b"connection", b"host")
        ],
        "body": body.decode("latin-1"),
    }
    out = json.dumps(seen).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


HELD: list[str] = []


@asynccontextmanager
async def lean() -> AsyncIterator[tuple[int, WireServer]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = WireServer(echo)
    await server.start(sock)
    try:
        yield sock.getsockname()[1], server
    finally:
        await server.stop(1)
        sock.close()


@asynccontextmanager
async def reference() -> AsyncIterator[int]:
    """The same app under uvicorn (h11), as the sandbox was served before."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(echo, log_level="critical", lifespan="off", http="h11"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    for _ in range(500):  # uvicorn says it started only through this flag
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def exchange(port: int, data: bytes, *, wait_s: float = 2.0, half_close: bool = False) -> bytes:
    """Send raw bytes (then end the sending side if `half_close`), read until the server closes (or `wait_s`
    passes with nothing more)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    if half_close:
        writer.write_eof()
    got = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), wait_s):
            got += chunk
    except TimeoutError:
        pass
    finally:
        writer.close()
    return got


def answers(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The answers in a byte stream, framed by their Content-Length."""
    found = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {k.decode().lower(): v.decode().strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
        size = int(headers.get("content-length", "0")) if status >= 200 else 0
        found.append((status, headers, raw[:size]))
        raw = raw[size:]
    return found


GET = b"GET /v2/x HTTP/1.1\r\nHost: a\r\n\r\n"


async def test_keep_alive_and_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    async with lean() as (port, _):
        post = b"POST /v2/y?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        got = answers(
            await exchange(port, GET + post + GET + b"GET /z HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        )
    assert [json.loads(body)["path"] for _, _, body in got] == ["/v2/x", "/v2/y", "/v2/x", "/z"]
    assert json.loads(got[1][2])["body"] == "abc" and json.loads(got[1][2])["query_string"] == "q=1"
    assert "connection" not in got[0][1] and got[3][1]["connection"] == "close"


async def test_a_chunked_body_with_expect_continue_reaches_the_app_whole() -> None:
    async with lean() as (port, _):
        raw = await exchange(
            port,
            b"PUT /v2/y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
        )
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    (status, _, body), *_ = answers(raw[len(b"HTTP/1.1 100 Continue\r\n\r\n") :])
    assert status == 200 and json.loads(body)["body"] == "abcde"


async def test_head_has_no_body_and_http_1_0_closes() -> None:
    async with lean() as (port, _):
        head = await exchange(port, b"HEAD /v2/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        old = await exchange(port, b"GET /v2/x HTTP/1.0\r\n\r\n", wait_s=5)
    status, headers, _ = answers(head.split(b"\r\n\r\n")[0] + b"\r\n\r\n")[0]
    assert status == 200 and int(headers["content-length"]) > 0 and head.endswith(b"\r\n\r\n")
    assert json.loads(answers(old)[0][2])["http_version"] == "1.0" and answers(old)[0][1]["connection"] == "close"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v2/x HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET /v2/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"POST /v2/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /v2/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST /v2/x HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
        (b"POST /v2/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET /v2/x HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET /v2/x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),  # obsolete line folding
        (b"GET /v2/x HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", 400),
        (b"GET /v2/x HTTP/1.1\r\nHost: a\r\nX-A: b\nc\r\n\r\n", 400),  # a bare LF inside a value
        (b"GET http://a/v2/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # absolute form
        (b"G(T /v2/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET /v2/\u2028x HTTP/1.1\r\nHost: a\r\n\r\n".encode(), 400),  # raw non-ASCII in the target
        (b"GET /v2/x y HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"POST /v2/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET /v2/x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"POST /v2/x HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999\r\n\r\n", 413),
    ],
)
async def test_a_request_parsers_disagree_on_is_refused_and_the_connection_closed(
    request_bytes: bytes, status: int
) -> None:
    async with lean() as (port, _):
        raw = await exchange(port, request_bytes + GET, wait_s=5)
    got = answers(raw)
    assert [s for s, _, _ in got] == [status], raw[:200]  # the request behind it is not read
    assert got[0][1]["connection"] == "close"


async def test_a_chunked_body_over_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire_server, "MAX_BODY", 1000)
    async with lean() as (port, _):
        raw = await exchange(
            port,
            b"POST /v2/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"200\r\n" + b"a" * 512 + b"\r\n") * 3,
        )
    assert answers(raw)[0][0] == 413


async def test_an_app_error_is_a_500_and_a_broken_off_answer_goes_out_as_far_as_it_got() -> None:
    async with lean() as (port, _):
        failed = await exchange(port, b"GET /fail HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
        dropped = await exchange(port, b"GET /drop HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
    assert [s for s, _, _ in answers(failed)] == [500]
    assert dropped.startswith(b"HTTP/1.1 200 OK\r\n") and dropped.endswith(b"\r\n\r\n{")  # then closed
    async with lean() as (port, _), httpx2.AsyncClient() as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.get(f"http://127.0.0.1:{port}/drop")


async def test_the_app_hears_the_client_go() -> None:
    HELD.clear()
    async with lean() as (port, _):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
        for _ in range(100):
            if HELD:
                break
            await asyncio.sleep(0.01)
    assert HELD == ["disconnect"]


async def test_requests_piled_up_behind_a_slow_one_do_not_grow_the_buffer_without_bound() -> None:
    async with lean() as (port, server):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /slow?3 HTTP/1.1\r\nHost: a\r\n\r\n")
        flood = (b"POST /v2/x HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n" + b"a" * 65536) * 128  # 8 MiB
        writer.write(flood)
        (wire,) = server._connections.values()
        for _ in range(100):  # while the slow answer is being made, the flood arrives as far as it can
            if len(wire.buffer) >= wire_server.PAUSE_AT:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert wire_server.PAUSE_AT <= len(wire.buffer) < wire_server.PAUSE_AT + (1 << 20)
        await writer.drain()  # once the slow answer is out, reading resumes and every request is answered
        got, total = b"", 1 + 128
        while got.count(b"HTTP/1.1 ") < total or not got.endswith(b"}"):  # each answer is JSON, ending in }
            got += await asyncio.wait_for(reader.read(1 << 20), 10)
        writer.close()
    assert [status for status, _, _ in answers(got)] == [200] * total


async def test_a_head_trickled_in_past_its_deadline_closes_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire_server, "HEAD_S", 0.5)
    async with lean() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v2/x HTTP/1.1\r\n")
        start = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionError):
            for _ in range(100):  # a header byte every 50 ms: never idle for long, never done
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.05)
                if reader.at_eof():
                    raise ConnectionResetError
        assert asyncio.get_running_loop().time() - start < 2
        writer.close()


async def test_stop_lets_a_request_in_flight_finish_closes_idle_ones_and_cancels_past_the_grace() -> None:
    async with lean() as (port, server):
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        idle_writer.write(GET)
        await idle_reader.readuntil(b"\r\n\r\n")
        slow = asyncio.ensure_future(exchange(port, b"GET /slow?0.5 HTTP/1.1\r\nHost: a\r\n\r\n"))
        late = asyncio.ensure_future(exchange(port, b"GET /slow?30 HTTP/1.1\r\nHost: a\r\n\r\n"))
        for _ in range(250):  # both requests are being answered
            if len(server._busy) == 2:
                break
            await asyncio.sleep(0.02)
        await server.stop(2)
        assert (await asyncio.wait_for(idle_reader.read(), 2)).endswith(b"}")  # the rest of its answer, then EOF
        finished, cancelled = await slow, await late
    assert [(s, h["connection"]) for s, h, _ in answers(finished)] == [(200, "close")]
    assert cancelled == b""
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def _both(port_a: int, port_b: int, method: str, target: str, body: bytes) -> tuple[Any, Any]:
    async with httpx2.AsyncClient() as client:
        seen = []
        for port in (port_a, port_b):
            response = await client.request(method, f"http://127.0.0.1:{port}{target}", content=body)
            seen.append((response.status_code, response.json()))
        return seen[0], seen[1]


# Percent-encoded text of every category (separators and controls included), and raw segments sent as they are.
SEGMENT = st.text(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z", "Cc", "Cf")), min_size=0, max_size=12
).map(lambda text: quote(text, safe="")) | st.sampled_from(
    [".", "..", "%2e%2E", "a%2F..%2Fb", "%00", "%", "%zz", "~!$&'()*+,;=:@"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    segments=st.lists(SEGMENT, min_size=1, max_size=4),
    query=st.dictionaries(SEGMENT, SEGMENT, max_size=3),
    body=st.binary(max_size=300),
)
async def test_the_app_sees_each_request_as_it_did_under_uvicorn(
    method: str, segments: list[str], query: dict[str, str], body: bytes
) -> None:
    target = "/" + "/".join(segments) + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    async with lean() as (port, _), reference() as ref_port:
        ours, theirs = await _both(port, ref_port, method, target, body)
    assert ours == theirs


class _Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


VALID = [
    GET,
    b"POST /v2/y?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"PUT /v2/y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HEAD /v2/x HTTP/1.0\r\n\r\n",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    base=st.sampled_from(VALID),
    edits=st.lists(
        st.tuples(
            st.integers(0, 200),
            st.integers(0, 4),
            st.binary(max_size=6) | st.sampled_from([b"\r\n", b"\n", b"\r", b":", b" ", b"\x00", b"\xe2\x80\xa8"]),
        ),
        max_size=4,
    ),
)
async def test_mangled_requests_get_an_answer_or_a_closed_connection_and_never_break_the_server(
    base: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    data = bytearray(base)
    for at, cut, insert in edits:  # replace `cut` bytes at `at` with `insert`
        at = min(at, len(data))
        data[at : at + cut] = insert
    errors: list[object] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    failures = _Recorded()
    logging.getLogger("poolpilot.sandbox").addHandler(failures)
    try:
        async with lean() as (port, server):
            raw = await exchange(port, bytes(data) + b"\r\n\r\n", half_close=True)
            assert raw == b"" or raw.startswith(b"HTTP/1.1 "), raw[:80]
            for status, _, _ in answers(raw) if raw.count(b"\r\n\r\n") else []:
                assert 100 <= status < 600
            fresh = answers(await exchange(port, b"GET /z HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
            assert [status for status, _, _ in fresh] == [200]  # the server still serves
        assert not server._connections
    finally:
        loop.set_exception_handler(None)
        logging.getLogger("poolpilot.sandbox").removeHandler(failures)
    assert errors == [] and failures.records == []  # no connection failed inside the server
