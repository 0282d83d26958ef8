"""The embedded sandbox's in-process transport answers as httpx2's ASGITransport does."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from poolpilot.server.kernel.inprocess import InProcessTransport

pytestmark = pytest.mark.anyio


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = [(b"content-type", b"text/plain"), (b"x-path", scope["raw_path"]), (b"x-query", scope["query_string"])]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": scope["method"].encode() + b" " + body})


def _client(app: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=InProcessTransport(app), base_url="http://sandbox")


async def test_the_request_body_path_and_query_reach_the_app_and_the_answer_comes_back() -> None:
    async with _client(_echo) as client:
        response = await client.post("/v2/a%2Fb/c", params={"q": "x y"}, content=b"payload")
    assert response.status_code == 201
    assert response.content == b"POST payload"
    assert response.headers["x-path"] == "/v2/a%2Fb/c" and response.headers["x-query"] == "q=x+y"


async def test_a_head_answer_has_no_body() -> None:
    async with _client(_echo) as client:
        response = await client.head("/x")
    assert response.status_code == 201 and response.content == b""


async def test_an_app_exception_is_the_client_s_exception() -> None:
    async def dropping(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise httpx2.RemoteProtocolError("dropped")

    async with _client(dropping) as client:
        with pytest.raises(httpx2.RemoteProtocolError, match="dropped"):
            await client.get("/x")


async def test_an_answer_that_never_completes_is_a_protocol_error() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async with _client(silent) as client:
        with pytest.raises(httpx2.RemoteProtocolError, match="without a complete answer"):
            await client.get("/x")
