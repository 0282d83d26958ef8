"""A minimal ASGI wrapper around DigitalOceanSandbox, and an httpx2 client bound to it."""

from __future__ import annotations

from urllib.parse import unquote

import httpx2
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from poolpilot.server.kernel.inprocess import InProcessTransport
from poolpilot.tools.digitalocean.sandbox import DigitalOceanSandbox

TOKEN = "dop_v1_sandbox"


class SandboxApp:
    """Routes every HTTP request to the sandbox the way the real server does: split, then decode."""

    def __init__(self, sandbox: DigitalOceanSandbox) -> None:
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        # Decoding before splitting would turn a pool named "a/b" into two path segments.
        segments = [unquote(part) for part in raw.decode("ascii").split("/")[1:]]
        request = Request(scope, receive)
        response = await self.sandbox.handle(request, segments)
        await response(scope, receive, send)


def client_for(sandbox: DigitalOceanSandbox, token: str | None = TOKEN) -> httpx2.AsyncClient:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    transport = InProcessTransport(SandboxApp(sandbox))
    return httpx2.AsyncClient(transport=transport, base_url="http://sandbox", headers=headers)
