"""DigitalOcean in the fleet view: one row per pool of every PostgreSQL cluster (budget, and whether the pool's
database and user still exist), and the budget, session-pool and orphan advice rules.

The cluster's pools, databases and users are read together, so a cluster costs one round trip after the list.
The size options (GET /v2/databases/options) are read beside the list, so the budget rule can suggest resizing
to the next size that fits; when they cannot be read, the rule says so and suggests shrinking a pool instead.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import anyio

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.fleet import (
    Budget,
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
from poolpilot.tools.digitalocean import budget as budgets
from poolpilot.tools.digitalocean import clusterapi
from poolpilot.tools.digitalocean.client import DigitalOceanClient
from poolpilot.tools.digitalocean.cluster_models import ApiOptions
from poolpilot.tools.digitalocean.lookups import both, budget_of
from poolpilot.tools.digitalocean.models import PG_ENGINES, ApiCluster, ApiDatabase, ApiPool, ApiUser

__all__ = ["ADAPTER"]

T = TypeVar("T")


async def _fill(target: list[T], call: Callable[[], Awaitable[list[T]]], errors: list[ErrorInfo]) -> None:
    try:
        target.extend(await call())
    except PoolpilotError as exc:
        errors.append(exc.info)


async def _collect(client: ProviderClient, location: str | None, sink: Sink) -> None:
    do = cast(DigitalOceanClient, client)
    listed, options = await both(do.list_clusters(), clusterapi.list_options(do))
    # Pools are read on every PostgreSQL engine (pg, advanced_pg); the others have none.
    clusters = [c for c in listed.get() if c.engine in PG_ENGINES and wanted(location, c.id, c.name)]
    known = options.value if options.error is None else None  # unknown sizes never fail the overview
    async with anyio.create_task_group() as group:
        for cluster in clusters:
            group.start_soon(_do_cluster, do, cluster, sink, _larger_sizes(known, cluster))


def _larger_sizes(options: ApiOptions | None, cluster: ApiCluster) -> list[str] | None:
    """The offered sizes (same engine and node count) with a larger pool budget, smallest budget first."""
    if options is None:
        return None
    engine = options.options.get(cluster.engine)
    offered = (engine.sizes_for(cluster.num_nodes) if engine else None) or []
    now = budgets.budget(cluster.size)
    larger = [(b, s) for s in offered if (b := budgets.budget(s)) is not None and (now is None or b > now)]
    return [s for _, s in sorted(larger, key=lambda pair: pair[0])]


async def _do_cluster(do: DigitalOceanClient, cluster: ApiCluster, sink: Sink, larger: list[str] | None) -> None:
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
                larger_sizes=larger,
            )
        )


def _do_clusters(overview: Overview) -> dict[str, list[OverviewRow]]:
    clusters: dict[str, list[OverviewRow]] = {}
    for row in overview.rows:
        if row.provider == "digitalocean" and row.budget is not None:
            clusters.setdefault(row.location, []).append(row)
    return clusters


def _shrink_call(rows: list[OverviewRow], target_allocated: int) -> tuple[SuggestedCall | None, str]:
    """Shrink the largest pool so the cluster's allocation drops to `target_allocated` (or as close as one call can)."""
    largest = max(rows, key=lambda r: r.size or 0)
    allocated = sum(r.size or 0 for r in rows)
    excess = allocated - target_allocated
    new_size = max(1, (largest.size or 0) - excess)
    if largest.size is None or new_size >= largest.size:
        return None, "No single resize fixes this: remove or shrink several pools."
    call = SuggestedCall(
        tool="digitalocean_update_pool",
        arguments={"cluster_id": largest.location, "pool_name": largest.pool, "size": new_size},
    )
    partial = "" if excess <= largest.size - 1 else " This alone is not enough; shrink another pool next."
    return call, f"Shrink {quote(largest.pool)} from {largest.size} to {new_size}.{partial}"


def _resize_call(row: OverviewRow, allocated: int, t: Thresholds) -> tuple[SuggestedCall | None, str]:
    """Resize to the smallest offered size whose budget holds today's pools below the warning share."""
    if row.larger_sizes is None:
        return None, "The size options could not be read (GET /v2/databases/options), so no resize is suggested."
    for size in row.larger_sizes:
        total = budgets.budget(size)
        if total and allocated / total < t.budget_warn:
            call = SuggestedCall(
                tool="digitalocean_resize_cluster", arguments={"cluster_id": row.location, "size": size}
            )
            return call, f"Raise the budget: resize to {size} (budget {total}; billing follows the size)."
    return None, "No larger size offered for this cluster would hold its pools below the warning share."


def do_budget(overview: Overview, t: Thresholds) -> list[Finding]:
    findings = []
    for cluster_id, rows in _do_clusters(overview).items():
        budget = rows[0].budget
        if budget is None or not budget.max:
            continue
        share = budget.allocated / budget.max
        if budget.allocated > budget.max:
            rule, severity = "do_budget_overcommitted", "critical"
        elif share >= t.budget_warn:
            rule, severity = "do_budget_high", "warning"
        else:
            continue
        # Both aim just below the warning share, so applying the suggestion clears the finding in one call
        # (aiming at `max` would turn an over-commit straight into a `do_budget_high` warning).
        call, how = _shrink_call(rows, math.ceil(t.budget_warn * budget.max) - 1)
        resize, why = _resize_call(rows[0], budget.allocated, t)
        how = f"{why} Or, without a resize: {how[0].lower()}{how[1:]}" if resize else f"{how} {why}"
        findings.append(
            Finding(
                rule=rule,
                severity=severity,  # type: ignore[arg-type]
                provider="digitalocean",
                location=cluster_id,
                pool=call.arguments["pool_name"] if call else None,  # type: ignore[arg-type]
                evidence={"max": budget.max, "allocated": budget.allocated, "share": round(share, 3)},
                explanation=f"Pools on {quote(rows[0].location_name or cluster_id)} allocate {budget.allocated} of "
                f"{budget.max} backend connections ({share:.0%}). {how}",
                suggested_call=resize or call,
            )
        )
    return findings


def do_session_pools(overview: Overview, t: Thresholds) -> list[Finding]:
    findings = []
    for rows in _do_clusters(overview).values():
        for row in rows:
            budget = row.budget
            if row.mode != "session" or budget is None or not budget.max or row.size is None:
                continue
            share = row.size / budget.max
            if share < t.session_share:
                continue
            findings.append(
                Finding(
                    rule="do_session_pool_large",
                    severity="warning",
                    provider="digitalocean",
                    location=row.location,
                    pool=row.pool,
                    evidence={"mode": row.mode, "size": row.size, "max": budget.max, "share": round(share, 3)},
                    explanation=f"Session pool {quote(row.pool)} pins {row.size} connections "
                    f"({share:.0%} of the budget); transaction mode shares them, but breaks clients relying on session "
                    "state (named prepared statements, SET, advisory locks, temp tables).",
                    suggested_call=SuggestedCall(
                        tool="digitalocean_update_pool",
                        arguments={"cluster_id": row.location, "pool_name": row.pool, "mode": "transaction"},
                    ),
                )
            )
    return findings


def do_orphans(overview: Overview, t: Thresholds) -> list[Finding]:
    findings = []
    for row in overview.rows:
        if row.provider != "digitalocean":
            continue
        if row.db_exists is False:
            missing, call = (
                f"database {quote(row.db)}",
                SuggestedCall(
                    tool="digitalocean_delete_pool", arguments={"cluster_id": row.location, "pool_name": row.pool}
                ),
            )
        elif row.user_exists is False:
            missing, call = (
                f"user {quote(row.user)}",
                SuggestedCall(
                    tool="digitalocean_update_pool",
                    arguments={"cluster_id": row.location, "pool_name": row.pool, "inbound_user": True},
                ),
            )
        else:
            continue
        findings.append(
            Finding(
                rule="do_pool_orphaned",
                severity="critical",
                provider="digitalocean",
                location=row.location,
                pool=row.pool,
                evidence={
                    "db": row.db,
                    "user": row.user,
                    "db_exists": row.db_exists,
                    "user_exists": row.user_exists,
                },
                explanation=f"Pool {quote(row.pool)} points at {missing}, which no longer exists: "
                "its clients cannot connect.",
                suggested_call=call,
            )
        )
    return findings


ADAPTER = FleetAdapter(
    collect=_collect,
    rules=(do_budget, do_session_pools, do_orphans),
    resize_steps=(
        "1. Call digitalocean_list_pools(cluster_id={location}) and read the budget: max, allocated, available.\n"
        "2. Pick a size for pool {pool} that keeps allocated <= max (its current size counts as free).\n"
        "3. Call digitalocean_update_pool(cluster_id={location}, pool_name={pool}, size=<new size>)."
    ),
    location="DO cluster id",
)
