"""Each advice rule fires on the data it is about and stays silent on healthy data."""

from __future__ import annotations

from typing import Any

from poolpilot.tools.digitalocean.fleet import ADAPTER as DO
from poolpilot.tools.digitalocean.fleet import do_budget, do_orphans, do_session_pools
from poolpilot.tools.pgbouncer.fleet import ADAPTER as PGB
from poolpilot.tools.pgbouncer.fleet import pgbouncer_waiting
from poolpilot.tools.pools.models import Budget, Overview, OverviewRow
from poolpilot.tools.pools.rules import Thresholds, advise
from poolpilot.tools.taurusdb.fleet import ADAPTER as TDB
from poolpilot.tools.taurusdb.fleet import taurusdb_closed

T = Thresholds()
C1 = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"


def _do(pool: str, size: int, budget: Budget, **kw: Any) -> OverviewRow:
    return OverviewRow(
        provider="digitalocean", location=C1, pool=pool, size=size, backend="sandbox", budget=budget, **kw
    )


def _overview(*rows: OverviewRow) -> Overview:
    return Overview(rows=list(rows))


def test_do_budget_is_silent_below_the_warning_share() -> None:
    b = Budget(max=22, allocated=15, available=7)
    assert do_budget(_overview(_do("web", 10, b, mode="transaction"), _do("api", 5, b)), T) == []


def test_do_budget_high_suggests_a_shrink_that_clears_it() -> None:
    b = Budget(max=22, allocated=21, available=1)
    findings = do_budget(_overview(_do("web", 15, b), _do("api", 6, b)), T)
    assert [f.rule for f in findings] == ["do_budget_high"]
    call = findings[0].suggested_call
    assert call is not None and call.tool == "digitalocean_update_pool"
    assert call.arguments["pool_name"] == "web"
    new_total = int(call.arguments["size"]) + 6
    assert new_total / 22 < T.budget_warn
    fixed = Budget(max=22, allocated=new_total, available=22 - new_total)
    assert do_budget(_overview(_do("web", new_total - 6, fixed), _do("api", 6, fixed)), T) == []


def test_do_budget_overcommitted_is_critical() -> None:
    b = Budget(max=22, allocated=30, available=-8)
    (finding,) = do_budget(_overview(_do("web", 20, b), _do("api", 10, b)), T)
    assert (finding.rule, finding.severity) == ("do_budget_overcommitted", "critical")
    assert finding.evidence["allocated"] == 30


def test_session_pool_with_a_large_share_suggests_transaction() -> None:
    b = Budget(max=97, allocated=40, available=57)
    (finding,) = do_session_pools(_overview(_do("app-session", 30, b, mode="session")), T)
    assert finding.suggested_call is not None
    assert finding.suggested_call.arguments["mode"] == "transaction"
    assert "prepared" in finding.explanation
    assert do_session_pools(_overview(_do("small", 5, b, mode="session")), T) == []
    assert do_session_pools(_overview(_do("tx", 30, b, mode="transaction")), T) == []


def test_orphaned_pool_findings_name_what_is_missing() -> None:
    b = Budget(max=97, allocated=10, available=87)
    gone_db = _do("p1", 5, b, db="old", db_exists=False, user="app", user_exists=True)
    gone_user = _do("p2", 5, b, db="app", db_exists=True, user="bob", user_exists=False)
    healthy = _do("p3", 5, b, db="app", db_exists=True, user="app", user_exists=True)
    findings = do_orphans(_overview(gone_db, gone_user, healthy), T)
    assert [(f.pool, f.suggested_call.tool if f.suggested_call else None) for f in findings] == [
        ("p1", "digitalocean_delete_pool"),
        ("p2", "digitalocean_update_pool"),
    ]


def _pgb(**kw: Any) -> OverviewRow:
    return OverviewRow(provider="pgbouncer", location="local", pool="appdb", backend="live", **kw)


def test_pgbouncer_waiting_suggests_growth_within_the_server_limit() -> None:
    (finding,) = pgbouncer_waiting(_overview(_pgb(size=5, clients_waiting=7, max_wait_s=2.5, server_limit=8)), T)
    assert finding.suggested_call is not None
    assert finding.suggested_call.arguments["pool_size"] == 8
    assert pgbouncer_waiting(_overview(_pgb(size=5, clients_waiting=0, max_wait_s=0.0)), T) == []


def test_pgbouncer_at_its_server_limit_gets_no_resize_but_the_list_of_who_waits() -> None:
    (finding,) = pgbouncer_waiting(_overview(_pgb(size=8, clients_waiting=3, max_wait_s=0.0, server_limit=8)), T)
    assert finding.suggested_call is not None and finding.suggested_call.tool == "pgbouncer_list_clients"
    assert finding.suggested_call.arguments == {"instance": "local", "database": "appdb", "waiting_only": True}
    assert "server limit" in finding.explanation


def test_taurusdb_closed_switchable_proxy_is_suggested_session() -> None:
    row = OverviewRow(provider="taurusdb", location="i", pool="p", backend="sandbox", mode="CLOSED", switchable=True)
    blocked = row.model_copy(update={"switchable": False})
    session = row.model_copy(update={"mode": "SESSION"})
    (finding,) = taurusdb_closed(_overview(row, blocked, session), T)
    assert finding.suggested_call is not None and finding.suggested_call.arguments["pool_type"] == "SESSION"


def test_advise_orders_by_severity() -> None:
    b = Budget(max=22, allocated=30, available=-8)
    tau = OverviewRow(provider="taurusdb", location="i", pool="p", backend="sandbox", mode="CLOSED", switchable=True)
    findings = advise(_overview(tau, _do("web", 30, b)), T, [*DO.rules, *PGB.rules, *TDB.rules])
    assert [f.severity for f in findings] == ["critical", "info"]
