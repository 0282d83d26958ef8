"""Concurrent changes of one target (issue 17): no lost update, no budget overrun, and every call that did not
apply says so. Upstream latency is real (30 ms per request), so the calls truly overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import CallToolResult

from poolpilot.server.kernel.sandbox import FaultPlan
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from tests.digitalocean.harness import Session, session
from tests.support import Sandbox

pytestmark = pytest.mark.anyio

UPDATE = "digitalocean_update_pool"
# Each change alone is fine; applied one after the other on the state each was shown, the second would clobber.
CHANGES: list[dict[str, Any]] = [{"size": 12}, {"mode": "session"}, {"size": 14}, {"user": "doadmin"}]


def _slow_sandbox(*, enforce_budget: bool = True) -> Sandbox:
    plan = FaultPlan()
    plan.add("latency:30ms")
    return Sandbox(faults=plan, do_enforce_budget=enforce_budget)


async def _all(s: Session, calls: list[tuple[str, dict[str, Any]]]) -> list[CallToolResult]:
    results: list[CallToolResult | None] = [None] * len(calls)

    async def one(index: int, tool: str, args: dict[str, Any]) -> None:
        results[index] = await s.call(tool, args)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for index, (tool, args) in enumerate(calls):
                tg.start_soon(one, index, tool, args)
    return [r for r in results if r is not None]


def _applied(results: list[CallToolResult]) -> list[int]:
    """Indexes of the calls that report they changed the pool; every other one must say it did not."""
    done = []
    for index, result in enumerate(results):
        data = result.structured_content or {}
        if result.is_error:
            assert data["code"] == "confirmation_invalid", data
            assert "nothing was changed" in data["message"]
        else:
            assert data["executed"] is True, data
            done.append(index)
    return done


def _serial(start: tuple[str, int, str, str], applied: list[dict[str, Any]]) -> tuple[str, int, str, str]:
    mode, size, db, user = start
    for change in applied:
        mode, size = change.get("mode", mode), change.get("size", size)
        user = change.get("user", user)
    return mode, size, db, user


@pytest.mark.parametrize("confirm", ["token", "off"])
async def test_concurrent_confirmed_updates_end_in_one_serial_order(tmp_path: Path, confirm: str) -> None:
    base = {"cluster_id": PG_MAIN_ID, "pool_name": "app-tx"}
    async with session(tmp_path, sandbox=_slow_sandbox(), confirm=confirm) as s:
        start = s.pool(PG_MAIN_ID, "app-tx")
        assert start is not None
        calls = []
        for change in CHANGES:
            args = {**base, **change}
            if confirm == "token":  # every preview is made on the same state, before any change
                args["confirm_token"] = (await s.ok(UPDATE, **args))["confirm_token"]
            calls.append((UPDATE, args))
        results = await _all(s, calls)
        applied = _applied(results)
        assert len(applied) >= 1
        assert s.pool(PG_MAIN_ID, "app-tx") == _serial(start, [CHANGES[i] for i in applied])
        puts = [m for m in s.mutations() if m[0] == "PUT"]
        assert len(puts) == len(applied)  # a refused call sent nothing


async def test_concurrent_creates_never_exceed_the_budget_even_when_the_api_would_not_stop_them(
    tmp_path: Path,
) -> None:
    # pg-small: budget 22, "web" holds 10. Two pools of 7 fit one at a time, not together.
    sandbox = _slow_sandbox(enforce_budget=False)
    async with session(tmp_path, sandbox=sandbox) as s:
        calls = [
            (
                "digitalocean_create_pool",
                {"cluster_id": PG_SMALL_ID, "pool_name": name, "mode": "transaction", "size": 7, "db": "defaultdb"},
            )
            for name in ("left", "right", "third")
        ]
        results = await _all(s, calls)
        created = [r for r in results if not r.is_error]
        refused = [r.structured_content or {} for r in results if r.is_error]
        assert len(created) == 1
        assert [r["code"] for r in refused] == ["budget_exceeded", "budget_exceeded"]
        pools = sandbox.digitalocean.clusters[PG_SMALL_ID].pools
        assert sum(p.size for p in pools.values()) <= 22
        assert [m for m in s.mutations() if m[0] == "POST"] == [("POST", "databases_add_connectionPool")]
