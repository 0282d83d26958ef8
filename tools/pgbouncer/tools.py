"""PgBouncer tools: live pools and stats from the admin console, guarded `pgbouncer.ini` edits, console commands.

Destructive tools are declared with `@guarded` (server/kernel/tooldef.py): a read-only plan resolver (plans.py:
fresh reads, preview, fingerprint) and a body that gets the guard's decision and sends inside `commit()`.
Nothing from an argument reaches the console or the file unvalidated: `DatabaseEntry` checks every field and
`quote_ident` quotes console arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import anyio
from mcp.server.mcpserver import Context

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.guard import Decision, GuardedResult, Safety
from poolpilot.server.kernel.state import ToolSpec, app_state
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs, tool
from poolpilot.tools.pgbouncer import ini
from poolpilot.tools.pgbouncer.admin import ShowDatabasesRow
from poolpilot.tools.pgbouncer.client import Difference, describe, loaded_differences
from poolpilot.tools.pgbouncer.models import (
    ConsoleAction,
    ConsoleDatabaseName,
    Cursor,
    DatabaseFilter,
    DatabaseName,
    DbName,
    Host,
    InstanceName,
    MaxDbConnections,
    PageSize,
    PauseResult,
    PauseTimeoutS,
    PoolChange,
    PoolCreated,
    PoolDeletion,
    PoolList,
    PoolMode,
    PoolSize,
    Port,
    ReservePool,
    ResumeResult,
    Stats,
    User,
    WindowS,
    pool_rows,
    stats_rows,
)
from poolpilot.tools.pgbouncer.plans import (
    FIELDS,
    Edit,
    check_cursor,
    instance_lock,
    pending_changes,
    pgb,
    plan_delete,
    plan_pause,
    plan_reconnect,
    plan_reload,
    plan_update,
    target,
)

__all__ = ["SPECS"]

log = logging.getLogger("poolpilot.pgbouncer")
R = TypeVar("R", bound=GuardedResult)
Check = Callable[[dict[str, ShowDatabasesRow]], list[Difference]]


def _loaded(entry: ini.DatabaseEntry) -> Check:
    return lambda rows: loaded_differences(entry, rows.get(entry.name))


def _gone(name: str) -> Check:
    return lambda rows: [("database", None, name)] if name in rows else []


def _result(kind: type[R], decision: Decision, *, executed: bool = False, **extra: object) -> R:
    return kind.model_validate({**decision.result_fields("live"), "executed": executed, **extra})


@tool(Safety.READ, "List PgBouncer pools")
async def pgbouncer_list_pools(
    ctx: Context,
    instance: InstanceName,
    database: DatabaseFilter = None,
    page_size: PageSize = 20,
    cursor: Cursor = None,
) -> PoolList:
    """List PgBouncer pools per database/user: clients, servers, max wait, paused, and a saturation verdict."""
    client = pgb(ctx)
    client.instance(instance)
    check_cursor(cursor)
    pools, databases = await client.pools(instance), await client.databases(instance)
    rows = [r for r in pool_rows(pools, databases, client.thresholds) if database in (None, r.database)]
    start = int(cursor or 0)
    return PoolList(
        backend=client.backend,
        instance=instance,
        thresholds=client.thresholds,
        pools=rows[start : start + page_size],
        next_cursor=str(start + page_size) if start + page_size < len(rows) else None,
    )


@tool(Safety.READ, "PgBouncer traffic stats")
async def pgbouncer_get_stats(
    ctx: Context, instance: InstanceName, database: DatabaseFilter = None, window_s: WindowS = 0
) -> Stats:
    """Show PgBouncer traffic per database: totals, averages, and per-second rates over an optional window."""
    client = pgb(ctx)
    client.instance(instance)
    before, elapsed = None, 0.0
    if window_s > 0:
        before, started = await client.stats(instance), client.clock()
        await client.sleep(window_s)
        elapsed = client.clock() - started
        elapsed = elapsed if elapsed > 0 else window_s
    rows = [r for r in stats_rows(await client.stats(instance), before, elapsed) if database in (None, r.database)]
    return Stats(backend=client.backend, instance=instance, window_s=round(elapsed, 3), databases=rows)


@tool(Safety.WRITE, "Create a PgBouncer pool", lock=instance_lock)
async def pgbouncer_create_pool(
    ctx: Context,
    instance: InstanceName,
    database: DatabaseName,
    host: Host = None,
    port: Port = None,
    dbname: DbName = None,
    user: User = None,
    pool_size: PoolSize = None,
    pool_mode: PoolMode | None = None,
    max_db_connections: MaxDbConnections = None,
    reserve_pool: ReservePool = None,
) -> PoolCreated:
    """Add a pool (a [databases] line) to pgbouncer.ini, reload PgBouncer and verify that it loaded."""
    client = pgb(ctx)
    values = (host, port, dbname, user, pool_size, pool_mode, max_db_connections, reserve_pool)
    fields: dict[str, object] = dict(zip(FIELDS, values, strict=True))
    client.ini_path(instance)  # no config file: read-only, said before anything else
    entry = client.new_entry(instance, database, fields)
    file = client.read_ini(instance)
    if file.line(database) is not None or database in await client.databases(instance):
        raise PoolpilotError(
            ErrorInfo(
                code="conflict",
                message=f"{target(instance, database)} already exists; nothing was changed",
                hint="Use pgbouncer_update_pool to change it, or choose another database name.",
                provider="pgbouncer",
            )
        )
    args = {"instance": instance, "database": database, **fields}
    app_state(ctx).guard.start_write(
        tool="pgbouncer_create_pool", args=args, target=target(instance, database), backend=client.backend
    )
    await client.apply(instance, file, file.with_entry(entry), _loaded(entry))
    return PoolCreated(
        backend=client.backend,
        instance=instance,
        target=target(instance, database),
        message="Written, reloaded and verified with SHOW DATABASES.",
        line=ini.render_line(entry, masked=True),
    )


@guarded(title="Update a PgBouncer pool", plan=plan_update, lock=instance_lock)
async def pgbouncer_update_pool(
    ctx: Context,
    instance: InstanceName,
    database: DatabaseName,
    g: Guarded[Edit],
    host: Host = None,
    port: Port = None,
    dbname: DbName = None,
    user: User = None,
    pool_size: PoolSize = None,
    pool_mode: PoolMode | None = None,
    max_db_connections: MaxDbConnections = None,
    reserve_pool: ReservePool = None,
) -> PoolChange:
    """Change a pool's [databases] line (omitted fields are kept), reload and verify; asks for confirmation."""
    decision, edit = g.decision, g.plan.data
    executed = decision.approved and edit.after is not None
    if executed:
        async with g.commit() as plan:
            edit = plan.data
            if edit.after is not None:
                await pgb(ctx).apply(instance, edit.file, edit.text, _loaded(edit.after))
    return _result(
        PoolChange,
        decision,
        executed=executed,
        instance=instance,
        line_before=edit.line_before,
        line_after=edit.line_after,
    )


@guarded(title="Delete a PgBouncer pool", plan=plan_delete, lock=instance_lock)
async def pgbouncer_delete_pool(
    ctx: Context, instance: InstanceName, database: DatabaseName, g: Guarded[Edit]
) -> PoolDeletion:
    """Remove a pool's [databases] line, reload and verify that it is gone; asks for confirmation."""
    if not g.decision.approved:
        return _result(PoolDeletion, g.decision, instance=instance)
    async with g.commit() as plan:
        await pgb(ctx).apply(instance, plan.data.file, plan.data.text, _gone(database))
    return _result(PoolDeletion, g.decision, executed=True, instance=instance, deleted_line=plan.data.line_before)


@guarded(title="Pause a PgBouncer database", plan=plan_pause, lock=instance_lock)
async def pgbouncer_pause_database(
    ctx: Context,
    instance: InstanceName,
    database: ConsoleDatabaseName,
    g: Guarded[None],
    timeout_s: PauseTimeoutS = 10.0,
) -> PauseResult:
    """Pause a database once its active transactions finish (bounded wait, resumes on timeout); asks first."""
    decision = g.decision
    if not decision.approved:
        return _result(PauseResult, decision, instance=instance, database=database)
    client = pgb(ctx)
    async with g.commit():
        pools = [p for p in await client.pools(instance) if p.database == database]
        try:
            waited = await client.pause(instance, database, timeout_s)
        except anyio.get_cancelled_exc_class():
            log.warning("pause of %s on PgBouncer %s was cancelled; RESUME was sent", database, instance)
            raise
    return _result(
        PauseResult,
        decision,
        executed=True,
        instance=instance,
        database=database,
        waited_s=round(waited, 3),
        clients_waited_for=sum(p.cl_active for p in pools),
        servers_waited_for=sum(p.sv_active for p in pools),
    )


@tool(Safety.WRITE, "Resume a PgBouncer database", lock=instance_lock)
async def pgbouncer_resume_database(
    ctx: Context, instance: InstanceName, database: ConsoleDatabaseName
) -> ResumeResult:
    """Resume a paused database so that its clients run again; does nothing when it is not paused."""
    client, where = pgb(ctx), target(instance, database)
    if not (await client.database(instance, database)).paused:
        message = "The database is not paused; nothing was sent."
        return ResumeResult(instance=instance, outcome="no_change", target=where, message=message, database=database)
    args: dict[str, object] = {"instance": instance, "database": database}
    app_state(ctx).guard.start_write(tool="pgbouncer_resume_database", args=args, target=where, backend="live")
    await client.resume(instance, database)
    return ResumeResult(instance=instance, outcome="executed", target=where, message="Resumed.", database=database)


@guarded(title="Reconnect a PgBouncer database", plan=plan_reconnect, lock=instance_lock)
async def pgbouncer_reconnect_database(
    ctx: Context, instance: InstanceName, database: ConsoleDatabaseName, g: Guarded[None]
) -> ConsoleAction:
    """Replace a database's server connections as they are released (RECONNECT); asks for confirmation."""
    decision = g.decision
    if decision.approved:
        async with g.commit():
            await pgb(ctx).reconnect(instance, database)
    return _result(ConsoleAction, decision, executed=decision.approved, instance=instance, command="RECONNECT")


@guarded(title="Reload PgBouncer", plan=plan_reload, lock=instance_lock)
async def pgbouncer_reload(ctx: Context, instance: InstanceName, g: Guarded[None]) -> ConsoleAction:
    """Make PgBouncer re-read pgbouncer.ini (RELOAD) and check that the file's pools loaded; asks first."""
    decision = g.decision
    if not decision.approved:
        return _result(ConsoleAction, decision, instance=instance, command="RELOAD")
    client = pgb(ctx)
    async with g.commit():
        await client.reload(instance)
        # RELOAD answers OK even when the file failed to load: whatever still differs did not load.
        left: list[Difference] = [(c.field, c.after, c.before) for c in await pending_changes(client, instance)]
    if left:
        raise PoolpilotError(
            ErrorInfo(
                code="reload_failed",
                message=f"RELOAD was sent but PgBouncer {instance} did not load pgbouncer.ini ({describe(left)}); "
                "it keeps its last loaded values for those",
                hint="PgBouncer's log names the line it rejected; fix the file, then call pgbouncer_reload again.",
                provider="pgbouncer",
            )
        )
    return _result(ConsoleAction, decision, executed=True, instance=instance, command="RELOAD")


SPECS: tuple[ToolSpec, ...] = specs(
    pgbouncer_list_pools,
    pgbouncer_get_stats,
    pgbouncer_create_pool,
    pgbouncer_update_pool,
    pgbouncer_delete_pool,
    pgbouncer_pause_database,
    pgbouncer_resume_database,
    pgbouncer_reconnect_database,
    pgbouncer_reload,
)
