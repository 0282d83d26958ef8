"""Right-sizing rules: plain functions over the overview rows. Advice never acts; each finding names the exact
tool call that would apply its fix, which the caller then makes through the normal guard.

Rules (thresholds in `Thresholds`, set by `POOLPILOT_ADVISE_*` and `POOLPILOT_PGBOUNCER_MAX_*`):
- `do_budget_overcommitted` (critical): a cluster's pools allocate more than its budget, and
  `do_budget_high` (warning): allocation >= `budget_warn` (90 %) of it → shrink the largest pool below that share.
- `do_session_pool_large` (warning): a `session` pool holds >= `session_share` (25 %) of the budget → transaction.
- `do_pool_orphaned` (critical): the pool's database (→ delete the pool) or user (→ inbound user) no longer exists.
- `pgbouncer_waiting` (warning): clients waiting > `waiting_clients` or max wait > `max_wait_s` → grow the pool
  (at most `growth` ×, capped by the database's `max_db_connections`).
- `taurusdb_pool_closed` (info): a proxy's pool is CLOSED and switching to SESSION is allowed → SESSION.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from poolpilot.tools.pools.models import Finding, Overview, OverviewRow, SuggestedCall

__all__ = ["RULES", "Thresholds", "advise"]


@dataclass(frozen=True)
class Thresholds:
    budget_warn: float = 0.9
    session_share: float = 0.25
    waiting_clients: int = 0
    max_wait_s: float = 1.0
    # How far a PgBouncer pool may grow in one suggestion (×), before the server limit caps it.
    growth: float = 2.0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


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
    return call, f"Shrink {largest.pool} from {largest.size} to {new_size}.{partial}"


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
        findings.append(
            Finding(
                rule=rule,
                severity=severity,  # type: ignore[arg-type]
                provider="digitalocean",
                location=cluster_id,
                pool=call.arguments["pool_name"] if call else None,  # type: ignore[arg-type]
                evidence={"max": budget.max, "allocated": budget.allocated, "share": round(share, 3)},
                explanation=f"Pools on {rows[0].location_name or cluster_id} allocate {budget.allocated} of "
                f"{budget.max} backend connections ({share:.0%}). {how}",
                suggested_call=call,
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
                    explanation=f"Session pool {row.pool} pins {row.size} connections ({share:.0%} of the budget); "
                    "transaction mode shares them, but breaks clients relying on session state (named prepared "
                    "statements, SET, advisory locks, temp tables).",
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
                f"database {row.db}",
                SuggestedCall(
                    tool="digitalocean_delete_pool", arguments={"cluster_id": row.location, "pool_name": row.pool}
                ),
            )
        elif row.user_exists is False:
            missing, call = (
                f"user {row.user}",
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
                explanation=f"Pool {row.pool} points at {missing}, which no longer exists: its clients cannot connect.",
                suggested_call=call,
            )
        )
    return findings


def pgbouncer_waiting(overview: Overview, t: Thresholds) -> list[Finding]:
    findings = []
    for row in overview.rows:
        if row.provider != "pgbouncer":
            continue
        waiting, wait = row.clients_waiting or 0, row.max_wait_s or 0.0
        if waiting <= t.waiting_clients and wait <= t.max_wait_s:
            continue
        call = None
        if row.size:
            wanted = min(math.ceil(row.size * t.growth), row.size + max(waiting, 1))
            if row.server_limit:
                wanted = min(wanted, row.server_limit)
            if wanted > row.size:
                call = SuggestedCall(
                    tool="pgbouncer_update_pool",
                    arguments={"instance": row.location, "database": row.pool, "pool_size": wanted},
                )
        findings.append(
            Finding(
                rule="pgbouncer_waiting",
                severity="warning",
                provider="pgbouncer",
                location=row.location,
                pool=row.pool,
                evidence={"clients_waiting": waiting, "max_wait_s": wait, "pool_size": row.size},
                explanation=f"{waiting} clients wait on {row.pool_label or row.pool} (longest {wait:.1f}s)"
                + ("; grow the pool." if call else "; the pool is at the server limit: look at the queries instead."),
                suggested_call=call,
            )
        )
    return findings


def taurusdb_closed(overview: Overview, t: Thresholds) -> list[Finding]:
    return [
        Finding(
            rule="taurusdb_pool_closed",
            severity="info",
            provider="taurusdb",
            location=row.location,
            pool=row.pool,
            evidence={"connection_pool_type": row.mode, "switchable": row.switchable},
            explanation=f"Proxy {row.pool_label or row.pool} has no connection pool; SESSION pooling reuses backend "
            "connections for short-lived clients (sessions using PREPARE, temp tables or locks stay pinned).",
            suggested_call=SuggestedCall(
                tool="taurusdb_set_proxy_pool_type",
                arguments={"instance_id": row.location, "proxy_id": row.pool, "pool_type": "SESSION"},
            ),
        )
        for row in overview.rows
        if row.provider == "taurusdb" and row.mode == "CLOSED" and row.switchable
    ]


RULES: tuple[Callable[[Overview, Thresholds], list[Finding]], ...] = (
    do_budget,
    do_session_pools,
    do_orphans,
    pgbouncer_waiting,
    taurusdb_closed,
)


def advise(
    overview: Overview, t: Thresholds, rules: Iterable[Callable[[Overview, Thresholds], list[Finding]]] = RULES
) -> list[Finding]:
    order = {"critical": 0, "warning": 1, "info": 2}
    findings = [f for rule in rules for f in rule(overview, t)]
    return sorted(findings, key=lambda f: (order[f.severity], f.provider, f.location, f.pool or ""))
