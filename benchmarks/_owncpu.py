"""poolpilot's own CPU per read (issue 23), the figure the wall-clock rows bury under the machine's load.

In one process, on the SDK's in-memory transport, each of three things is run in turn and timed on CPU time
(`time.process_time`: other processes' turns are not counted): poolpilot's read tool, a no-op tool on a bare SDK
server, and the same GET made directly with httpx2. The upstream is a canned answer (the body the embedded
sandbox gives for that GET, served by `httpx2.MockTransport`), so neither the sandbox nor the network is in any
of the three. own CPU = read - no-op - direct GET. The in-memory client validates every structured result
against the tool's output schema, so the read row also pays that client-side cost (the no-op's is smaller).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

import anyio
import httpx2
from _procs import PHASE_TIMEOUT_S
from _report import Plan, Report, Row, verdict
from _stdio import OVERHEAD_TARGET_S, READ_TOOL
from mcp import Client
from mcp.server.mcpserver import MCPServer

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.sandbox import Sandbox as Composite
from poolpilot.server.shell.app import build_app
from poolpilot.server.shell.registry import faces as registered

PATH = "/v2/databases"  # the GET READ_TOOL makes


class _Canned(Composite):
    """The seeded fakes (so the app starts as in sandbox mode), every request answered by `canned`."""

    def __init__(self, canned: httpx2.AsyncBaseTransport) -> None:
        super().__init__(Composite.fakes_of(registered()))
        self._canned = canned

    def transport(self) -> httpx2.AsyncBaseTransport:
        return self._canned


async def _cpu_per_call(call: Callable[[], Awaitable[None]], runs: int, rounds: int) -> float:
    """The lowest of `rounds` mean CPU times per call (the least disturbed round)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(runs):
            await call()
        best = min(best, (time.process_time() - start) / runs)
    return best


async def bench_owncpu(plan: Plan, report: Report, tmp: str, errlog: TextIO) -> None:
    seeded = Composite(Composite.fakes_of(registered()))
    async with httpx2.AsyncClient(transport=seeded.transport(), base_url="http://sandbox") as probe:
        answer = await probe.get(PATH, headers={"Authorization": "Bearer bench-owncpu"})
    body, headers = answer.content, dict(answer.headers)

    async def canned(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers=headers)

    upstream = httpx2.MockTransport(canned)
    app = build_app(
        Settings(backend="sandbox", audit_log=str(Path(tmp) / "owncpu-audit.jsonl")), sandbox=_Canned(upstream)
    )
    bare = MCPServer("hello")

    @bare.tool()
    def hello() -> str:
        return "hello"

    runs, rounds = max(200, plan.call_runs * 2), 5
    with anyio.fail_after(PHASE_TIMEOUT_S):
        async with (
            httpx2.AsyncClient(transport=upstream, base_url="http://sandbox") as direct,
            Client(app, mode="legacy") as pp,
            Client(bare, mode="legacy") as noop,
        ):

            async def read() -> None:
                result = await pp.call_tool(READ_TOOL, {})
                if result.is_error:
                    raise RuntimeError(f"{READ_TOOL} failed: {result.content}")

            async def no_op() -> None:
                if (await noop.call_tool("hello", {})).is_error:
                    raise RuntimeError("hello failed")

            async def get() -> None:
                if (await direct.get(PATH)).status_code != 200:
                    raise RuntimeError(f"GET {PATH} failed")

            calls = {"read": read, "noop": no_op, "direct": get}
            for call in calls.values():
                for _ in range(plan.call_warmup):
                    await call()
            cpu = {name: float("inf") for name in calls}
            for _ in range(2):  # interleaved, so drift hits all three alike
                for name, call in calls.items():
                    cpu[name] = min(cpu[name], await _cpu_per_call(call, runs // 2, rounds))
    own = cpu["read"] - cpu["noop"] - cpu["direct"]
    report.add(
        Row(f"own CPU per read, in process (canned upstream), n={runs * rounds}", f"{cpu['read'] * 1e6:.0f} us",
            f"noop {cpu['noop'] * 1e6:.0f} us + direct {cpu['direct'] * 1e6:.0f} us",
            f"own {own * 1e6:.0f} us ({len(body)} B upstream body)", f"<= {OVERHEAD_TARGET_S * 1e6:.0f} us",
            verdict(own <= OVERHEAD_TARGET_S)),
    )  # fmt: skip
