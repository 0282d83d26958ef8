"""Test seams and shared harness pieces.

A manual clock and an instant sleep that advances it; a sandbox-backed server factory; an MCP client session on
it that answers elicitation questions as told (both protocol generations: `MODES`); the result checks every
harness uses; and `served`, the sandbox on a real loopback port (served as `poolpilot sandbox` serves it, in a
thread) for the live code path.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
from mcp import Client
from mcp.client.session import ClientRequestContext, ElicitationFnT
from mcp_types import CallToolResult, ElicitRequestParams, ElicitResult

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.sandbox import FaultPlan
from poolpilot.server.kernel.sandbox import Sandbox as Composite
from poolpilot.server.kernel.wire_server import WireServer
from poolpilot.server.shell.app import PoolpilotServer, build_app, default_toolsets
from poolpilot.server.shell.registry import faces
from poolpilot.tools.digitalocean.sandbox import DigitalOceanSandbox
from poolpilot.tools.taurusdb.sandbox import TaurusDBSandbox

__all__ = [
    "MODES",
    "Answer",
    "ManualClock",
    "Sandbox",
    "SandboxSession",
    "Serve",
    "client_options",
    "error_model",
    "free_port",
    "make_app",
    "ok_data",
    "open_client",
    "sandbox_session",
    "sandbox_settings",
    "served",
]

MODES = ("legacy", "auto")  # the initialize handshake, and the 2026-07-28 protocol (server/discover)
Answer = Literal["yes", "no", "decline", "cancel"]


class Sandbox(Composite):
    """Every registered provider's fake in one app, built as the server builds it, with provider knobs by keyword
    (`do_require_token=`, `job_seconds=`, …) and typed access to the two fakes the tests inspect."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        faults: FaultPlan | None = None,
        password: str = "sbx",
        timeout_s: float = 3600.0,
        **knobs: object,
    ) -> None:
        fakes = Composite.fakes_of(faces(), clock=clock, password=password, knobs=knobs)
        super().__init__(fakes, sleep=sleep, faults=faults, timeout_s=timeout_s)

    @property
    def digitalocean(self) -> DigitalOceanSandbox:
        return self.fake("digitalocean", DigitalOceanSandbox)

    @property
    def taurusdb(self) -> TaurusDBSandbox:
        return self.fake("taurusdb", TaurusDBSandbox)


S = TypeVar("S", bound="SandboxSession")


class ManualClock:
    """Time that moves only when told to (or when something sleeps on it)."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def sandbox_toolsets() -> tuple[str, ...]:
    """Every toolset of the providers the sandbox serves (and the cross-provider one), extra toolsets included."""
    return tuple(n for f in faces() if f.backend_rule != "live" for n in f.toolset_names())


def every_toolset(settings: Settings) -> tuple[str, ...]:
    """The toolsets on by default with these settings, plus every extra toolset of those providers."""
    on = default_toolsets(settings)
    return tuple(n for f in faces() if f.name in on for n in f.toolset_names())


def sandbox_settings(audit: Path, **overrides: Any) -> Settings:
    return Settings(backend="sandbox", audit_log=str(audit), **overrides)


def make_app(
    audit: Path,
    *,
    sandbox: Sandbox | None = None,
    clock: ManualClock | None = None,
    jitter: Callable[[], float] | None = None,
    **overrides: Any,
) -> tuple[PoolpilotServer, Sandbox, ManualClock]:
    """The app on the sandbox, on a manual clock (and with `jitter`, when given, behind every retry backoff). The
    providers on by default have every toolset on, the extra ones too, unless `toolsets` is given (`None`: the
    server's default)."""
    clock = clock or ManualClock()
    sandbox = sandbox or Sandbox(clock=clock, sleep=clock.sleep, faults=FaultPlan())
    settings = sandbox_settings(audit, **overrides)
    if "toolsets" not in overrides:
        settings = replace(settings, toolsets=every_toolset(settings))
    app = build_app(settings, sandbox=sandbox, clock=clock, sleep=clock.sleep, jitter=jitter)
    return app, sandbox, clock


@asynccontextmanager
async def open_client(app: PoolpilotServer, **kwargs: Any) -> AsyncIterator[Client]:
    async with Client(app, raise_exceptions=True, **kwargs) as client:
        yield client


# -- sessions --------------------------------------------------------------------------------------


def client_options(
    mode: str, answer: Answer | None, asked: list[str], on_ask: Callable[[], None] | None = None
) -> dict[str, Any]:
    """`open_client` keywords: the protocol `mode`, and with an `answer` a client that can be asked.

    `answer=None`: the client cannot be asked (token path); otherwise every question is recorded in `asked` and
    answered so. `on_ask` runs while the user "thinks", before the answer goes back.
    """
    options: dict[str, Any] = {"mode": mode}
    if answer is not None:

        async def elicit(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
            asked.append(params.message)
            if on_ask is not None:
                on_ask()
            if answer == "yes":
                return ElicitResult(action="accept", content={"confirm": True})
            if answer == "no":
                return ElicitResult(action="accept", content={"confirm": False})
            return ElicitResult(action=answer)

        callback: ElicitationFnT = elicit
        options["elicitation_callback"] = callback
    return options


def ok_data(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a call that must succeed."""
    assert not result.is_error, result.content
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    return data


def error_model(result: CallToolResult) -> dict[str, Any]:
    """The error model of a call that must fail; its text starts with the code, as every error's does."""
    assert result.is_error, result.structured_content
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith(data["code"] + ": ")
    return data


@dataclass
class SandboxSession:
    """A real MCP client session on the in-process sandbox; providers' harnesses add what they assert with."""

    client: Client
    sandbox: Sandbox
    clock: ManualClock
    audit: Path
    asked: list[str] = field(default_factory=list)

    async def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        return await self.client.call_tool(tool, args)

    async def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        """Call a tool that must succeed; its structured result."""
        return ok_data(await self.call(tool, args))

    async def error(self, tool: str, **args: Any) -> dict[str, Any]:
        """Call a tool that must fail; the error model (code, message, hint, field, ...)."""
        return error_model(await self.call(tool, args))


@asynccontextmanager
async def sandbox_session(
    kind: type[S],
    tmp_path: Path,
    toolset: str,
    *,
    mode: str,
    answer: Answer | None,
    sandbox: Sandbox | None = None,
    clock: ManualClock | None = None,
    on_ask: Callable[[Sandbox], None] | None = None,
    **overrides: Any,
) -> AsyncIterator[S]:
    """A `kind` session on one provider's toolsets, its extra ones too (unless `toolsets` is given), bounded to 10 s;
    see `client_options`."""
    clock = clock or ManualClock()
    sandbox = sandbox or Sandbox(clock=clock, sleep=clock.sleep)
    audit = tmp_path / "audit.jsonl"
    overrides.setdefault("toolsets", next((f.toolset_names() for f in faces() if f.name == toolset), (toolset,)))
    app, sandbox, clock = make_app(audit, sandbox=sandbox, clock=clock, **overrides)
    asked: list[str] = []
    think = (lambda: on_ask(sandbox)) if on_ask is not None else None
    with anyio.fail_after(10):
        async with open_client(app, **client_options(mode, answer, asked, think)) as client:
            yield kind(client, sandbox, clock, audit, asked)


# -- the live code path ----------------------------------------------------------------------------


Serve = Callable[[Sandbox], str]  # a `serve` fixture: sandbox in, base URL out


def free_port() -> int:
    """A loopback port free right now, for a subprocess that binds it itself."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def served(sandbox: Sandbox) -> Iterator[str]:
    """The sandbox on a free loopback port, served as `poolpilot sandbox` serves it (`WireServer`) on an event loop
    in a background thread: its base URL `http://127.0.0.1:PORT`.

    The socket is bound here (port 0) and handed to the server, so there is no race for the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    loop = asyncio.new_event_loop()
    server = WireServer(sandbox)
    ready, stop = threading.Event(), asyncio.Event()

    async def run() -> None:
        await server.start(sock)
        ready.set()
        await stop.wait()
        await server.stop(1)

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "the sandbox did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        sock.close()
        assert not thread.is_alive(), "the sandbox did not stop"
        loop.close()
