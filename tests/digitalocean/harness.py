"""A real MCP client session on the DigitalOcean toolset over the in-process sandbox, and what tests assert with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import MODES, Answer, Sandbox, SandboxSession, sandbox_session

__all__ = ["MODES", "Answer", "Session", "session"]


@dataclass
class Session(SandboxSession):
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
    async with sandbox_session(
        Session, tmp_path, "digitalocean", mode=mode, answer=answer, sandbox=sandbox, on_ask=on_ask, **overrides
    ) as s:
        yield s
