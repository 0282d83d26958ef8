"""The upstream APIs' HTTP/1.1, without httpcore (issue 23: per-call overhead).

httpx2's own transport (httpcore2 over anyio streams, h11 for the protocol) spends about 0.65 ms of CPU on one small
GET to a keep-alive connection; a plain asyncio protocol and the parser below spend about 0.1 ms. That difference
was most of poolpilot's own time per read and most of its CPU in a burst of concurrent reads. `LeanTransport` is an
`httpx2.AsyncBaseTransport`: the `httpx2.AsyncClient` around it still builds requests, merges headers, keeps cookies
and decodes content; only the exchange on the socket is done here.

What it speaks: HTTP/1.1 (and 1.0 answers) over TCP or TLS (the SSL context httpx2 would make: certifi or
`SSL_CERT_FILE`/`SSL_CERT_DIR`), keep-alive connections per origin (at most `max_connections` in use, idle ones
dropped after `keepalive_expiry` seconds, or when the server closed them or sent bytes nobody asked for), bodies
framed by Content-Length, chunked transfer coding (extensions and trailers skipped), or the end of the connection;
1xx answers are skipped. httpx2's timeouts keep their meaning for connect, the wait for a free connection (pool) and
each wait for more of the answer (read); a request is handed to the socket whole (the APIs' requests are small), so
there is no write to time. It refuses to send a method, target or header that could split the request (CR, LF, NUL,
spaces in the target), and refuses answers that HTTP/1.1 parsers disagree on (obsolete line folding, a header line
without a colon or with a bad name, differing Content-Length values, a malformed chunk size, a head over 64 KiB)
with `httpx2.RemoteProtocolError`, closing that connection; so is an answer longer than `max_body` (64 MiB: the
APIs' answers are kilobytes, and a broken or hostile upstream must not fill the memory). Errors are httpx2's, so
retries and error mapping (server/kernel/http.py) do not change. Proxies keep working: httpx2 mounts its own proxy
transport for proxied URLs (`HTTP(S)_PROXY`) ahead of this one.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections import deque

import httpx2

__all__ = [
    "BAD_VALUE",
    "MAX_HEAD",
    "TARGET",
    "TOKEN",
    "Eof",
    "LeanTransport",
    "TooLong",
    "Wire",
    "chunked",
    "header_fields",
    "values",
]

MAX_HEAD = 64 * 1024
_MAX_LINE = 4096  # a chunk-size or trailer line
_MAX_INFORMATIONAL = 8  # 1xx answers skipped before the final one
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
TARGET = re.compile(rb"[\x21-\x7e]+")
BAD_VALUE = re.compile(rb"[\x00\r\n]")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_NO_BODY = frozenset({204, 304})


class Eof(Exception):
    """The other end closed the connection."""


class TooLong(httpx2.RemoteProtocolError):
    """A head, line or body over its bound."""


class Wire(asyncio.Protocol):
    """One connection: what the server sent so far, and a way to wait for more."""

    def __init__(self, max_body: int = 64 << 20) -> None:
        self.max_body = max_body
        self.buffer = bytearray()
        self.eof = False
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self, wait_s: float | None) -> None:
        if self.eof:
            raise Eof
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(wait_s):
                await self._waiter
        finally:
            self._waiter = None

    async def until(self, marker: bytes, limit: int, wait_s: float | None) -> bytes:
        start = 0
        while True:
            at = self.buffer.find(marker, start)
            if at > limit:
                raise TooLong("the server's answer has a line or head too long")
            if at >= 0:
                found = bytes(self.buffer[:at])
                del self.buffer[: at + len(marker)]
                return found
            if len(self.buffer) > limit:
                raise TooLong("the server's answer has a line or head too long")
            start = max(0, len(self.buffer) - len(marker) + 1)
            await self.more(wait_s)

    def check(self, size: int) -> None:
        if size > self.max_body:
            raise TooLong(f"the server's answer is longer than {self.max_body} bytes")

    async def exactly(self, size: int, wait_s: float | None) -> bytes:
        self.check(size)
        while len(self.buffer) < size:
            await self.more(wait_s)
        found = bytes(self.buffer[:size])
        del self.buffer[:size]
        return found

    async def rest(self, wait_s: float | None) -> bytes:
        while True:
            self.check(len(self.buffer))
            try:
                await self.more(wait_s)
            except Eof:
                found = bytes(self.buffer)
                self.buffer.clear()
                return found

    def reusable(self, now: float, expiry: float) -> bool:
        return (
            not self.eof
            and not self.buffer
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < expiry
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _timeouts(request: httpx2.Request) -> dict[str, float | None]:
    found = request.extensions.get("timeout") or {}
    return {k: found.get(k) for k in ("connect", "read", "write", "pool")}


def _head(request: httpx2.Request, body: bytes) -> bytes:
    method = request.method.encode("ascii")
    target = request.url.raw_path
    if not TOKEN.fullmatch(method):
        raise httpx2.LocalProtocolError(f"method {request.method!r} is not an HTTP token")
    if not TARGET.fullmatch(target):
        raise httpx2.LocalProtocolError("the request target has a space or control character")
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    length_sent = False
    for name, value in request.headers.raw:
        if not TOKEN.fullmatch(name) or BAD_VALUE.search(value):
            raise httpx2.LocalProtocolError(f"header {name[:40]!r} has a bad name or a CR, LF or NUL in its value")
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            continue  # the body goes whole, with its length
        if lowered == b"content-length":
            length_sent = True
            value = str(len(body)).encode()
        lines += [name, b": ", value, b"\r\n"]
    if body and not length_sent:
        lines += [b"Content-Length: ", str(len(body)).encode(), b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines)


def _parse_head(head: bytes) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise httpx2.RemoteProtocolError(f"malformed status line {lines[0][:60]!r}")
    headers = []
    lengths: list[bytes] = []
    for name, value in header_fields(lines[1:]):
        if name.lower() == b"content-length" and value in lengths:
            continue  # a repeated equal length is one header, as h11 reads it
        if name.lower() == b"content-length":
            lengths.append(value)
        headers.append((name, value))
    return version, int(code), reason, headers


def header_fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The header fields of a head's lines after its first, names as sent, values without surrounding blanks. A line
    without a colon or with a bad name (obsolete line folding among them) or a CR, LF or NUL in its value is a
    `RemoteProtocolError`. Answers (`LeanTransport`) and requests (`WireServer`) are read by this one loop."""
    fields = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):
            raise httpx2.RemoteProtocolError(f"malformed header line {line[:60]!r} (folded, or no name)")
        value = value.strip(b" \t")
        if BAD_VALUE.search(value):
            raise httpx2.RemoteProtocolError(f"header {name[:40]!r} has a CR, LF or NUL in its value")
        fields.append((name, value))
    return fields


def values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """The comma-separated values of every `name` header, stripped and lower-cased, in order."""
    found = []
    for key, value in headers:
        if key.lower() == name:
            found += [part.strip().lower() for part in value.split(b",") if part.strip()]
    return found


async def chunked(wire: Wire, wait_s: float | None) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = await wire.until(b"\r\n", _MAX_LINE, wait_s)
        size = line.split(b";", 1)[0].strip(b" \t")
        if not _HEX.fullmatch(size):
            raise httpx2.RemoteProtocolError(f"malformed chunk size {line[:40]!r}")
        length = int(size, 16)
        if length == 0:
            trailers = 0
            while line := await wire.until(b"\r\n", _MAX_LINE, wait_s):  # trailer fields, skipped
                trailers += len(line)
                if trailers > MAX_HEAD:
                    raise TooLong("the server's trailer fields never end")
            return b"".join(parts)
        total += length
        wire.check(total)
        parts.append(await wire.exactly(length, wait_s))
        if await wire.exactly(2, wait_s) != b"\r\n":
            raise httpx2.RemoteProtocolError("a chunk is longer than its size")


class LeanTransport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 to the upstream APIs on asyncio (see the module docstring)."""

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = 64 << 20,
    ) -> None:
        self._ssl = ssl_context  # None: httpx2's default context, made at the first TLS connection
        self._max_body = max_body  # an answer longer than this is refused (the APIs' answers are kilobytes)
        self._idle: dict[tuple[bytes, bytes, int], deque[Wire]] = {}
        self._max = max_connections
        self._slots: asyncio.Semaphore | None = None
        self._expiry = keepalive_expiry
        self._closed = False

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx2.create_ssl_context()
        return self._ssl

    async def _connect(self, origin: tuple[bytes, bytes, int], wait_s: float | None) -> Wire:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        name = host.decode("ascii")
        tls = self._context() if scheme == b"https" else None
        try:
            async with asyncio.timeout(wait_s):
                _, wire = await loop.create_connection(
                    lambda: Wire(self._max_body), name, port, ssl=tls, server_hostname=name if tls else None
                )
        except TimeoutError as exc:
            raise httpx2.ConnectTimeout(f"connecting to {name}:{port} timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx2.ConnectError(str(exc) or type(exc).__name__) from exc
        return wire

    def _reuse(self, origin: tuple[bytes, bytes, int]) -> Wire | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            wire = idle.pop()
            if wire.reusable(now, self._expiry):
                return wire
            wire.close()
        return None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._closed:
            raise httpx2.ConnectError("the transport is closed")
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx2.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}")
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = _timeouts(request)
        body = await request.aread()
        head = _head(request, body)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max)
        try:
            async with asyncio.timeout(timeouts["pool"]):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx2.PoolTimeout("no upstream connection became free in time") from exc
        try:
            wire = self._reuse(origin) or await self._connect(origin, timeouts["connect"])
            try:
                response, keep = await self._exchange(wire, request.method, head + body, timeouts)
            except BaseException:
                wire.close()
                raise
            if keep and not self._closed:
                wire.idle_since = time.monotonic()
                self._idle.setdefault(origin, deque()).append(wire)
            else:
                wire.close()
            return response
        finally:
            self._slots.release()

    async def _exchange(
        self, wire: Wire, method: str, data: bytes, timeouts: dict[str, float | None]
    ) -> tuple[httpx2.Response, bool]:
        assert wire.transport is not None
        read = timeouts["read"]
        try:
            wire.transport.write(data)  # a small request fits the socket buffer: nothing to wait for
            for informational in range(_MAX_INFORMATIONAL + 1):
                version, code, reason, headers = _parse_head(await wire.until(b"\r\n\r\n", MAX_HEAD, read))
                if not 100 <= code < 200:
                    break
                if code == 101:
                    raise httpx2.RemoteProtocolError("the server switched protocols, which was not asked for")
                if informational == _MAX_INFORMATIONAL:
                    raise httpx2.RemoteProtocolError("the server sent only informational (1xx) answers")
            keep = version == b"HTTP/1.1" and b"close" not in values(headers, b"connection")
            codings = values(headers, b"transfer-encoding")
            lengths = set(values(headers, b"content-length"))
            if method == "HEAD" or code in _NO_BODY:
                content = b""
            elif codings:
                if codings[-1] != b"chunked":
                    content, keep = await wire.rest(read), False
                else:
                    content, keep = await chunked(wire, read), keep and not lengths
            elif lengths:
                (length,) = lengths if len(lengths) == 1 else (b"x",)
                if not length.isdigit():
                    raise httpx2.RemoteProtocolError("the Content-Length values are malformed or differ")
                content = await wire.exactly(int(length), read)
            else:
                content, keep = await wire.rest(read), False
        except Eof as exc:
            raise httpx2.RemoteProtocolError("the server closed the connection before its answer was complete") from exc
        except TimeoutError as exc:
            raise httpx2.ReadTimeout("the server did not answer in time") from exc
        response = httpx2.Response(
            code,
            headers=headers,
            stream=httpx2.ByteStream(content),
            extensions={"http_version": version, "reason_phrase": reason},
        )
        return response, keep

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
