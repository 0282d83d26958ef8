"""TaurusDB in the fleet view: one row per database proxy of every instance (its pool type, whether it may switch),
and the advice to switch a CLOSED proxy to SESSION pooling where the API allows it, or to check and upgrade the proxy
kernel where it blocks SESSION.

The proxy list's `switch_connection_pool_type_enabled` can be true for a kernel too old for SESSION (the switch then
fails with DBS.05000001), so a CLOSED proxy that claims it can switch has its version read too (ShowProxyVersion),
best effort: when that read fails the row keeps what the list said.

That read depends on the list, a third round trip after instances and proxies. So each client remembers which proxies
of an instance needed it last time, and the next overview reads their versions again *beside* the proxy list rather
than after it: every version is still read during the overview that shows it (never cached), only the choice of
which to read early is remembered. A proxy the list does not confirm (gone, or no longer CLOSED and switchable) has
its early read ignored; one it newly names is read after the list, as before."""

from __future__ import annotations

import logging
import weakref
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
from poolpilot.tools.taurusdb.admin_client import get_proxy_version
from poolpilot.tools.taurusdb.client import TaurusDBClient
from poolpilot.tools.taurusdb.models import ApiInstance, ProxyRow
from poolpilot.tools.taurusdb.plans import proxy_row

__all__ = ["ADAPTER", "instances"]

log = logging.getLogger("poolpilot.taurusdb")
_INSTANCE_PAGE = 100
_MAX_INSTANCE_PAGES = 20
SESSION_MIN_VERSION = (2, 22, 7, 0)  # the proxy kernel SESSION pooling needs (UpdateProxyConnectionPoolType)
# Per client: instance id -> the proxies whose version the last overview read (read beside the list next time).
_CHECKED: weakref.WeakKeyDictionary[TaurusDBClient, dict[str, frozenset[str]]] = weakref.WeakKeyDictionary()


async def instances(tdb: TaurusDBClient) -> list[ApiInstance]:
    """Every instance, page by page (at most `_MAX_INSTANCE_PAGES` pages)."""
    found: list[ApiInstance] = []
    for page in range(_MAX_INSTANCE_PAGES):
        batch, total = await tdb.list_instances(_INSTANCE_PAGE, page * _INSTANCE_PAGE)
        found += batch
        if not batch or len(found) >= total:
            break
    return found


async def _collect(client: ProviderClient, location: str | None, sink: Sink) -> None:
    tdb = cast(TaurusDBClient, client)
    found = await instances(tdb)  # outside the task group: its failure must arrive as itself, not in a group
    remembered = _CHECKED.get(tdb, {})
    for gone in remembered.keys() - {instance.id for instance in found}:
        del remembered[gone]
    async with anyio.create_task_group() as group:
        for instance in found:
            if wanted(location, instance.id, instance.name):
                group.start_soon(_tdb_instance, tdb, instance, sink)


async def _tdb_instance(tdb: TaurusDBClient, instance: ApiInstance, sink: Sink) -> None:
    remembered = _CHECKED.setdefault(tdb, {})
    early = remembered.get(instance.id, frozenset())
    too_old: dict[str, bool] = {}

    async def check(proxy_id: str) -> None:
        too_old[proxy_id] = await _kernel_too_old(tdb, instance.id, proxy_id)

    failure: PoolpilotError | None = None
    wanted_ids: frozenset[str] = frozenset()
    rows: list[ProxyRow] = []
    # Rows keep the list's order; the version reads run side by side (the remembered ones beside the list itself).
    async with anyio.create_task_group() as group:
        for proxy_id in sorted(early):
            group.start_soon(check, proxy_id)
        try:
            entries = await tdb.list_proxies(instance.id)
        except PoolpilotError as exc:
            failure = exc
            group.cancel_scope.cancel()
        else:
            rows = [proxy_row(entry) for entry in entries]
            wanted_ids = frozenset(row.proxy_id for row in rows if row.pool_type == "CLOSED" and row.switchable)
            for proxy_id in sorted(wanted_ids - early):
                group.start_soon(check, proxy_id)
    if failure is not None:
        sink.fail("taurusdb", instance.id, failure.info)
        return
    remembered[instance.id] = wanted_ids
    for row in rows:
        sink.rows.append(
            OverviewRow(
                provider="taurusdb",
                location=instance.id,
                location_name=instance.name or None,
                pool=row.proxy_id,
                pool_label=row.name or None,
                mode=row.pool_type or None,
                backend=tdb.backend,
                switchable=row.switchable and not (row.proxy_id in wanted_ids and too_old.get(row.proxy_id, False)),
            )
        )


async def _kernel_too_old(tdb: TaurusDBClient, instance_id: str, proxy_id: str) -> bool:
    try:
        current = (await get_proxy_version(tdb, instance_id, proxy_id)).current_version
    except PoolpilotError:
        log.debug("reading the version of proxy %s failed", proxy_id, exc_info=True)
        return False
    parts = current.split(".")
    if not current or not all(p.isascii() and p.isdigit() for p in parts):
        return False
    return tuple(int(p) for p in parts) < SESSION_MIN_VERSION


def taurusdb_closed(overview: Overview, t: Thresholds) -> list[Finding]:
    return [
        Finding(
            rule="taurusdb_pool_closed",
            severity="info",
            provider="taurusdb",
            location=row.location,
            pool=row.pool,
            evidence={"connection_pool_type": row.mode, "switchable": row.switchable},
            explanation=f"Proxy {quote(row.pool_label or row.pool)} has no connection pool; SESSION pooling reuses "
            "backend connections for short-lived clients (sessions using PREPARE, temp tables or locks stay pinned).",
            suggested_call=SuggestedCall(
                tool="taurusdb_set_proxy_pool_type",
                arguments={"instance_id": row.location, "proxy_id": row.pool, "pool_type": "SESSION"},
            ),
        )
        for row in overview.rows
        if row.provider == "taurusdb" and row.mode == "CLOSED" and row.switchable
    ]


def taurusdb_session_blocked(overview: Overview, t: Thresholds) -> list[Finding]:
    return [
        Finding(
            rule="taurusdb_session_blocked",
            severity="info",
            provider="taurusdb",
            location=row.location,
            pool=row.pool,
            evidence={"connection_pool_type": row.mode, "switchable": row.switchable},
            explanation=f"Proxy {quote(row.pool_label or row.pool)} has no connection pool and cannot switch to "
            "SESSION now; mostly its kernel is too old (SESSION needs 2.22.07.000 or later, else DBS.05000001). "
            "Check it with taurusdb_get_proxy_version; when can_upgrade is true, taurusdb_upgrade_proxy_version "
            "(toolset taurusdb_proxy_admin; restarts the proxy) lifts the block.",
            suggested_call=SuggestedCall(
                tool="taurusdb_get_proxy_version", arguments={"instance_id": row.location, "proxy_id": row.pool}
            ),
        )
        for row in overview.rows
        if row.provider == "taurusdb" and row.mode == "CLOSED" and row.switchable is False
    ]


ADAPTER = FleetAdapter(
    collect=_collect,
    rules=(taurusdb_closed, taurusdb_session_blocked),
    resize_steps=(
        "TaurusDB proxies have no pool size; only the pool type (CLOSED or SESSION) changes.\n"
        "1. Call taurusdb_list_proxies(instance_id={location}) and check that proxy {pool} is switchable.\n"
        "2. Call taurusdb_set_proxy_pool_type(instance_id={location}, proxy_id={pool}, pool_type=<type>)."
    ),
    location="TaurusDB instance id",
)
