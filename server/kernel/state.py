"""What tools reach through `Context`: the app state built by the lifespan, and the toolset contract.

A provider reaches the rest only through its face (server/kernel/provider.py): the tools with their safety classes
and one `open` coroutine that builds the provider's client for the configured backend.

`open(ctx: OpenContext)` builds an `httpx2.AsyncClient` with explicit timeouts — `transport=ctx.sandbox.transport()`
and a placeholder base URL when `ctx.settings.provider_backend(name) == "sandbox"`, else the live URL — wraps it
in `Upstream(..., sleep=ctx.sleep, clock=ctx.clock, jitter=ctx.jitter)`, registers operator secrets with
`ctx.redactor.add(...)`, and returns a client object with `backend` and `aclose()`. Tools reach it with
`app_state(ctx).client(name, ClientClass)`. Raise `PoolpilotError` (server/errors.py) for every failure;
`server/app.py` renders it, redacts every result and audits every WRITE/DESTRUCTIVE call from the result's
`outcome`, `preview.target`, `backend`, `confirmed_by` and `job.job_id` fields. Test seams: tests/support.py.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

import anyio
from mcp.server.mcpserver import Context

from poolpilot.server.kernel.audit import AuditLog
from poolpilot.server.kernel.catalogue import Toolsets
from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.guard import Guard, Safety
from poolpilot.server.kernel.locks import TargetLocks
from poolpilot.server.kernel.redact import Redactor

if TYPE_CHECKING:
    from poolpilot.server.kernel.provider import Provider
    from poolpilot.server.kernel.sandbox import Sandbox

__all__ = ["AppState", "OpenContext", "ProviderClient", "ToolGroup", "ToolSpec", "app_state"]

C = TypeVar("C")


class ProviderClient(Protocol):
    backend: str

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ToolSpec:
    name: str
    fn: Callable[..., Awaitable[object]]
    safety: Safety
    title: str


@dataclass(frozen=True)
class ToolGroup:
    """The tools of one toolset a server offers, known by name and safety class; their specs (and modules) load
    together, at the first call of one of them or when tools/list has to be built."""

    toolset: str
    safety: Mapping[str, Safety]  # name -> class, in tools/list order
    load: Callable[[], Sequence[ToolSpec]]  # their specs, of these classes (Provider.specs refuses any other)


async def _real_sleep(seconds: float) -> None:
    await anyio.sleep(seconds)


@dataclass(frozen=True)
class OpenContext:
    """What a toolset's `open` gets: settings, the redactor, the sandbox (when a provider uses it) and the
    time and randomness seams that tests replace (retry backoff and job polling sleep through `sleep`; the
    backoff's jitter, a number in [0, 1), comes from `jitter`)."""

    settings: Settings
    redactor: Redactor
    sandbox: Sandbox | None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = _real_sleep
    jitter: Callable[[], float] = random.random


@dataclass
class AppState:
    settings: Settings
    guard: Guard
    audit: AuditLog
    redactor: Redactor
    sandbox: Sandbox | None = None
    clients: dict[str, ProviderClient] = field(default_factory=dict)
    # One writer per target (issue 17): guarded tools hold their target's key from the last re-read to the answer.
    locks: TargetLocks = field(default_factory=TargetLocks)
    # The enabled providers' faces (the fleet view reads providers only through them).
    providers: dict[str, Provider] = field(default_factory=dict)
    # The toolsets this server offers and the ones each session enabled at run time.
    toolsets: Toolsets = field(default_factory=Toolsets)
    # Opens the enabled providers' clients: set by the server's lifespan, run by `ready()` before the first tool
    # call or resource read, not at start (their modules are most of what start-up would import: issue 23).
    opener: Callable[[], Awaitable[None]] | None = None
    opened: bool = False
    _opening: anyio.Lock | None = field(default=None, repr=False)

    def open_with(self, opener: Callable[[], Awaitable[None]] | None) -> None:
        """Set by the lifespan as it starts (the opener) and ends (None): nothing is open either way."""
        self.opener, self.opened, self._opening = opener, False, None

    async def ready(self) -> None:
        """The clients are open (once per lifespan; concurrent first calls wait for the one that opens)."""
        if self.opened or self.opener is None:
            return
        if self._opening is None:
            self._opening = anyio.Lock()
        async with self._opening:
            if not self.opened and self.opener is not None:
                await self.opener()
                self.opened = True

    def client(self, provider: str, kind: type[C]) -> C:
        found = self.clients.get(provider)
        if found is None:
            raise PoolpilotError(
                ErrorInfo(
                    code="not_supported",
                    message=f"the {provider} provider is not enabled on this server",
                    hint="Ask the operator to enable it (--toolsets) and configure it.",
                    provider=provider,
                )
            )
        return cast(C, found)


def app_state(ctx: Context) -> AppState:
    return cast(AppState, ctx.request_context.lifespan_context)
