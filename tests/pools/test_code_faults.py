"""Pools as code under injected faults (the sandbox FaultPlan): an apply stops honestly at the first failure,
reports done / failed / not started, and a second plan + apply converges with nothing created twice. And the
property: for random desired states within budget, plan → apply → plan again shows no changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from poolpilot.server.kernel.sandbox import FaultPlan
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID
from poolpilot.tools.taurusdb.sandbox_seed import INSTANCE_PROD, PROXY_SWITCHABLE
from tests.pools.test_code import _apply, _client, _edited, _ok
from tests.support import ManualClock, Sandbox

pytestmark = pytest.mark.anyio

CREATE = "databases_add_connectionPool"


def _sandbox(clock: ManualClock, fault: str | None = None) -> Sandbox:
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, faults=FaultPlan(), job_seconds=(1.0, 2.0))
    if fault is not None:
        sandbox.faults.add(fault)
    return sandbox


def _posts(sandbox: Sandbox) -> int:
    return sum(1 for method, op in sandbox.digitalocean.calls if (method, op) == ("POST", CREATE))


async def _pools_named(client: Client, *names: str) -> list[str]:
    rows = (await _ok(client, "pools_overview", provider="digitalocean"))["rows"]
    return sorted(r["pool"] for r in rows if r["pool"] in names)


async def test_pools_apply_reads_back_a_create_whose_answer_was_lost(audit_path: Path) -> None:
    clock = ManualClock()
    sandbox = _sandbox(clock, f"applied-500@{CREATE}#1")
    async with _client(audit_path, sandbox=sandbox, clock=clock) as client:
        doc = _edited(await _ok(client, "pools_export"))
        plan = await _ok(client, "pools_plan", document=doc)
        applied = await _apply(client, doc, plan["plan_id"])
        again = await _ok(client, "pools_plan", document=doc)
        names = await _pools_named(client, "web2", "batch")
    assert [r["status"] for r in applied["results"]] == ["done"] * 4
    assert "reading back" in applied["results"][2]["note"]
    assert _posts(sandbox) == 2 and names == ["batch", "web2"]
    assert again["changes"] is False


@pytest.mark.parametrize("fault", [f"timeout@{CREATE}", f"drop@{CREATE}", f"500@{CREATE}"])
async def test_pools_apply_stops_at_the_first_failure_and_a_second_apply_converges(
    audit_path: Path, fault: str
) -> None:
    clock = ManualClock()
    sandbox = _sandbox(clock, fault)
    async with _client(audit_path, sandbox=sandbox, clock=clock) as client:
        doc = _edited(await _ok(client, "pools_export"))
        plan = await _ok(client, "pools_plan", document=doc)
        first = await _apply(client, doc, plan["plan_id"])
        sandbox.faults.clear()
        rest = await _ok(client, "pools_plan", document=doc)
        second = await _apply(client, doc, rest["plan_id"])
        final = await _ok(client, "pools_plan", document=doc)
        names = await _pools_named(client, "web2", "batch")
    assert [r["status"] for r in first["results"]] == ["done", "done", "failed", "not_started"]
    assert (first["done"], first["failed"], first["not_started"]) == (2, 1, 1)
    assert first["executed"] is True and "Stopped at step 3 of 4" in first["message"]
    assert first["results"][2]["error"]["code"] in ("timeout", "connection_error", "upstream_error")
    assert [(s["action"], s["pool"]) for s in rest["steps"]] == [("create", "web2"), ("create", "batch")]
    assert [r["status"] for r in second["results"]] == ["done", "done"]
    assert final["changes"] is False and names == ["batch", "web2"]


async def test_pools_apply_never_resends_a_switch_whose_answer_was_lost(audit_path: Path) -> None:
    clock = ManualClock()
    sandbox = _sandbox(clock, "applied-500@set_pool_type#1")
    async with _client(audit_path, sandbox=sandbox, clock=clock) as client:
        doc = _edited(await _ok(client, "pools_export"))
        plan = await _ok(client, "pools_plan", document=doc)
        first = await _apply(client, doc, plan["plan_id"])
        clock.advance(60)  # the job that did start finishes on TaurusDB
        rest = await _ok(client, "pools_plan", document=doc)
        second = await _apply(client, doc, rest["plan_id"])
        final = await _ok(client, "pools_plan", document=doc)
    assert [r["status"] for r in first["results"]] == ["done", "failed", "not_started", "not_started"]
    assert "not resent" in first["results"][1]["error"]["message"]
    assert [s["action"] for s in rest["steps"]] == ["create", "create"]  # the switch took effect: no second job
    assert second["failed"] == 0 and final["changes"] is False
    assert len(sandbox.taurusdb.jobs) == 1


# -- property ---------------------------------------------------------------------------------------------------

_EXISTING = ("analytics_inbound", "app-session", "app-tx", "reporting")
_MAIN_MAX = 97


@st.composite
def _desired(draw: st.DrawFn) -> dict[str, Any]:
    """Sizes for pg-main's pools (kept, resized, or pruned), new pools, and a pool type, all within the budget."""
    pools: dict[str, dict[str, Any]] = {}
    for name in _EXISTING:
        if draw(st.booleans()):
            spec: dict[str, Any] = {"size": draw(st.integers(1, 20))}
            if draw(st.booleans()):
                spec["mode"] = draw(st.sampled_from(["session", "transaction", "statement"]))
            pools[name] = spec
    for i in range(draw(st.integers(0, 3))):
        pools[f"new-{i}"] = {"mode": "transaction", "size": draw(st.integers(1, 15)), "db": "app", "user": "app"}
    total = sum(p["size"] for p in pools.values())
    if total > _MAIN_MAX:
        pools = {n: {**p, "size": 1} for n, p in pools.items()}
    entries = [{"provider": "digitalocean", "location": PG_MAIN_ID, "pool": n, "spec": s} for n, s in pools.items()]
    pool_type = draw(st.sampled_from(["CLOSED", "SESSION"]))
    entries.append(
        {"provider": "taurusdb", "location": INSTANCE_PROD, "pool": PROXY_SWITCHABLE, "spec": {"pool_type": pool_type}}
    )
    return {"scopes": [{"provider": "digitalocean", "location": PG_MAIN_ID, "prune": True}], "pools": entries}


async def _round(audit: Path, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    async with _client(audit, confirm="off") as client:
        plan = await _ok(client, "pools_plan", document=doc)
        applied = await _ok(client, "pools_apply", document=doc, plan_id=plan["plan_id"])
        again = await _ok(client, "pools_plan", document=doc)
    return plan, applied, again


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_desired())
def test_pools_plan_apply_plan_again_shows_no_changes(tmp_path: Path, doc: dict[str, Any]) -> None:
    plan, applied, again = anyio.run(_round, tmp_path / "audit.jsonl", doc)
    budget = next(b for b in plan["budgets"] if b["location"] == PG_MAIN_ID)
    assert budget["peak"] <= _MAIN_MAX and budget["after"] <= _MAIN_MAX
    assert applied["failed"] == 0, json.dumps(applied)[:400]
    assert again["changes"] is False and again["steps"] == []
