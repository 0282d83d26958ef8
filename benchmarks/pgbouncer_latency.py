"""Latency of `pgbouncer_list_pools` through an in-process MCP client, against a no-op tool on the same SDK.

    .venv/bin/python benchmarks/pgbouncer_latency.py [--calls 100] [--rounds 3]

Starts the local PostgreSQL + PgBouncer pair (tools/pgbouncer/local.py; needs the `pgbouncer` and PostgreSQL
server packages), then per round and per connect mode ("auto" = the 2026-07-28 per-request path, "legacy" =
the initialize handshake) measures, interleaved call by call so drift hits all three alike:
- `pgbouncer_list_pools` on poolpilot (SHOW POOLS + SHOW DATABASES, join, verdicts, redaction, error mapping);
- a tool that does nothing, on a bare `MCPServer` (defined here only; the SDK + transport floor);
- the same two console commands sent directly with `AdminConsole` (the PgBouncer floor).
Overhead = list_pools - no-op - console. The issue's target: list_pools within 1 ms of the no-op.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.app import build_app
from server.config import PgBouncerInstance, Settings
from tools.pgbouncer.admin import AdminConsole
from tools.pgbouncer.local import LocalPair, start_local_pair


def _noop_server() -> MCPServer:
    server = MCPServer("noop")

    @server.tool()
    def noop() -> str:
        """Do nothing."""
        return "ok"

    return server


def _ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _timed(fn: Callable[[], Awaitable[object]], into: list[float]) -> None:
    started = time.perf_counter()
    await fn()
    into.append(time.perf_counter() - started)


async def _round(pair: LocalPair, audit: Path, mode: str, calls: int) -> dict[str, list[float]]:
    settings = Settings(
        backend="sandbox",
        audit_log=str(audit),
        toolsets=("pgbouncer",),
        pgbouncer=(PgBouncerInstance(name="local", dsn=pair.admin_dsn, ini_path=str(pair.ini_path)),),
    )
    times: dict[str, list[float]] = {"list_pools": [], "noop": [], "console": []}
    async with (
        Client(build_app(settings), mode=mode) as poolpilot,
        Client(_noop_server(), mode=mode) as bare,
        AdminConsole(pair.admin_dsn) as console,
    ):

        async def list_pools() -> None:
            result = await poolpilot.call_tool("pgbouncer_list_pools", {"instance": "local"})
            assert not result.is_error, result.content

        async def noop() -> None:
            await bare.call_tool("noop", {})

        async def direct() -> None:
            await console.show_pools()
            await console.show_databases()

        for _ in range(20):  # warm-up: connections, imports, caches
            await list_pools()
            await noop()
            await direct()
        for _ in range(calls):
            await _timed(list_pools, times["list_pools"])
            await _timed(noop, times["noop"])
            await _timed(direct, times["console"])
    return times


async def main(calls: int, rounds: int) -> None:
    pair = start_local_pair()
    try:
        version = ""
        async with AdminConsole(pair.admin_dsn) as console:
            version = await console.show_version()
        print(f"{version}, Python {sys.version.split()[0]}, {calls} calls per round, p50 / p90 in ms")
        with tempfile.TemporaryDirectory() as tmp:
            for mode in ("auto", "legacy"):
                for n in range(rounds):
                    t = await _round(pair, Path(tmp) / "audit.jsonl", mode, calls)
                    p50 = {k: statistics.median(v) * 1000 for k, v in t.items()}
                    overhead = p50["list_pools"] - p50["noop"] - p50["console"]
                    print(
                        f"{mode:6} round {n + 1}: list_pools {p50['list_pools']:.3f} / {_ms(t['list_pools'], 0.9):.3f}"
                        f"  no-op {p50['noop']:.3f} / {_ms(t['noop'], 0.9):.3f}"
                        f"  console {p50['console']:.3f}  list_pools - no-op {p50['list_pools'] - p50['noop']:.3f}"
                        f"  overhead {overhead:.3f}"
                    )
    finally:
        pair.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    ns = parser.parse_args()
    anyio.run(main, ns.calls, ns.rounds)
