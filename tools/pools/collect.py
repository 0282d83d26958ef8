"""The fleet view's fan-out: every enabled provider at once, every location of a provider in parallel.

One task per provider, each bounded by `Settings.overview_timeout_s`; inside it one task per location (DO
cluster, TaurusDB instance, PgBouncer instance), and on DigitalOcean the cluster's pools, databases and users
are read together. With latency L per request the whole view costs about 2·L (list, then per-location reads),
not one L per request.

Failures stay local (issue 12: "never one failure for all"): a provider that fails or times out becomes one
`ProviderFailure` carrying the error model, a location that fails becomes one naming that location, and every
other row is still returned. Programming errors are not caught here: they go up and become `internal_error`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.state import AppState
from poolpilot.tools.digitalocean.client import DigitalOceanClient
from poolpilot.tools.digitalocean.lookups import budget_of
from poolpilot.tools.digitalocean.models import ApiCluster, ApiDatabase, ApiPool, ApiUser
from poolpilot.tools.pgbouncer.client import PgBouncerClient
from poolpilot.tools.pgbouncer.models import pool_rows
from poolpilot.tools.pools.models import Budget, Overview, OverviewRow, Provider, ProviderFailure
from poolpilot.tools.taurusdb.client import TaurusDBClient
from poolpilot.tools.taurusdb.models import ApiInstance
from poolpilot.tools.taurusdb.tools import proxy_row

__all__ = ["PROVIDERS", "collect", "enabled_providers"]

PROVIDERS: tuple[Provider, ...] = ("digitalocean", "taurusdb", "pgbouncer")
_INSTANCE_PAGE = 100
_MAX_INSTANCE_PAGES = 20

T = TypeVar("T")


@dataclass
class _Sink:
    rows: list[OverviewRow] = field(default_factory=list)
    errors: list[ProviderFailure] = field(default_factory=list)

    def fail(self, provider: Provider, location: str | None, info: ErrorInfo) -> None:
        self.errors.append(ProviderFailure(provider=provider, location=location, error=info))


def enabled_providers(state: AppState) -> list[Provider]:
    return [p for p in PROVIDERS if p in state.clients]


def _wanted(location: str | None, *names: str | None) -> bool:
    return location is None or location in names


async def _fill(target: list[T], call: Callable[[], Awaitable[list[T]]], errors: list[ErrorInfo]) -> None:
    try:
        target.extend(await call())
    except PoolpilotError as exc:
        errors.append(exc.info)


# -- DigitalOcean -------------------------------------------------------------------------------------


async def _digitalocean(do: DigitalOceanClient, location: str | None, sink: _Sink) -> None:
    # Only engine pg takes pools (advanced_pg and the others answer "not supported").
    clusters = [c for c in await do.list_clusters() if c.engine == "pg" and _wanted(location, c.id, c.name)]
    async with anyio.create_task_group() as group:
        for cluster in clusters:
            group.start_soon(_do_cluster, do, cluster, sink)


async def _do_cluster(do: DigitalOceanClient, cluster: ApiCluster, sink: _Sink) -> None:
    pools: list[ApiPool] = []
    dbs: list[ApiDatabase] = []
    users: list[ApiUser] = []
    pool_errors: list[ErrorInfo] = []
    db_errors: list[ErrorInfo] = []
    user_errors: list[ErrorInfo] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_fill, pools, lambda: do.list_pools(cluster.id), pool_errors)
        group.start_soon(_fill, dbs, lambda: do.list_databases(cluster.id), db_errors)
        group.start_soon(_fill, users, lambda: do.list_users(cluster.id), user_errors)
    for info in (pool_errors + db_errors + user_errors)[:1]:
        sink.fail("digitalocean", cluster.id, info)
    if pool_errors:
        return
    budget = Budget.model_validate(budget_of(cluster, [p.size for p in pools]).model_dump())
    # Unknown (null) rather than "missing" when the list itself could not be read.
    db_names = None if db_errors else {d.name for d in dbs}
    user_names = None if user_errors else {u.name for u in users}
    for pool in pools:
        user = pool.user or None  # "" or absent: the inbound-user pool, which has no user to lose
        sink.rows.append(
            OverviewRow(
                provider="digitalocean",
                location=cluster.id,
                location_name=cluster.name,
                pool=pool.name,
                mode=pool.mode,
                size=pool.size,
                backend=do.backend,
                budget=budget,
                db=pool.db,
                user=user,
                db_exists=None if db_names is None else pool.db in db_names,
                user_exists=None if user_names is None or user is None else user in user_names,
            )
        )


# -- TaurusDB -----------------------------------------------------------------------------------------


async def _taurusdb(tdb: TaurusDBClient, location: str | None, sink: _Sink) -> None:
    instances: list[ApiInstance] = []
    for page in range(_MAX_INSTANCE_PAGES):
        batch, total = await tdb.list_instances(_INSTANCE_PAGE, page * _INSTANCE_PAGE)
        instances += batch
        if not batch or len(instances) >= total:
            break
    async with anyio.create_task_group() as group:
        for instance in instances:
            if _wanted(location, instance.id, instance.name):
                group.start_soon(_tdb_instance, tdb, instance, sink)


async def _tdb_instance(tdb: TaurusDBClient, instance: ApiInstance, sink: _Sink) -> None:
    try:
        entries = await tdb.list_proxies(instance.id)
    except PoolpilotError as exc:
        sink.fail("taurusdb", instance.id, exc.info)
        return
    for entry in entries:
        row = proxy_row(entry)
        sink.rows.append(
            OverviewRow(
                provider="taurusdb",
                location=instance.id,
                location_name=instance.name or None,
                pool=row.proxy_id,
                pool_label=row.name or None,
                mode=row.pool_type or None,
                backend=tdb.backend,
                switchable=row.switchable,
            )
        )


# -- PgBouncer ----------------------------------------------------------------------------------------


async def _pgbouncer(pgb: PgBouncerClient, location: str | None, sink: _Sink) -> None:
    async with anyio.create_task_group() as group:
        for name in sorted(pgb.instances):
            if _wanted(location, name):
                group.start_soon(_pgb_instance, pgb, name, sink)


async def _pgb_instance(pgb: PgBouncerClient, name: str, sink: _Sink) -> None:
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


# -- fan-out ------------------------------------------------------------------------------------------


def _runner(state: AppState, provider: Provider, location: str | None, sink: _Sink) -> Callable[[], Awaitable[None]]:
    if provider == "digitalocean":
        do = state.client(provider, DigitalOceanClient)
        return lambda: _digitalocean(do, location, sink)
    if provider == "taurusdb":
        tdb = state.client(provider, TaurusDBClient)
        return lambda: _taurusdb(tdb, location, sink)
    pgb = state.client(provider, PgBouncerClient)
    return lambda: _pgbouncer(pgb, location, sink)


async def _bounded(provider: Provider, run: Callable[[], Awaitable[None]], sink: _Sink, timeout_s: float) -> None:
    with anyio.move_on_after(timeout_s) as scope:
        try:
            await run()
        except PoolpilotError as exc:
            sink.fail(provider, None, exc.info)
    if scope.cancelled_caught:
        partial = any(r.provider == provider for r in sink.rows)
        sink.fail(
            provider,
            None,
            ErrorInfo(
                code="timeout",
                message=f"{provider} did not answer within {timeout_s:g} s"
                + ("; only the locations that answered in time are listed" if partial else ""),
                hint=f"Retry later, or narrow the view with provider={provider!r} and a location.",
                provider=provider,
            ),
        )


async def collect(state: AppState, *, provider: Provider | None = None, location: str | None = None) -> Overview:
    """Every pool of the enabled providers (or of `provider`), optionally only at `location` (id or name)."""
    chosen = [p for p in enabled_providers(state) if provider in (None, p)]
    sink = _Sink()
    timeout_s = state.settings.overview_timeout_s
    async with anyio.create_task_group() as group:
        for name in chosen:
            group.start_soon(_bounded, name, _runner(state, name, location, sink), sink, timeout_s)
    backends = {state.clients[p].backend for p in chosen}
    return Overview(
        backend=backends.pop() if len(backends) == 1 else "mixed",
        rows=sorted(sink.rows, key=lambda r: (r.provider, r.location_name or r.location, r.pool, r.pool_label or "")),
        errors=sorted(sink.errors, key=lambda e: (e.provider, e.location or "")),
    )
