"""The pools-as-code phase (issue 21): `pools_plan` of a 100-pool document across three providers.

In process (the SDK's client on the app), sandbox backend without latency: DigitalOcean (the seeded 5 pools plus 40
created for the run on the seeded pg-main cluster), TaurusDB (the 4 seeded proxies) and PgBouncer (51 `[databases]`
lines in a pgbouncer.ini written for the run; planning reads the file, not the console). The document is the
export with 10 pools resized, so the plan has steps, budgets and drift to compute. It measures the plan's time
(median of the runs) and its result's size as a model reads it.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, TextIO

import anyio
from _report import Plan, Report, Row, ms
from mcp import Client
from mcp_types import TextContent

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.sandbox import FaultPlan
from poolpilot.server.shell.app import build_app, build_sandbox
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID
from poolpilot.tools.pgbouncer.settings import PgBouncerInstance, PgBouncerSettings

DO_EXTRA, PGB_POOLS, RESIZED = 40, 51, 10


def _ini(tmp: str) -> Path:
    lines = [f"db{i:03d} = host=127.0.0.1 port=5432 dbname=app pool_size={5 + i % 7}" for i in range(PGB_POOLS)]
    path = Path(tmp) / "plan-bench-pgbouncer.ini"
    path.write_text("[databases]\n" + "\n".join(lines) + "\n\n[pgbouncer]\nlisten_port = 6432\n", encoding="utf-8")
    return path


async def _data(client: Client, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any], int]:
    result = await client.call_tool(tool, args)
    text = result.content[0]
    if result.is_error or result.structured_content is None or not isinstance(text, TextContent):
        raise RuntimeError(f"{tool} failed: {result.content}")
    return result.structured_content, len(text.text.encode())


async def bench_plan(plan: Plan, report: Report, tmp: str, errlog: TextIO) -> None:
    instance = PgBouncerInstance(
        name="bench", dsn="postgresql://pgbouncer@127.0.0.1:1/pgbouncer", ini_path=str(_ini(tmp))
    )
    settings = Settings(
        backend="sandbox",
        audit_log=str(Path(tmp) / "plan-audit.jsonl"),
        providers={"pgbouncer": PgBouncerSettings(instances=(instance,))},
        toolsets=("digitalocean", "taurusdb", "pgbouncer", "pools", "pools_code"),
    )
    sandbox = build_sandbox(settings, faults=FaultPlan())
    # The extra pools go straight into the fake's state: creating them through the API would spend the rate limit
    # (250 requests a minute) the timed plans need.
    do = sandbox.fakes["digitalocean"]
    state = do.export_state()
    main = state[PG_MAIN_ID]
    assert isinstance(main, dict)
    main["pools"] += [[f"bench-{i:02d}", "transaction", 1, "app", "app"] for i in range(DO_EXTRA)]
    do.import_state(state)
    app = build_app(settings, sandbox=sandbox)
    with anyio.fail_after(120):
        async with Client(app, raise_exceptions=True) as client:
            document, _ = await _data(client, "pools_export", {})
            pools = document["pools"]
            sized = [(p, "size" if "size" in p["spec"] else "pool_size") for p in pools]
            for entry, key in [(p, k) for p, k in sized if p["spec"].get(k, 0) > 1][:RESIZED]:
                entry["spec"][key] -= 1  # shrinks: always within budget
            samples: list[float] = []
            for _ in range(plan.overview_runs):
                started = time.perf_counter()
                result, text_bytes = await _data(client, "pools_plan", {"document": document})
                samples.append(time.perf_counter() - started)
    providers = {p["provider"] for p in pools}
    if len(pools) != 100 or len(providers) != 3 or len(result["steps"]) != RESIZED:
        raise RuntimeError(f"unexpected plan: {len(pools)} pools, {sorted(providers)}, {len(result['steps'])} steps")
    structured = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())
    report.add(
        Row(f"pools_plan, 100 pools across 3 providers ({RESIZED} resized), in process, median of {len(samples)}",
            ms(statistics.median(samples)), "", f"result {text_bytes} B text, {structured} B structured"),
    )  # fmt: skip
