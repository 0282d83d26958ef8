"""Plan resolvers of the guarded cluster changes (cluster_tools.py): the configuration PATCH and the resize.

Each reads fresh state, checks everything it can before anything is sent (engine, ranges DigitalOcean
documents, the size against GET /v2/databases/options, the pool budget at the new size), and shows before →
after per field. Nothing is sent when a plan raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.mcpserver import Context

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError, validation_error
from poolpilot.server.kernel.guard import Change, Plan, Preview
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.tools.digitalocean import budget as budgets
from poolpilot.tools.digitalocean import clusterapi
from poolpilot.tools.digitalocean.client import PROVIDER
from poolpilot.tools.digitalocean.cluster_models import (
    CONFIG_FIELDS,
    PGBOUNCER_FIELDS,
    ApiOptions,
    AutodbIdleTimeout,
    AutodbMaxDbConnections,
    AutodbPoolSize,
    MaxConnections,
    MinPoolSize,
    NumNodes,
    ServerIdleTimeout,
    ServerLifetime,
    SizeSlug,
    StartupParameters,
    StorageMib,
)
from poolpilot.tools.digitalocean.lookups import both, budget_of, client
from poolpilot.tools.digitalocean.models import PG_ENGINES, ApiCluster, Budget, ClusterId, PoolMode
from poolpilot.tools.digitalocean.plans import conflict

__all__ = ["ConfigUpdate", "ResizeData", "plan_resize", "plan_update_config", "scalar"]


def scalar(value: object) -> str | int | bool | None:
    """A configuration value as the preview shows it (a list becomes its items, comma-separated)."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _not_pg(cluster: ApiCluster, what: str) -> PoolpilotError:
    return PoolpilotError(
        ErrorInfo(
            code="not_supported",
            message=f"{what} exist only on PostgreSQL clusters (engine pg); {quote(cluster.name)} has engine "
            f"{quote(cluster.engine)}, so nothing was sent",
            hint="Use a PostgreSQL cluster: digitalocean_list_clusters(engine='pg').",
            provider=PROVIDER,
        )
    )


@dataclass(frozen=True)
class ConfigUpdate:
    cluster: ApiCluster
    current: dict[str, object]
    body: dict[str, object]  # what the PATCH sends: {"pgbouncer": {...}, "max_connections": n}


async def plan_update_config(
    ctx: Context,
    cluster_id: ClusterId,
    min_pool_size: MinPoolSize | None,
    server_idle_timeout: ServerIdleTimeout | None,
    server_lifetime: ServerLifetime | None,
    server_reset_query_always: bool | None,
    ignore_startup_parameters: StartupParameters | None,
    autodb_pool_mode: PoolMode | None,
    autodb_pool_size: AutodbPoolSize | None,
    autodb_max_db_connections: AutodbMaxDbConnections | None,
    autodb_idle_timeout: AutodbIdleTimeout | None,
    max_connections: MaxConnections | None,
) -> Plan[ConfigUpdate]:
    given = {
        "min_pool_size": min_pool_size,
        "server_idle_timeout": server_idle_timeout,
        "server_lifetime": server_lifetime,
        "server_reset_query_always": server_reset_query_always,
        "ignore_startup_parameters": ignore_startup_parameters,
        "autodb_pool_mode": autodb_pool_mode,
        "autodb_pool_size": autodb_pool_size,
        "autodb_max_db_connections": autodb_max_db_connections,
        "autodb_idle_timeout": autodb_idle_timeout,
        "max_connections": max_connections,
    }
    # Only the given arguments are sent; every other setting keeps its value.
    wanted: dict[str, object] = {f: v for f, v in given.items() if v is not None}
    if not wanted:
        raise validation_error(
            "arguments",
            "nothing to change",
            allowed=list(CONFIG_FIELDS),
            hint="Give at least one of the allowed arguments (omitted ones keep their value); nothing was sent.",
        )
    do = client(ctx)
    cluster = await do.get_cluster(cluster_id)
    if cluster.engine != "pg":
        raise _not_pg(cluster, "the PgBouncer settings")
    current = (await clusterapi.get_config(do, cluster_id)).flat()
    now_max = current["max_connections"]
    asked_max = wanted.get("max_connections")
    if isinstance(asked_max, int) and isinstance(now_max, int) and asked_max < now_max:
        raise validation_error(
            "max_connections",
            f"cannot be lowered: DigitalOcean refuses to decrease it once set (now {now_max})",
            hint=f"Give max_connections >= {now_max}, or leave it out; nothing was sent.",
            provider=PROVIDER,
        )
    changes = [
        Change(field=f, before=scalar(current[f]), after=scalar(wanted[f]))
        for f in CONFIG_FIELDS
        if f in wanted and wanted[f] != current[f]
    ]
    bouncer = {f: wanted[f] for f in PGBOUNCER_FIELDS if f in wanted}
    body: dict[str, object] = {"pgbouncer": bouncer} if bouncer else {}
    if "max_connections" in wanted:
        body["max_connections"] = wanted["max_connections"]
    impact = [
        f"DigitalOcean applies the PgBouncer settings to every pool of {quote(cluster.name)}; "
        "new values take effect for new server connections"
    ]
    if any(c.field == "max_connections" for c in changes):
        impact.append(
            "changing max_connections restarts PostgreSQL (every connection drops) and it can never be lowered"
        )
    preview = Preview(
        action="update cluster config",
        target=f"cluster {quote(cluster.name)} ({cluster.id})",
        changes=changes,
        impact="; ".join(impact) + ".",
    )
    no_change = None
    if not changes:
        same = ", ".join(f"{f} {scalar(current[f])!r}" for f in CONFIG_FIELDS if f in wanted)
        no_change = f"Cluster {quote(cluster.name)} already has {same}; nothing was sent."
    return Plan(
        preview=preview,
        fingerprint=fingerprint({"cluster": cluster.id, "config": current}),
        data=ConfigUpdate(cluster, current, body),
        no_change=no_change,
    )


@dataclass(frozen=True)
class ResizeData:
    cluster: ApiCluster
    num_nodes: int  # as asked, or the cluster's own count when not given
    budget_before: Budget | None  # None: not a PostgreSQL cluster, so no pools and no pool budget
    budget_after: Budget | None


def _sizes(cluster: ApiCluster, options: ApiOptions, num_nodes: int, size: str) -> None:
    """Refuse a node count or size slug DigitalOcean does not offer for this cluster's engine."""
    engine = options.options.get(cluster.engine)
    if engine is None or not engine.layouts:
        raise PoolpilotError(
            ErrorInfo(
                code="not_supported",
                message=f"DigitalOcean lists no sizes for engine {quote(cluster.engine)} (GET /v2/databases/options); "
                "nothing was sent",
                hint="Resize this cluster in the DigitalOcean console.",
                provider=PROVIDER,
            )
        )
    offered = engine.sizes_for(num_nodes)
    if offered is None:
        nodes = [str(layout.num_nodes) for layout in engine.layouts]
        raise validation_error(
            "num_nodes",
            f"is not offered for engine {quote(cluster.engine)}",
            allowed=nodes,
            hint="Use an allowed node count; nothing was sent.",
            provider=PROVIDER,
        )
    if size not in offered:
        raise validation_error(
            "size",
            f"is not offered for engine {quote(cluster.engine)} with {num_nodes} node(s)",
            allowed=offered,
            hint="Use an allowed size slug (digitalocean_list_cluster_options); nothing was sent.",
            provider=PROVIDER,
        )


async def plan_resize(
    ctx: Context, cluster_id: ClusterId, size: SizeSlug, num_nodes: NumNodes | None, storage_size_mib: StorageMib | None
) -> Plan[ResizeData]:
    do = client(ctx)
    cluster_r, options_r = await both(do.get_cluster(cluster_id), clusterapi.list_options(do))
    cluster = cluster_r.get()
    pg = cluster.engine in PG_ENGINES
    pools = await do.list_pools(cluster_id) if pg else []
    if cluster.status != "online":
        raise conflict(
            f"cluster {quote(cluster.name)} is {quote(cluster.status)}: DigitalOcean resizes only an online "
            "cluster; nothing was sent",
            f"Wait until it is online again (digitalocean_get_cluster(cluster_id={cluster.id!r})).",
        )
    num_nodes = num_nodes or cluster.num_nodes
    _sizes(cluster, options_r.get(), num_nodes, size)
    sizes = [p.size for p in pools]
    before = budget_of(cluster, sizes)
    after = budget_of(cluster.model_copy(update={"size": size}), sizes)
    if after.max is not None and after.allocated > after.max:
        raise PoolpilotError(
            ErrorInfo(
                code="budget_exceeded",
                message=f"at size {size} the pool budget of {quote(cluster.name)} would be {after.max}, below the "
                f"{after.allocated} connections its pools allocate; nothing was sent",
                hint="Shrink or delete pools first (digitalocean_list_pools), or pick a larger size.",
                provider=PROVIDER,
                field="size",
            )
        )
    candidates = [
        Change(field="size", before=cluster.size, after=size),
        Change(field="num_nodes", before=cluster.num_nodes, after=num_nodes),
        Change(field="pool_budget", before=before.max, after=after.max) if pg else None,
    ]
    if storage_size_mib is not None:
        candidates.append(Change(field="storage_size_mib", before=None, after=storage_size_mib))
    changes = [c for c in candidates if c is not None and c.before != c.after]
    ram = budgets.ram_gb_from_slug(size)
    budget_text = f"{before.max} → {after.max}" if after.max is not None else "unknown (the slug carries no RAM)"
    preview = Preview(
        action="resize cluster",
        target=f"cluster {quote(cluster.name)} ({cluster.id})",
        changes=changes,
        impact=(
            f"DigitalOcean moves {quote(cluster.name)} to {size} ({ram or '?'} GB RAM) on {num_nodes} node(s): "
            "the cluster shows 'resizing' until done (minutes to hours, with the data size), connections drop "
            "briefly at the switch-over, billing follows the new size"
            + (f"; pool budget {budget_text} ({after.allocated} allocated)." if pg else ".")
        ),
    )
    no_change = None
    if size == cluster.size and num_nodes == cluster.num_nodes and storage_size_mib is None:
        no_change = f"Cluster {quote(cluster.name)} already is {size} on {num_nodes} node(s); nothing was sent."
    state = {"cluster": cluster.id, "size": cluster.size, "nodes": cluster.num_nodes, "status": cluster.status}
    return Plan(
        preview=preview,
        fingerprint=fingerprint({**state, "allocated": before.allocated}),
        data=ResizeData(cluster, num_nodes, before if pg else None, after if pg else None),
        no_change=no_change,
    )
