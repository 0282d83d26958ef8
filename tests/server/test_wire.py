"""LeanTransport (server/kernel/wire.py) against raw servers: the same answers as httpx2's own transport for what
HTTP/1.1 allows, refusals for what parsers disagree on, keep-alive, timeouts, the pool bound and TLS."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolpilot.server.kernel.wire import LeanTransport, _head

pytestmark = pytest.mark.anyio

Answer = Callable[[bytes], bytes | None]  # the request head and body -> the bytes to send back (None: say nothing)


class RawServer:
    """A TCP server that reads each request (head + Content-Length body) and writes what `answer` says."""

    def __init__(self, answer: Answer, *, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                out = self.answer(request)
                if out is None:
                    await asyncio.sleep(30)
                    return
                writer.write(out)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(answer: Answer, **kwargs: Any) -> AsyncIterator[tuple[str, RawServer]]:
    raw = RawServer(answer, **kwargs)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", raw
    finally:
        server.close()


def fixed(data: bytes) -> Answer:
    return lambda _: data


async def _both(url: str, method: str = "GET", path: str = "/v2/x", **kwargs: Any) -> tuple[Any, Any]:
    """(status, headers, body) or the exception class, through LeanTransport and through httpx2's transport."""
    found: list[Any] = []
    for transport in (LeanTransport(), httpx2.AsyncHTTPTransport()):
        async with httpx2.AsyncClient(base_url=url, transport=transport, timeout=2.0) as client:
            try:
                r = await client.request(method, path, **kwargs)
                found.append((r.status_code, r.headers.multi_items(), r.content))
            except httpx2.HTTPError as exc:
                found.append(type(exc))
    return found[0], found[1]


WELL_FORMED = [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nratelimit-remaining: 0\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9 \xe2\x80\xa8 \xff\r\nContent-Length: 3\r\n\r\n\xe2\x80\xa8",
    b"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gzip.compress(b"{}"))
    + gzip.compress(b"{}"),
]


@pytest.mark.parametrize("answer", WELL_FORMED, ids=range(len(WELL_FORMED)))
async def test_a_well_formed_answer_reads_as_httpx2_reads_it(answer: bytes) -> None:
    async with serving(fixed(answer), close_after=b"Connection: close" in answer) as (url, _):
        lean, reference = await _both(url)
    assert lean == reference and not isinstance(lean, type)


MALFORMED = [
    b"HTTP/1.1 200 OK\r\nX-A: b\r\n folded\r\nContent-Length: 0\r\n\r\n",  # obsolete line folding
    b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    b"HTTP/2 200 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then the server closes
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X-Trailer: t\r\n" * 6000 + b"\r\n",
    b"HTTP/1.1 103 Early Hints\r\n\r\n" * 9 + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"",  # the server closes without a word
]


@pytest.mark.parametrize("answer", MALFORMED, ids=range(len(MALFORMED)))
async def test_an_answer_parsers_disagree_on_is_a_protocol_error(answer: bytes) -> None:
    async with (
        serving(fixed(answer), close_after=True) as (url, _),
        httpx2.AsyncClient(base_url=url, transport=LeanTransport(), timeout=2.0) as client,
    ):
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.get("/v2/x")


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(HEADER_TEXT.map(str.strip), max_size=4),
    body=st.binary(max_size=300),
    chunks=st.lists(st.integers(min_value=1, max_value=64), max_size=6),
    chunked=st.booleans(),
)
async def test_random_answers_read_as_httpx2_reads_them(
    values: list[str], body: bytes, chunks: list[int], chunked: bool
) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, v.encode("latin-1")) for i, v in enumerate(values))
    if chunked:
        parts, rest = [], body
        for size in chunks:
            parts.append(rest[:size])
            rest = rest[size:]
        parts = [p for p in [*parts, rest] if p]
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        answer = head + b"Transfer-Encoding: chunked\r\n\r\n" + framed
    else:
        answer = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    async with serving(fixed(answer)) as (url, _):
        lean, reference = await _both(url)
    assert lean == reference


# httpx2 refuses ASCII control characters in a URL before any transport sees it.
PATHS = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(segment=PATHS, value=PATHS, body=st.text(max_size=40))
async def test_the_request_goes_out_as_httpx2_sends_it(segment: str, value: str, body: str) -> None:
    """Unicode path segments (separators, dot segments), query values and a JSON body: the same bytes on the wire."""
    sent: list[bytes] = []
    for transport in (LeanTransport(), httpx2.AsyncHTTPTransport()):
        async with serving(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as (url, raw):
            async with httpx2.AsyncClient(base_url=url, transport=transport) as client:
                await client.post(f"/v2/{segment}/../pools", params={"q": value}, json={"name": body})
            sent.append(raw.requests[0].replace(url.split("//")[1].encode(), b"HOST"))
    assert sent[0] == sent[1]


def _request(method: str = "GET", target: bytes = b"/v2/x", headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    """What `_head` reads of a request, with what httpx2 itself would refuse to build."""
    url = SimpleNamespace(raw_path=target)
    return SimpleNamespace(method=method, url=url, headers=SimpleNamespace(raw=headers or [(b"Host", b"h")]))


def test_a_header_or_target_that_could_split_the_request_is_refused() -> None:
    assert _head(_request(), b"") == b"GET /v2/x HTTP/1.1\r\nHost: h\r\n\r\n"
    for value in (b"b\r\nInjected: yes", b"b\nX: y", b"b\x00"):
        with pytest.raises(httpx2.LocalProtocolError, match="CR, LF or NUL"):
            _head(_request(headers=[(b"X-A", value)]), b"")
    with pytest.raises(httpx2.LocalProtocolError, match="bad name"):
        _head(_request(headers=[(b"X A", b"b")]), b"")
    for target in (b"/a b", b"/a\r\nX: y", b"/a\x00", b""):
        with pytest.raises(httpx2.LocalProtocolError, match="target"):
            _head(_request(target=target), b"")
    with pytest.raises(httpx2.LocalProtocolError, match="method"):
        _head(_request(method="GET /x HTTP/1.1\r\n"), b"")


async def test_keep_alive_reuses_one_connection_and_reopens_after_the_server_closes() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with serving(fixed(ok)) as (url, raw), httpx2.AsyncClient(base_url=url, transport=LeanTransport()) as c:
        for _ in range(5):
            assert (await c.get("/a")).text == "ok"
        assert raw.connections == 1
    async with (
        serving(fixed(ok), close_after=True) as (url, raw),  # the server closes after each answer
        httpx2.AsyncClient(base_url=url, transport=LeanTransport()) as c,
    ):
        for _ in range(3):
            assert (await c.get("/a")).text == "ok"
            await asyncio.sleep(0.02)  # the close arrives while the connection is idle
        assert raw.connections == 3
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with serving(fixed(close)) as (url, raw), httpx2.AsyncClient(base_url=url, transport=LeanTransport()) as c:
        for _ in range(2):
            assert (await c.get("/a")).text == "ok"
        assert raw.connections == 2


async def test_an_idle_connection_past_its_expiry_is_not_reused() -> None:
    async with serving(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as (url, raw):
        async with httpx2.AsyncClient(base_url=url, transport=LeanTransport(keepalive_expiry=0.05)) as client:
            await client.get("/a")
            await asyncio.sleep(0.1)
            await client.get("/a")
        assert raw.connections == 2


async def test_timeouts_and_refusals_are_httpx2_errors() -> None:
    async with serving(lambda _: None) as (url, _):  # never answers
        async with httpx2.AsyncClient(base_url=url, transport=LeanTransport(), timeout=0.2) as client:
            with pytest.raises(httpx2.ReadTimeout):
                await client.get("/a")
        one = LeanTransport(max_connections=1)
        timeout = httpx2.Timeout(1.0, pool=0.1)
        async with (
            httpx2.AsyncClient(base_url=url, transport=one, timeout=timeout) as client,
            asyncio.TaskGroup() as tg,
        ):
            hanging = tg.create_task(client.get("/a"))
            await asyncio.sleep(0.05)
            with pytest.raises(httpx2.PoolTimeout):
                await client.get("/b")
            hanging.cancel()
    async with serving(fixed(b"")) as (url, _):
        port = url.rsplit(":", 1)[1]
    async with httpx2.AsyncClient(transport=LeanTransport(), timeout=1.0) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/a")  # closed: nothing listens there now


async def test_a_burst_stays_within_the_connection_bound_and_every_answer_arrives() -> None:
    async with serving(lambda r: b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + r.split(b" ")[1][:6]) as (url, raw):
        async with httpx2.AsyncClient(base_url=url, transport=LeanTransport(max_connections=10)) as client:
            results = await asyncio.gather(*(client.get(f"/{i:05d}") for i in range(60)))
        assert [r.text for r in results] == [f"/{i:05d}" for i in range(60)]
        assert raw.connections <= 10


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def test_tls_verifies_the_server_and_speaks_through_it(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    raw = RawServer(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"))
    server = await asyncio.start_server(raw.handle, "localhost", 0, ssl=server_side)
    port = server.sockets[0].getsockname()[1]
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        async with httpx2.AsyncClient(transport=LeanTransport(ssl_context=trusting)) as client:
            assert (await client.get(f"https://localhost:{port}/a")).text == "secret"
            assert (await client.get(f"https://localhost:{port}/b")).text == "secret"
        assert raw.connections == 1
        async with httpx2.AsyncClient(transport=LeanTransport()) as client:  # httpx2's default trust: refused
            with pytest.raises(httpx2.ConnectError):
                await client.get(f"https://localhost:{port}/a")
    finally:
        server.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"a" * 1000,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"100\r\n" + b"a" * 256 + b"\r\n" * 1 + b"300\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"a" * 2000,
    ],
    ids=["length", "chunked", "until-close"],
)
async def test_an_answer_longer_than_the_bound_is_refused(answer: bytes) -> None:
    async with (
        serving(fixed(answer), close_after=True) as (url, _),
        httpx2.AsyncClient(base_url=url, transport=LeanTransport(max_body=512)) as client,
    ):
        with pytest.raises(httpx2.RemoteProtocolError, match="longer than 512 bytes"):
            await client.get("/a")
