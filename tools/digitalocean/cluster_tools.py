"""DigitalOcean cluster tools: the PostgreSQL configuration (read; PATCH guarded), the size options (read) and
the resize (guarded), the one way to raise a cluster's pool budget.

Resize: after the PUT (202) DigitalOcean shows the cluster `resizing` until it is done. With `wait=true` (the
default) the tool reads the cluster with backoff (5, 10, 20, then every 30 s) until it is `online` again or
`timeout_s` passes, and sends an MCP progress notification at every read. Reaching the timeout is not an error:
DigitalOcean accepted the resize and keeps running it (`wait_outcome="timed_out"`, follow it with
digitalocean_get_cluster). A cancelled call stops waiting at once; the resize continues on DigitalOcean.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.state import ToolSpec
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs, tool
from poolpilot.tools.digitalocean import clusterapi
from poolpilot.tools.digitalocean.client import DigitalOceanClient
from poolpilot.tools.digitalocean.cluster_models import (
    CONFIG_FIELDS,
    ApiConfig,
    AutodbIdleTimeout,
    AutodbMaxDbConnections,
    AutodbPoolSize,
    ClusterConfig,
    ClusterOptions,
    ClusterResize,
    ConfigChange,
    EngineSizes,
    MaxConnections,
    MinPoolSize,
    NumNodes,
    PgBouncerConfig,
    ServerIdleTimeout,
    ServerLifetime,
    SizeSlug,
    StartupParameters,
    StorageMib,
    WaitOutcome,
)
from poolpilot.tools.digitalocean.cluster_plans import (
    ConfigUpdate,
    ResizeData,
    plan_resize,
    plan_update_config,
    scalar,
)
from poolpilot.tools.digitalocean.lookups import client
from poolpilot.tools.digitalocean.models import ClusterId, Engine, PoolMode
from poolpilot.tools.digitalocean.plans import cluster_lock

__all__ = [
    "SPECS",
    "digitalocean_get_cluster_config",
    "digitalocean_list_cluster_options",
    "digitalocean_resize_cluster",
    "digitalocean_update_cluster_config",
]

_FIRST_POLL_S = 5.0
_MAX_POLL_S = 30.0
WaitArg = Annotated[bool, Field(strict=True, description="Follow the cluster until it is online or timeout_s passes")]
TimeoutArg = Annotated[int, Field(strict=True, ge=5, le=3600, description="Max seconds to wait")]


def _config(api: ApiConfig, cluster_id: str, engine: str, backend: str) -> ClusterConfig:
    bouncer = PgBouncerConfig.model_validate(api.pgbouncer.model_dump() if api.pgbouncer else {})
    return ClusterConfig(
        backend=backend, cluster_id=cluster_id, engine=engine, pgbouncer=bouncer, max_connections=api.max_connections
    )


def _from_flat(flat: dict[str, object], cluster_id: str, engine: str, backend: str) -> ClusterConfig:
    bouncer = {k: v for k, v in flat.items() if k != "max_connections"}
    return _config(ApiConfig.model_validate({"pgbouncer": bouncer, **flat}), cluster_id, engine, backend)


@tool(Safety.READ, "Get DO cluster config")
async def digitalocean_get_cluster_config(ctx: Context, cluster_id: ClusterId) -> ClusterConfig:
    """Get a PostgreSQL cluster's PgBouncer settings (the pgbouncer block) and max_connections."""
    do = client(ctx)
    cluster = await do.get_cluster(cluster_id)
    return _config(await clusterapi.get_config(do, cluster_id), cluster_id, cluster.engine, do.backend)


@guarded(title="Update DO cluster config", plan=plan_update_config, lock=cluster_lock)
async def digitalocean_update_cluster_config(
    ctx: Context,
    cluster_id: ClusterId,
    g: Guarded[ConfigUpdate],
    min_pool_size: MinPoolSize | None = None,
    server_idle_timeout: ServerIdleTimeout | None = None,
    server_lifetime: ServerLifetime | None = None,
    server_reset_query_always: Annotated[
        bool | None, Field(strict=True, description="DISCARD ALL in every mode")
    ] = None,
    ignore_startup_parameters: StartupParameters | None = None,
    autodb_pool_mode: PoolMode | None = None,
    autodb_pool_size: AutodbPoolSize | None = None,
    autodb_max_db_connections: AutodbMaxDbConnections | None = None,
    autodb_idle_timeout: AutodbIdleTimeout | None = None,
    max_connections: MaxConnections | None = None,
) -> ConfigChange:
    """Change PgBouncer settings or max_connections; only given fields change. Asks for confirmation first."""
    do = client(ctx)
    fields = {**g.decision.result_fields(do.backend), "cluster_id": cluster_id}
    engine = g.plan.data.cluster.engine
    before = _from_flat(g.plan.data.current, cluster_id, engine, do.backend)
    if not g.decision.approved:
        return ConfigChange.model_validate({**fields, "before": before})
    async with g.commit() as plan:
        await clusterapi.patch_config(do, cluster_id, plan.data.body)
    fields.update(executed=True)
    try:
        after_api = await clusterapi.get_config(do, cluster_id)
    except PoolpilotError as exc:
        message = (
            f"The PATCH was sent and accepted ({plan.preview.diff()}), but reading the configuration back failed "
            f"({exc.info.code}: {exc.info.message}); its state now is unknown."
        )
        return ConfigChange.model_validate({**fields, "message": message, "before": before})
    message = f"Configuration of cluster {cluster_id} updated ({plan.preview.diff()})."
    got = after_api.flat()
    asked = {c.field: c.after for c in plan.preview.changes}
    odd = [
        f"{f} {scalar(got[f])!r} (asked {asked[f]!r})"
        for f in CONFIG_FIELDS
        if f in asked and scalar(got[f]) != asked[f]
    ]
    if odd:
        message += " Reading it back shows other values than asked: " + ", ".join(odd) + "."
    after = _config(after_api, cluster_id, engine, do.backend)
    return ConfigChange.model_validate({**fields, "message": message, "before": before, "after": after})


@tool(Safety.READ, "List DO cluster sizes")
async def digitalocean_list_cluster_options(
    ctx: Context, engine: Annotated[Engine | None, Field(description="Only this engine")] = None
) -> ClusterOptions:
    """List the size slugs DigitalOcean offers per engine and node count (for digitalocean_resize_cluster)."""
    do = client(ctx)
    options = (await clusterapi.list_options(do)).options
    rows = [
        EngineSizes(engine=name, num_nodes=layout.num_nodes, sizes=layout.sizes)
        for name, found in sorted(options.items())
        if engine is None or name == engine
        for layout in found.layouts
    ]
    versions = {name: found.versions for name, found in sorted(options.items()) if engine is None or name == engine}
    return ClusterOptions(backend=do.backend, rows=rows, versions=versions)


# The token binds what changes; wait and timeout_s only say how long this call follows the resize.
@guarded(title="Resize DO cluster", plan=plan_resize, lock=cluster_lock, unbound=("wait", "timeout_s"))
async def digitalocean_resize_cluster(
    ctx: Context,
    cluster_id: ClusterId,
    size: SizeSlug,
    g: Guarded[ResizeData],
    num_nodes: Annotated[NumNodes | None, Field(description="Nodes (1-3); omit to keep the current count")] = None,
    storage_size_mib: StorageMib | None = None,
    wait: WaitArg = True,
    timeout_s: TimeoutArg = 900,
) -> ClusterResize:
    """Resize a cluster (size slug, node count): raises or lowers its pool budget. Asks for confirmation first."""
    do = client(ctx)
    data = g.plan.data
    fields = {
        **g.decision.result_fields(do.backend),
        "cluster_id": cluster_id,
        "size_before": data.cluster.size,
        "num_nodes_before": data.cluster.num_nodes,
        "size": size,
        "num_nodes": data.num_nodes,
        "budget_before": data.budget_before,
        "budget_after": data.budget_after,
    }
    if not g.decision.approved:
        return ClusterResize.model_validate(fields)
    async with g.commit() as plan:  # the lock covers the PUT, not the wait: the resize runs on DigitalOcean
        nodes = plan.data.num_nodes
        await clusterapi.resize(do, cluster_id, size=size, num_nodes=nodes, storage=storage_size_mib)
    fields.update(executed=True)
    name = quote(plan.data.cluster.name)
    follow = f"Follow it with digitalocean_get_cluster(cluster_id={cluster_id!r})."
    if not wait:
        message = f"Resize of {name} accepted ({plan.preview.diff()}); it runs on DigitalOcean. {follow}"
        return ClusterResize.model_validate(
            {**fields, "status": "resizing", "wait_outcome": "not_waited", "message": message}
        )
    status, outcome, failure = await _wait(ctx, do, cluster_id, timeout_s)
    if outcome == "online":
        message = f"Cluster {name} resized ({plan.preview.diff()}) and online again."
    elif outcome == "timed_out":
        still = f"still {quote(status)} after {timeout_s} s"
        message = f"Resize of {name} accepted; {still}, it continues on DigitalOcean. {follow}"
    else:
        message = f"Resize of {name} accepted, but following it failed ({failure}). {follow}"
    return ClusterResize.model_validate({**fields, "status": status, "wait_outcome": outcome, "message": message})


async def _wait(ctx: Context, do: DigitalOceanClient, cluster_id: str, timeout_s: int) -> tuple[str, WaitOutcome, str]:
    """Read the cluster until it is online again or the timeout passes; progress counts the seconds waited."""
    clock, sleep = do._clock, do.upstream._sleep
    started = clock()
    await ctx.report_progress(0, timeout_s, "resize accepted; waiting for the cluster to be online")
    status, delay = "resizing", _FIRST_POLL_S
    while True:
        remaining = started + timeout_s - clock()
        if remaining <= 0:
            return status, "timed_out", ""
        await sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_POLL_S)
        try:
            status = (await do.get_cluster(cluster_id)).status
        except PoolpilotError as exc:
            return status, "poll_failed", exc.info.text()
        waited = min(clock() - started, float(timeout_s))
        if status == "online":
            await ctx.report_progress(timeout_s, timeout_s, "cluster online")
            return status, "online", ""
        # MCP wants progress to grow with every notification: the seconds waited always do.
        await ctx.report_progress(waited, timeout_s, f"cluster {status} after {waited:.0f} s")


SPECS: tuple[ToolSpec, ...] = specs(
    digitalocean_get_cluster_config,
    digitalocean_update_cluster_config,
    digitalocean_list_cluster_options,
    digitalocean_resize_cluster,
)
