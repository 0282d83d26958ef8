"""DigitalOcean tools that change things: create (WRITE) and update/delete (DESTRUCTIVE, guarded).

Guarded tools follow server/guard.py: a plan resolver reads fresh state and validates (nothing is sent when it
raises), an ask resolver elicits when the client can answer, and the body asks the guard to decide (token,
elicitation, decline, no change) before it sends the one mutating request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError, validation_error
from poolpilot.server.kernel.guard import Change, Plan, Preview, Safety
from poolpilot.server.kernel.state import app_state
from poolpilot.server.kernel.text import quote, shown
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.server.kernel.tooldef import Guarded, guarded, tool
from poolpilot.tools.digitalocean import budget as budgets
from poolpilot.tools.digitalocean.client import PROVIDER
from poolpilot.tools.digitalocean.lookups import (
    allow_secrets,
    budget_of,
    budget_warning,
    check_db,
    check_user,
    client,
    cluster_and_pools,
    pool_result,
    require_databases,
    target,
)
from poolpilot.tools.digitalocean.models import (
    PG_ENGINES,
    ApiCluster,
    ApiPool,
    ClusterId,
    DatabaseCreated,
    DatabaseDeletion,
    DbName,
    PoolChange,
    PoolCreated,
    PoolDeletion,
    PoolMode,
    PoolName,
    PoolRow,
    UserName,
)

__all__ = [
    "digitalocean_create_database",
    "digitalocean_create_pool",
    "digitalocean_delete_database",
    "digitalocean_delete_pool",
    "digitalocean_update_pool",
]

# 25 connections per GB of RAM (budget.py): 25,000 is a 1 TB node, beyond any DigitalOcean plan. Larger numbers
# are typos or overflow, refused before anything is read or sent.
MAX_POOL_SIZE = 25_000
Size = Annotated[int, Field(strict=True, ge=1, le=MAX_POOL_SIZE, description="Backend connections")]
_FIELDS = ("mode", "size", "db", "user")


def _conflict(message: str, hint: str) -> PoolpilotError:
    return PoolpilotError(ErrorInfo(code="conflict", message=message, hint=hint, provider=PROVIDER))


def _find(pools: list[ApiPool], name: str, cluster: ApiCluster) -> ApiPool:
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


# -- create pool (WRITE) ----------------------------------------------------------------------------


def cluster_lock(args: Mapping[str, Any]) -> tuple[str, ...]:
    """Every pool change on a cluster takes its lock: a budget check and the request that uses the budget run as
    one step, and two changes of one pool run one after the other (issue 17)."""
    return (f"digitalocean:cluster:{args['cluster_id']}",)


@tool(Safety.WRITE, "Create DO pool", lock=cluster_lock)
async def digitalocean_create_pool(
    ctx: Context,
    cluster_id: ClusterId,
    pool_name: PoolName,
    mode: PoolMode,
    size: Size,
    db: DbName,
    user: Annotated[UserName | None, Field(description="Pool user; omit for an inbound-user pool")] = None,
) -> PoolCreated:
    """Create a PgBouncer pool; refused before sending if it would exceed the cluster's connection budget."""
    do = client(ctx)
    cluster, pools = await cluster_and_pools(do, cluster_id, write=True)
    check_db(cluster, db)
    if user is not None:
        check_user(cluster, user)
    wanted = PoolRow(name=pool_name, mode=mode, size=size, db=db, user=user)
    sizes = [p.size for p in pools]
    where = target("pool", pool_name, cluster)
    existing = next((p for p in pools if p.name == pool_name), None)
    if existing is not None:
        if existing.row() == wanted and do.had_uncertain_create("pool", cluster_id, pool_name):
            # The earlier attempt answered with an error but did create it (TF#925).
            note = "an earlier create reported a failure, but it did create this pool"
            pool = pool_result(existing, cluster_id, do.backend, allow_secrets(ctx))
            return PoolCreated(backend=do.backend, target=where, pool=pool, budget=budget_of(cluster, sizes), note=note)
        raise _conflict(
            f"pool {quote(pool_name)} already exists on {quote(cluster.name)} "
            f"(mode {quote(existing.mode)}, size {existing.size}); nothing was sent",
            "Use another name, or change it with digitalocean_update_pool.",
        )
    budgets.check_budget(cluster_name=cluster.name, size_slug=cluster.size, sizes=sizes, wanted=size)
    args = {"cluster_id": cluster_id, "pool_name": pool_name, "mode": mode, "size": size, "db": db, "user": user}
    app_state(ctx).guard.start_write(tool="digitalocean_create_pool", args=args, target=where, backend=do.backend)
    created = await do.add_pool(cluster_id, name=pool_name, mode=mode, size=size, db=db, user=user)
    pool = pool_result(created.value, cluster_id, do.backend, allow_secrets(ctx))
    after = budget_of(cluster, [*sizes, created.value.size])
    notes = " ".join(n for n in (created.note, budget_warning(cluster)) if n) or None
    return PoolCreated(backend=do.backend, target=where, pool=pool, budget=after, note=notes)


# -- update pool (DESTRUCTIVE) ----------------------------------------------------------------------


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


async def _plan_update_pool(
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
    current = _find(pools, pool_name, cluster).row()
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
    changes = [Change(field=f, before=before[f], after=after[f]) for f in _FIELDS if before[f] != after[f]]
    unchecked = budget_warning(cluster) if wanted.size > current.size else None
    preview = Preview(
        action="update pool",
        target=target("pool", pool_name, cluster),
        changes=changes,
        impact=_update_impact(current, wanted) + (f" {unchecked}" if unchecked else ""),
    )
    no_change = None
    if not changes:
        state = ", ".join(f"{f} {shown(before[f])}" for f in _FIELDS)
        no_change = f"Pool {quote(pool_name)} already has {state}; nothing was sent."
    return Plan(
        preview=preview,
        fingerprint=fingerprint({"cluster": cluster.id, "pool": before}),
        data=PoolUpdate(cluster, current, wanted),
        no_change=no_change,
    )


@guarded(title="Update DO pool", plan=_plan_update_pool, lock=cluster_lock)
async def digitalocean_update_pool(
    ctx: Context,
    cluster_id: ClusterId,
    pool_name: PoolName,
    g: Guarded[PoolUpdate],
    mode: PoolMode | None = None,
    size: Size | None = None,
    db: DbName | None = None,
    user: UserName | None = None,
    inbound_user: Annotated[bool, Field(strict=True, description="Switch to the inbound user (no pool user)")] = False,
) -> PoolChange:
    """Change a pool's mode, size, db or user; omitted fields keep their value. Asks for confirmation first."""
    do = client(ctx)
    fields = {**g.decision.result_fields(do.backend), "cluster_id": cluster_id, "pool_name": pool_name}
    if not g.decision.approved:
        return PoolChange.model_validate({**fields, "before": g.plan.data.current})
    async with g.commit() as plan:
        w = plan.data.wanted
        await do.put_pool(cluster_id, pool_name, mode=w.mode, size=w.size, db=w.db, user=w.user)
    fields.update(executed=True)
    try:
        after = (await do.get_pool(cluster_id, pool_name)).row()
    except PoolpilotError as exc:
        # The PUT was applied; only reading it back failed (say, a concurrent delete): report both, as executed.
        message = (
            f"The PUT updating pool {quote(pool_name)} was sent and accepted ({plan.preview.diff()}), but reading "
            f"the pool back failed ({exc.info.code}: {exc.info.message}); its state now is unknown."
        )
        return PoolChange.model_validate({**fields, "message": message, "before": plan.data.current})
    message = f"Pool {quote(pool_name)} updated ({plan.preview.diff()})."
    got, asked = after.model_dump(), w.model_dump()
    if got != asked:
        odd = ", ".join(f"{f} {shown(got[f])} (asked {shown(asked[f])})" for f in _FIELDS if got[f] != asked[f])
        message += f" Reading it back shows other values than asked: {odd}."
    fields.update(message=message)
    return PoolChange.model_validate({**fields, "before": plan.data.current, "after": after})


# -- delete pool (DESTRUCTIVE) ----------------------------------------------------------------------


async def _plan_delete_pool(ctx: Context, cluster_id: ClusterId, pool_name: PoolName) -> Plan[PoolRow]:
    cluster, pools = await cluster_and_pools(client(ctx), cluster_id, write=True)
    pool = _find(pools, pool_name, cluster).row()
    preview = Preview(
        action="delete pool",
        target=target("pool", pool_name, cluster),
        changes=[Change(field=f, before=getattr(pool, f), after=None) for f in _FIELDS],
        impact=(
            f"clients that connect to database {quote(pool_name)} on the pool port fail; "
            f"its {pool.size} connections return to the cluster's budget"
        ),
    )
    return Plan(preview=preview, fingerprint=fingerprint({"cluster": cluster.id, "pool": pool.model_dump()}), data=pool)


@guarded(title="Delete DO pool", plan=_plan_delete_pool, lock=cluster_lock)
async def digitalocean_delete_pool(
    ctx: Context, cluster_id: ClusterId, pool_name: PoolName, g: Guarded[PoolRow]
) -> PoolDeletion:
    """Delete a connection pool; asks for confirmation first."""
    do = client(ctx)
    fields = {**g.decision.result_fields(do.backend), "cluster_id": cluster_id, "pool_name": pool_name}
    if not g.decision.approved:
        return PoolDeletion.model_validate(fields)
    async with g.commit() as plan:
        note = await do.delete_pool(cluster_id, pool_name)
    message = f"Pool {quote(pool_name)} deleted" + (f" ({note})." if note else ".")
    fields.update(executed=True, message=message)
    return PoolDeletion.model_validate({**fields, "deleted": plan.data})


# -- databases --------------------------------------------------------------------------------------


@tool(Safety.WRITE, "Create DO database", lock=cluster_lock)
async def digitalocean_create_database(ctx: Context, cluster_id: ClusterId, database_name: DbName) -> DatabaseCreated:
    """Create a database in a cluster."""
    do = client(ctx)
    cluster = await do.get_cluster(cluster_id)
    require_databases(cluster)
    where = target("database", database_name, cluster)
    result = {"backend": do.backend, "target": where, "cluster_id": cluster_id, "name": database_name}
    if cluster.db_names is not None and database_name in cluster.db_names:
        if do.had_uncertain_create("db", cluster_id, database_name):
            return DatabaseCreated.model_validate(
                {**result, "note": "an earlier create reported a failure, but it did create it"}
            )
        raise _conflict(
            f"database {quote(database_name)} already exists on {quote(cluster.name)}; nothing was sent",
            "Use another name.",
        )
    args = {"cluster_id": cluster_id, "database_name": database_name}
    app_state(ctx).guard.start_write(tool="digitalocean_create_database", args=args, target=where, backend=do.backend)
    created = await do.add_database(cluster_id, database_name)
    return DatabaseCreated.model_validate({**result, "name": created.value.name, "note": created.note})


async def _plan_delete_database(ctx: Context, cluster_id: ClusterId, database_name: DbName) -> Plan[str]:
    do = client(ctx)
    cluster = await do.get_cluster(cluster_id)
    require_databases(cluster)
    if cluster.db_names is None or database_name not in cluster.db_names:
        await do.get_database(cluster_id, database_name)  # a 404 names what is missing
    users: list[str] = []
    if cluster.engine in PG_ENGINES:
        users = sorted(p.name for p in await do.list_pools(cluster_id) if p.db == database_name)
    if users:
        raise _conflict(
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


@guarded(title="Delete DO database", plan=_plan_delete_database, lock=cluster_lock)
async def digitalocean_delete_database(
    ctx: Context, cluster_id: ClusterId, database_name: DbName, g: Guarded[str]
) -> DatabaseDeletion:
    """Delete a database and all its data; asks for confirmation first."""
    do = client(ctx)
    fields = {**g.decision.result_fields(do.backend), "cluster_id": cluster_id, "name": database_name}
    if not g.decision.approved:
        return DatabaseDeletion.model_validate(fields)
    async with g.commit():
        note = await do.delete_database(cluster_id, database_name)
    fields.update(executed=True, message=f"Database {quote(database_name)} deleted" + (f" ({note})." if note else "."))
    return DatabaseDeletion.model_validate({**fields, "deleted": True})
