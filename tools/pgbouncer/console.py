"""Console commands on one database (toolset `pgbouncer_admin`, off by default): DISABLE and KILL, guarded as
destructive; ENABLE, a write that does nothing when the database is not disabled.

The database name reaches the console only through `quote_ident` (admin.py). KILL leaves the database paused in
PgBouncer (new clients wait until RESUME): the result says so and names the tool that resumes it.
"""

from __future__ import annotations

from typing import Literal

from mcp.server.mcpserver import Context

from poolpilot.server.kernel.guard import Change, Decision, Plan, Preview, Safety
from poolpilot.server.kernel.state import ToolSpec, app_state
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs, tool
from poolpilot.tools.pgbouncer.admin import quote_ident
from poolpilot.tools.pgbouncer.client import PgBouncerClient, _mapped
from poolpilot.tools.pgbouncer.models import ConsoleAction, ConsoleDatabaseName, InstanceName, ResumeResult
from poolpilot.tools.pgbouncer.plans import instance_lock, pgb, target

__all__ = ["SPECS"]

Verb = Literal["DISABLE", "ENABLE", "KILL"]


async def _send(client: PgBouncerClient, instance: str, verb: Verb, database: str) -> None:
    with _mapped(instance):
        await client.console(instance).run_command(f"{verb} {quote_ident(database)}")


async def _plan_disable(ctx: Context, instance: InstanceName, database: ConsoleDatabaseName) -> Plan[None]:
    row = await pgb(ctx).database(instance, database)
    preview = Preview(
        action="disable database",
        target=target(instance, database),
        changes=[Change(field="disabled", before=row.disabled, after=True)],
        impact="new client connections to it are refused; connected clients keep working",
    )
    return Plan(preview, fingerprint({"database": database, "disabled": row.disabled}), None)


async def _plan_kill(ctx: Context, instance: InstanceName, database: ConsoleDatabaseName) -> Plan[None]:
    client = pgb(ctx)
    row = await client.database(instance, database)
    pools = [p for p in await client.pools(instance) if p.database == database]
    clients = sum(p.cl_active + p.cl_waiting for p in pools)
    servers = sum(p.sv_active + p.sv_idle + p.sv_used for p in pools)
    preview = Preview(
        action="kill database connections",
        target=target(instance, database),
        impact=f"drops {clients} client and {servers} server connection(s) now, aborting their transactions; "
        "new clients then wait until pgbouncer_resume_database",
    )
    return Plan(preview, fingerprint({"database": database, "host": row.host, "port": row.port}), None)


def _result(decision: Decision, instance: str, command: str, message: str | None = None) -> ConsoleAction:
    fields: dict[str, object] = {**decision.result_fields("live"), "executed": decision.approved}
    if message is not None and decision.approved:
        fields["message"] = message
    return ConsoleAction.model_validate({**fields, "instance": instance, "command": command})


@guarded(title="Disable a PgBouncer database", plan=_plan_disable, lock=instance_lock)
async def pgbouncer_disable_database(
    ctx: Context, instance: InstanceName, database: ConsoleDatabaseName, g: Guarded[None]
) -> ConsoleAction:
    """Refuse new client connections to a database (DISABLE); connected clients stay; asks for confirmation."""
    if g.decision.approved:
        async with g.commit():
            await _send(pgb(ctx), instance, "DISABLE", database)
    return _result(g.decision, instance, "DISABLE")


@guarded(title="Kill a PgBouncer database's connections", plan=_plan_kill, lock=instance_lock)
async def pgbouncer_kill_database(
    ctx: Context, instance: InstanceName, database: ConsoleDatabaseName, g: Guarded[None]
) -> ConsoleAction:
    """Drop every client and server connection of a database now (KILL); it then stays paused; asks first."""
    if g.decision.approved:
        async with g.commit():
            await _send(pgb(ctx), instance, "KILL", database)
    message = "Killed; new clients wait until pgbouncer_resume_database is called for this database."
    return _result(g.decision, instance, "KILL", message)


@tool(Safety.WRITE, "Enable a PgBouncer database", lock=instance_lock)
async def pgbouncer_enable_database(
    ctx: Context, instance: InstanceName, database: ConsoleDatabaseName
) -> ResumeResult:
    """Accept new client connections to a disabled database again (ENABLE); does nothing when it is enabled."""
    client, where = pgb(ctx), target(instance, database)
    if not (await client.database(instance, database)).disabled:
        message = "The database is not disabled; nothing was sent."
        return ResumeResult(instance=instance, outcome="no_change", target=where, message=message, database=database)
    args: dict[str, object] = {"instance": instance, "database": database}
    app_state(ctx).guard.start_write(tool="pgbouncer_enable_database", args=args, target=where, backend="live")
    await _send(client, instance, "ENABLE", database)
    return ResumeResult(instance=instance, outcome="executed", target=where, message="Enabled.", database=database)


SPECS: tuple[ToolSpec, ...] = specs(pgbouncer_disable_database, pgbouncer_enable_database, pgbouncer_kill_database)
