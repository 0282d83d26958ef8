"""The provider contract: one object per provider (its face, exported by the provider folder's `__init__.py`)
declares everything the rest of poolpilot needs from it. The kernel and the shell iterate the registered faces
and never name a provider; a new provider is its folder plus one registry line (server/shell/registry.py).

A face must be cheap to import: everything heavy (clients, models, the sandbox, psycopg) is imported inside the
callables, when they are first called.

    FACE = Provider(
        name="acme",                               # toolset id, tool-name prefix, settings key, fleet provider
        description="Acme Managed Pools: …",
        settings=_settings,                        # SettingsReader -> the provider's own frozen settings
        index={"acme_list_pools": "read", …},    # every tool -> its safety class, known without importing tools
        load=_load,                                # toolset name -> its tools' ToolSpecs (imports on first use)
        open=_open,                                # OpenContext -> the provider's client (backend, aclose)
        sandbox=_sandbox,                          # SandboxOptions -> a FakeProvider, or None: always live
        probes=_probes,                            # doctor: (Settings, timeout_s) -> checks that send reads
        fleet=FleetAdapter(collect=…, rules=…),    # uniform overview rows and advice rules
        env=(EnvVar("ACME_TOKEN", secret=True, description="API token"),),
        toolsets=(Toolset("acme_users", "Acme: users", ("acme_list_users",)),),  # extra ones, off by default
    )
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from poolpilot.server.kernel.config import Settings, SettingsReader
    from poolpilot.server.kernel.fleet import FleetAdapter
    from poolpilot.server.kernel.sandbox import FakeProvider, SandboxOptions
    from poolpilot.server.kernel.state import AppState, OpenContext, ProviderClient, ToolSpec

__all__ = [
    "Backend",
    "BackendRule",
    "Check",
    "EnvVar",
    "LocalCompanion",
    "Provider",
    "ProviderSettings",
    "SafetyName",
    "Status",
    "Toolset",
]

Status = Literal["ok", "warn", "fail"]
Backend = Literal["sandbox", "live"]
# How a provider's backend is chosen: "sandbox_or_live" follows --backend (auto: live when configured);
# "live" has no sandbox (a self-hosted service); "derived" is live as soon as any other enabled provider is.
BackendRule = Literal["sandbox_or_live", "live", "derived"]
# A tool's safety class as the index declares it (the values of server/kernel/guard.Safety).
SafetyName = Literal["read", "write", "destructive"]


class Check(BaseModel):
    """One `poolpilot doctor` line: ok / warn / fail, with the exact fix."""

    name: str
    status: Status
    detail: str
    fix: str | None = None


class ProviderSettings(Protocol):
    """What the kernel asks of a provider's own settings object."""

    def configured(self) -> bool:
        """Credentials or instances are set: with `--backend auto` the provider goes live."""
        ...

    def secrets(self) -> list[str]:
        """Every secret value, for the redactor."""
        ...

    def status(self, backend: Backend) -> str:
        """One line for doctor: which backend, where, and with what (never a secret value)."""
        ...

    def validate(self, backend: Backend) -> None:
        """Raise `ConfigError` for what cannot work on this backend (e.g. live without a region)."""
        ...


@dataclass(frozen=True)
class EnvVar:
    """A variable a client configuration should pass (`poolpilot config` writes placeholders, never values).
    `<NAME>` in the name stands for any upper-case name (one variable per instance)."""

    name: str
    secret: bool
    description: str


@dataclass(frozen=True)
class LocalCompanion:
    """A local instance `poolpilot sandbox --with-<name>` starts next to the fake APIs (a real service, never
    faked). `start()` returns its environment variables for `serve` and a stop function."""

    help: str
    missing: Callable[[], list[str]]
    start: Callable[[], tuple[dict[str, str], Callable[[], None]]]


@dataclass(frozen=True)
class Toolset:
    """One of a provider's extra toolsets: the tools it names are off unless `--toolsets` names it, `default_on`
    is set, or a session enables it at run time (`toolsets_enable`). The provider's own toolset (its `name`) holds
    every tool no extra toolset names. Extra toolsets keep the default tool list short (DECISIONS: ≤ 16)."""

    name: str
    description: str
    tools: tuple[str, ...]
    default_on: bool = False


@dataclass(frozen=True)
class Provider:
    name: str
    description: str
    settings: Callable[[SettingsReader], ProviderSettings]
    # Every tool, name -> safety class, in tools/list order. Start-up decides the tool list, --read-only, --tools,
    # refusals and toolsets_list from it alone, and imports the tool modules of the toolsets on only: those of a
    # provider that is off, or of a toolset no session enabled yet, never load. tests/server/test_tool_index.py
    # checks it against what `load` returns, and loading refuses a tool whose class differs (--read-only trusts it).
    index: Mapping[str, SafetyName]
    # The ToolSpecs of one of its toolsets, by toolset name (it may return more; only that toolset's are used).
    load: Callable[[str], tuple[ToolSpec, ...]]
    open: Callable[[OpenContext], Awaitable[ProviderClient]]
    backend_rule: BackendRule = "sandbox_or_live"
    sandbox: Callable[[SandboxOptions], FakeProvider] | None = None
    # Whether the toolset is on when --toolsets is not given (a self-hosted provider only once configured).
    default_on: Callable[[ProviderSettings], bool] = lambda _: True
    # Why the toolset cannot be enabled with these settings, as (problem, fix); None: it can.
    unusable: Callable[[ProviderSettings], tuple[str, str] | None] = lambda _: None
    probes: Callable[[Settings, float], Awaitable[list[Check]]] | None = None
    # Resources, resource templates and prompts, registered when the toolset is enabled; gets the enabled tools.
    extras: Callable[[MCPServer[AppState], AppState, frozenset[str]], None] | None = None
    # The fleet view (pools_overview, pools_advise): built on first use, so importing the face stays cheap.
    fleet: Callable[[], FleetAdapter] | None = None
    # Refuse what cannot work before speaking MCP (e.g. a DSN that does not parse); raises ConfigError.
    preflight: Callable[[ProviderSettings], None] = lambda _: None
    # `poolpilot sandbox`: lines describing this fake (base URL given) and the variables that point serve at it.
    sandbox_banner: Callable[[str, SandboxOptions], tuple[list[str], dict[str, str]]] | None = None
    env: tuple[EnvVar, ...] = ()
    companion: LocalCompanion | None = None
    # Advice thresholds this provider contributes to pools_advise (name -> value), from its settings.
    thresholds: Callable[[ProviderSettings], Mapping[str, float]] = field(default=lambda _: {})
    # Extra toolsets (off by default unless marked): each names some of this provider's tools.
    toolsets: tuple[Toolset, ...] = ()

    def toolset_names(self) -> tuple[str, ...]:
        """The provider's own toolset first, then its extra ones."""
        return (self.name, *(t.name for t in self.toolsets))

    def toolset_of(self, tool: str) -> str:
        """The toolset a tool of this provider belongs to."""
        return next((t.name for t in self.toolsets if tool in t.tools), self.name)

    def specs(self, toolset: str, names: Collection[str] | None = None) -> list[ToolSpec]:
        """The specs of `toolset`'s tools (only `names` when given), in index order, each checked against the
        index: a tool whose safety class is not the one declared there is refused (it would slip past
        --read-only)."""
        wanted = [n for n in self.index if self.toolset_of(n) == toolset and (names is None or n in names)]
        found = {spec.name: spec for spec in self.load(toolset)}
        missing = [n for n in wanted if n not in found]
        if missing:
            raise RuntimeError(f"{self.name}: toolset {toolset!r} did not load {missing[0]!r}")
        for name in wanted:
            if found[name].safety.value != self.index[name]:
                declared, actual = self.index[name], found[name].safety.value
                raise RuntimeError(f"{self.name}: {name!r} is {actual!r} but its index says {declared!r}")
        return [found[n] for n in wanted]

    def tools(self) -> tuple[ToolSpec, ...]:
        """Every tool's spec, every toolset loaded (`poolpilot call` and tests; start-up loads only those on)."""
        return tuple(spec for toolset in self.toolset_names() for spec in self.specs(toolset))
