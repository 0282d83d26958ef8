"""stdio, SSE and streamable HTTP, with bearer-token auth and Host/Origin checks on the HTTP ones.

HTTP binds 127.0.0.1 by default. Off loopback a bearer token is required (config refuses to start without
one) and checked on every request in constant time; the SDK's Host/Origin validation is always on: it only
switches itself on for loopback binds, so poolpilot passes explicit settings for every bind address.

Several replicas behind a load balancer: run `--stateless` with the same `POOLPILOT_CONFIRM_SECRET` on every
replica (confirmation tokens and the SDK's sealed request state are both keyed from it). Stateful mode needs
stickiness on the `Mcp-Session-Id` header and idle timeouts longer than a user takes to answer.
"""

from __future__ import annotations

import hmac
import json
import signal
from collections.abc import Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from server.config import LOOPBACK, ConfigError, Settings

if TYPE_CHECKING:
    import uvicorn

__all__ = ["BearerAuth", "check_http", "http_app", "run_stdio", "security_settings", "serve_http"]

WILDCARD_BINDS = ("0.0.0.0", "::", "")
_LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
_LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
# Bounded grace for in-flight calls on SIGINT/SIGTERM; open SSE streams never finish, so they are cut here.
GRACEFUL_SHUTDOWN_S = 5


def _host_patterns(names: tuple[str, ...]) -> list[str]:
    """`mcp.example.com` also accepts `mcp.example.com:<port>` (a Host header carries non-default ports)."""
    patterns: list[str] = []
    for name in names:
        patterns.append(name)
        if ":" not in name or name.endswith("]"):
            patterns.append(f"{name}:*")
    return patterns


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def security_settings(settings: Settings) -> TransportSecuritySettings:
    """Host/Origin allow-lists: loopback names on loopback binds, else the bind address, plus the operator's."""
    if settings.host in LOOPBACK:
        hosts, origins = list(_LOOPBACK_HOSTS), list(_LOOPBACK_ORIGINS)
    else:
        hosts = [] if settings.allowed_hosts else _host_patterns((_bracketed(settings.host),))
        origins = []
    hosts += _host_patterns(settings.allowed_hosts)
    origins += list(settings.allowed_origins)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def check_http(settings: Settings) -> None:
    """Refuse HTTP settings that would start but answer nothing (every request 421)."""
    if settings.transport == "stdio":
        return
    if settings.host in WILDCARD_BINDS and not settings.allowed_hosts:
        raise ConfigError(
            "--allowed-hosts",
            f"binding {settings.host or 'every interface'} matches no Host header clients send",
            "list the names clients use, e.g. --allowed-hosts mcp.example.com (or POOLPILOT_ALLOWED_HOSTS)",
        )


class BearerAuth:
    """Rejects every HTTP request without `Authorization: Bearer <token>` (never a query-string token)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websocket route exists; refuse rather than pass it through unchecked
            await send({"type": "websocket.close", "code": 1008})
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


def _quiet_server(config: uvicorn.Config) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn without its own signal handlers: after a graceful stop it re-raises the signal, so SIGTERM
        ended the process as killed (-15) and SIGINT with a KeyboardInterrupt traceback. `serve_http` listens."""

        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    return Server(config)


async def serve_http(app: MCPServer[Any], settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM: stop accepting, let in-flight calls finish (bounded), close the clients."""
    import uvicorn  # only for HTTP: keeps stdio start-up lean

    config = uvicorn.Config(
        http_app(app, settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        lifespan="on",
    )
    server = _quiet_server(config)
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    server.force_exit = server.should_exit  # a second signal skips the grace period
                    server.should_exit = True

        tg.start_soon(stop_on_signal)
        await server.serve()
        tg.cancel_scope.cancel()


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
