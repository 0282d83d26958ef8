"""The PgBouncer phase, when a PgBouncer is configured: `pgbouncer_list_pools` over stdio against the real thing.

Configured as poolpilot is, by POOLPILOT_PGBOUNCER_<NAME>_DSN (and _INI) in the environment; the first instance in
name order is measured. `run.py --local-pgbouncer` starts the local PostgreSQL + PgBouncer pair instead
(tools/pgbouncer/local.py). Overhead as for the read call: list_pools - (no-op tool + the same SHOW POOLS and
SHOW DATABASES sent directly with `AdminConsole`), p50 of calls interleaved round by round.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import TextIO

import anyio
from _procs import PHASE_TIMEOUT_S, SERVE, server_env
from _report import Plan, Report
from _stdio import hello_params, interleaved, noop_call, overhead_rows, stdio_params, stdio_session, tool_call

from poolpilot.server.shell.app import load_settings
from poolpilot.tools.pgbouncer.admin import AdminConsole
from poolpilot.tools.pgbouncer.local import start_local_pair
from poolpilot.tools.pgbouncer.settings import of

ENV_PREFIX = "POOLPILOT_PGBOUNCER_"
LIST_TOOL = "pgbouncer_list_pools"


def pgbouncer_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The PgBouncer part of an environment, passed on to the server as it is."""
    return {k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}


@contextmanager
def local_pgbouncer() -> Iterator[dict[str, str]]:
    """The local pair, started for this run and stopped after it, as the variables that point poolpilot at it."""
    pair = start_local_pair()
    try:
        yield {f"{ENV_PREFIX}LOCAL_DSN": pair.admin_dsn, f"{ENV_PREFIX}LOCAL_INI": str(pair.ini_path)}
    finally:
        pair.stop()


async def bench_pgbouncer(plan: Plan, report: Report, tmp: str, errlog: TextIO, env: Mapping[str, str]) -> None:
    instances = of(load_settings({}, dict(env))).instances  # poolpilot's own reading of the variables
    if not instances:
        report.notes.append(
            f"{LIST_TOOL} rows skipped: no {ENV_PREFIX}<NAME>_DSN set (`--local-pgbouncer` starts a local pair)."
        )
        return
    instance = instances[0]
    audit = str(Path(tmp) / "pgbouncer-audit.jsonl")
    poolpilot = stdio_params(SERVE, server_env(POOLPILOT_TOOLSETS="pgbouncer", POOLPILOT_AUDIT_LOG=audit, **env))
    with anyio.fail_after(PHASE_TIMEOUT_S):
        async with AsyncExitStack() as stack:
            pp = await stack.enter_async_context(stdio_session(poolpilot, errlog))
            noop = await stack.enter_async_context(stdio_session(hello_params(), errlog))
            console = await stack.enter_async_context(AdminConsole(instance.dsn))
            version = await console.show_version()

            async def direct() -> None:
                await console.show_pools()
                await console.show_databases()

            kinds = {
                "poolpilot": tool_call(pp, LIST_TOOL, {"instance": instance.name}),
                "noop": noop_call(noop),
                "console": direct,
            }
            samples = await interleaved(kinds, plan.call_warmup, plan.call_runs, plan.call_rounds)
    report.add(*overhead_rows(f"{LIST_TOOL} (stdio -> {version.split(' (')[0]})", samples))
