"""DigitalOcean's plan resolvers: fresh reads and every check a change needs (engine, database and user names, the
connection budget), and the preview the guard shows. Nothing is sent when a plan raises; the tools in changes.py
send the one mutating request after the guard approved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError, validation_error
from poolpilot.server.kernel.guard import Change, Plan, Preview
from poolpilot.server.kernel.text import quote, shown
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.tools.digitalocean import budget as budgets
from poolpilot.tools.digitalocean.client import PROVIDER
from poolpilot.tools.digitalocean.lookups import (
    budget_warning,
    check_db,
    check_user,
    client,
    cluster_and_pools,
    require_databases,
    target,
)
from poolpilot.tools.digitalocean.models import (
    PG_ENGINES,
    ApiCluster,
    ApiPool,
    ClusterId,
    DbName,
    PoolMode,
    PoolName,
    PoolRow,
)

__all__ = [
    "FIELDS",
    "PoolUpdate",
    "cluster_key",
    "cluster_lock",
    "conflict",
    "find_pool",
    "plan_delete_database",
    "plan_delete_pool",
    "plan_update_pool",
]

FIELDS = ("mode", "size", "db", "user")


def conflict(message: str, hint: str) -> PoolpilotError:
    return PoolpilotError(ErrorInfo(code="conflict", message=message, hint=hint, provider=PROVIDER))


def find_pool(pools: list[ApiPool], name: str, cluster: ApiCluster) -> ApiPool:
    for pool in pools:
        if pool.name == name:
            return pool
    raise PoolpilotError(
        ErrorInfo(
            code="not_found",
            message=f"pool {quote(name)} on cluster {cluster.id} ({quote(cluster.name)}) was not found",
            hint=f"List them with digitalocean_list_pools(cluster_id={cluster.id!r}) and use an exact name.",
            provider=PROVIDER,
            http_status=404,
        )
    )


def cluster_key(cluster_id: str) -> str:
    """Every pool change on a cluster, from any tool or from pools_apply, takes its lock: a budget check and the
    request that uses the budget run as one step, and two changes of one pool run one after the other (issue 17)."""
    return f"digitalocean:cluster:{cluster_id}"


def cluster_lock(args: Mapping[str, Any]) -> tuple[str, ...]:
    return (cluster_key(args["cluster_id"]),)


@dataclass(frozen=True)
class PoolUpdate:
    cluster: ApiCluster
    current: PoolRow
    wanted: PoolRow


def _update_impact(current: PoolRow, wanted: PoolRow) -> str:
    # The pool's whole current state is in the question: on 2026-07-28 connections the plan is re-read every
    # round, so a pool changed by someone else while the user thinks must change the question (asked again).
    now = f"mode {quote(current.mode)}, size {current.size}, db {quote(current.db)}, user {shown(current.user)}"
    parts = [
        f"pool now has {now}",
        f"DigitalOcean reconfigures PgBouncer for pool {quote(current.name)}; clients using it may be disconnected",
    ]
    if wanted.mode != current.mode and wanted.mode in ("transaction", "statement"):
        parts.append(f"{wanted.mode} mode breaks clients that rely on session state such as named prepared statements")
    if wanted.user is None and current.user is not None:
        parts.append("user null: clients will log in as themselves (inbound user)")
    return "; ".join(parts) + "."


async def plan_update_pool(
    ctx: Context,
    cluster_id: ClusterId,
    pool_name: PoolName,
    mode: PoolMode | None,
    size: int | None,
    db: str | None,
    user: str | None,
    inbound_user: bool,
) -> Plan[PoolUpdate]:
    if user is not None and inbound_user:
        raise validation_error(
            "inbound_user",
            "cannot be true while user is given",
            hint="Give user or inbound_user=true, not both; nothing was sent.",
        )
    if mode is None and size is None and db is None and user is None and not inbound_user:
        raise validation_error(
            "arguments",
            "nothing to change",
            allowed=["mode", "size", "db", "user", "inbound_user"],
            hint="Give at least one of the allowed arguments (omitted ones keep their value); nothing was sent.",
        )
    do = client(ctx)
    cluster, pools = await cluster_and_pools(do, cluster_id, write=True)
    current = find_pool(pools, pool_name, cluster).row()
    if db is not None:
        check_db(cluster, db)
    if user is not None:
        check_user(cluster, user)
    # PUT replaces the whole pool: merge onto what is there, or DigitalOcean clears `user` (doctl#1553).
    wanted = current.model_copy(
        update={
            "mode": mode or current.mode,
            "size": size or current.size,
            "db": db or current.db,
            "user": None if inbound_user else (user or current.user),
        }
    )
    if wanted.size > current.size:
        budgets.check_budget(
            cluster_name=cluster.name,
            size_slug=cluster.size,
            sizes=[p.size for p in pools],
            wanted=wanted.size,
            freed=current.size,
        )
    before, after = current.model_dump(), wanted.model_dump()
    changes = [Change(field=f, before=before[f], after=after[f]) for f in FIELDS if before[f] != after[f]]
    unchecked = budget_warning(cluster) if wanted.size > current.size else None
    preview = Preview(
        action="update pool",
        target=target("pool", pool_name, cluster),
        changes=changes,
        impact=_update_impact(current, wanted) + (f" {unchecked}" if unchecked else ""),
    )
    no_change = None
    if not changes:
        state = ", ".join(f"{f} {shown(before[f])}" for f in FIELDS)
        no_change = f"Pool {quote(pool_name)} already has {state}; nothing was sent."
    return Plan(
        preview=preview,
        fingerprint=fingerprint({"cluster": cluster.id, "pool": before}),
        data=PoolUpdate(cluster, current, wanted),
        no_change=no_change,
    )


async def plan_delete_pool(ctx: Context, cluster_id: ClusterId, pool_name: PoolName) -> Plan[PoolRow]:
    cluster, pools = await cluster_and_pools(client(ctx), cluster_id, write=True)
    pool = find_pool(pools, pool_name, cluster).row()
    preview = Preview(
        action="delete pool",
        target=target("pool", pool_name, cluster),
        changes=[Change(field=f, before=getattr(pool, f), after=None) for f in FIELDS],
        impact=(
            f"clients that connect to database {quote(pool_name)} on the pool port fail; "
            f"its {pool.size} connections return to the cluster's budget"
        ),
    )
    return Plan(preview=preview, fingerprint=fingerprint({"cluster": cluster.id, "pool": pool.model_dump()}), data=pool)


async def plan_delete_database(ctx: Context, cluster_id: ClusterId, database_name: DbName) -> Plan[str]:
    do = client(ctx)
    cluster = await do.get_cluster(cluster_id)
    require_databases(cluster)
    if cluster.db_names is None or database_name not in cluster.db_names:
        await do.get_database(cluster_id, database_name)  # a 404 names what is missing
    users: list[str] = []
    if cluster.engine in PG_ENGINES:
        users = sorted(p.name for p in await do.list_pools(cluster_id) if p.db == database_name)
    if users:
        raise conflict(
            f"database {quote(database_name)} is used by pools {', '.join(map(quote, users))} "
            f"on {quote(cluster.name)}; nothing was sent",
            "Delete those pools or point them at another database (digitalocean_update_pool db=...) first.",
        )
    preview = Preview(
        action="delete database",
        target=target("database", database_name, cluster),
        changes=[Change(field="database", before=database_name, after=None)],
        impact=f"every table and row in {quote(database_name)} is lost for good; backups are the only way back",
    )
    return Plan(
        preview=preview, fingerprint=fingerprint({"cluster": cluster.id, "db": database_name}), data=database_name
    )
