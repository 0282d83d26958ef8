"""The embedded sandbox's transport: requests go to the ASGI app in this process, as over a socket minus the network.

httpx2's `ASGITransport` does the same, but it asks on every request whether trio is running by importing `sniffio`,
which is not installed: a failed import searches every `sys.path` entry again each time, about as long as the
rest of the request (issue 23). This transport waits on an anyio event instead, which serves asyncio and trio alike,
and otherwise follows `ASGITransport`: the app's exceptions propagate (a sandbox fault is a transport error), a
HEAD answer has no body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import anyio
import httpx2
from starlette.types import ASGIApp

__all__ = ["InProcessTransport"]


class _Body(httpx2.AsyncByteStream):
    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"".join(self._parts)


class InProcessTransport(httpx2.AsyncBaseTransport):
    def __init__(self, app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 123)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "server": (url.host, url.port),
            "client": self.client,
            "root_path": "",
        }
        stream = request.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        chunks = stream.__aiter__()
        request_complete = False
        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []
        done = anyio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal request_complete
            if request_complete:
                await done.wait()
                return {"type": "http.disconnect"}
            try:
                body = await chunks.__anext__()
            except StopAsyncIteration:
                request_complete = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": body, "more_body": True}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if body and request.method != "HEAD":
                    parts.append(body)
                if not message.get("more_body", False):
                    done.set()

        await self.app(scope, receive, send)
        if status is None or not done.is_set():
            raise httpx2.RemoteProtocolError("the in-process sandbox ended without a complete answer")
        return httpx2.Response(status, headers=headers, stream=_Body(parts))
