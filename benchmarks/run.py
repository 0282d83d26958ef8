"""poolpilot benchmarks (issues 9 and 12): one table, every figure measured in the same run.

    .venv/bin/python benchmarks/run.py                     # full run (about a minute)
    .venv/bin/python benchmarks/run.py --quick             # smoke test: fewer runs, same code paths
    .venv/bin/python benchmarks/run.py --only overview     # some phases only (comma-separated names)
    .venv/bin/python benchmarks/run.py --local-pgbouncer   # add the PgBouncer rows against a local pair

What is measured (MCP sessions use the SDK's client with the `initialize` handshake):
- cold start: spawn -> initialize -> tools/list reply over stdio, for poolpilot
  (`python -m poolpilot.server serve`, sandbox backend, default tool set) and for
  `benchmarks/hello_server.py` (the floor);
- per-call overhead: `digitalocean_list_clusters` through a real MCP session over stdio, poolpilot in live mode
  pointed at `poolpilot sandbox` on a loopback port, minus (a no-op tool on the bare SDK server over stdio + the
  same upstream GET /v2/databases made directly with httpx2 against the same sandbox);
- own CPU per read: the same three in one process on CPU time, the upstream a canned answer (benchmarks/_owncpu.py);
- the same for `pgbouncer_list_pools` against a real PgBouncer, when POOLPILOT_PGBOUNCER_<NAME>_DSN is set
  (benchmarks/_pgbouncer.py); skipped with a note otherwise;
- concurrency: 100 concurrent calls over streamable HTTP against a sandbox with `--fault latency:50ms`, versus one;
  the floor is the bare SDK server's `wait` tool (sleeps 50 ms, no upstream): its 100 against its one; three
  repetitions, each with a fresh sandbox and servers, and the one with the median quotient is reported;
- fleet view: `pools_overview` over the seeded sandbox with 50 ms upstream latency versus one upstream request,
  and its result size for the seeded data (benchmarks/_fleet.py);
- pools as code: `pools_plan` of a 100-pool document across three providers, in process (benchmarks/_plan.py);
- tools/list payload (bytes of the `tools` array exactly as the server wrote it) and resident memory (VmRSS).
Only loopback is used; every wait has a timeout and every process started here is stopped in a `finally`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import anyio
from _fleet import bench_overview
from _http import bench_concurrency
from _owncpu import bench_owncpu
from _pgbouncer import bench_pgbouncer, local_pgbouncer, pgbouncer_env
from _plan import bench_plan
from _profile import bench_profile
from _report import FULL, QUICK, Plan, Report, leaf, render
from _stdio import bench_call_overhead, bench_cold_start, bench_payload_and_memory
from _toolsets import bench_toolsets

Phase = Callable[[Plan, Report, str, TextIO], Awaitable[None]]


def phases(pgbouncer: Mapping[str, str]) -> dict[str, Phase]:
    """Every phase by the name `--only` takes, in the order they run and their rows appear."""

    async def pgbouncer_phase(plan: Plan, report: Report, tmp: str, errlog: TextIO) -> None:
        await bench_pgbouncer(plan, report, tmp, errlog, pgbouncer)

    return {
        "cold-start": bench_cold_start,
        "call": bench_call_overhead,
        "owncpu": bench_owncpu,
        "pgbouncer": pgbouncer_phase,
        "concurrency": bench_concurrency,
        "overview": bench_overview,
        "plan": bench_plan,
        "payload": bench_payload_and_memory,
        "toolsets": bench_toolsets,
        "profile": bench_profile,
    }


async def run(plan: Plan, selected: dict[str, Phase], command: str, log_path: Path | None) -> int:
    report = Report()
    load_start = os.getloadavg()[0]  # shown in the header: other work on the machine skews every figure
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="poolpilot-bench-") as tmp:
        path = log_path or Path(tmp) / "servers.log"
        with path.open("w", encoding="utf-8") as errlog:
            for name, phase in selected.items():
                print(f"... {name}", file=sys.stderr, flush=True)
                try:
                    await phase(plan, report, tmp, errlog)
                except Exception as exc:
                    cause = leaf(exc)
                    report.failures.append(f"{name}: {type(cause).__name__}: {cause}")
        if report.failures and log_path is None:
            tail = path.read_text(encoding="utf-8", errors="replace")[-3000:]
            print("--- server stderr (tail) ---\n" + tail, file=sys.stderr)
    print(render(report, command, time.perf_counter() - started, (load_start, os.getloadavg()[0])))
    return 1 if report.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke test: fewer runs")
    parser.add_argument("--only", help="comma-separated phases: " + ", ".join(phases({})))
    parser.add_argument("--local-pgbouncer", action="store_true", help="start a local PostgreSQL + PgBouncer pair")
    parser.add_argument("--server-log", type=Path, help="keep the servers' stderr in this file")
    args = list(sys.argv[1:] if argv is None else argv)
    ns = parser.parse_args(args)
    names = [n.strip() for n in ns.only.split(",")] if ns.only else list(phases({}))
    unknown = sorted(set(names) - set(phases({})))
    if unknown:
        parser.error(f"unknown phase {', '.join(unknown)}; choose from {', '.join(phases({}))}")
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so every `finally` stops the processes started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with ExitStack() as stack:
        wants_local = ns.local_pgbouncer and "pgbouncer" in names
        pg_env = stack.enter_context(local_pgbouncer()) if wants_local else pgbouncer_env(os.environ)
        selected = {name: phase for name, phase in phases(pg_env).items() if name in names}
        command = " ".join([".venv/bin/python benchmarks/run.py", *args])
        result: int = anyio.run(run, QUICK if ns.quick else FULL, selected, command, ns.server_log)
    return result


if __name__ == "__main__":
    sys.exit(main())
