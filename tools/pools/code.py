"""Pools as code, across providers: read the scope, diff it against the document, order the steps budget-safely.

Each enabled provider takes part through its face's fleet adapter (`FleetAdapter.code`, server/kernel/desired.py):
it reads its locations, validates and diffs its own fields, and applies one step. Here the steps of every location
are put in one order — deletes and shrinks first, then changes that move no budget, then grows and creates — so a
shared budget (a DigitalOcean cluster's) never goes over its limit mid-way, and the plan is refused, with every
reason at once, when something cannot be done. `plan_id` hashes the document, the steps and every pool's state
fingerprint in the scope: any change of either makes another plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import anyio
from pydantic import BaseModel, Field, ValidationError

from poolpilot.server.kernel.desired import ActualLocation, DesiredState, PoolsAsCode, SpecValue, Step
from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.state import AppState
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint

__all__ = ["BudgetLine", "Computed", "DriftLine", "PoolsPlan", "coders", "compute", "export", "read_scope"]

_MAX_REASONS = 50


class BudgetLine(BaseModel):
    provider: str
    location: str
    max: int | None = Field(default=None, description="null: unknown (the provider enforces it)")
    before: int
    after: int
    peak: int = Field(default=0, description="the highest allocation after any step, in the plan's order")


class DriftLine(BaseModel):
    provider: str
    location: str
    create: int = 0
    update: int = 0
    delete: int = 0
    switch: int = 0
    unchanged: int = 0


class PoolsPlan(BaseModel):
    backend: str
    plan_id: str
    changes: bool
    summary: str
    steps: list[Step]
    budgets: list[BudgetLine]
    drift: list[DriftLine]


@dataclass
class Computed:
    plan: PoolsPlan
    actual: dict[tuple[str, str], ActualLocation]


def coders(state: AppState) -> dict[str, PoolsAsCode]:
    """The enabled providers that take part in pools as code, in registry order."""
    found: dict[str, PoolsAsCode] = {}
    for name, face in state.providers.items():
        adapter = face.fleet() if face.fleet is not None and name in state.clients else None
        if adapter is not None and adapter.code is not None:
            found[name] = adapter.code
    return found


def _refuse(reasons: list[str], hint: str) -> PoolpilotError:
    shown = reasons[:_MAX_REASONS]
    more = f" (and {len(reasons) - len(shown)} more)" if len(reasons) > len(shown) else ""
    numbered = "; ".join(f"({i}) {r}" for i, r in enumerate(shown, 1))
    return PoolpilotError(
        ErrorInfo(
            code="validation_error",
            message=f"the plan cannot be made, {len(reasons)} reason(s): {numbered}{more}; nothing was changed",
            hint=hint,
            field="document",
        )
    )


async def read_scope(
    state: AppState, wanted: Iterable[tuple[str, str | None]]
) -> dict[tuple[str, str], ActualLocation]:
    """Read each (provider, location or None for all) once, providers in parallel; a failed read fails the call
    (a plan over a partial read could delete what it did not see)."""
    code = coders(state)
    by_provider: dict[str, set[str | None]] = {}
    for provider, location in wanted:
        by_provider.setdefault(provider, set()).add(location)
    found: dict[tuple[str, str], ActualLocation] = {}
    failures: list[PoolpilotError] = []

    async def one(provider: str, location: str | None) -> None:
        try:
            for actual in await code[provider].export(state.clients[provider], location):
                found[(provider, actual.location)] = actual
        except PoolpilotError as exc:
            failures.append(exc)

    timeout_s = state.settings.overview_timeout_s
    with anyio.move_on_after(timeout_s) as scope:
        async with anyio.create_task_group() as group:
            for provider, locations in by_provider.items():
                for location in [None] if None in locations else sorted(loc for loc in locations if loc):
                    group.start_soon(one, provider, location)
    if scope.cancelled_caught:
        raise PoolpilotError(
            ErrorInfo(
                code="timeout",
                message=f"reading the pools did not finish within {timeout_s:g} s; nothing was changed",
                hint="Retry, or narrow the document to fewer locations.",
            )
        )
    if failures:
        raise failures[0]
    return found


async def export(state: AppState, provider: str | None, location: str | None) -> DesiredState:
    chosen = [p for p in coders(state) if provider in (None, p)]
    actual = await read_scope(state, [(p, location) for p in chosen])
    pools = [
        {"provider": a.provider, "location": a.location, "pool": pool, "spec": spec}
        for (_, _), a in sorted(actual.items())
        for pool, spec in sorted(a.pools.items())
    ]
    scopes = [{"provider": p, "location": location} if location else {"provider": p} for p in chosen]
    try:
        return DesiredState.model_validate({"scopes": scopes, "pools": pools})
    except ValidationError:
        raise PoolpilotError(
            ErrorInfo(
                code="upstream_error",
                message="a pool or location name read from a provider does not follow poolpilot's name rule "
                "(hidden characters, dot segments, length), so it cannot be written in a document",
                hint="Export a narrower scope (provider, location) that leaves that pool out.",
            )
        ) from None


def _spec_errors(exc: ValidationError, where: str) -> list[str]:
    # Field and reason only, never the value (it may be a secret typed into the wrong field).
    return [
        f"{where}.spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    ]


def _validated(
    state: AppState, doc: DesiredState
) -> tuple[dict[tuple[str, str], dict[str, dict[str, SpecValue]]], list[str]]:
    code = coders(state)
    reasons: list[str] = []
    desired: dict[tuple[str, str], dict[str, dict[str, SpecValue]]] = {}
    for i, entry in enumerate(doc.pools):
        where = f"pools[{i}]"
        if entry.provider not in code:
            reasons.append(f"{where}.provider: not an enabled provider here (use {', '.join(code) or 'none'})")
            continue
        try:
            spec = code[entry.provider].spec.model_validate(entry.spec).model_dump(exclude_none=True)
        except ValidationError as exc:
            reasons += _spec_errors(exc, where)
            continue
        at = desired.setdefault((entry.provider, entry.location), {})
        if entry.pool in at:
            reasons.append(f"{where}: {entry.provider} {quote(entry.location)} {quote(entry.pool)} is listed twice")
        at[entry.pool] = spec
    for i, scope in enumerate(doc.scopes):
        if scope.provider not in code:
            reasons.append(f"scopes[{i}].provider: not an enabled provider here (use {', '.join(code) or 'none'})")
    return desired, reasons


def _phase(step: Step) -> int:
    if step.action == "delete" or step.budget_delta < 0:
        return 0
    return 2 if step.action == "create" or step.budget_delta > 0 else 1


async def compute(state: AppState, doc: DesiredState) -> Computed:
    """The plan for `doc` from fresh reads; raises `validation_error` listing every reason it cannot be done."""
    desired, reasons = _validated(state, doc)
    wanted = {(p, loc) for p, loc in desired} | {(s.provider, s.location) for s in doc.scopes}
    code = coders(state)
    actual = await read_scope(state, [w for w in wanted if w[0] in code])
    by_name = {(a.provider, a.name): key for key, a in actual.items() if a.name}
    resolved: dict[tuple[str, str], dict[str, dict[str, SpecValue]]] = {}
    for (provider, location), pools in desired.items():
        key = (provider, location) if (provider, location) in actual else by_name.get((provider, location))
        if key is None:
            reasons.append(f"{provider} location {quote(location)} was not found")
            continue
        resolved.setdefault(key, {}).update(pools)
    steps: list[Step] = []
    in_scope: set[tuple[str, str]] = set(resolved)
    for key, a in actual.items():
        covering = [s for s in doc.scopes if s.provider == a.provider and s.location in (None, a.location, a.name)]
        if covering:
            in_scope.add(key)
        prune = any(s.prune for s in covering)
        if key in in_scope:
            found, why = code[a.provider].plan(a, resolved.get(key, {}), prune)
            steps += found
            reasons += why
    _budgets(actual, in_scope, steps, reasons)  # the totals do not depend on the order
    if reasons:
        raise _refuse(reasons, "Fix the document (or the pools it names) for every reason listed, then plan again.")
    steps.sort(key=lambda s: (_phase(s), s.provider, s.location, s.pool))
    for n, step in enumerate(steps, 1):
        step.n = n
    budgets = _budgets(actual, in_scope, steps, [])
    prints = {
        f"{p}/{loc}/{pool}": fp for (p, loc) in sorted(in_scope) for pool, fp in actual[(p, loc)].fingerprints.items()
    }
    plan_id = fingerprint(
        {
            "document": doc.model_dump(mode="json"),
            "steps": [s.model_dump(mode="json") for s in steps],
            "fingerprints": prints,
        }
    )
    drift = _drift(actual, in_scope, steps)
    backends = {state.clients[p].backend for p, _ in in_scope} or {"mixed"}
    plan = PoolsPlan(
        backend=backends.pop() if len(backends) == 1 else "mixed",
        plan_id=plan_id,
        changes=bool(steps),
        summary=_summary(steps, drift),
        steps=steps,
        budgets=budgets,
        drift=drift,
    )
    return Computed(plan, actual)


def _budgets(
    actual: dict[tuple[str, str], ActualLocation], in_scope: set[tuple[str, str]], steps: list[Step], reasons: list[str]
) -> list[BudgetLine]:
    lines = []
    for key in sorted(in_scope):
        a = actual[key]
        if a.allocated is None:
            continue
        mine = [s for s in steps if (s.provider, s.location) == key]
        now, peak = a.allocated, a.allocated if not mine else 0
        for step in mine:
            now += step.budget_delta
            peak = max(peak, now)
        if a.budget_max is not None and now > a.budget_max and mine:
            reasons.append(
                f"{a.provider} {quote(a.name or a.location)}: the pools would allocate {now} of {a.budget_max} "
                f"connections ({now - a.budget_max} over budget)"
            )
        lines.append(
            BudgetLine(
                provider=a.provider, location=a.location, max=a.budget_max, before=a.allocated, after=now, peak=peak
            )
        )
    return lines


def _drift(
    actual: dict[tuple[str, str], ActualLocation], in_scope: set[tuple[str, str]], steps: list[Step]
) -> list[DriftLine]:
    lines = []
    for key in sorted(in_scope):
        line = DriftLine(provider=key[0], location=key[1])
        touched = set()
        for step in steps:
            if (step.provider, step.location) == key:
                setattr(line, step.action, getattr(line, step.action) + 1)
                touched.add(step.pool)
        line.unchanged = len(set(actual[key].pools) - touched)
        lines.append(line)
    return lines


def _summary(steps: list[Step], drift: list[DriftLine]) -> str:
    if not steps:
        return f"No changes: {sum(d.unchanged for d in drift)} pools at {len(drift)} locations match the document."
    counts = {a: sum(1 for s in steps if s.action == a) for a in ("create", "update", "delete", "switch")}
    text = ", ".join(f"{n} {a}" for a, n in counts.items() if n)
    where = len({(s.provider, s.location) for s in steps})
    return f"{len(steps)} steps at {where} locations: {text}."
