"""stdio, SSE and streamable HTTP, with bearer-token auth and Host/Origin checks on the HTTP ones.

HTTP binds 127.0.0.1 by default. Off loopback a bearer token is required (config refuses to start without
one) and checked on every request in constant time; the SDK's Host/Origin validation is always on: it only
switches itself on for loopback binds, so poolpilot passes explicit settings for every bind address.
"""

from __future__ import annotations

import hmac
import json
import signal
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from server.config import LOOPBACK, Settings

__all__ = ["BearerAuth", "http_app", "run_stdio", "security_settings", "serve_http"]


def security_settings(settings: Settings) -> TransportSecuritySettings:
    if settings.host in LOOPBACK and not settings.allowed_hosts:
        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    else:
        bind = f"[{settings.host}]" if ":" in settings.host else settings.host
        hosts = list(settings.allowed_hosts) or [f"{bind}:*"]
        origins = list(settings.allowed_origins)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class BearerAuth:
    """Rejects every HTTP request without `Authorization: Bearer <token>` (never a query-string token)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                supplied = value[7:].strip()
        if not hmac.compare_digest(supplied, self._token):
            body = json.dumps({"error": "unauthorized", "message": "missing or wrong bearer token"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b'Bearer realm="poolpilot"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def http_app(app: MCPServer[Any], settings: Settings) -> ASGIApp:
    security = security_settings(settings)
    if settings.transport == "sse":
        inner: ASGIApp = app.sse_app(transport_security=security, host=settings.host)
    else:
        inner = app.streamable_http_app(
            stateless_http=settings.stateless, transport_security=security, host=settings.host
        )
    return BearerAuth(inner, settings.auth_token) if settings.auth_token else inner


async def serve_http(app: MCPServer[Any], settings: Settings) -> None:
    """uvicorn handles SIGINT/SIGTERM: stops accepting, lets in-flight calls finish (bounded), then exits."""
    import uvicorn

    config = uvicorn.Config(
        http_app(app, settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    await uvicorn.Server(config).serve()


async def run_stdio(app: MCPServer[Any]) -> None:
    """Serve stdio until EOF or SIGINT/SIGTERM; a signal cancels in-flight calls and closes the clients."""
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        await app.run_stdio_async()
        tg.cancel_scope.cancel()
