"""What each guarded PgBouncer tool would do: read-only resolvers that build the preview and fingerprint.

They run before the tool body (and again on each elicitation round), so they only read: the config file and
SHOW DATABASES. Fingerprints hold masked lines and configuration, never live counters (which would change
between rounds and void the token) and never a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError, validation_error
from poolpilot.server.kernel.guard import Change, Plan, Preview
from poolpilot.server.kernel.state import app_state
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.tools.pgbouncer import ini
from poolpilot.tools.pgbouncer.client import PgBouncerClient, loaded_differences, masked_line
from poolpilot.tools.pgbouncer.models import (
    ConsoleDatabaseName,
    DatabaseName,
    DbName,
    Host,
    InstanceName,
    MaxDbConnections,
    PauseTimeoutS,
    PoolMode,
    PoolSize,
    Port,
    ReservePool,
    User,
)

__all__ = ["FIELDS", "Edit", "pending_changes", "pgb", "plan_delete", "plan_pause", "plan_reconnect", "plan_reload"]
__all__ += ["check_cursor", "instance_lock", "lock_key", "plan_update", "target"]

FIELDS = ("host", "port", "dbname", "user", "pool_size", "pool_mode", "max_db_connections", "reserve_pool")


def lock_key(instance: str) -> str:
    """One writer per PgBouncer instance: its pgbouncer.ini and its console commands (issue 17). Every change of
    an instance, from any tool or from pools_apply, takes this one key."""
    return f"pgbouncer:{instance}"


def instance_lock(args: Mapping[str, Any]) -> tuple[str, ...]:
    return (lock_key(args["instance"]),)


def check_cursor(cursor: str | None) -> None:
    """Refuse a cursor a list tool did not return, before anything is asked of the console."""
    if cursor is not None and not cursor.isdigit():
        raise validation_error("cursor", "not a cursor returned by this tool", hint="Omit cursor for the first page.")


def pgb(ctx: Context) -> PgBouncerClient:
    return app_state(ctx).client("pgbouncer", PgBouncerClient)


def target(instance: str, database: str | None = None) -> str:
    return f"database {quote(database)} on PgBouncer {instance}" if database else f"PgBouncer {instance}"


@dataclass(frozen=True)
class Edit:
    """A planned file edit: the file as read (the write is refused if it changed since), and the new text."""

    file: ini.IniFile
    before: ini.DatabaseEntry
    after: ini.DatabaseEntry | None
    text: str
    line_before: str  # masked
    line_after: str | None


def _existing(client: PgBouncerClient, instance: str, database: str) -> tuple[ini.IniFile, ini.DatabaseEntry]:
    client.ini_path(instance)  # an unknown instance, or one without a file, is said first
    client.new_entry(instance, database, {})  # a name PgBouncer cannot load is in no file: say why, not "not found"
    file = client.read_ini(instance)
    entry = client.entry(instance, file, database)
    if entry is None:
        raise PoolpilotError(
            ErrorInfo(
                code="not_found",
                message=f"{client.ini_path(instance)} has no [databases] line for that database; nothing was changed",
                hint="pgbouncer_list_pools lists the loaded databases; one from an %include'd file or the * "
                "fallback cannot be edited here.",
                provider="pgbouncer",
            )
        )
    return file, entry


async def plan_update(
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
) -> Plan[Edit]:
    client = pgb(ctx)
    values = (host, port, dbname, user, pool_size, pool_mode, max_db_connections, reserve_pool)
    changes: dict[str, object] = {k: v for k, v in zip(FIELDS, values, strict=True) if v is not None}
    if not changes:
        raise validation_error("arguments", "nothing to change", allowed=list(FIELDS), hint="Pass at least one field.")
    file, before = _existing(client, instance, database)
    after = client.merged(instance, before, changes)  # validates every value before anything is written
    text = file.with_entry(after)
    line_before, line_after = masked_line(file, database) or "", masked_line(ini.parse(text), database)
    diff = [Change(field=k, before=getattr(before, k), after=getattr(after, k)) for k in changes]
    diff = [c for c in diff if c.before != c.after]
    preview = Preview(
        action="update pool",
        target=target(instance, database),
        changes=[*diff, Change(field="line", before=line_before, after=line_after)] if diff else [],
        impact="PgBouncer reloads its config; a new host, port or dbname applies as server connections are released",
    )
    no_change = None if diff else "The pool already has these settings; nothing was changed."
    edit = Edit(file, before, after, text, line_before, line_after)
    return Plan(preview, fingerprint({"line": line_before}), edit, no_change)


async def plan_delete(ctx: Context, instance: InstanceName, database: DatabaseName) -> Plan[Edit]:
    file, before = _existing(pgb(ctx), instance, database)
    line = masked_line(file, database) or ""
    preview = Preview(
        action="delete pool",
        target=target(instance, database),
        changes=[Change(field="line", before=line, after=None)],
        impact="PgBouncer drops the database on reload: its clients are disconnected and new ones refused",
    )
    return Plan(preview, fingerprint({"line": line}), Edit(file, before, None, file.without(database), line, None))


async def plan_pause(
    ctx: Context, instance: InstanceName, database: ConsoleDatabaseName, timeout_s: PauseTimeoutS = 10.0
) -> Plan[None]:
    row = await pgb(ctx).database(instance, database)
    preview = Preview(
        action="pause database",
        target=target(instance, database),
        changes=[Change(field="paused", before=row.paused, after=True)],
        impact=f"waits up to {timeout_s:g} s for active transactions, then new queries wait until "
        "pgbouncer_resume_database; on timeout it resumes at once",
    )
    no_change = "The database is already paused; nothing was sent." if row.paused else None
    return Plan(preview, fingerprint({"database": database, "paused": row.paused}), None, no_change)


async def plan_reconnect(ctx: Context, instance: InstanceName, database: ConsoleDatabaseName) -> Plan[None]:
    row = await pgb(ctx).database(instance, database)
    preview = Preview(
        action="reconnect database",
        target=target(instance, database),
        impact="each server connection is closed when released and opened anew; clients stay connected",
    )
    return Plan(preview, fingerprint({"database": database, "host": row.host, "port": row.port}), None)


async def pending_changes(client: PgBouncerClient, instance: str) -> list[Change]:
    """What a RELOAD would change: the file's pools that differ from what PgBouncer runs (empty without a file)."""
    if not client.instance(instance).ini_path:
        return []
    file, loaded = client.read_ini(instance), await client.databases(instance)
    try:
        entries = file.databases()
    except ini.InvalidSetting as exc:
        return [Change(field="pgbouncer.ini", before=None, after=f"unreadable line ({exc.field}: {exc.message})")]
    changes: list[Change] = []
    for name, entry in entries.items():
        for field, wanted, running in loaded_differences(entry, loaded.get(name)):
            label = name if field == "database" else f"{name}.{field}"
            changes.append(Change(field=label, before=running, after=wanted))
    return changes


async def plan_reload(ctx: Context, instance: InstanceName) -> Plan[None]:
    changes = await pending_changes(pgb(ctx), instance)
    preview = Preview(
        action="reload config",
        target=target(instance),
        changes=changes[:20],
        impact="PgBouncer re-reads pgbouncer.ini; changed pools apply to new server connections",
    )
    return Plan(preview, fingerprint([c.model_dump() for c in changes]), None)
