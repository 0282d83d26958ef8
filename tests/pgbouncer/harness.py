"""A real MCP client session on the PgBouncer toolset, wired to the session's real PostgreSQL + PgBouncer pair."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import psycopg
from mcp import Client

from poolpilot.server.kernel.config import Settings
from poolpilot.server.shell.app import build_app
from poolpilot.tools.pgbouncer import FACE
from poolpilot.tools.pgbouncer.local import LocalPair
from poolpilot.tools.pgbouncer.settings import PgBouncerInstance, PgBouncerSettings
from tests.support import MODES, Answer, ManualClock, client_options, open_client

__all__ = ["MODES", "Session", "connect", "session"]


@dataclass
class Session:
    client: Client
    pair: LocalPair
    audit: Path
    seen: list[str] = field(default_factory=list)  # every result's text, for the secrets check
    asked: list[str] = field(default_factory=list)

    async def call(self, tool: str, **args: Any) -> tuple[bool, dict[str, Any]]:
        result = await self.client.call_tool(tool, {"instance": "local", **args})
        self.seen += [getattr(c, "text", "") for c in result.content] + [repr(result.structured_content)]
        assert result.structured_content is not None
        return result.is_error, result.structured_content

    async def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        """Call a tool that must succeed; its structured result (and `backend`/`instance` are checked)."""
        is_error, data = await self.call(tool, **args)
        assert not is_error, data
        assert data["backend"] == "live" and data["instance"] == args.get("instance", "local")
        return data

    async def error(self, tool: str, **args: Any) -> dict[str, Any]:
        """Call a tool that must fail; the error model (code, message, hint, field, allowed)."""
        is_error, data = await self.call(tool, **args)
        assert is_error, data
        return data

    async def confirmed(self, tool: str, **args: Any) -> dict[str, Any]:
        """Token path: preview, then the same call with the token; the executed result."""
        preview = await self.ok(tool, **args)
        assert preview["confirmation_required"] and not preview["executed"], preview
        done = await self.ok(tool, **args, confirm_token=preview["confirm_token"])
        assert done["executed"] and done["confirmed_by"] == "token", done
        return done

    async def create(self, database: str, **fields: Any) -> dict[str, Any]:
        """A pool on the pair's PostgreSQL demo database."""
        base = {"host": "127.0.0.1", "port": self.pair.pg_port, "dbname": self.pair.demo_database}
        return await self.ok("pgbouncer_create_pool", database=database, **{**base, **fields})


async def connect(pair: LocalPair, database: str, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
    """A client connection through PgBouncer, as the demo user."""
    return await psycopg.AsyncConnection.connect(pair.dsn(database), connect_timeout=5, **kwargs)


@asynccontextmanager
async def session(
    pair: LocalPair,
    tmp_path: Path,
    *,
    mode: str = "auto",
    answer: Answer | None = None,
    ini: bool = True,
    dsn: str | None = None,
    clock: ManualClock | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    **overrides: Any,
) -> AsyncIterator[Session]:
    """`answer=None`: the client cannot be asked (token path); otherwise it answers every question so."""
    instance = PgBouncerInstance(name="local", dsn=dsn or pair.admin_dsn, ini_path=str(pair.ini_path) if ini else None)
    limits = {k.removeprefix("pgbouncer_"): overrides.pop(k) for k in list(overrides) if k.startswith("pgbouncer_")}
    audit = tmp_path / "audit.jsonl"
    settings = Settings(
        backend="sandbox",
        audit_log=str(audit),
        toolsets=FACE.toolset_names(),
        providers={"pgbouncer": PgBouncerSettings(instances=(instance,), **limits)},
        **overrides,
    )
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    app = build_app(settings, sleep=sleep, **extra)
    asked: list[str] = []
    with anyio.fail_after(20):  # a whole test against real processes; each wait inside has its own bound too
        async with open_client(app, **client_options(mode, answer, asked)) as client:
            yield Session(client, pair, audit, asked=asked)
