"""A real MCP client session on the DigitalOcean toolset over the in-process sandbox, and what tests assert with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp_types import ElicitRequestParams, ElicitResult

from server.sandbox import Sandbox
from tests.support import ManualClock, make_app, open_client

__all__ = ["MODES", "Answer", "Session", "session"]

MODES = ("legacy", "auto")
Answer = Literal["yes", "no", "decline", "cancel"]


@dataclass
class Session:
    client: Client
    sandbox: Sandbox
    clock: ManualClock
    audit: Path
    asked: list[str] = field(default_factory=list)

    async def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        """Call a tool that must succeed; its structured result."""
        result = await self.client.call_tool(tool, args)
        assert not result.is_error, result.content
        data: dict[str, Any] | None = result.structured_content
        assert data is not None
        return data

    async def error(self, tool: str, **args: Any) -> dict[str, Any]:
        """Call a tool that must fail; the error model (code, message, hint, field, ...)."""
        result = await self.client.call_tool(tool, args)
        assert result.is_error, result.structured_content
        data: dict[str, Any] | None = result.structured_content
        assert data is not None
        text = result.content[0].text  # type: ignore[union-attr]
        assert text.startswith(data["code"] + ": ")
        return data

    def mutations(self) -> list[tuple[str, str | None]]:
        """Every non-GET request the DigitalOcean sandbox has handled."""
        return [call for call in self.sandbox.digitalocean.calls if call[0] != "GET"]

    def pool(self, cluster_id: str, name: str) -> tuple[str, int, str, str] | None:
        """The sandbox's own record of a pool: (mode, size, db, user)."""
        found = self.sandbox.digitalocean.clusters[cluster_id].pools.get(name)
        return None if found is None else (found.mode, found.size, found.db, found.user)


@asynccontextmanager
async def session(
    tmp_path: Path,
    *,
    mode: str = "legacy",
    answer: Answer | None = None,
    sandbox: Sandbox | None = None,
    on_ask: Callable[[Sandbox], None] | None = None,
    **overrides: Any,
) -> AsyncIterator[Session]:
    """`answer=None`: the client cannot be asked (token path); otherwise it answers every question so.

    `on_ask` runs while the user "thinks", before the answer goes back (to change the sandbox meanwhile).
    """
    clock = ManualClock()
    sandbox = sandbox or Sandbox(clock=clock, sleep=clock.sleep)
    audit = tmp_path / "audit.jsonl"
    overrides.setdefault("toolsets", ("digitalocean",))
    app, sandbox, clock = make_app(audit, sandbox=sandbox, clock=clock, **overrides)
    asked: list[str] = []
    kwargs: dict[str, Any] = {"mode": mode}
    if answer is not None:

        async def elicit(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
            asked.append(params.message)
            if on_ask is not None:
                on_ask(sandbox)
            if answer == "yes":
                return ElicitResult(action="accept", content={"confirm": True})
            if answer == "no":
                return ElicitResult(action="accept", content={"confirm": False})
            return ElicitResult(action=answer)

        kwargs["elicitation_callback"] = elicit
    with anyio.fail_after(10):
        async with open_client(app, **kwargs) as client:
            yield Session(client, sandbox, clock, audit, asked)
