"""The stdio phases: cold start, per-call overhead, tools/list payload and resident memory.

Per-call overhead (DECISIONS.md, "Performance definitions") = poolpilot's read call - (a no-op tool on the same
SDK and transport + the same upstream request made directly), each p50 of calls interleaved round by round.
"""

from __future__ import annotations

import json
import statistics
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

import anyio
from _procs import (
    DO_BURST_LIMIT,
    HELLO,
    PHASE_TIMEOUT_S,
    PYTHON,
    REPO,
    SERVE,
    SPAWN_TIMEOUT_S,
    Call,
    check_result,
    direct_client,
    direct_get,
    live_env,
    rss_kib,
    sandbox,
    server_env,
    timed,
)
from _report import Plan, Report, Row, ms, percentile, verdict
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types.version import LATEST_HANDSHAKE_VERSION

READ_TOOL = "digitalocean_list_clusters"
DIRECT_PATH = "/v2/databases"  # the upstream request READ_TOOL makes


def stdio_params(args: list[str], env: dict[str, str]) -> StdioServerParameters:
    return StdioServerParameters(command=args[0], args=args[1:], cwd=str(REPO), env=env)


def hello_params() -> StdioServerParameters:
    return stdio_params([PYTHON, HELLO], server_env())


def stdio_session(params: StdioServerParameters, errlog: TextIO) -> Client:
    """An MCP client session over stdio with the `initialize` handshake (enter it with `async with`)."""
    return Client(stdio_client(params, errlog=errlog), mode="legacy")


def tool_call(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> Call:
    """A call of `tool` that fails the phase unless poolpilot answers from the live backend without error."""

    async def call() -> None:
        check_result(tool, await client.call_tool(tool, arguments or {}))

    return call


def noop_call(hello: Client) -> Call:
    async def call() -> None:
        result = await hello.call_tool("hello", {})
        if result.is_error:
            raise RuntimeError(f"hello failed: {result.content}")

    return call


# -- cold start -------------------------------------------------------------------------------------------------


async def cold_start_once(params: StdioServerParameters, errlog: TextIO) -> float:
    with anyio.fail_after(SPAWN_TIMEOUT_S):
        start = time.perf_counter()
        async with stdio_session(params, errlog) as client:
            listed = await client.list_tools()
            elapsed = time.perf_counter() - start
    if not listed.tools:
        raise RuntimeError(f"{params.command} {params.args} listed no tools")
    return elapsed


async def bench_cold_start(plan: Plan, report: Report, tmp: str, errlog: TextIO) -> None:
    env = server_env(POOLPILOT_BACKEND="sandbox", POOLPILOT_AUDIT_LOG=str(Path(tmp) / "cold-audit.jsonl"))
    poolpilot, hello = stdio_params(SERVE, env), hello_params()
    # One unmeasured start each (bytecode caches, page cache), then alternate so drift hits both alike.
    await cold_start_once(poolpilot, errlog)
    await cold_start_once(hello, errlog)
    pp: list[float] = []
    floor: list[float] = []
    for _ in range(plan.cold_runs):
        pp.append(await cold_start_once(poolpilot, errlog))
        floor.append(await cold_start_once(hello, errlog))
    n = plan.cold_runs
    # Judged as printed (two decimals), so a row never reads "1.20x ... no".
    ratio_min = round(min(pp) / min(floor), 2)
    ratio_med = round(statistics.median(pp) / statistics.median(floor), 2)
    report.add(
        Row(f"cold start, min of {n} (stdio)", ms(min(pp)), f"hello {ms(min(floor))}", f"{ratio_min:.2f}x",
            "<= 1.2x", verdict(ratio_min <= 1.2)),
        Row(f"cold start, median of {n}", ms(statistics.median(pp)), f"hello {ms(statistics.median(floor))}",
            f"{ratio_med:.2f}x", "<= 1.2x", verdict(ratio_med <= 1.2)),
    )  # fmt: skip


# -- per-call overhead ------------------------------------------------------------------------------------------


async def interleaved(kinds: dict[str, Call], warmup: int, runs: int, rounds: int) -> dict[str, list[float]]:
    """Warm every kind up, then time them in rounds: background noise on this machine lands on all alike."""
    for fn in kinds.values():
        await timed(fn, warmup, [])
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    per_round = -(-runs // rounds)
    for _ in range(rounds):
        for name, fn in kinds.items():
            await timed(fn, per_round, samples[name])
    return samples


def overhead_rows(label: str, samples: dict[str, list[float]]) -> tuple[Row, Row]:
    """p50 and p95 of `samples` keyed poolpilot, noop and one direct kind (named as it is keyed)."""
    (direct,) = (k for k in samples if k not in ("poolpilot", "noop"))
    p50 = {k: percentile(v, 50) for k, v in samples.items()}
    p95 = {k: percentile(v, 95) for k, v in samples.items()}
    over50 = p50["poolpilot"] - (p50["noop"] + p50[direct])
    n = len(samples["poolpilot"])
    return (
        Row(f"{label} p50, n={n}", ms(p50["poolpilot"]), f"noop {ms(p50['noop'])} + {direct} {ms(p50[direct])}",
            f"overhead {ms(over50)}", "< 1 ms", verdict(over50 < 0.001)),
        Row(f"{label} p95", ms(p95["poolpilot"]), f"noop {ms(p95['noop'])} + {direct} {ms(p95[direct])}",
            "(percentiles do not add)"),
    )  # fmt: skip


async def bench_call_overhead(plan: Plan, report: Report, tmp: str, errlog: TextIO) -> None:
    if plan.call_warmup + plan.call_runs >= DO_BURST_LIMIT:
        raise ValueError("too many calls for one sandbox token within a minute")
    async with sandbox(errlog) as (url, _):
        poolpilot = stdio_params(SERVE, live_env(url, "bench-stdio", tmp))
        with anyio.fail_after(PHASE_TIMEOUT_S):
            async with AsyncExitStack() as stack:
                pp = await stack.enter_async_context(stdio_session(poolpilot, errlog))
                noop = await stack.enter_async_context(stdio_session(hello_params(), errlog))
                direct = await stack.enter_async_context(direct_client(url, "bench-direct"))
                kinds = {
                    "poolpilot": tool_call(pp, READ_TOOL),
                    "noop": noop_call(noop),
                    "direct": direct_get(direct, DIRECT_PATH),
                }
                samples = await interleaved(kinds, plan.call_warmup, plan.call_runs, plan.call_rounds)
    report.add(*overhead_rows("read call (stdio -> sandbox port)", samples))


# -- tools/list payload and memory ------------------------------------------------------------------------------


async def raw_list(args: list[str], env: dict[str, str], errlog: TextIO) -> tuple[int, int, int]:
    """Speak JSON-RPC by hand to see tools/list exactly as sent: (tools array bytes, tool count, VmRSS KiB)."""
    with anyio.fail_after(SPAWN_TIMEOUT_S):
        async with await anyio.open_process(
            args, cwd=REPO, env=env, stderr=errlog, start_new_session=True
        ) as proc:  # fmt: skip
            try:
                assert proc.stdin is not None and proc.stdout is not None
                reader = BufferedByteReceiveStream(proc.stdout)

                async def send(message: dict[str, object]) -> None:
                    assert proc.stdin is not None
                    await proc.stdin.send(json.dumps(message).encode() + b"\n")

                async def reply(request_id: int) -> dict[str, Any]:
                    while True:
                        line = await reader.receive_until(b"\n", 10_000_000)
                        message: dict[str, Any] = json.loads(line)
                        if message.get("id") == request_id:
                            return message

                client_info = {"name": "poolpilot-bench", "version": "0"}
                init = {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": client_info}
                await send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init})
                await reply(1)
                await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                await send({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
                listed = await reply(2)
                tools = listed["result"]["tools"]
                # The server writes compact JSON; re-encoding the same way gives the bytes it spent on `tools`.
                size = len(json.dumps(tools, separators=(",", ":"), ensure_ascii=False).encode())
                return size, len(tools), rss_kib(proc.pid)
            finally:
                if proc.returncode is None:
                    proc.kill()


async def bench_payload_and_memory(plan: Plan, report: Report, tmp: str, errlog: TextIO) -> None:
    env = server_env(POOLPILOT_BACKEND="sandbox", POOLPILOT_AUDIT_LOG=str(Path(tmp) / "raw-audit.jsonl"))
    size, count, rss = await raw_list(SERVE, env, errlog)
    hello_size, _, hello_rss = await raw_list([PYTHON, HELLO], server_env(), errlog)
    per_tool = size / count
    report.add(
        Row(f"tools/list payload, default tool set ({count} tools)", f"{size} B", f"hello {hello_size} B (1 tool)",
            f"{per_tool:.0f} B/tool", "<= 900 B/tool avg", verdict(per_tool <= 900)),
        Row("resident memory after tools/list (VmRSS)", f"{rss / 1024:.1f} MiB", f"hello {hello_rss / 1024:.1f} MiB",
            f"+{(rss - hello_rss) / 1024:.1f} MiB"),
    )  # fmt: skip
