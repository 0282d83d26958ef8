"""PgBouncer in the fleet view: one row per pool of every configured instance (waiting clients, longest wait,
saturation, the database's server limit), and the advice to grow a pool whose clients wait."""

from __future__ import annotations

import math
from typing import cast

import anyio

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.fleet import (
    Finding,
    FleetAdapter,
    Overview,
    OverviewRow,
    Sink,
    SuggestedCall,
    Thresholds,
    wanted,
)
from poolpilot.server.kernel.state import ProviderClient
from poolpilot.server.kernel.text import quote
from poolpilot.tools.pgbouncer.client import PgBouncerClient
from poolpilot.tools.pgbouncer.models import pool_rows

__all__ = ["ADAPTER"]


async def _collect(client: ProviderClient, location: str | None, sink: Sink) -> None:
    pgb = cast(PgBouncerClient, client)
    async with anyio.create_task_group() as group:
        for name in sorted(pgb.instances):
            if wanted(location, name):
                group.start_soon(_pgb_instance, pgb, name, sink)


async def _pgb_instance(pgb: PgBouncerClient, name: str, sink: Sink) -> None:
    try:
        # One console connection per instance, used under a lock: the two SHOWs run one after the other.
        pools = await pgb.pools(name)
        databases = await pgb.databases(name)
    except PoolpilotError as exc:
        sink.fail("pgbouncer", name, exc.info)
        return
    for row in pool_rows(pools, databases, pgb.thresholds):
        loaded = databases.get(row.database)
        sink.rows.append(
            OverviewRow(
                provider="pgbouncer",
                location=name,
                pool=row.database,
                pool_label=f"{row.database}/{row.user}" if row.user else None,
                mode=row.pool_mode,
                size=row.pool_size,
                backend=pgb.backend,
                db=loaded.database if loaded is not None else None,
                user=row.user,
                clients_waiting=row.cl_waiting,
                max_wait_s=row.max_wait_s,
                saturation=row.saturation,
                server_limit=(loaded.max_connections or None) if loaded is not None else None,
            )
        )


def pgbouncer_waiting(overview: Overview, t: Thresholds) -> list[Finding]:
    findings = []
    for row in overview.rows:
        if row.provider != "pgbouncer":
            continue
        waiting, wait = row.clients_waiting or 0, row.max_wait_s or 0.0
        if waiting <= t.waiting_clients and wait <= t.max_wait_s:
            continue
        call = None
        if row.size:
            wanted = min(math.ceil(row.size * t.growth), row.size + max(waiting, 1))
            if row.server_limit:
                wanted = min(wanted, row.server_limit)
            if wanted > row.size:
                call = SuggestedCall(
                    tool="pgbouncer_update_pool",
                    arguments={"instance": row.location, "database": row.pool, "pool_size": wanted},
                )
        if call is None:  # nothing to grow: who waits, from where, for how long (toolset pgbouncer_sessions)
            call = SuggestedCall(
                tool="pgbouncer_list_clients",
                arguments={"instance": row.location, "database": row.pool, "waiting_only": True},
            )
        grow = call.tool == "pgbouncer_update_pool"
        findings.append(
            Finding(
                rule="pgbouncer_waiting",
                severity="warning",
                provider="pgbouncer",
                location=row.location,
                pool=row.pool,
                evidence={"clients_waiting": waiting, "max_wait_s": wait, "pool_size": row.size},
                explanation=f"{waiting} clients wait on {quote(row.pool_label or row.pool)} (longest {wait:.1f}s)"
                + (
                    "; grow the pool."
                    if grow
                    else "; the pool is at the server limit: see who waits, then look at their queries."
                ),
                suggested_call=call,
            )
        )
    return findings


ADAPTER = FleetAdapter(
    collect=_collect,
    rules=(pgbouncer_waiting,),
    resize_steps=(
        "1. Call pgbouncer_list_pools(instance={location}, database={pool}): clients waiting, max wait, "
        "pool size, saturation.\n"
        "2. Pick a pool_size that stays within the database's max_db_connections and the server's limits.\n"
        "3. Call pgbouncer_update_pool(instance={location}, database={pool}, pool_size=<new size>)."
    ),
    location="PgBouncer instance",
)
