"""A real MCP client session on the TaurusDB toolset over the in-process sandbox, and what tests assert with."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp_types import CallToolResult

from poolpilot.server.kernel.inprocess import InProcessTransport
from poolpilot.tools.taurusdb.sandbox import (
    INSTANCE_ANALYTICS,
    INSTANCE_PROD,
    PROXY_FLAG_FALSE,
    PROXY_OLD_KERNEL,
    PROXY_SESSION,
    PROXY_SWITCHABLE,
)
from tests.support import MODES, Answer, ManualClock, Sandbox, SandboxSession, sandbox_session

__all__ = ["MODES", "SET", "Answer", "Session", "WireSandbox", "session", "switch_args"]

SET = "taurusdb_set_proxy_pool_type"
Rewrite = Callable[[httpx2.Request, httpx2.Response], Awaitable[httpx2.Response]]


INSTANCE_OF = {
    PROXY_SWITCHABLE: INSTANCE_PROD,
    PROXY_SESSION: INSTANCE_PROD,
    PROXY_OLD_KERNEL: INSTANCE_ANALYTICS,
    PROXY_FLAG_FALSE: INSTANCE_ANALYTICS,
}


def switch_args(proxy_id: str = PROXY_SWITCHABLE, pool_type: str = "SESSION", **more: Any) -> dict[str, Any]:
    """Arguments of taurusdb_set_proxy_pool_type for a seeded proxy."""
    return {"instance_id": INSTANCE_OF[proxy_id], "proxy_id": proxy_id, "pool_type": pool_type, **more}


class WireSandbox(Sandbox):
    """The composed sandbox, with every request poolpilot sends kept for inspection and an optional rewrite of
    the answer: a fake at the HTTP boundary only, for one odd response the real sandbox never gives."""

    def __init__(self, *, rewrite: Rewrite | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wire: list[httpx2.Request] = []
        self._rewrite = rewrite

    def transport(self) -> httpx2.AsyncBaseTransport:
        inner = InProcessTransport(self)

        async def handle(request: httpx2.Request) -> httpx2.Response:
            self.wire.append(request)
            response = await inner.handle_async_request(request)
            if self._rewrite is None:
                return response
            await response.aread()
            return await self._rewrite(request, response)

        return httpx2.MockTransport(handle)

    def sent(self, method: str, path_end: str) -> list[httpx2.Request]:
        return [r for r in self.wire if r.method == method and r.url.path.endswith(path_end)]


async def failing_jobs(request: httpx2.Request, response: httpx2.Response) -> httpx2.Response:
    """Jobs that fail once Running (the sandbox's jobs always complete; the API documents Failed)."""
    if not request.url.path.endswith("/jobs") or response.status_code != 200:
        return response
    body = json.loads(response.content)
    if body["job"]["status"] in ("Running", "Completed"):
        reason = "Failed to switch the connection pool type."
        body["job"].update(status="Failed", process="", fail_reason=reason)
    return httpx2.Response(200, json=body, headers={"X-Request-Id": response.headers["x-request-id"]})


@dataclass
class Session(SandboxSession):
    progress: list[tuple[float, float | None, str | None]] = field(default_factory=list)

    async def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            self.progress.append((progress, total, message))

        return await self.client.call_tool(tool, args, progress_callback=on_progress)

    async def confirmed(self, tool: str = SET, **args: Any) -> dict[str, Any]:
        """The token path: preview, then the same call with the token."""
        preview = await self.ok(tool, **args)
        assert preview["outcome"] == "confirmation_required" and preview["executed"] is False
        return await self.ok(tool, **args, confirm_token=preview["confirm_token"])

    def pool_type(self, proxy_id: str) -> str:
        self.sandbox.taurusdb.settle()
        return self.sandbox.taurusdb.proxies[proxy_id].connection_pool_type

    def audit_lines(self) -> list[dict[str, Any]]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


@asynccontextmanager
async def session(
    tmp_path: Path,
    *,
    mode: str = "legacy",
    answer: Answer | None = None,
    sandbox: Sandbox | None = None,
    clock: ManualClock | None = None,
    **overrides: Any,
) -> AsyncIterator[Session]:
    """`answer=None`: the client cannot be asked (token path); otherwise it answers every question so."""
    async with sandbox_session(
        Session, tmp_path, "taurusdb", mode=mode, answer=answer, sandbox=sandbox, clock=clock, **overrides
    ) as s:
        yield s
