"""The sandbox port's HTTP/1.1 server, without uvicorn and h11 (issue 23: the burst shares two cores with it).

`poolpilot sandbox --port N` stands in for the providers' APIs on this machine, so every request a benchmark or an
official client sends it costs CPU the server under test then lacks: uvicorn with h11 spent about 0.4 ms per
small answer beyond the sandbox's own work. This serves an ASGI app over a plain asyncio protocol, with the parser
of `wire.py` (the upstream client) read the other way round.

What it speaks: HTTP/1.1 and 1.0 requests in origin form, keep-alive (1.1 unless `Connection: close`; 1.0 closes),
one request at a time per connection (pipelined requests wait their turn, in order; reading pauses past 1 MiB
buffered while the app answers), bodies framed by Content-Length or chunked transfer coding, `Expect: 100-continue`.
Each request's body is read whole before the app runs and each answer is written whole when the app has finished it
(the fakes never stream); an answer the app started and then broke off (a `drop` fault) goes out as far as it got
and the connection closes. An app error before any answer is a 500. Refused, and the connection closed: a malformed
request line or header (obsolete line folding, a header without a name or colon, CR/LF/NUL in a value), no or
several Host headers on 1.1, both Transfer-Encoding and Content-Length, differing or malformed Content-Length values
(400), a transfer coding other than chunked (501), a version other than 1.0/1.1 (505), a head over 64 KiB (431), a
body over 8 MiB (413). An idle connection closes after 5 s, as uvicorn's did; a head must arrive within 10 s of
its first byte and a body within 30 s, or the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httpx2
from starlette.types import ASGIApp

from poolpilot.server.kernel.wire import (
    BAD_VALUE,
    MAX_HEAD,
    TARGET,
    TOKEN,
    Eof,
    TooLong,
    Wire,
    chunked,
    header_fields,
    values,
)

__all__ = ["WireServer"]

log = logging.getLogger("poolpilot.sandbox")

MAX_BODY = 8 << 20
PAUSE_AT = 1 << 20  # bytes buffered past which reading pauses until the server wants more
KEEP_ALIVE_S = 5.0  # an idle connection closes after this
HEAD_S = 10.0  # a request head, once begun, must arrive whole within this
BODY_S = 30.0  # and its body within this
_VERSIONS = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0"}


class _Refused(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class _Conn(Wire):
    """A server-side connection: `gone` is set when the client goes, for the app's `http.disconnect`. While nobody
    waits for more (the app is answering), reading pauses once `PAUSE_AT` bytes are buffered, so a client piling up
    pipelined requests behind a slow one cannot grow the buffer without bound."""

    def __init__(self) -> None:
        super().__init__(max_body=MAX_BODY)
        self.gone = asyncio.Event()
        self.paused = False

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if len(self.buffer) > PAUSE_AT and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True

    async def more(self, wait_s: float | None) -> None:
        if self.paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self.paused = False
        await super().more(wait_s)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.gone.set()


class WireServer:
    """Serves `app` on a bound socket; `stop(grace_s)` stops accepting and lets requests in flight finish."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], _Conn] = {}
        self._busy: set[asyncio.Task[None]] = set()
        self.stopping = False

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.get_running_loop().create_server(self._accept, sock=sock)

    def _accept(self) -> _Conn:
        wire = _Conn()
        task = asyncio.get_running_loop().create_task(self._serve(wire))
        self._connections[task] = wire
        task.add_done_callback(self._connections.pop)
        return wire

    async def stop(self, grace_s: float) -> None:
        """Stop accepting, close idle connections, give requests in flight `grace_s`, then cancel them."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for task, wire in list(self._connections.items()):
            if task not in self._busy:
                wire.close()
        busy = list(self._busy)
        if busy:
            _, late = await asyncio.wait(busy, timeout=grace_s)
            for task in late:
                task.cancel()
        for wire in list(self._connections.values()):
            wire.close()
        if self._connections:
            await asyncio.wait(list(self._connections))

    def abort(self) -> None:
        """Cancel every request in flight now (a second signal while `stop` waits)."""
        for task in list(self._busy):
            task.cancel()

    async def _serve(self, wire: _Conn) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            while True:
                try:
                    head = await _next_head(wire)
                except (Eof, TimeoutError, ConnectionError):
                    return
                except TooLong:
                    self._refuse(wire, 431, "the request head is over 64 KiB")
                    return
                self._busy.add(task)
                try:
                    scope, keep, body = await self._request(wire, head)
                except _Refused as refused:
                    self._refuse(wire, refused.status, str(refused))
                    return
                except (Eof, TimeoutError, ConnectionError):
                    return
                if not await self._answer(wire, scope, body, keep):
                    return
                self._busy.discard(task)
        except Exception:  # a fault here costs this connection, never the server (and is not silent)
            log.exception("the sandbox's HTTP server failed on a connection")
        finally:
            self._busy.discard(task)
            wire.close()

    async def _request(self, wire: _Conn, head: bytes) -> tuple[dict[str, Any], bool, bytes]:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not TARGET.fullmatch(parts[1]):
            raise _Refused(400, "malformed request line")
        method, target, version = parts
        if version not in _VERSIONS:
            raise _Refused(505, "only HTTP/1.1 and HTTP/1.0 are served")
        if not target.startswith(b"/"):
            raise _Refused(400, "the request target must be a path")
        try:
            headers = [(name.lower(), value) for name, value in header_fields(lines[1:])]
        except httpx2.RemoteProtocolError:
            raise _Refused(400, "malformed header line") from None
        if version == b"HTTP/1.1" and sum(1 for name, _ in headers if name == b"host") != 1:
            raise _Refused(400, "an HTTP/1.1 request needs exactly one Host header")
        connection = values(headers, b"connection")
        keep = version == b"HTTP/1.1" and b"close" not in connection
        body = await self._body(wire, headers, method)
        raw_path, _, query = target.partition(b"?")
        transport = wire.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        local = transport.get_extra_info("sockname") if transport is not None else None
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": _VERSIONS[version],
            "server": tuple(local[:2]) if local else None,
            "client": tuple(peer[:2]) if peer else None,
            "scheme": "http",
            "method": method.decode("ascii"),
            "root_path": "",
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
        }
        return scope, keep, body

    async def _body(self, wire: _Conn, headers: list[tuple[bytes, bytes]], method: bytes) -> bytes:
        coding = values(headers, b"transfer-encoding")
        lengths = {value for name, value in headers if name == b"content-length"}
        if coding and lengths:
            raise _Refused(400, "both Transfer-Encoding and Content-Length")
        if coding and coding != [b"chunked"]:
            raise _Refused(501, "only the chunked transfer coding is served")
        if len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()):
            raise _Refused(400, "a malformed or repeated Content-Length")
        size = int(next(iter(lengths))) if lengths else 0
        if size > MAX_BODY:
            raise _Refused(413, "the request body is over 8 MiB")
        if (coding or size) and b"100-continue" in values(headers, b"expect") and wire.transport is not None:
            wire.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            async with asyncio.timeout(BODY_S):
                if coding:
                    return await chunked(wire, None)
                return await wire.exactly(size, None) if size else b""
        except TooLong:
            raise _Refused(413, "the request body is over 8 MiB") from None
        except httpx2.RemoteProtocolError:
            raise _Refused(400, "malformed chunked body") from None

    async def _answer(self, wire: _Conn, scope: dict[str, Any], body: bytes, keep: bool) -> bool:
        """Run the app for one request and write its answer; False when the connection must close."""
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        start: MutableMapping[str, Any] | None = None
        parts: list[bytes] = []
        done = False

        async def receive() -> MutableMapping[str, Any]:
            if pending:
                return pending.pop()
            await wire.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal start, done
            if message["type"] == "http.response.start" and start is None:
                start = message
            elif message["type"] == "http.response.body" and start is not None and not done:
                parts.append(message.get("body", b""))
                done = not message.get("more_body", False)
            else:
                raise RuntimeError(f"unexpected ASGI message {message['type']!r}")

        try:
            await self.app(scope, receive, send)
        except Exception:
            if start is None:
                return self._refuse(wire, 500, "Internal Server Error")
            done = False  # broken off: what it sent goes out, then the connection closes
        if start is None:
            return self._refuse(wire, 500, "Internal Server Error")
        if wire.transport is None or wire.transport.is_closing():
            return False
        try:
            keep = keep and done and not self.stopping  # stopping: this answer is the connection's last
            head, keep = _head(start, parts, keep, scope["method"] == "HEAD", complete=done)
        except (KeyError, TypeError, ValueError):
            return self._refuse(wire, 500, "Internal Server Error")
        wire.transport.write(head)
        if scope["method"] != "HEAD" and start["status"] not in (204, 304):
            wire.transport.write(b"".join(parts))
        return keep

    @staticmethod
    def _refuse(wire: _Conn, status: int, why: str) -> bool:
        if wire.transport is not None and not wire.transport.is_closing():
            text = [why.encode()]
            start = {"status": status, "headers": [(b"content-type", b"text/plain; charset=utf-8")]}
            head, _ = _head(start, text, False, False, complete=True)  # with its length, and connection: close
            wire.transport.write(head + text[0])
        return False


async def _next_head(wire: Wire) -> bytes:
    """The next request head: it must begin within KEEP_ALIVE_S and, once begun, arrive whole within HEAD_S (a
    client trickling a byte at a time cannot hold the connection). Empty lines before it are skipped (RFC 9112)."""
    while True:
        while wire.buffer[:2] == b"\r\n":
            del wire.buffer[:2]
        if wire.buffer:
            break
        await wire.more(KEEP_ALIVE_S)
    async with asyncio.timeout(HEAD_S):
        return await wire.until(b"\r\n\r\n", MAX_HEAD, None)


def _head(
    start: MutableMapping[str, Any], parts: list[bytes], keep: bool, head: bool, *, complete: bool
) -> tuple[bytes, bool]:
    """The answer's status line and headers, and whether the connection stays open after it."""
    status = int(start["status"])
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    length_given = False
    for name, value in start.get("headers", []):
        if not TOKEN.fullmatch(name) or BAD_VALUE.search(value):
            raise ValueError(f"the app's header {bytes(name)[:40]!r} has a bad name or a CR, LF or NUL in its value")
        lowered = bytes(name).lower()
        length_given = length_given or lowered == b"content-length"
        if lowered == b"connection":
            keep = keep and b"close" not in bytes(value).lower()
        else:
            lines += [name, b": ", value, b"\r\n"]
    if complete and not length_given and not head and status not in (204, 304):
        lines.append(b"content-length: %d\r\n" % sum(map(len, parts)))
    lines.append(b"\r\n" if keep else b"connection: close\r\n\r\n")
    return b"".join(lines), keep
