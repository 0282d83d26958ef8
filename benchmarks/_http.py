"""The streamable HTTP phase: 100 concurrent read calls with 50 ms of upstream latency, versus one call."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import TextIO

import anyio
import httpx2
from _procs import (
    DO_BURST_LIMIT,
    HELLO,
    PHASE_TIMEOUT_S,
    PYTHON,
    SERVE,
    check_result,
    cpu_seconds,
    free_port,
    live_env,
    sandbox,
    server_env,
    spawned,
    timed,
    wait_port,
)
from _report import Plan, Report, Row, ms, verdict
from _stdio import READ_TOOL
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

CONCURRENCY_TARGET = 3.0
FLOOR_FACTOR = 1.2


@dataclass
class Burst:
    """One call alone (median) and `concurrency` calls at once (median of rounds), with CPU spent per call."""

    one: float
    many: float
    cpu_ms: dict[str, float]


async def burst(plan: Plan, port: int, tool: str, pids: dict[str, int]) -> Burst:
    """Through one MCP session over streamable HTTP: warm up, time single calls, then concurrent bursts."""
    endpoint = f"http://127.0.0.1:{port}/mcp"
    limits = httpx2.Limits(max_connections=plan.concurrency + 10, max_keepalive_connections=plan.concurrency)
    async with (
        httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        Client(streamable_http_client(endpoint, http_client=http), mode="legacy") as client,
    ):

        async def call() -> None:
            result = await client.call_tool(tool, {})
            if tool == READ_TOOL:
                check_result(tool, result)
            elif result.is_error:
                raise RuntimeError(f"{tool} failed: {result.content}")

        await timed(call, 2, [])
        singles: list[float] = []
        await timed(call, plan.single_runs, singles)
        batches: list[float] = []
        before = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"client": time.process_time()}
        for _ in range(plan.batch_rounds):
            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(plan.concurrency):
                    tg.start_soon(call)
            batches.append(time.perf_counter() - start)
        after = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"client": time.process_time()}
    calls = plan.concurrency * plan.batch_rounds
    cpu = {name: (after[name] - before[name]) * 1000 / calls for name in before}
    return Burst(statistics.median(singles), statistics.median(batches), cpu)


@dataclass
class Repetition:
    """One run of the phase: poolpilot's burst (fresh sandbox, fresh server) and the bare SDK's two floors."""

    pp: Burst
    floor: Burst
    noop: Burst

    @property
    def quotient(self) -> float:
        """poolpilot's ratio over the bare SDK's own ratio (the verdict's measure)."""
        return (self.pp.many / self.pp.one) / (self.floor.many / self.floor.one)


async def _repetition(plan: Plan, tmp: str, errlog: TextIO) -> Repetition:
    async with sandbox(errlog, "latency:50ms") as (url, sandbox_proc):  # a fresh sandbox: a fresh rate window
        port = free_port()
        args = [*SERVE, "--transport", "streamable-http", "--port", str(port)]
        with spawned(args, live_env(url, "bench-http", tmp), errlog) as proc:
            await wait_port(port, proc)
            pp = await burst(plan, port, READ_TOOL, {"server": proc.pid, "sandbox": sandbox_proc.pid})
    # The floor: the bare SDK server over the same transport, no upstream. `wait` sleeps the same 50 ms a read
    # waits for the sandbox, so its own ratio (its 100 against its one) has the same latency to overlap;
    # `hello` answers at once (issue 9's floor, compared with one read).
    port = free_port()
    with spawned([PYTHON, HELLO, "--http", str(port)], server_env(), errlog) as proc:
        await wait_port(port, proc)
        floor = await burst(plan, port, "wait", {"server": proc.pid})
        noop = await burst(plan, port, "hello", {"server": proc.pid})
    return Repetition(pp, floor, noop)


async def bench_concurrency(plan: Plan, report: Report, tmp: str, errlog: TextIO) -> None:
    if 2 + plan.single_runs + plan.concurrency * plan.batch_rounds >= DO_BURST_LIMIT:
        raise ValueError("too many calls for one sandbox token within a minute")
    with anyio.fail_after(PHASE_TIMEOUT_S * plan.concurrency_repeats):
        runs = [await _repetition(plan, tmp, errlog) for _ in range(plan.concurrency_repeats)]
    # The repetition with the median quotient is reported; a burst on two shared cores moves from run to run.
    chosen = sorted(runs, key=lambda run: run.quotient)[len(runs) // 2]
    pp, floor, noop = chosen.pp, chosen.floor, chosen.noop
    # Issue 23: <= 3x one call, or within 1.2x of the bare SDK's own ratio measured in this run: the bare SDK's
    # 100 calls that each wait 50 ms against its one such call. The no-op burst against one read (issue 9's floor)
    # lacks what the 50 ms wait itself costs the SDK's client and server (connections held, answers arriving
    # apart: the CPU row shows it), so it is printed but not the verdict's floor.
    n, ratio, floor_ratio = plan.concurrency, round(pp.many / pp.one, 2), round(floor.many / floor.one, 2)
    ok = ratio <= CONCURRENCY_TARGET or ratio <= round(FLOOR_FACTOR * floor_ratio, 2)
    cpu = {name: f"{value:.2f}" for name, value in pp.cpu_ms.items()}
    quotients = ", ".join(f"{run.quotient:.2f}" for run in runs)
    report.add(
        Row(f"{n} concurrent reads, 50 ms upstream latency (streamable HTTP)", ms(pp.many), f"1 call {ms(pp.one)}",
            f"{ratio:.2f}x", f"<= {CONCURRENCY_TARGET:.0f}x, or <= {FLOOR_FACTOR}x the SDK's {floor_ratio:.2f}x",
            verdict(ok)),
        Row(f"{n} concurrent calls waiting 50 ms, bare SDK server (HTTP floor)", "",
            f"{ms(floor.many)} (1 call {ms(floor.one)})", f"{floor_ratio:.2f}x"),
        Row(f"  poolpilot's ratio over the SDK's, {len(runs)} repetitions (median reported)", "", quotients,
            f"median {chosen.quotient:.2f}"),
        Row(f"{n} concurrent no-op calls, bare SDK server (issue 9's floor)", "",
            f"{ms(noop.many)} (1 call {ms(noop.one)})", f"{noop.many / pp.one:.2f}x one read"),
        Row(f"CPU per call in the {n}: server (client, sandbox)", f"{cpu['server']} ms",
            f"wait {floor.cpu_ms['server']:.2f} ({floor.cpu_ms['client']:.2f}), "
            f"no-op {noop.cpu_ms['server']:.2f} ({noop.cpu_ms['client']:.2f})",
            f"client {cpu['client']}, sandbox {cpu['sandbox']} ms"),
    )  # fmt: skip
