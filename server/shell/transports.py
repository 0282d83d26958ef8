"""stdio, SSE and streamable HTTP, with bearer-token auth and Host/Origin checks on the HTTP ones.

HTTP binds 127.0.0.1 by default. Off loopback a bearer token is required (config refuses to start without
one) and checked on every request in constant time; the SDK's Host/Origin validation is always on: it only
switches itself on for loopback binds, so poolpilot passes explicit settings for every bind address.

Several replicas behind a load balancer: run `--stateless` with the same `POOLPILOT_CONFIRM_SECRET` on every
replica (confirmation tokens and the SDK's sealed request state are both keyed from it). Stateful mode needs
stickiness on the `Mcp-Session-Id` header and idle timeouts longer than a user takes to answer; its sessions are
bounded in number, per client address and idle time (server/shell/sessions.py).
"""

from __future__ import annotations

import hmac
import json
import signal
import socket
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poolpilot.server.kernel.config import LOOPBACK, ConfigError, Settings
from poolpilot.server.shell.sessions import SessionLimits, StreamLimits

if TYPE_CHECKING:
    import uvicorn

__all__ = ["BearerAuth", "bind_socket", "check_http", "http_app", "security_settings", "serve_http"]

WILDCARD_BINDS = ("0.0.0.0", "::", "")
_LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
_LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
# Bounded grace for calls in flight at SIGINT/SIGTERM (idle event streams are closed at once); a second signal
# or the end of the grace cancels what is left.
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


def bind_socket(settings: Settings) -> socket.socket:
    """The listening socket, bound before anything starts, so a busy port is a one-line start-up error."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            "--port",
            f"cannot bind {settings.host}:{settings.port} ({exc.strerror})",
            "stop what uses it, or pick another",
        ) from None
    sock.set_inheritable(True)
    return sock


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
        inner: ASGIApp = StreamLimits(
            app.sse_app(transport_security=security, host=settings.host),
            max_sessions=settings.max_sessions,
            per_client=settings.max_sessions_per_client,
        )
    else:
        inner = app.streamable_http_app(
            stateless_http=settings.stateless,
            transport_security=security,
            host=settings.host,
            session_idle_timeout=settings.session_idle_timeout_s,
            max_sessions=settings.max_sessions,
        )
        if not settings.stateless:
            inner = SessionLimits(
                inner,
                max_sessions=settings.max_sessions,
                per_client=settings.max_sessions_per_client,
                idle_timeout_s=settings.session_idle_timeout_s,
            )
    return BearerAuth(inner, settings.auth_token) if settings.auth_token else inner


class _Drain:
    """Ends open event streams at shutdown once in-flight requests are done. An idle client's stream never
    finishes by itself: it held every SIGTERM for the whole grace period, and uvicorn's forced cancel then
    logged a traceback. A stream ends as a completed response; the client sees the server go away."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._streams: set[anyio.CancelScope] = set()
        self._calls = 0
        self._idle: anyio.Event | None = None  # set when the last call in flight at shutdown finishes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["method"] == "GET":
            await self._stream(scope, receive, send)
        else:
            self._calls += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self._calls -= 1
                if self._calls == 0 and self._idle is not None:
                    self._idle.set()

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = finished = False

        async def tracked(message: Message) -> None:
            nonlocal started, finished
            started = started or message["type"] == "http.response.start"
            finished = message["type"] == "http.response.body" and not message.get("more_body", False)
            await send(message)

        with anyio.CancelScope() as stream:
            self._streams.add(stream)
            try:
                await self.app(scope, receive, tracked)
            finally:
                self._streams.discard(stream)
        if stream.cancelled_caught and started and not finished:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def drain(self, grace_s: float) -> None:
        """Streamable HTTP answers calls on their own POST: let those finish (bounded). Over SSE the answers ride
        the stream itself, so closing it cancels what is in flight, as the SDK's cancellation does."""
        if self._calls:
            self._idle = anyio.Event()
            with anyio.move_on_after(grace_s):
                await self._idle.wait()
        for stream in list(self._streams):
            stream.cancel()


def _quiet_server(config: uvicorn.Config) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn without its own signal handlers: after a graceful stop it re-raises the signal, so SIGTERM
        ended the process as killed (-15) and SIGINT with a KeyboardInterrupt traceback. `serve_http` listens."""

        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    return Server(config)


async def serve_http(app: MCPServer[Any], settings: Settings, on_ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM: stop accepting, let in-flight calls finish (bounded), close the clients."""
    import uvicorn  # only for HTTP: keeps stdio start-up lean

    sock = bind_socket(settings)
    drain = _Drain(http_app(app, settings))
    config = uvicorn.Config(
        drain,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        lifespan="on",
    )
    server = _quiet_server(config)
    async with anyio.create_task_group() as tg:
        await tg.start(_stop_on_signal, server, drain)
        if on_ready is not None:
            on_ready()
        await server.serve(sockets=[sock])
        tg.cancel_scope.cancel()


async def _stop_on_signal(
    server: uvicorn.Server, drain: _Drain, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    async with anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for _ in signals:
                if server.should_exit:
                    server.force_exit = True  # a second signal skips the grace period
                    continue
                server.should_exit = True
                tg.start_soon(drain.drain, GRACEFUL_SHUTDOWN_S - 1)
