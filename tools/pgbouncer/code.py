"""PgBouncer in pools as code: the `[databases]` lines of each instance's pgbouncer.ini.

Export writes each line's fields (never its password; a password or other parameter already on a line is kept
by an update). An instance without a config file is listed with the databases PgBouncer loaded and no fields:
any change there is a reason the plan is refused. Each step rewrites the file, reloads PgBouncer and verifies
with SHOW DATABASES; a failed step puts the previous file back (the client does this).
"""

from __future__ import annotations

from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from poolpilot.server.kernel.desired import ActualLocation, Planned, PoolsAsCode, SpecValue, Step
from poolpilot.server.kernel.guard import Change
from poolpilot.server.kernel.state import ProviderClient
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.tools.pgbouncer import ini
from poolpilot.tools.pgbouncer.client import PgBouncerClient, loaded_differences, masked_line
from poolpilot.tools.pgbouncer.plans import lock_key

__all__ = ["CODE", "PgBouncerDatabase"]

FIELDS = ("host", "port", "dbname", "user", "pool_size", "pool_mode", "max_db_connections", "reserve_pool")


class PgBouncerDatabase(BaseModel):
    """A `[databases]` entry (the pool key is the database name clients connect to)."""

    model_config = ConfigDict(extra="forbid", title="pgbouncer")

    host: Annotated[StrictStr, Field(min_length=1, max_length=255)] | None = None
    port: Annotated[StrictInt, Field(ge=1, le=65535)] | None = None
    dbname: Annotated[StrictStr, Field(min_length=1, max_length=63)] | None = None
    user: Annotated[StrictStr, Field(min_length=1, max_length=63)] | None = None
    pool_size: Annotated[StrictInt, Field(ge=1, le=10_000)] | None = None
    pool_mode: Literal["session", "transaction", "statement"] | None = None
    max_db_connections: Annotated[StrictInt, Field(ge=0, le=100_000)] | None = None
    reserve_pool: Annotated[StrictInt, Field(ge=0, le=10_000)] | None = None


def _spec(entry: ini.DatabaseEntry) -> dict[str, SpecValue]:
    return {f: v for f in FIELDS if (v := getattr(entry, f)) is not None}


async def _export(client: ProviderClient, location: str | None) -> list[ActualLocation]:
    pgb = cast(PgBouncerClient, client)
    return [await _instance(pgb, name) for name in sorted(pgb.instances) if location in (None, name)]


async def _instance(pgb: PgBouncerClient, name: str) -> ActualLocation:
    if not pgb.instance(name).ini_path:
        loaded = [d for d in await pgb.databases(name) if d != "pgbouncer"]
        pools: dict[str, dict[str, SpecValue]] = {d: {} for d in loaded}
        return ActualLocation("pgbouncer", name, None, pools, {d: "loaded" for d in loaded}, facts={"ini": False})
    file = pgb.read_ini(name)
    entries = file.databases()
    pools = {db: _spec(entry) for db, entry in entries.items()}
    # The masked line, as the pgbouncer_* tools fingerprint it: any edit of the line (password too) shows.
    prints = {db: fingerprint({"line": masked_line(file, db) or ""}) for db in entries}
    return ActualLocation("pgbouncer", name, None, pools, prints, facts={"ini": True})


def _plan(actual: ActualLocation, desired: dict[str, dict[str, SpecValue]], prune: bool) -> Planned:
    steps: list[Step] = []
    reasons: list[str] = []
    where = f"PgBouncer {quote(actual.location)}"
    for db, want in sorted(desired.items()):
        have = actual.pools.get(db)
        changed = {k: v for k, v in want.items() if have is None or have.get(k) != v}
        if have is not None and not changed:
            continue
        try:
            ini.DatabaseEntry(name=db, **{**(have or {}), **want})
        except ini.InvalidSetting as exc:
            reasons.append(f"database {quote(db)} on {where}: {exc.field}: {exc.message}")
            continue
        steps.append(
            Step(
                provider="pgbouncer",
                location=actual.location,
                pool=db,
                action="update" if have is not None else "create",
                changes=[Change(field=k, before=(have or {}).get(k), after=v) for k, v in changed.items()],
                fingerprint=actual.fingerprints.get(db, "absent"),
                spec=changed,
            )
        )
    if prune:
        for db in sorted(set(actual.pools) - set(desired)):
            have = actual.pools[db]
            steps.append(
                Step(
                    provider="pgbouncer",
                    location=actual.location,
                    pool=db,
                    action="delete",
                    changes=[Change(field=k, before=v, after=None) for k, v in have.items()],
                    fingerprint=actual.fingerprints[db],
                )
            )
    if steps and not actual.facts["ini"]:
        reasons.append(f"{where} has no config file configured, so its pools cannot be edited")
    return steps, reasons


async def _apply(client: ProviderClient, step: Step) -> str | None:
    pgb = cast(PgBouncerClient, client)
    name, db = step.location, step.pool
    file = pgb.read_ini(name)
    if step.action == "delete":
        await pgb.apply(name, file, file.without(db), lambda rows: [("database", None, db)] if db in rows else [])
        return None
    before = pgb.entry(name, file, db)
    changes: dict[str, object] = dict(step.spec)
    entry = pgb.new_entry(name, db, changes) if before is None else pgb.merged(name, before, changes)
    await pgb.apply(name, file, file.with_entry(entry), lambda rows: loaded_differences(entry, rows.get(db)))
    return None


def _lock(location: str, pool: str) -> str:
    return lock_key(location)


CODE = PoolsAsCode(spec=PgBouncerDatabase, export=_export, plan=_plan, apply_step=_apply, lock=_lock)
