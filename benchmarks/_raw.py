"""A raw JSON-RPC driver over stdio: one line out, one line back, nothing else on the client side.

The per-call rows time servers through this driver rather than the SDK's client, so what is measured is the server
(and its upstream) and not the client's own work (the SDK's client validates every structured result against the
tool's output schema with jsonschema). The client's remaining cost, writing one line and parsing the reply, is the
same for every server in the table and grows only with the reply's size, as it would for any real client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio
from _procs import REPO, SPAWN_TIMEOUT_S
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp_types.version import LATEST_HANDSHAKE_VERSION

MAX_LINE = 10_000_000


@dataclass
class RawSession:
    proc: Process
    reader: BufferedByteReceiveStream
    next_id: int = field(default=1)

    async def send(self, message: dict[str, object]) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send(json.dumps(message).encode() + b"\n")

    async def request(self, method: str, params: dict[str, object]) -> dict[str, Any]:
        """Send one request and return its reply's `result` (notifications and other ids are skipped)."""
        request_id = self.next_id
        self.next_id += 1
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            message: dict[str, Any] = json.loads(await self.reader.receive_until(b"\n", MAX_LINE))
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"{method} answered a JSON-RPC error: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def call(self, tool: str, arguments: dict[str, object] | None = None) -> dict[str, Any]:
        """tools/call; a result with isError fails the phase (a benchmark of failures would be meaningless)."""
        result = await self.request("tools/call", {"name": tool, "arguments": arguments or {}})
        if result.get("isError"):
            raise RuntimeError(f"{tool} failed: {str(result.get('content'))[:300]}")
        return result


@asynccontextmanager
async def raw_session(
    args: list[str], env: dict[str, str], errlog: TextIO, *, close_stdin: bool = False
) -> AsyncIterator[RawSession]:
    """The server started, initialized (handshake-era `initialize`), and killed however the block ends; with
    `close_stdin`, first given up to 10 s to exit on its own once its stdin closes (a profiler writes on exit)."""
    async with await anyio.open_process(args, cwd=REPO, env=env, stderr=errlog, start_new_session=True) as proc:
        try:
            assert proc.stdout is not None
            session = RawSession(proc, BufferedByteReceiveStream(proc.stdout))
            with anyio.fail_after(SPAWN_TIMEOUT_S):
                client_info: dict[str, object] = {"name": "poolpilot-bench", "version": "0"}
                init: dict[str, object] = {
                    "protocolVersion": LATEST_HANDSHAKE_VERSION,
                    "capabilities": {},
                    "clientInfo": client_info,
                }
                await session.request("initialize", init)
                await session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            yield session
        finally:
            if close_stdin and proc.stdin is not None:
                await proc.stdin.aclose()
                with anyio.move_on_after(10):
                    await proc.wait()
            if proc.returncode is None:
                proc.kill()
