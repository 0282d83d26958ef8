"""Pools as code (issue 21): the desired-state document, what a provider reports as actual, and a plan's steps.

The document is a list of pools keyed by provider + location + pool name, each with its provider's fields
(`spec`), plus scopes: which locations the plan reads, and whether pools unlisted there are deleted
(`prune`, default false: left alone). The kernel knows no provider's fields: each provider declares its spec model
and the hooks that read, diff and apply through its fleet adapter (`FleetAdapter.code`, a `PoolsAsCode`). The
cross-provider toolset (tools/pools) orders the steps budget-safely, hashes the plan, and applies it.

A spec field that is omitted means "leave it as it is"; `export` writes every field that is set, so an exported
document plans to no change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from poolpilot.server.kernel.guard import Change
from poolpilot.server.kernel.state import ProviderClient
from poolpilot.server.kernel.text import check_name

__all__ = [
    "Action",
    "ActualLocation",
    "DesiredState",
    "PoolEntry",
    "PoolsAsCode",
    "Scope",
    "SpecValue",
    "Step",
]

SpecValue = StrictStr | StrictInt | StrictBool
Action = Literal["create", "update", "delete", "switch"]
# The kernel's name rule (no hidden characters, no `.`/`..` segments), as for every name argument.
_Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(check_name)]


class PoolEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Annotated[str, Field(min_length=1, max_length=64)]
    location: _Name = Field(description="Where the pool is: a cluster, instance or server id (or name)")
    pool: _Name = Field(description="The pool's name or id at that location")
    spec: dict[str, SpecValue | None] = Field(default_factory=dict, description="The provider's fields; omitted: kept")


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Annotated[str, Field(min_length=1, max_length=64)]
    location: _Name | None = Field(default=None, description="Omitted: every location of the provider")
    prune: bool = Field(default=False, description="Delete pools here that the document does not list")


class DesiredState(BaseModel):
    """How the pools should look: `pools` keyed by provider + location + pool; `scopes` say what else is read."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    scopes: list[Scope] = Field(default_factory=list, max_length=100)
    pools: list[PoolEntry] = Field(default_factory=list, max_length=2000)


class Step(BaseModel):
    """One change at one pool. `fingerprint` is that pool's state when planned ("absent" before a create)."""

    n: int = 0
    provider: str
    location: str
    pool: str
    action: Action
    changes: list[Change] = Field(default_factory=list)
    budget_delta: int = 0
    fingerprint: str
    spec: dict[str, SpecValue] = Field(default_factory=dict)


@dataclass
class ActualLocation:
    """One location as read now: its pools (spec as export writes it, and a fingerprint each), the budget its
    pools share (`budget_max`, None: none or unknown) and what they allocate, and provider facts for `plan`."""

    provider: str
    location: str
    name: str | None
    pools: dict[str, dict[str, SpecValue]]
    fingerprints: dict[str, str]
    budget_max: int | None = None
    allocated: int | None = None  # None: this provider has no shared budget
    facts: dict[str, object] = field(default_factory=dict)


# What a provider's `plan` hook returns for one location: its steps (unordered), and every reason it is refused.
Planned = tuple[list[Step], list[str]]


@dataclass(frozen=True)
class PoolsAsCode:
    """A provider's part in pools as code, declared on its fleet adapter.

    - `spec`: the model of one entry's fields (extra fields forbidden); its JSON Schema goes into the document's.
    - `export(client, location)`: every location (or the one named, id or name) as `ActualLocation`s.
    - `plan(actual, desired, prune)`: the steps turning `actual` into `desired` (pool -> validated spec fields),
      and every reason that cannot be done (unknown database, not switchable, not editable, ...).
    - `apply_step(client, step)`: make the one change; a create whose answer was lost is read back, never resent.
      Returns a note (e.g. "read back after a lost answer") or None.
    - `lock(location, pool)`: the target lock key the provider's own tools take for that pool.
    """

    spec: type[BaseModel]
    export: Callable[[ProviderClient, str | None], Awaitable[list[ActualLocation]]]
    plan: Callable[[ActualLocation, dict[str, dict[str, SpecValue]], bool], Planned]
    apply_step: Callable[[ProviderClient, Step], Awaitable[str | None]]
    lock: Callable[[str, str], str]
