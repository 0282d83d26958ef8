"""Argument aliases and result models of the PgBouncer tools (the console's own rows live in admin.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from poolpilot.server.kernel.guard import GuardedResult
from poolpilot.server.kernel.text import check_name
from poolpilot.tools.pgbouncer.admin import ShowDatabasesRow, ShowPoolsRow, ShowStatsRow, quote_ident
from poolpilot.tools.pgbouncer.ini import InvalidSetting

__all__ = [
    "ConsoleAction",
    "ConsoleDatabaseFilter",
    "ConsoleDatabaseName",
    "Cursor",
    "DatabaseFilter",
    "DatabaseName",
    "DbName",
    "Host",
    "InstanceName",
    "MaxDbConnections",
    "PageSize",
    "PauseResult",
    "PauseTimeoutS",
    "PoolChange",
    "PoolCreated",
    "PoolDeletion",
    "PoolList",
    "PoolMode",
    "PoolRow",
    "PoolSize",
    "Port",
    "ReservePool",
    "ResumeResult",
    "Saturation",
    "Stats",
    "StatsRow",
    "Thresholds",
    "User",
    "WindowS",
    "pool_rows",
    "stats_rows",
]

PoolMode = Literal["session", "transaction", "statement"]
Saturation = Literal["ok", "at_capacity", "saturated"]
ADMIN_DB = "pgbouncer"  # the console's own virtual database: listed by SHOW commands, never a pool


def _database_name(value: str) -> str:
    """What can be a PgBouncer database at all: 63 bytes (MAX_DBNAME is 64 with the NUL), no control characters
    (no file line, console command or startup packet carries them). Checked before anything connects."""
    if len(value.encode("utf-8", "surrogatepass")) > 63:
        raise ValueError("longer than 63 bytes of UTF-8")
    return check_name(value)  # the kernel's rule: no Cc/Cf/Zl/Zp/Cs character, not "." or ".."


def _optional_database_name(value: str | None) -> str | None:
    return None if value is None else _database_name(value)


def _optional_name(value: str | None) -> str | None:
    return None if value is None else check_name(value)


def _console_name(value: str) -> str:
    """A name the admin console can take as a quoted argument (PAUSE, RESUME, RECONNECT), known before connecting."""
    check_name(value)
    try:
        quote_ident(value)
    except InvalidSetting as exc:
        raise ValueError(f"{exc.message} (allowed: {exc.allowed})") from None
    return value


InstanceName = Annotated[
    str,
    Field(description="Configured PgBouncer instance name", min_length=1, max_length=64),
    AfterValidator(check_name),
]
DatabaseName = Annotated[
    str,
    Field(description="Database name clients use through PgBouncer", min_length=1, max_length=63),
    AfterValidator(_database_name),
]
ConsoleDatabaseName = Annotated[
    str,
    Field(description="Database name clients use through PgBouncer", min_length=1, max_length=61),
    AfterValidator(_console_name),
]
ConsoleDatabaseFilter = Annotated[
    str | None,
    Field(description="Only this database (omit for all)", min_length=1, max_length=61),
    AfterValidator(lambda v: v if v is None else _console_name(v)),
]
DatabaseFilter = Annotated[
    str | None,
    Field(description="Only this database", min_length=1, max_length=63),
    AfterValidator(_optional_database_name),
]
WindowS = Annotated[float, Field(strict=True, description="Sampling window in seconds; 0 = no sampling", ge=0, le=30)]
PauseTimeoutS = Annotated[float, Field(strict=True, description="Seconds to wait for active clients", ge=0.1, le=60)]
PageSize = Annotated[int, Field(strict=True, description="Rows per page", ge=1, le=100)]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page", max_length=12)]
# Numeric limits mirror ini.py's (what PgBouncer's atoi reads correctly), so the SDK refuses bad values first.
Host = Annotated[
    str | None,
    Field(description="Server host, IP or unix socket dir", min_length=1, max_length=1024),
    AfterValidator(_optional_name),
]
Port = Annotated[int | None, Field(strict=True, description="Server port", ge=1, le=65535)]
DbName = Annotated[
    str | None, Field(description="Database on the server", min_length=1, max_length=63), AfterValidator(_optional_name)
]
User = Annotated[
    str | None, Field(description="Force this server user", min_length=1, max_length=63), AfterValidator(_optional_name)
]
PoolSize = Annotated[int | None, Field(strict=True, description="Server connections per user pool", ge=1, le=10_000)]
ReservePool = Annotated[
    int | None, Field(strict=True, description="Extra connections for waiting clients", ge=0, le=10_000)
]
MaxDbConnections = Annotated[
    int | None, Field(strict=True, description="Cap for the database; 0 = none", ge=0, le=100_000)
]


class Thresholds(BaseModel):
    """What counts as saturated (POOLPILOT_PGBOUNCER_MAX_WAIT_S, POOLPILOT_PGBOUNCER_MAX_WAITING_CLIENTS)."""

    max_wait_s: float
    max_waiting_clients: int


class PoolRow(BaseModel):
    database: str
    user: str | None = Field(description="null: no client has connected yet")
    pool_mode: str | None = Field(description="null: the instance's default pool_mode")
    pool_size: int
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    sv_used: int
    max_wait_s: float
    paused: bool
    saturation: Saturation
    reasons: list[str]


class PoolList(BaseModel):
    backend: str = "live"
    instance: str
    thresholds: Thresholds
    pools: list[PoolRow]
    next_cursor: str | None = None


class StatsRow(BaseModel):
    database: str
    total_xact_count: int
    total_query_count: int
    avg_xact_per_s: int = Field(description="PgBouncer's average over its stats_period")
    avg_query_per_s: int
    avg_xact_ms: float
    avg_query_ms: float
    avg_wait_ms: float
    # Measured over window_s from two samples; null without a window.
    xact_per_s: float | None = None
    query_per_s: float | None = None
    recv_bytes_per_s: float | None = None
    sent_bytes_per_s: float | None = None
    waiting_clients_avg: float | None = Field(default=None, description="client wait seconds per second")


class Stats(BaseModel):
    backend: str = "live"
    instance: str
    window_s: float
    databases: list[StatsRow]


class PoolCreated(BaseModel):
    backend: str = "live"
    instance: str
    outcome: Literal["executed"] = "executed"
    target: str
    message: str
    line: str = Field(description="the new [databases] line, password masked")


class PoolChange(GuardedResult):
    instance: str
    line_before: str | None = Field(default=None, description="[databases] line, password masked")
    line_after: str | None = None


class PoolDeletion(GuardedResult):
    instance: str
    deleted_line: str | None = None


class PauseResult(GuardedResult):
    instance: str
    database: str
    waited_s: float | None = None
    clients_waited_for: int | None = Field(default=None, description="clients active when PAUSE was sent")
    servers_waited_for: int | None = None


class ConsoleAction(GuardedResult):
    instance: str
    command: str


class ResumeResult(BaseModel):
    backend: str = "live"
    instance: str
    outcome: Literal["executed", "no_change"]
    target: str
    message: str
    database: str


# Results from console rows: plain functions, tested through the tools.


def _saturation(
    pool: ShowPoolsRow | None, db: ShowDatabasesRow | None, limits: Thresholds
) -> tuple[Saturation, list[str]]:
    """saturated: more waiting clients, or an older wait, than the thresholds allow. at_capacity: every server
    connection of the pool is in use (sv_active >= pool_size) or the database reached max_db_connections."""
    waiting, full = [], []
    if pool is not None:
        if pool.cl_waiting > limits.max_waiting_clients:
            waiting.append(f"{pool.cl_waiting} client(s) waiting for a server (threshold {limits.max_waiting_clients})")
        if pool.max_wait_s > limits.max_wait_s:
            waiting.append(f"oldest waiting client waited {pool.max_wait_s:.1f} s (threshold {limits.max_wait_s:g} s)")
    if db is not None:
        active = pool.sv_active if pool is not None else 0
        if db.pool_size == 0:
            full.append("pool_size is 0: no client can get a server connection")
        elif active >= db.pool_size:
            extra = active - db.pool_size
            reserve = f", plus {extra} from reserve_pool" if extra > 0 else ""
            full.append(f"all {db.pool_size} server connections of the pool are in use{reserve}")
        if db.max_connections and db.current_connections >= db.max_connections:
            full.append(f"the database reached max_db_connections ({db.max_connections})")
    verdict: Saturation = "saturated" if waiting else "at_capacity" if full else "ok"
    notes = ["the database is paused: clients wait until pgbouncer_resume_database"] if db and db.paused else []
    return verdict, waiting + full + notes


def _pool_row(name: str, pool: ShowPoolsRow | None, db: ShowDatabasesRow | None, limits: Thresholds) -> PoolRow:
    verdict, reasons = _saturation(pool, db, limits)
    return PoolRow(
        database=name,
        user=pool.user if pool is not None else None,
        pool_mode=(pool.pool_mode if pool is not None else None) or (db.pool_mode if db is not None else None),
        pool_size=db.pool_size if db is not None else 0,
        cl_active=pool.cl_active if pool is not None else 0,
        cl_waiting=pool.cl_waiting if pool is not None else 0,
        sv_active=pool.sv_active if pool is not None else 0,
        sv_idle=pool.sv_idle if pool is not None else 0,
        sv_used=pool.sv_used if pool is not None else 0,
        max_wait_s=round(pool.max_wait_s, 3) if pool is not None else 0.0,
        paused=db.paused if db is not None else False,
        saturation=verdict,
        reasons=reasons,
    )


def pool_rows(pools: list[ShowPoolsRow], databases: dict[str, ShowDatabasesRow], limits: Thresholds) -> list[PoolRow]:
    """SHOW POOLS joined with SHOW DATABASES; a database no client has used yet gets one row with user null."""
    rows = [_pool_row(p.database, p, databases.get(p.database), limits) for p in pools if p.database != ADMIN_DB]
    used = {p.database for p in pools}
    rows += [_pool_row(n, None, db, limits) for n, db in databases.items() if n not in used and n != ADMIN_DB]
    return sorted(rows, key=lambda r: (r.database, r.user or ""))


_ZERO_STATS = {name: 0 for name in ShowStatsRow.model_fields if name != "database"}


def _rate(now: int, before: int, elapsed_s: float, scale: float = 1.0) -> float | None:
    delta = now - before  # negative: PgBouncer restarted within the window
    return round(delta / scale / elapsed_s, 3) if elapsed_s > 0 and delta >= 0 else None


def stats_rows(now: list[ShowStatsRow], before: list[ShowStatsRow] | None, elapsed_s: float) -> list[StatsRow]:
    """SHOW STATS per database; with an earlier sample, per-second rates over `elapsed_s`."""
    earlier = {row.database: row for row in before or ()}
    window = elapsed_s if before is not None else 0.0
    rows = []
    for row in now:
        if row.database == ADMIN_DB:
            continue
        # Absent from the first sample: no traffic yet when the window opened, so every total was zero.
        prior = earlier.get(row.database) or ShowStatsRow.model_validate({**_ZERO_STATS, "database": row.database})
        rows.append(
            StatsRow(
                database=row.database,
                total_xact_count=row.total_xact_count,
                total_query_count=row.total_query_count,
                avg_xact_per_s=row.avg_xact_count,
                avg_query_per_s=row.avg_query_count,
                avg_xact_ms=row.avg_xact_time / 1000,
                avg_query_ms=row.avg_query_time / 1000,
                avg_wait_ms=row.avg_wait_time / 1000,
                xact_per_s=_rate(row.total_xact_count, prior.total_xact_count, window),
                query_per_s=_rate(row.total_query_count, prior.total_query_count, window),
                recv_bytes_per_s=_rate(row.total_received, prior.total_received, window),
                sent_bytes_per_s=_rate(row.total_sent, prior.total_sent, window),
                # microseconds clients waited per second of window: the average number of waiting clients
                waiting_clients_avg=_rate(row.total_wait_time, prior.total_wait_time, window, 1_000_000),
            )
        )
    return rows
