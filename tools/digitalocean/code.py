"""DigitalOcean in pools as code: a pool's mode, size, database and user per cluster, under the cluster's budget.

Export reads every PostgreSQL cluster's pools, databases and users; plan refuses an unknown database or user, a
create missing a field, and any change on an engine whose pool writes the API does not document; apply sends one
request per step (a create whose answer was lost is read back by the client, never resent).
"""

from __future__ import annotations

from typing import Annotated, Literal, cast

import anyio
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from poolpilot.server.kernel.desired import ActualLocation, Planned, PoolsAsCode, SpecValue, Step
from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.guard import Change
from poolpilot.server.kernel.state import ProviderClient
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.tools.digitalocean.client import DigitalOceanClient
from poolpilot.tools.digitalocean.lookups import budget_of
from poolpilot.tools.digitalocean.models import PG_ENGINES, ApiCluster, PoolName
from poolpilot.tools.digitalocean.plans import cluster_key

__all__ = ["CODE", "DigitalOceanPool"]


class DigitalOceanPool(BaseModel):
    """A DigitalOcean pool: all four are needed to create one (user omitted: the inbound-user pool)."""

    model_config = ConfigDict(extra="forbid", title="digitalocean")

    mode: Literal["session", "transaction", "statement"] | None = None
    size: Annotated[StrictInt, Field(ge=1, le=10_000)] | None = None
    db: Annotated[StrictStr, Field(min_length=1, max_length=63)] | None = None
    user: Annotated[StrictStr, Field(min_length=1, max_length=63)] | None = None


class _Name(BaseModel):
    name: PoolName


def _spec(mode: str, size: int, db: str, user: str | None) -> dict[str, SpecValue]:
    spec: dict[str, SpecValue] = {"mode": mode, "size": size, "db": db}
    if user:
        spec["user"] = user
    return spec


async def _export(client: ProviderClient, location: str | None) -> list[ActualLocation]:
    do = cast(DigitalOceanClient, client)
    clusters = [c for c in await do.list_clusters() if c.engine in PG_ENGINES and location in (None, c.id, c.name)]
    found: list[ActualLocation] = []
    failures: list[PoolpilotError] = []
    async with anyio.create_task_group() as group:
        for cluster in clusters:
            group.start_soon(_cluster, do, cluster, found, failures)
    if failures:  # raised as itself, not inside an exception group
        raise failures[0]
    return sorted(found, key=lambda a: a.location)


async def _cluster(
    do: DigitalOceanClient, cluster: ApiCluster, found: list[ActualLocation], failures: list[PoolpilotError]
) -> None:
    try:
        found.append(await _read(do, cluster))
    except PoolpilotError as exc:
        failures.append(exc)


async def _read(do: DigitalOceanClient, cluster: ApiCluster) -> ActualLocation:
    pools = await do.list_pools(cluster.id)
    dbs = {d.name for d in await do.list_databases(cluster.id)}
    users = {u.name for u in await do.list_users(cluster.id)}
    specs = {p.name: _spec(p.mode, p.size, p.db, p.user or None) for p in pools}
    budget = budget_of(cluster, [p.size for p in pools])
    return ActualLocation(
        provider="digitalocean",
        location=cluster.id,
        name=cluster.name,
        pools=specs,
        fingerprints={name: fingerprint(spec) for name, spec in specs.items()},
        budget_max=budget.max,
        allocated=budget.allocated,
        facts={"dbs": dbs, "users": users, "engine": cluster.engine},
    )


def _plan(actual: ActualLocation, desired: dict[str, dict[str, SpecValue]], prune: bool) -> Planned:
    steps: list[Step] = []
    reasons: list[str] = []
    where = f"cluster {quote(actual.name or actual.location)}"
    dbs = cast(set[str], actual.facts["dbs"])
    users = cast(set[str], actual.facts["users"])
    for pool, want in sorted(desired.items()):
        have = actual.pools.get(pool)
        merged = {**(have or {}), **want}
        missing = [f for f in ("mode", "size", "db") if f not in merged]
        if missing:
            reasons.append(f"pool {quote(pool)} on {where}: a new pool needs {', '.join(missing)}")
            continue
        if have is None:
            try:
                _Name(name=pool)
            except ValueError:
                reasons.append(f"pool {quote(pool)} on {where}: not a pool name DigitalOcean accepts (3-60 chars)")
                continue
        changed = {k: v for k, v in merged.items() if have is None or have.get(k) != v}
        if not changed:
            continue
        if "db" in changed and merged["db"] not in dbs:
            reasons.append(f"pool {quote(pool)} on {where}: database {quote(str(merged['db']))} does not exist")
        if "user" in changed and merged["user"] not in users:
            reasons.append(f"pool {quote(pool)} on {where}: user {quote(str(merged['user']))} does not exist")
        before = int(have["size"]) if have else 0
        steps.append(
            Step(
                provider="digitalocean",
                location=actual.location,
                pool=pool,
                action="update" if have else "create",
                changes=[Change(field=k, before=(have or {}).get(k), after=v) for k, v in changed.items()],
                budget_delta=int(merged["size"]) - before,
                fingerprint=actual.fingerprints.get(pool, "absent"),
                spec=merged,
            )
        )
    if prune:
        for pool in sorted(set(actual.pools) - set(desired)):
            have = actual.pools[pool]
            steps.append(
                Step(
                    provider="digitalocean",
                    location=actual.location,
                    pool=pool,
                    action="delete",
                    changes=[Change(field=k, before=v, after=None) for k, v in have.items()],
                    budget_delta=-int(have["size"]),
                    fingerprint=actual.fingerprints[pool],
                )
            )
    if steps and actual.facts["engine"] != "pg":
        reasons.append(f"{where} has engine {actual.facts['engine']}: the API documents pool changes on pg only")
    return steps, reasons


async def _apply(client: ProviderClient, step: Step) -> str | None:
    do = cast(DigitalOceanClient, client)
    spec = step.spec
    if step.action == "delete":
        return await do.delete_pool(step.location, step.pool)
    mode, size, db = str(spec["mode"]), int(spec["size"]), str(spec["db"])
    user = str(spec["user"]) if "user" in spec else None
    if step.action == "create":
        return (await do.add_pool(step.location, name=step.pool, mode=mode, size=size, db=db, user=user)).note
    await do.put_pool(step.location, step.pool, mode=mode, size=size, db=db, user=user)
    return None


CODE = PoolsAsCode(
    spec=DigitalOceanPool,
    export=_export,
    plan=_plan,
    apply_step=_apply,
    lock=lambda location, pool: cluster_key(location),
)
