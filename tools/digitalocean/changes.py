"""DigitalOcean tools that change things: create (WRITE) and update/delete (DESTRUCTIVE, guarded).

Guarded tools are declared with `@guarded` (server/kernel/tooldef.py) over their plan resolvers (plans.py): the
guard decides (token, elicitation, decline, no change), and the body sends the one mutating request inside
`commit()`, under the cluster's lock and after a last re-read.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.state import app_state
from poolpilot.server.kernel.text import quote, shown
from poolpilot.server.kernel.tooldef import Guarded, guarded, tool
from poolpilot.tools.digitalocean import budget as budgets
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
from poolpilot.tools.digitalocean.plans import (
    FIELDS,
    PoolUpdate,
    cluster_lock,
    conflict,
    plan_delete_database,
    plan_delete_pool,
    plan_update_pool,
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


# -- create pool (WRITE) ----------------------------------------------------------------------------


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
        raise conflict(
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


@guarded(title="Update DO pool", plan=plan_update_pool, lock=cluster_lock)
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
        odd = ", ".join(f"{f} {shown(got[f])} (asked {shown(asked[f])})" for f in FIELDS if got[f] != asked[f])
        message += f" Reading it back shows other values than asked: {odd}."
    fields.update(message=message)
    return PoolChange.model_validate({**fields, "before": plan.data.current, "after": after})


# -- delete pool (DESTRUCTIVE) ----------------------------------------------------------------------


@guarded(title="Delete DO pool", plan=plan_delete_pool, lock=cluster_lock)
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
        raise conflict(
            f"database {quote(database_name)} already exists on {quote(cluster.name)}; nothing was sent",
            "Use another name.",
        )
    args = {"cluster_id": cluster_id, "database_name": database_name}
    app_state(ctx).guard.start_write(tool="digitalocean_create_database", args=args, target=where, backend=do.backend)
    created = await do.add_database(cluster_id, database_name)
    return DatabaseCreated.model_validate({**result, "name": created.value.name, "note": created.note})


@guarded(title="Delete DO database", plan=plan_delete_database, lock=cluster_lock)
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
