"""Upstream calls poolpilot's own transports directly, without AsyncClient.send (issue 23): the same requests on
the wire and the same responses as through `send`, cookies a provider sets kept; `send` when a proxy is mounted."""

from __future__ import annotations

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from poolpilot.server.kernel.http import ProviderErrorParts, Upstream
from poolpilot.server.kernel.inprocess import InProcessTransport
from poolpilot.server.kernel.wire import LeanTransport
from tests.server.test_wire import RawServer, serving

pytestmark = pytest.mark.anyio


def _upstream(client: httpx2.AsyncClient) -> Upstream:
    return Upstream(
        provider="p",
        backend="live",
        client=client,
        parse_error=lambda response: ProviderErrorParts(),
        hint=lambda code: None,
    )


def _answer(request: bytes) -> bytes:
    if request.startswith(b"GET /login"):
        return b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\nContent-Length: 2\r\n\r\n{}"
    return b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'


async def _exchange(transport: httpx2.AsyncBaseTransport | None, url: str, raw: RawServer) -> list[object]:
    async with httpx2.AsyncClient(base_url=url, transport=transport, headers={"Authorization": "Bearer t"}) as client:
        up = _upstream(client)
        seen: list[object] = [up._direct is not None]
        for method, path, body in [("GET", "/v2/a", None), ("GET", "/login", None), ("POST", "/v2/b", {"x": 1})]:
            response = await up.request(method, path, json_body=body, ok=(200,))
            seen.append(
                (response.status_code, response.headers.multi_items(), response.content, response.request.url.path)
            )
        await up.request("GET", "/v2/a")
    seen.append([r.replace(url.split("//")[1].encode(), b"HOST") for r in raw.requests])
    raw.requests.clear()
    return seen


async def test_the_direct_path_sends_and_reads_what_send_does_and_keeps_cookies() -> None:
    async with serving(_answer) as (url, raw):
        direct = await _exchange(LeanTransport(), url, raw)
    async with serving(_answer) as (url, raw):
        through_send = await _exchange(httpx2.AsyncHTTPTransport(), url, raw)
    assert direct[0] is True and through_send[0] is False
    assert direct[1:] == through_send[1:]
    last_request = direct[-1]
    assert isinstance(last_request, list) and b"Cookie: session=abc" in last_request[-1]


async def test_a_mounted_proxy_or_a_foreign_transport_goes_through_send() -> None:
    proxied = httpx2.AsyncClient(transport=LeanTransport(), mounts={"http://": httpx2.AsyncHTTPTransport()})
    assert _upstream(proxied)._direct is None
    assert _upstream(httpx2.AsyncClient(transport=httpx2.MockTransport(lambda r: httpx2.Response(200))))._direct is None
    hooked = httpx2.AsyncClient(transport=LeanTransport(), event_hooks={"request": [lambda r: None]})
    assert _upstream(hooked)._direct is None
    assert _upstream(httpx2.AsyncClient(transport=LeanTransport()))._direct is not None


async def test_the_in_process_sandbox_transport_is_called_directly() -> None:
    async def hello(request: Request) -> JSONResponse:
        response = JSONResponse({"cookie": request.headers.get("cookie")})
        response.set_cookie("k", "v")
        return response

    app = Starlette(routes=[Route("/v2/hello", hello)])
    async with httpx2.AsyncClient(base_url="http://sandbox", transport=InProcessTransport(app)) as client:
        up = _upstream(client)
        assert up._direct is not None
        assert (await up.request("GET", "/v2/hello")).json() == {"cookie": None}
        assert (await up.request("GET", "/v2/hello")).json() == {"cookie": "k=v"}
