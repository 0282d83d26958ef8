"""Bounded stateful streamable HTTP sessions (issue 19): a session flood cannot exhaust memory or lock clients out.

Every session that is initialised and never closed costs about 37 KiB (measured: README) and, in the SDK, lives
30 minutes with room for 10,000 of them; at that limit it refuses every new client ("Too many open sessions").
`SessionLimits` sits in front of the SDK's session manager and keeps at most `max_sessions` sessions, and at most
`per_client` per client address. When a new session would exceed either, the oldest *idle* session (no request in
flight, no open event stream) of that client, or of all clients, is ended first, through the protocol's own
DELETE, so the newcomer is admitted. Only when every session in the way is busy is the new one refused (503).
The SDK's idle timeout is `POOLPILOT_SESSION_IDLE_TIMEOUT_S`, and its own cap equals `max_sessions` as a backstop.
Stateless mode and 2026-07-28 requests have no sessions and pass straight through.

`StreamLimits` bounds the legacy SSE transport the same way: there a session lives exactly as long as its GET event
stream, and an open stream is never idle, so the stream one more than a limit is refused (503) instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SessionLimits", "StreamLimits"]

_SESSION = b"mcp-session-id"
_VERSION = b"mcp-protocol-version"


@dataclass
class _Session:
    client: str
    host: bytes  # the Host header that opened it: the eviction DELETE must pass the same DNS-rebinding check
    last: float
    busy: int = 0


@dataclass
class _Count:
    """How many of something are open, in all and per client address."""

    total: int = 0
    by_client: dict[str, int] = field(default_factory=dict)

    def add(self, client: str) -> None:
        self.total += 1
        self.by_client[client] = self.by_client.get(client, 0) + 1

    def remove(self, client: str) -> None:
        self.total -= 1
        self.by_client[client] -= 1
        if not self.by_client[client]:
            del self.by_client[client]


class SessionLimits:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_sessions: int,
        per_client: int,
        idle_timeout_s: float,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self.app = app
        self.max_sessions = max_sessions
        self.per_client = per_client
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._sessions: dict[str, _Session] = {}  # in the order they were opened
        self._pending = _Count()  # openings admitted, their session not yet registered
        self._admission = anyio.Lock()  # one admission at a time decides, so two cannot take the same room

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        version = headers.get(_VERSION)
        if version is not None and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS:
            await self.app(scope, receive, send)  # 2026-07-28: no sessions
            return
        session_id = headers.get(_SESSION)
        if session_id is None:
            if scope["method"] == "POST":
                await self._open(scope, receive, send, headers.get(b"host", b""))
            else:
                await self.app(scope, receive, send)
            return
        await self._use(session_id.decode("latin-1"), scope, receive, send)

    async def _use(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            await self.app(scope, receive, send)  # unknown or ended: the SDK answers 404
            return
        status: list[int] = []
        session.busy += 1
        try:
            await self.app(scope, receive, _watch(send, status, None))
        finally:
            session.busy -= 1
            session.last = self._clock()
        if status and (status[0] == 404 or (scope["method"] == "DELETE" and status[0] < 300)):
            self._sessions.pop(session_id, None)

    async def _open(self, scope: Scope, receive: Receive, send: Send, host: bytes) -> None:
        client = (scope.get("client") or ("?", 0))[0]
        async with self._admission:
            if not await self._make_room(client):
                await _refuse(send)
                return
            self._pending.add(client)
        status: list[int] = []
        opened: list[str] = []
        try:
            await self.app(scope, receive, _watch(send, status, opened, self._register, client, host))
        finally:
            self._pending.remove(client)
            for session_id in opened:
                if session_id in self._sessions:
                    self._sessions[session_id].busy -= 1
                    self._sessions[session_id].last = self._clock()

    def _register(self, session_id: str, client: str, host: bytes) -> None:
        self._sessions[session_id] = _Session(client=client, host=host, last=self._clock(), busy=1)

    async def _make_room(self, client: str) -> bool:
        """End the oldest idle sessions in the new one's way; False when every one in the way is busy."""
        now = self._clock()
        for session_id, session in list(self._sessions.items()):
            if not session.busy and now - session.last > self.idle_timeout_s:
                del self._sessions[session_id]  # the SDK has ended it (its idle timer is the same setting)
        while True:
            mine = [sid for sid, s in self._sessions.items() if s.client == client]
            if len(mine) + self._pending.by_client.get(client, 0) >= self.per_client:
                candidates = mine
            elif len(self._sessions) + self._pending.total >= self.max_sessions:
                candidates = list(self._sessions)
            else:
                return True
            victim = min(
                (sid for sid in candidates if not self._sessions[sid].busy),
                key=lambda sid: self._sessions[sid].last,
                default=None,
            )
            if victim is None:
                return False
            await self._end(victim)

    async def _end(self, session_id: str) -> None:
        """A DELETE for the session, as its client would send to close it: the SDK frees it the usual way."""
        session = self._sessions.pop(session_id)
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if delivered:
                await anyio.sleep_forever()
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            return None

        headers = [(b"host", session.host), (_SESSION, session_id.encode("latin-1"))]
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "DELETE",
            "scheme": "http",
            "path": "/mcp",
            "raw_path": b"/mcp",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": None,
            "server": None,
        }
        with anyio.move_on_after(5):
            await self.app(scope, receive, send)


class StreamLimits:
    """At most `max_sessions` open SSE event streams, and `per_client` per client address; the messages a client
    POSTs to its session pass through. The SDK's SSE transport keeps no cap of its own."""

    def __init__(self, app: ASGIApp, *, max_sessions: int, per_client: int) -> None:
        self.app = app
        self.max_sessions = max_sessions
        self.per_client = per_client
        self.open = _Count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        if self.open.total >= self.max_sessions or self.open.by_client.get(client, 0) >= self.per_client:
            await _refuse(send)
            return
        self.open.add(client)
        try:
            await self.app(scope, receive, send)
        finally:
            self.open.remove(client)


def _watch(
    send: Send,
    status: list[int],
    opened: list[str] | None,
    register: Callable[[str, str, bytes], None] | None = None,
    client: str = "",
    host: bytes = b"",
) -> Callable[[Message], Awaitable[None]]:
    """`send` that records the status and, for an opening request, registers the session the SDK created."""

    async def watched(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            if opened is not None and register is not None and message["status"] < 400:
                for name, value in message.get("headers", []):
                    if name.lower() == _SESSION:
                        opened.append(value.decode("latin-1"))
                        register(opened[-1], client, host)
        await send(message)

    return watched


async def _refuse(send: Send) -> None:
    body = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Too many busy sessions; retry later"}}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"5"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
