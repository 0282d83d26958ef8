"""A cancelled MCP call stops at once: no more polling, no request finished later, nothing left half-done.

The clock here holds every sleep (a poll interval, injected latency, a slow answer) until the test lets it go,
so the test can cancel at an exact point and then see what the server does afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import CallToolResult

from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from poolpilot.tools.taurusdb.sandbox import INSTANCE_PROD, PROXY_SWITCHABLE
from tests.reliability.harness import Rig, rig, sandbox_with
from tests.support import ManualClock

pytestmark = pytest.mark.anyio

MODES = ("legacy", "auto")  # cancellation by notification (handshake era), and structural (2026-07-28)
SET = "taurusdb_set_proxy_pool_type"
SWITCH = {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE, "pool_type": "SESSION", "timeout_s": 1800}
NEW_POOL = {"cluster_id": PG_SMALL_ID, "pool_name": "jobs", "mode": "session", "size": 5, "db": "defaultdb"}


class HeldClock(ManualClock):
    """A manual clock whose sleeps, after advancing time, hold until `release()`: each sleep "takes a while"."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = anyio.Event()  # set once some sleep is held
        self.cancelled = 0  # held sleeps that ended by cancellation
        self._gate = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        gate = self._gate
        self.holding.set()
        try:
            await gate.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise

    def release(self) -> None:
        self.holding = anyio.Event()
        self._gate.set()
        self._gate = anyio.Event()


async def _cancel_when_held(r: Rig, clock: HeldClock, tool: str, args: dict[str, Any], releases: int) -> None:
    """Call `tool`; let `releases` held sleeps go, and cancel the call while the next one is held."""
    finished: list[CallToolResult] = []

    async def call() -> None:
        finished.append(await r.call(tool, **args))

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        for _ in range(releases):
            await clock.holding.wait()
            clock.release()
        await clock.holding.wait()
        group.cancel_scope.cancel()
    assert finished == []


async def _round_trips(r: Rig) -> None:
    """Calls through the same session: once they are answered, the server has acted on the cancellation."""
    for _ in range(3):
        await r.ok("digitalocean_list_clusters")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", ["between polls", "during a poll"])
async def test_cancelled_wait_for_a_taurusdb_job_stops_polling_at_once(tmp_path: Path, mode: str, where: str) -> None:
    clock = HeldClock()
    # A job that runs far longer than the wait: only the cancellation can end this call.
    sandbox = sandbox_with(clock=clock, job_seconds=(1.0, 1e9))
    async with rig(tmp_path, sandbox, mode=mode) as r:
        token = await r.preview(SET, **SWITCH)
        if where == "during a poll":
            r.sandbox.faults.add("latency:500ms@get_job")
        # Released: the wait before the first poll, then (during a poll) that poll's latency, then the next wait.
        releases = 3 if where == "during a poll" else 2
        await _cancel_when_held(r, clock, SET, {**SWITCH, "confirm_token": token}, releases)
        await _round_trips(r)
        assert clock.cancelled == 1  # the held sleep (poll interval or in-flight request) was cancelled
        polls = r.sandbox.sent("GET", "/jobs")
        assert polls == 2
        for _ in range(3):
            clock.release()  # a poll loop that outlived the cancel would poll again now
            await _round_trips(r)
        assert r.sandbox.sent("GET", "/jobs") == polls and clock.cancelled == 1
        (job,) = r.sandbox.taurusdb.jobs.values()
        assert not job.applied and r.pool_type(PROXY_SWITCHABLE) == "CLOSED"  # TaurusDB runs it on
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [line["job_id"] for line in audit if line["outcome"] == "cancelled_while_waiting"] == [job.id]


@pytest.mark.parametrize("mode", MODES)
async def test_cancelled_read_during_latency_leaves_nothing_behind(tmp_path: Path, mode: str) -> None:
    clock = HeldClock()
    async with rig(
        tmp_path, sandbox_with("latency:3000ms@databases_list_connectionPools", clock=clock), mode=mode
    ) as r:
        before = r.sandbox.digitalocean.clusters[PG_MAIN_ID].pools.copy()
        await _cancel_when_held(r, clock, "digitalocean_list_pools", {"cluster_id": PG_MAIN_ID}, 0)
        await _round_trips(r)
        assert clock.cancelled == 1  # the request in flight was cancelled with the call, not left to finish
        clock.release()
        await _round_trips(r)
        handled = r.sandbox.digitalocean.calls
        assert ("GET", "databases_list_connectionPools") not in handled
        r.sandbox.faults.clear()
        listed = await r.ok("digitalocean_list_pools", cluster_id=PG_MAIN_ID)
        assert listed["total"] == 4 and r.sandbox.digitalocean.clusters[PG_MAIN_ID].pools == before


@pytest.mark.parametrize("mode", MODES)
async def test_cancelled_create_before_it_was_sent_on_creates_nothing(tmp_path: Path, mode: str) -> None:
    clock = HeldClock()
    async with rig(tmp_path, sandbox_with("latency:3000ms@databases_add_connectionPool", clock=clock), mode=mode) as r:
        await _cancel_when_held(r, clock, "digitalocean_create_pool", NEW_POOL, 0)
        await _round_trips(r)
        clock.release()
        await _round_trips(r)
        assert r.pool(PG_SMALL_ID, "jobs") is None
        r.sandbox.faults.clear()
        created = await r.ok("digitalocean_create_pool", **NEW_POOL)
        assert created["note"] is None and r.pool(PG_SMALL_ID, "jobs") == ("session", 5, "defaultdb", "")
        assert r.sandbox.digitalocean.calls.count(("POST", "databases_add_connectionPool")) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_cancelled_create_whose_answer_was_lost_is_recognised_on_the_next_call(tmp_path: Path, mode: str) -> None:
    # The sandbox created the pool; the call was cancelled while the answer was on its way back.
    clock = HeldClock()
    sandbox = sandbox_with(clock=clock)
    sandbox.slow_answers.add(("POST", f"{PG_SMALL_ID}/pools"))
    async with rig(tmp_path, sandbox, mode=mode) as r:
        await _cancel_when_held(r, clock, "digitalocean_create_pool", NEW_POOL, 0)
        await _round_trips(r)
        assert r.pool(PG_SMALL_ID, "jobs") == ("session", 5, "defaultdb", "")
        again = await r.ok("digitalocean_create_pool", **NEW_POOL)  # the same create, retried by the model
        assert again["note"] == "an earlier create reported a failure, but it did create this pool"
        assert r.sandbox.sent("POST", f"{PG_SMALL_ID}/pools") == 1
