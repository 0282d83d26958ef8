"""A client cancelling `taurusdb_set_proxy_pool_type` while it waits stops the polling at once."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp_types import CallToolResult

from poolpilot.tools.taurusdb.sandbox import PROXY_SWITCHABLE
from tests.support import ManualClock, Sandbox
from tests.taurusdb.harness import MODES, SET, session, switch_args

pytestmark = pytest.mark.anyio


class PacedClock(ManualClock):
    """A ManualClock whose sleeps advance time and then wait for the test's `tick()`, like a real sleep that
    takes a while: the poll loop cannot run ahead of the test, so what happens after a cancel is observable."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = anyio.Event()
        self._ticks_in, self._ticks_out = anyio.create_memory_object_stream[None](100)

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        self.sleeping.set()
        await self._ticks_out.receive()

    def tick(self) -> None:
        self.sleeping = anyio.Event()
        self._ticks_in.send_nowait(None)


@pytest.mark.parametrize("mode", MODES)
async def test_set_pool_type_cancelled_call_stops_polling(tmp_path: Path, mode: str) -> None:
    clock = PacedClock()
    # A job that stays Running far longer than any wait: only the cancellation can end this call.
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, job_seconds=(1.0, 1e9))
    async with session(tmp_path, mode=mode, sandbox=sandbox, clock=clock, confirm="off") as s:
        running = anyio.Event()
        finished: list[CallToolResult] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if "Running" in (message or ""):
                running.set()

        async def call() -> None:
            finished.append(await s.client.call_tool(SET, switch_args(timeout_s=1800), progress_callback=on_progress))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await clock.sleeping.wait()  # accepted; waiting before the first poll
                clock.tick()
                await running.wait()  # polled: the job is Running
                await clock.sleeping.wait()
                polls = s.sandbox.requests
                clock.tick()  # while alive, each tick is one more poll
                await clock.sleeping.wait()
                assert s.sandbox.requests == polls + 1
                tg.cancel_scope.cancel()
            # Round trips through the same server: the cancel notification is handled before the last of them.
            for _ in range(3):
                await s.ok("taurusdb_list_instances")
            for _ in range(3):
                clock.tick()  # a poll loop that survived the cancel would poll again now
            await s.ok("taurusdb_list_instances")
            assert s.sandbox.requests == polls + 1 + 4
        assert finished == []
        # The job runs on upstream (TaurusDB cannot cancel it); the audit log keeps its id.
        (job,) = s.sandbox.taurusdb.jobs.values()
        assert s.pool_type(PROXY_SWITCHABLE) == "CLOSED" and not job.applied
        cancelled = [line for line in s.audit_lines() if line.get("outcome") == "cancelled_while_waiting"]
        assert [line["job_id"] for line in cancelled] == [job.id]
