"""DigitalOcean tools: clusters, databases and users (read), and PgBouncer pools (read, create, update, delete).

Every argument is validated before anything is sent (models.py aliases, then the checks below that need the
cluster: engine, database and user names, the connection budget). Writes and destructive calls live in
`changes.py`; this module holds the reads, the shared helpers and the `TOOLSET`.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.state import ToolSpec
from poolpilot.server.kernel.tooldef import specs, tool
from poolpilot.tools.digitalocean import budget as budgets
from poolpilot.tools.digitalocean import changes
from poolpilot.tools.digitalocean.lookups import (
    allow_secrets,
    both,
    budget_of,
    client,
    cluster_and_pools,
    page,
    pool_result,
    require_pools,
)
from poolpilot.tools.digitalocean.models import (
    PG_ENGINES,
    Cluster,
    ClusterId,
    ClusterList,
    ClusterRow,
    Cursor,
    Database,
    DatabaseList,
    DatabaseRow,
    DbName,
    Engine,
    PageSize,
    Pool,
    PoolList,
    PoolName,
    TagName,
    connection_from,
)

__all__ = ["DATABASES", "SPECS"]


# -- read tools -------------------------------------------------------------------------------------


@tool(Safety.READ, "List DO clusters")
async def digitalocean_list_clusters(
    ctx: Context,
    engine: Annotated[Engine | None, Field(description="Only this engine")] = None,
    page_size: PageSize = 20,
    cursor: Cursor = None,
    tag_name: Annotated[TagName | None, Field(description="Only clusters with this tag")] = None,
) -> ClusterList:
    """List database clusters as compact rows (id, name, engine, size, RAM); pools need engine pg."""
    do = client(ctx)
    clusters = [c for c in await do.list_clusters(tag_name) if engine is None or c.engine == engine]
    rows, next_cursor = page(clusters, page_size, cursor)
    return ClusterList(
        backend=do.backend,
        rows=[
            ClusterRow(
                id=c.id,
                name=c.name,
                engine=c.engine,
                version=c.version,
                status=c.status,
                region=c.region,
                size=c.size,
                nodes=c.num_nodes,
                ram_gb=budgets.ram_gb_from_slug(c.size),
            )
            for c in rows
        ],
        total=len(clusters),
        next_cursor=next_cursor,
    )


@tool(Safety.READ, "Get DO cluster")
async def digitalocean_get_cluster(ctx: Context, cluster_id: ClusterId) -> Cluster:
    """Get one cluster in full: databases, users, connection details (passwords redacted)."""
    do = client(ctx)
    c = await do.get_cluster(cluster_id)
    allow = allow_secrets(ctx)
    return Cluster(
        backend=do.backend,
        id=c.id,
        name=c.name,
        engine=c.engine,
        version=c.version,
        status=c.status,
        region=c.region,
        size=c.size,
        nodes=c.num_nodes,
        ram_gb=budgets.ram_gb_from_slug(c.size),
        semantic_version=c.semantic_version,
        created_at=c.created_at,
        tags=c.tags or [],
        db_names=c.db_names or [],
        users=[u.name for u in c.users or []],
        pools_supported=c.engine in PG_ENGINES,
        connection=connection_from(c.connection, allow_secrets=allow),
        private_connection=connection_from(c.private_connection, allow_secrets=allow),
        standby_connection=connection_from(c.standby_connection, allow_secrets=allow),
        standby_private_connection=connection_from(c.standby_private_connection, allow_secrets=allow),
    )


@tool(Safety.READ, "List DO pools")
async def digitalocean_list_pools(
    ctx: Context, cluster_id: ClusterId, page_size: PageSize = 20, cursor: Cursor = None
) -> PoolList:
    """List a PostgreSQL cluster's pools and its connection budget (max, allocated, available)."""
    do = client(ctx)
    cluster, pools = await cluster_and_pools(do, cluster_id)
    rows, next_cursor = page(pools, page_size, cursor)
    return PoolList(
        backend=do.backend,
        cluster_id=cluster.id,
        cluster_name=cluster.name,
        rows=[p.row() for p in rows],
        budget=budget_of(cluster, [p.size for p in pools]),
        total=len(pools),
        next_cursor=next_cursor,
    )


@tool(Safety.READ, "Get DO pool")
async def digitalocean_get_pool(ctx: Context, cluster_id: ClusterId, pool_name: PoolName) -> Pool:
    """Get one pool with its connection details (password redacted)."""
    do = client(ctx)
    try:
        pool = await do.get_pool(cluster_id, pool_name)
    except PoolpilotError as exc:
        if exc.info.code not in ("not_found", "validation_error"):
            raise
        # Explain the failure when it is the engine: only then is the cluster read (one request otherwise).
        require_pools(await do.get_cluster(cluster_id))
        raise
    return pool_result(pool, cluster_id, do.backend, allow_secrets(ctx))


@tool(Safety.READ, "List DO databases")
async def digitalocean_list_databases(
    ctx: Context, cluster_id: ClusterId, page_size: PageSize = 20, cursor: Cursor = None
) -> DatabaseList:
    """List the databases of a cluster."""
    do = client(ctx)
    dbs = await do.list_databases(cluster_id)
    rows, next_cursor = page(dbs, page_size, cursor)
    return DatabaseList(
        backend=do.backend,
        cluster_id=cluster_id,
        rows=[DatabaseRow(name=d.name) for d in rows],
        total=len(dbs),
        next_cursor=next_cursor,
    )


@tool(Safety.READ, "Get DO database")
async def digitalocean_get_database(ctx: Context, cluster_id: ClusterId, database_name: DbName) -> Database:
    """Get one database and, on PostgreSQL, the pools that use it."""
    do = client(ctx)
    cluster_r, db_r = await both(do.get_cluster(cluster_id), do.get_database(cluster_id, database_name))
    cluster = cluster_r.get()
    db = db_r.get()
    pools = None
    if cluster.engine in PG_ENGINES:
        pools = sorted(p.name for p in await do.list_pools(cluster_id) if p.db == db.name)
    return Database(backend=do.backend, cluster_id=cluster_id, name=db.name, pools=pools)


# The provider's own toolset, and the `digitalocean_databases` one (users and cluster settings are in their own
# modules, so start-up never imports them unless their toolset is on).
SPECS: tuple[ToolSpec, ...] = specs(
    digitalocean_list_clusters,
    digitalocean_get_cluster,
    digitalocean_list_pools,
    digitalocean_get_pool,
    changes.digitalocean_create_pool,
    changes.digitalocean_update_pool,
    changes.digitalocean_delete_pool,
)
DATABASES: tuple[ToolSpec, ...] = specs(
    digitalocean_list_databases,
    digitalocean_get_database,
    changes.digitalocean_create_database,
    changes.digitalocean_delete_database,
)
