"""Where poolpilot's own time per read goes (issue 23): cProfile on the in-process and stdio paths, in buckets.

In process, poolpilot runs in this process behind the SDK's in-memory client; over stdio, the server runs under
`python -m cProfile` and writes its profile when stdin closes. Both talk to `poolpilot sandbox` on a loopback port
(live mode), so the upstream is a real HTTP request. Each bucket is the cumulative time of one function per call,
so nested buckets overlap (the outline's indentation shows the nesting). The profiler's clock is CPU time, so time
spent waiting (the upstream, other processes on a shared machine) is left out; cProfile slows every call it sees,
so the figures are larger than the unprofiled ones and the shares are what compares.
"""

from __future__ import annotations

import pstats
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

import anyio
from _procs import PHASE_TIMEOUT_S, PYTHON, check_result, live_env, sandbox
from _report import Plan, Report, Row

# (label, indentation, (file suffix, function name) alternatives); the first matching entry is the bucket's time.
Bucket = tuple[str, int, tuple[tuple[str, str], ...]]
BUCKETS: tuple[Bucket, ...] = (
    ("whole call: PoolpilotServer.call_tool", 0, (("kernel/pipeline.py", "call_tool"),)),
    ("SDK argument validation", 1, (("func_metadata.py", "validate_arguments"),)),
    ("tool body (digitalocean_list_clusters)", 1, (("digitalocean/tools.py", "digitalocean_list_clusters"),)),
    ("Upstream.request (retries, pacing, error mapping)", 2, (("kernel/http.py", "request"),)),
    ("httpx2 AsyncClient.send (the upstream request)", 3, (("httpx2/_client.py", "send"),)),
    ("httpx2 build_request", 3, (("httpx2/_client.py", "build_request"),)),
    ("API JSON parse (Response.json)", 2, (("httpx2/_models.py", "json"),)),
    ("API models (ApiCluster.model_validate)", 2, (("digitalocean/client.py", "<listcomp>"),)),
    ("SDK result conversion (to_json, validate, dump)", 1, (("func_metadata.py", "convert_result"),)),
    ("one serialisation: dump, JSON text, redaction check", 1, (("kernel/pipeline.py", "_serialised"),)),
    ("model_dump (every caller)", 2, (("pydantic/main.py", "model_dump"),)),
    ("json.dumps (every caller)", 2, (("json/__init__.py", "dumps"),)),
    ("Redactor.clean (the fast check)", 2, (("kernel/redact.py", "clean"),)),
    ("full redaction pass", 1, (("kernel/redact.py", "value"),)),
    ("audit", 1, (("kernel/pipeline.py", "_audit"),)),
    ("guard", 1, (("kernel/guard.py", "run"),)),
    ("logging", 1, (("logging/__init__.py", "_log"),)),
)
# Over stdio the server also reads, dispatches and writes each message: dispatch wraps the call, the reader and
# writer run beside it.
TRANSPORT_BUCKETS: tuple[Bucket, ...] = (
    ("JSON-RPC dispatch of the request (SDK)", 0, (("jsonrpc_dispatcher.py", "_handle_request"),)),
    ("stdout writer (serialise + write the reply)", 0, (("server/stdio.py", "stdout_writer"),)),
    ("stdin reader (read + parse the request)", 0, (("server/stdio.py", "stdin_reader"),)),
)


def bucket_times(stats: pstats.Stats, calls: int, buckets: tuple[Bucket, ...]) -> list[tuple[str, int, float]]:
    """(label, indent, seconds per call) for each bucket found in the profile (cumulative time, summed over every
    function matching the bucket's first matching alternative)."""
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    out: list[tuple[str, int, float]] = []
    for label, indent, alternatives in buckets:
        for suffix, func in alternatives:
            total = sum(v[3] for (path, _, name), v in table.items() if name == func and path.endswith(suffix))
            if total:
                out.append((label, indent, total / calls))
                break
    return out


def breakdown_rows(title: str, buckets: list[tuple[str, int, float]]) -> list[Row]:
    whole = buckets[0][2] if buckets else 0.0
    rows = [Row(title, "", "", "(cProfile, CPU time: compare shares)")]
    for label, indent, seconds in buckets:
        share = f"{100 * seconds / whole:.0f}%" if whole else ""
        rows.append(Row("  " + "  " * indent + label, f"{seconds * 1e6:.0f} us", "", share))
    return rows


async def _in_process_calls(url: str, tmp: str, warmup: int, runs: int, profile: bool) -> tuple[float, Any]:
    """Per-call wall time of READ_TOOL through the SDK's in-memory client, and the profile when asked."""
    import cProfile
    import os

    from mcp import Client

    from poolpilot.server.shell.app import build_app, load_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("POOLPILOT_", "DIGITALOCEAN_", "HUAWEICLOUD_"))}
    env |= {k: v for k, v in live_env(url, "bench-profile", tmp).items() if k.startswith(("POOLPILOT_", "DIGITAL"))}
    app = build_app(load_settings(env=env))
    profiler = cProfile.Profile(time.process_time) if profile else None
    async with Client(app, mode="legacy") as client:
        for _ in range(warmup):
            check_result(READ, await client.call_tool(READ, {}))
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for _ in range(runs):
            check_result(READ, await client.call_tool(READ, {}))
        if profiler is not None:
            profiler.disable()
        elapsed = (time.perf_counter() - start) / runs
    return elapsed, profiler


READ = "digitalocean_list_clusters"
# `poolpilot serve` under cProfile on CPU time (blocked syscalls and other processes' turns are not counted); the
# profile is written when the server returns, which it does when its stdin closes. It starts at the second tool
# call: the first loads the tool's toolset and opens the provider clients (once per process, not per call).
PROFILED_SERVE = """
import cProfile, runpy, sys, time
from poolpilot.server.kernel.pipeline import PoolpilotServer
out = sys.argv[1]
sys.argv = ["poolpilot", "serve"]
profiler = cProfile.Profile(time.process_time)
first_call = PoolpilotServer.call_tool
calls = 0
async def call_tool(self, *args, **kwargs):
    global calls
    calls += 1
    if calls == 2:
        profiler.enable()
    return await first_call(self, *args, **kwargs)
PoolpilotServer.call_tool = call_tool
try:
    runpy.run_module("poolpilot.server", run_name="__main__")
except SystemExit:
    pass
finally:
    profiler.disable()
    profiler.dump_stats(out)
"""


async def bench_profile(plan: Plan, report: Report, tmp: str, errlog: TextIO) -> None:
    from _raw import raw_session
    from _stdio import raw_call

    runs = max(20, plan.call_runs // 2)
    with anyio.fail_after(PHASE_TIMEOUT_S):
        async with sandbox(errlog) as (url, _):
            plain, _ = await _in_process_calls(url, tmp, plan.call_warmup, runs, profile=False)
            _, profiler = await _in_process_calls(url, tmp, 5, runs, profile=True)
            in_proc = pstats.Stats(profiler)
            report.add(Row(f"read call in process (SDK memory transport), n={runs}", f"{plain * 1000:.2f} ms",
                           "", "unprofiled, client and server in one process"))  # fmt: skip
            report.add(*breakdown_rows("  in-process breakdown per call", bucket_times(in_proc, runs, BUCKETS)))
            # Over stdio: the server process itself under cProfile, its profile written when stdin closes.
            out = Path(tmp) / "serve.prof"
            args = [PYTHON, "-c", PROFILED_SERVE, str(out)]
            async with AsyncExitStack() as stack:
                env = live_env(url, "bench-profile-stdio", tmp)
                session = await stack.enter_async_context(raw_session(args, env, errlog, close_stdin=True))
                call = raw_call(session, READ, live=True)
                for _ in range(runs + 1):  # the first is not profiled (PROFILED_SERVE)
                    await call()
            if not out.exists():  # the SDK's client waits for the server to exit before it returns
                raise RuntimeError("the profiled stdio server wrote no profile")
    stdio = pstats.Stats(str(out))
    transport = bucket_times(stdio, runs, TRANSPORT_BUCKETS)
    inner = [(label, indent + 1, seconds) for label, indent, seconds in bucket_times(stdio, runs, BUCKETS)]
    report.add(*breakdown_rows("  stdio server breakdown per call (server process)", transport + inner))
