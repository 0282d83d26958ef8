"""The fleet-view row of the benchmark (issue 12 on issue 9's table): `pools_overview` with 50 ms of upstream latency.

    .venv/bin/python benchmarks/overview.py [--runs 20]

Over the seeded sandbox (DigitalOcean + TaurusDB, in process through the same ASGI transport the server uses)
with the `latency:50ms` fault on every upstream request, it measures, interleaved run by run:
- `pools_overview` through a real MCP client (in memory): 10 upstream requests, 2 rounds deep when fanned out;
- one upstream request made directly with httpx2 (GET /v2/databases): the unit the target is stated in;
- `digitalocean_list_clusters` through the same client: one upstream request plus the MCP path.
Target: overview <= 3x one upstream request (a serial fan-out would be ~10x). Also prints the overview's result
size in bytes for the seeded data (the text content; structuredContent carries the same JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp_types import TextContent

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.app import build_app
from server.config import Settings
from server.sandbox import FaultPlan, Sandbox

LATENCY = "latency:50ms"
TARGET_RATIO = 3.0


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    with anyio.fail_after(30):
        await call()
    return time.perf_counter() - start


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[max(0, round(0.9 * len(ordered)) - 1)]
    return f"median {statistics.median(ordered) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms"


async def _size(audit: Path) -> tuple[int, int, int]:
    """Result size of pools_overview on the seeded data: text bytes, structuredContent bytes, rows."""
    app = build_app(Settings(backend="sandbox", audit_log=str(audit)), sandbox=Sandbox(faults=FaultPlan()))
    async with Client(app, raise_exceptions=True) as client:
        result = await client.call_tool("pools_overview", {})
    text = result.content[0]
    assert isinstance(text, TextContent) and result.structured_content is not None
    structured = json.dumps(result.structured_content, separators=(",", ":")).encode()
    return len(text.text.encode()), len(structured), len(result.structured_content["rows"])


async def main(runs: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        audit = Path(tmp) / "audit.jsonl"
        text_bytes, structured_bytes, rows = await _size(audit)
        plan = FaultPlan()
        plan.add(LATENCY)
        # A high per-minute limit: the benchmark's own request rate must never meet a 429 (and its retry).
        sandbox = Sandbox(faults=plan, do_rate_limit_per_minute=1_000_000)
        app = build_app(Settings(backend="sandbox", audit_log=str(audit)), sandbox=sandbox)
        direct = httpx2.AsyncClient(
            transport=sandbox.transport(), base_url="http://sandbox.invalid", headers={"Authorization": "Bearer b"}
        )
        overview: list[float] = []
        upstream: list[float] = []
        one_call: list[float] = []
        async with direct, Client(app, raise_exceptions=True) as client:

            async def pools_overview() -> None:
                result = await client.call_tool("pools_overview", {})
                assert not result.is_error and result.structured_content is not None
                assert not result.structured_content["errors"], result.structured_content["errors"]

            async def one_request() -> None:
                (await direct.get("/v2/databases")).raise_for_status()

            async def list_clusters() -> None:
                assert not (await client.call_tool("digitalocean_list_clusters", {})).is_error

            before = sandbox.requests
            await pools_overview()  # warm-up, and the request count of one overview
            per_overview = sandbox.requests - before
            await one_request()
            await list_clusters()
            for _ in range(runs):
                overview.append(await _timed(pools_overview))
                upstream.append(await _timed(one_request))
                one_call.append(await _timed(list_clusters))
    ratio = statistics.median(overview) / statistics.median(upstream)
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"pools_overview benchmark: {runs} runs, sandbox with {LATENCY} on every upstream request")
    print(f"  pools_overview ({per_overview} upstream requests)   {_ms(overview)}")
    print(f"  one upstream request (httpx2, direct)    {_ms(upstream)}")
    print(f"  digitalocean_list_clusters (1 request)   {_ms(one_call)}")
    print(f"  ratio overview / one upstream request    {ratio:.2f}x  ({verdict} the <= {TARGET_RATIO:g}x target)")
    print(f"  overview result, seeded data ({rows} rows)  {text_bytes} B text, {structured_bytes} B structuredContent")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="measured runs of each call (default 20)")
    sys.exit(anyio.run(main, parser.parse_args().runs))
