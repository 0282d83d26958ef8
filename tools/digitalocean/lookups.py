"""What tools read and check before they act: the client, the cluster's engine, names, budget, paging.

Shared by the read tools (`tools.py`) and the write/destructive tools (`changes.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Generic, TypeVar

import anyio
from mcp.server.mcpserver import Context

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError, validation_error
from poolpilot.server.kernel.state import app_state
from poolpilot.server.kernel.text import quote
from poolpilot.tools.digitalocean import budget as budgets
from poolpilot.tools.digitalocean.client import PROVIDER, DigitalOceanClient
from poolpilot.tools.digitalocean.models import PG_ENGINES, ApiCluster, ApiPool, Budget, Pool, connection_from

__all__ = [
    "allow_secrets",
    "both",
    "budget_of",
    "budget_warning",
    "check_db",
    "check_user",
    "client",
    "cluster_and_pools",
    "page",
    "pool_result",
    "require_databases",
    "require_pools",
    "target",
]

A = TypeVar("A")
B = TypeVar("B")
R = TypeVar("R")

_NO_POOL_ENGINES_HINT = "Use a PostgreSQL cluster (engine pg): digitalocean_list_clusters(engine='pg')."
# DigitalOcean's OpenAPI documents the pool endpoints "for PostgreSQL database clusters" and lists advanced_pg
# (PostgreSQL Advanced Edition, public preview) as a separate engine without saying it takes pool writes.
_UNDOCUMENTED_WRITES = {"advanced_pg"}


def client(ctx: Context) -> DigitalOceanClient:
    return app_state(ctx).client(PROVIDER, DigitalOceanClient)


def allow_secrets(ctx: Context) -> bool:
    return app_state(ctx).settings.allow_secrets


def require_pools(cluster: ApiCluster, *, write: bool = False) -> None:
    """Pools exist only on PostgreSQL clusters (NOTES.md §5): reads on every PostgreSQL engine, writes on `pg`."""
    if write and cluster.engine in _UNDOCUMENTED_WRITES:
        raise PoolpilotError(
            ErrorInfo(
                code="not_supported",
                message=(
                    f"{cluster.name} has engine {cluster.engine}: DigitalOcean's API documents pool changes for "
                    "PostgreSQL clusters (engine pg) only, so poolpilot sends none here; nothing was changed"
                ),
                hint="Reading its pools works (digitalocean_list_pools); change them in the DigitalOcean console.",
                provider=PROVIDER,
            )
        )
    if cluster.engine not in PG_ENGINES:
        raise PoolpilotError(
            ErrorInfo(
                code="not_supported",
                message=(
                    f"connection pools exist only on PostgreSQL clusters (engine pg); {quote(cluster.name)} has engine "
                    f"{quote(cluster.engine)}, so nothing was changed"
                ),
                hint=_NO_POOL_ENGINES_HINT,
                provider=PROVIDER,
            )
        )


def require_databases(cluster: ApiCluster) -> None:
    """Databases and users are "not supported for Caching or Valkey clusters" (D/databases_list.yml)."""
    if cluster.engine in ("redis", "valkey"):
        raise PoolpilotError(
            ErrorInfo(
                code="not_supported",
                message=f"{quote(cluster.name)} is a {quote(cluster.engine)} cluster: it has no databases or users",
                hint="Use a PostgreSQL or MySQL cluster.",
                provider=PROVIDER,
            )
        )


def check_db(cluster: ApiCluster, db: str, field: str = "db") -> None:
    if cluster.db_names is not None and db not in cluster.db_names:
        raise validation_error(
            field,
            f"there is no such database on {quote(cluster.name)}",
            allowed=cluster.db_names,
            hint="Use an allowed database or create it (digitalocean_create_database); nothing was sent.",
            provider=PROVIDER,
        )


def check_user(cluster: ApiCluster, user: str) -> None:
    names = [u.name for u in cluster.users] if cluster.users is not None else None
    if names is not None and user not in names:
        raise validation_error(
            "user",
            f"there is no such user on {quote(cluster.name)}",
            allowed=names,
            hint="Use an allowed user; nothing was sent.",
            provider=PROVIDER,
        )


def budget_of(cluster: ApiCluster, sizes: Sequence[int]) -> Budget:
    total = budgets.budget(cluster.size)
    used = budgets.allocated(sizes)
    return Budget(max=total, allocated=used, available=budgets.available(total, used))


def budget_warning(cluster: ApiCluster) -> str | None:
    """Why poolpilot could not check a size against the budget, when it could not (the write still goes out)."""
    if budgets.budget(cluster.size) is not None:
        return None
    return (
        f"The connection budget of {cluster.name} is unknown (size {cluster.size!r} carries no RAM), so poolpilot "
        "did not check the size; DigitalOcean enforces it and refuses a size that does not fit."
    )


def pool_result(pool: ApiPool, cluster_id: str, backend: str, allow: bool) -> Pool:
    return Pool(
        **pool.row().model_dump(),
        backend=backend,
        cluster_id=cluster_id,
        connection=connection_from(pool.connection, allow_secrets=allow),
        private_connection=connection_from(pool.private_connection, allow_secrets=allow),
        standby_connection=connection_from(pool.standby_connection, allow_secrets=allow),
        standby_private_connection=connection_from(pool.standby_private_connection, allow_secrets=allow),
    )


def target(kind: str, name: str, cluster: ApiCluster) -> str:
    return f"{kind} {quote(name)} on cluster {quote(cluster.name)} ({cluster.id})"


class _Settled(Generic[R]):
    def __init__(self) -> None:
        self.value: R | None = None
        self.error: PoolpilotError | None = None
        self.done = False

    def get(self) -> R:
        if self.error is not None:
            raise self.error
        assert self.done
        return self.value  # type: ignore[return-value]


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[_Settled[A], _Settled[B]]:
    """Run two reads at once (one round trip of latency instead of two); each keeps its own error."""
    a: _Settled[A] = _Settled()
    b: _Settled[B] = _Settled()

    async def run(slot: _Settled[R], call: Awaitable[R]) -> None:
        try:
            slot.value = await call
            slot.done = True
        except PoolpilotError as exc:
            slot.error = exc

    async with anyio.create_task_group() as group:
        group.start_soon(run, a, first)
        group.start_soon(run, b, second)
    return a, b


async def cluster_and_pools(
    do: DigitalOceanClient, cluster_id: str, *, write: bool = False
) -> tuple[ApiCluster, list[ApiPool]]:
    """The cluster (engine, RAM, dbs, users) and its pools, read together; pools only for PostgreSQL."""
    cluster_r, pools_r = await both(do.get_cluster(cluster_id), do.list_pools(cluster_id))
    cluster = cluster_r.get()
    require_pools(cluster, write=write)
    return cluster, pools_r.get()


def page(items: Sequence[R], page_size: int, cursor: str | None) -> tuple[list[R], str | None]:
    start = int(cursor or 0)
    end = start + page_size
    return list(items[start:end]), (str(end) if end < len(items) else None)
