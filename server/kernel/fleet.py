"""The fleet view's shared vocabulary: uniform overview rows across providers, the findings advice rules produce,
and the adapter each provider's face declares to fill rows and contribute rules (issue 12, issue 16).

Each provider's adapter reads only its own client and writes rows and failures into a `Sink`; the cross-provider
toolset (tools/pools) fans out over the enabled faces' adapters and never imports a provider.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from poolpilot.server.kernel.desired import PoolsAsCode
from poolpilot.server.kernel.errors import ErrorInfo
from poolpilot.server.kernel.state import ProviderClient

__all__ = [
    "Advice",
    "Budget",
    "Finding",
    "FleetAdapter",
    "Overview",
    "OverviewRow",
    "ProviderFailure",
    "Rule",
    "Sink",
    "SuggestedCall",
    "Thresholds",
    "wanted",
]

Scalar = str | int | float | bool | None


class Budget(BaseModel):
    """A cluster's connection budget (max, allocated, available), as the provider's pool list reports it."""

    max: int | None = None  # null when the size slug carries no RAM (the API then decides)
    allocated: int
    available: int | None = None


class OverviewRow(BaseModel):
    provider: str
    location: str = Field(description="where the pool lives: a cluster, an instance, or a self-hosted instance name")
    location_name: str | None = None
    pool: str = Field(description="pool name, proxy id, or database")
    pool_label: str | None = Field(default=None, description="proxy name or database/user")
    mode: str | None = Field(default=None, description="pool mode, or the proxy pool type")
    size: int | None = None
    backend: str
    budget: Budget | None = None
    db: str | None = None
    user: str | None = None
    db_exists: bool | None = None
    user_exists: bool | None = None
    switchable: bool | None = None
    clients_waiting: int | None = None
    max_wait_s: float | None = None
    saturation: str | None = None
    server_limit: int | None = Field(default=None, description="the server-side connection limit when set")
    # For the provider's own rules, never in a result: the sizes the location could be resized to, smallest
    # first ([]: none larger; None: unknown, e.g. the provider's size list could not be read).
    larger_sizes: list[str] | None = Field(default=None, exclude=True)


class ProviderFailure(BaseModel):
    provider: str
    location: str | None = None
    error: ErrorInfo


class Overview(BaseModel):
    backend: str = Field(default="mixed", description="sandbox, live, or mixed across providers")
    rows: list[OverviewRow]
    errors: list[ProviderFailure] = Field(default_factory=list)


class SuggestedCall(BaseModel):
    tool: str
    arguments: dict[str, str | int | bool]


class Finding(BaseModel):
    rule: str
    severity: Literal["info", "warning", "critical"]
    provider: str
    location: str
    pool: str | None = None
    evidence: dict[str, Scalar]
    explanation: str
    suggested_call: SuggestedCall | None = None


class Advice(BaseModel):
    backend: str = "mixed"
    findings: list[Finding]
    errors: list[ProviderFailure] = Field(default_factory=list)
    thresholds: dict[str, float]


@dataclass(frozen=True)
class Thresholds:
    """What the advice rules compare against (`POOLPILOT_ADVISE_*`, and what providers contribute)."""

    budget_warn: float = 0.9
    session_share: float = 0.25
    waiting_clients: int = 0
    max_wait_s: float = 1.0
    # How far a pool may grow in one suggestion (×), before the server limit caps it.
    growth: float = 2.0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass
class Sink:
    """Where a provider's adapter puts its rows, and its failures (one per location, or for the whole provider)."""

    rows: list[OverviewRow] = field(default_factory=list)
    errors: list[ProviderFailure] = field(default_factory=list)

    def fail(self, provider: str, location: str | None, info: ErrorInfo) -> None:
        self.errors.append(ProviderFailure(provider=provider, location=location, error=info))


Rule = Callable[[Overview, Thresholds], list[Finding]]


@dataclass(frozen=True)
class FleetAdapter:
    # Read every location (or only `location`, an id or name) through the provider's client into the sink.
    collect: Callable[[ProviderClient, str | None, Sink], Awaitable[None]]
    rules: tuple[Rule, ...] = ()
    # The `resize_pool` prompt's steps, formatted with `location` and `pool` (already quoted).
    resize_steps: str = ""
    # What `location` means for this provider, for descriptions ("DO cluster id", …).
    location: str = "location"
    # Pools as code (export, plan, apply; server/kernel/desired.py); None: the provider takes no part.
    code: PoolsAsCode | None = None


def wanted(location: str | None, *names: str | None) -> bool:
    """Whether a location with these ids/names is in the view (no `location` filter: every one is)."""
    return location is None or location in names
