"""Who is connected: SHOW CLIENTS and SHOW SERVERS as compact rows (toolset `pgbouncer_sessions`, off by default).

Rows carry names, addresses, states and wait times only. The console's `ptr`/`link` (memory addresses) and
`local_addr`/`local_port` are left out; nothing in these results is a secret. Columns are read by name
(rows.py's `Row`): 1.18 and 1.24 differ in columns we do not read (`id`, `prepared_statements`, `replication`).
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import BaseModel, BeforeValidator, Field

from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.state import ToolSpec
from poolpilot.server.kernel.tooldef import specs, tool
from poolpilot.tools.pgbouncer.client import PgBouncerClient, _mapped
from poolpilot.tools.pgbouncer.models import Cursor, DatabaseFilter, InstanceName, PageSize
from poolpilot.tools.pgbouncer.plans import check_cursor, pgb
from poolpilot.tools.pgbouncer.rows import Row

__all__ = ["SPECS", "ShowSocketRow", "show_sockets"]

# connect_time and request_time come back as text or as timestamps depending on how psycopg reads the column.
Stamp = Annotated[str | None, BeforeValidator(lambda v: None if v is None else str(v))]


class ShowSocketRow(Row):
    """One row of SHOW CLIENTS or SHOW SERVERS."""

    user: str
    database: str
    state: str
    addr: str | None = None
    port: int | None = None
    connect_time: Stamp = None
    wait: int = 0  # seconds part of how long a waiting client has waited
    wait_us: int = 0
    application_name: str | None = None
    tls: str | None = None


async def show_sockets(client: PgBouncerClient, instance: str, command: str) -> list[ShowSocketRow]:
    with _mapped(instance):
        return await client.console(instance).show(command, ShowSocketRow)


class SocketRow(BaseModel):
    user: str
    database: str
    state: str
    addr: str | None = Field(default=None, description="Peer address (`unix` for a socket)")
    port: int | None = None
    connected_since: str | None = None
    waiting_s: float = Field(description="How long this client has waited for a server connection (0: not)")
    application_name: str | None = None
    tls: str | None = None


class SocketList(BaseModel):
    backend: str = "live"
    instance: str
    kind: str = Field(description="clients or servers")
    states: dict[str, int] = Field(description="Connections per state, before filters and paging")
    rows: list[SocketRow]
    next_cursor: str | None = None


WaitingOnly = Annotated[bool, Field(strict=True, description="Only clients waiting for a server connection")]


def _page(
    found: list[ShowSocketRow], instance: str, kind: str, page_size: int, cursor: str | None, keep: bool
) -> SocketList:
    states = dict(Counter(r.state for r in found))
    rows = [
        SocketRow(
            user=r.user,
            database=r.database,
            state=r.state,
            addr=r.addr,
            port=r.port,
            connected_since=r.connect_time,
            waiting_s=round(r.wait + r.wait_us / 1_000_000, 3),
            application_name=r.application_name or None,
            tls=r.tls or None,
        )
        for r in found
        if keep or r.state.startswith("waiting")
    ]
    rows.sort(key=lambda r: -r.waiting_s)  # the longest waits first: they are what a person looks for
    start = int(cursor or 0)
    more = start + page_size < len(rows)
    return SocketList(
        instance=instance,
        kind=kind,
        states=states,
        rows=rows[start : start + page_size],
        next_cursor=str(start + page_size) if more else None,
    )


@tool(Safety.READ, "List PgBouncer clients")
async def pgbouncer_list_clients(
    ctx: Context,
    instance: InstanceName,
    database: DatabaseFilter = None,
    waiting_only: WaitingOnly = False,
    page_size: PageSize = 20,
    cursor: Cursor = None,
) -> SocketList:
    """Who is connected to PgBouncer (SHOW CLIENTS): user, database, state, address, wait; longest waits first."""
    client = pgb(ctx)
    client.instance(instance)
    check_cursor(cursor)
    found = [r for r in await show_sockets(client, instance, "SHOW CLIENTS") if database in (None, r.database)]
    return _page(found, instance, "clients", page_size, cursor, keep=not waiting_only)


@tool(Safety.READ, "List PgBouncer servers")
async def pgbouncer_list_servers(
    ctx: Context,
    instance: InstanceName,
    database: DatabaseFilter = None,
    page_size: PageSize = 20,
    cursor: Cursor = None,
) -> SocketList:
    """PgBouncer's connections to PostgreSQL (SHOW SERVERS): user, database, state, address, since when."""
    client = pgb(ctx)
    client.instance(instance)
    check_cursor(cursor)
    found = [r for r in await show_sockets(client, instance, "SHOW SERVERS") if database in (None, r.database)]
    return _page(found, instance, "servers", page_size, cursor, keep=True)


SPECS: tuple[ToolSpec, ...] = specs(pgbouncer_list_clients, pgbouncer_list_servers)
