"""One MCP client session on every sandbox toolset, with a request log at the HTTP boundary.

The log is kept by the transport, before the sandbox sees a request, so requests answered by an injected fault
(which never reach the fake provider's own bookkeeping) are counted too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp_types import CallToolResult

from poolpilot.server.kernel.inprocess import InProcessTransport
from poolpilot.server.kernel.sandbox import Fault, FaultPlan
from tests.support import ManualClock, Sandbox, error_model, make_app, ok_data, open_client

__all__ = ["Rig", "WiredSandbox", "error_model", "rig", "sandbox_with"]


class WiredSandbox(Sandbox):
    """The composed sandbox on a manual clock, recording (method, path) of every request sent to it."""

    def __init__(self, *, clock: ManualClock, **kwargs: Any) -> None:
        kwargs.setdefault("sleep", clock.sleep)
        super().__init__(clock=clock, **kwargs)
        self.clock = clock
        self.wire: list[tuple[str, str]] = []
        self.raw_paths: list[tuple[str, bytes]] = []  # (method, path as sent, still percent-encoded)
        # (method, path end) whose answer is slow to come back *after* the sandbox has acted on the request.
        self.slow_answers: set[tuple[str, str]] = set()

    def transport(self) -> httpx2.AsyncBaseTransport:
        inner = InProcessTransport(self)

        async def handle(request: httpx2.Request) -> httpx2.Response:
            self.wire.append((request.method, request.url.path))
            self.raw_paths.append((request.method, request.url.raw_path.partition(b"?")[0]))
            response = await inner.handle_async_request(request)
            if any(request.method == m and request.url.path.endswith(end) for m, end in self.slow_answers):
                await self.clock.sleep(1.0)
            return response

        return httpx2.MockTransport(handle)

    def sent(self, method: str, path_end: str) -> int:
        """How many `method` requests went to a path ending in `path_end`."""
        return sum(1 for m, path in self.wire if m == method and path.endswith(path_end))


def sandbox_with(*faults: str | Fault, clock: ManualClock | None = None, **kwargs: Any) -> WiredSandbox:
    plan = FaultPlan()
    for rule in faults:
        plan.add(rule)
    return WiredSandbox(clock=clock or ManualClock(), faults=plan, **kwargs)


@dataclass
class Rig:
    client: Client
    sandbox: WiredSandbox
    clock: ManualClock

    async def call(self, tool: str, **args: Any) -> CallToolResult:
        return await self.client.call_tool(tool, args)

    async def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        return ok_data(await self.call(tool, **args))

    async def error(self, tool: str, **args: Any) -> dict[str, Any]:
        """The error model of a call that must fail; its text starts with the code, as every error's does."""
        return error_model(await self.call(tool, **args))

    async def preview(self, tool: str, **args: Any) -> str:
        """The token path's first call: a preview that changes nothing; returns its confirm_token."""
        preview = await self.ok(tool, **args)
        assert preview["confirmation_required"] is True and preview["executed"] is False, preview
        token: str = preview["confirm_token"]
        return token

    async def confirmed(self, tool: str, **args: Any) -> CallToolResult:
        """Preview, then the same call with its token: the executing call's result, error or not."""
        token = await self.preview(tool, **args)
        return await self.call(tool, **args, confirm_token=token)

    def pool(self, cluster_id: str, name: str) -> tuple[str, int, str, str] | None:
        found = self.sandbox.digitalocean.clusters[cluster_id].pools.get(name)
        return None if found is None else (found.mode, found.size, found.db, found.user)

    def pool_type(self, proxy_id: str) -> str:
        self.sandbox.taurusdb.settle()
        return self.sandbox.taurusdb.proxies[proxy_id].connection_pool_type


@asynccontextmanager
async def rig(
    tmp_path: Path,
    sandbox: WiredSandbox | None = None,
    *,
    limit_s: float = 5,
    mode: str = "auto",
    **overrides: Any,
) -> AsyncIterator[Rig]:
    """Every sandbox toolset behind one in-process MCP client; the whole session is bounded by `limit_s`."""
    sandbox = sandbox or sandbox_with()
    app, _, clock = make_app(tmp_path / "audit.jsonl", sandbox=sandbox, clock=sandbox.clock, **overrides)
    with anyio.fail_after(limit_s):
        async with open_client(app, mode=mode) as client:
            yield Rig(client, sandbox, clock)
