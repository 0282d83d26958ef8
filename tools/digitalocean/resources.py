"""DigitalOcean's resource templates: a cluster's pools and one pool (no resource per pool: listing stays cheap)."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from poolpilot.server.kernel.resources import JSON, Reader, reader, valid
from poolpilot.server.kernel.state import AppState

__all__ = ["register"]


def register(app: MCPServer[AppState], state: AppState, enabled: frozenset[str]) -> None:
    """Register when the read tool it mirrors is enabled, so a resource never shows what the allowlist hides."""
    if "digitalocean_list_pools" in enabled:
        _register(app, reader(state), with_pool="digitalocean_get_pool" in enabled)


def _register(app: MCPServer[Any], read: Reader, *, with_pool: bool) -> None:
    # The tools' modules are imported at the first read, not here (start-up imports no tool module: issue 23).
    @app.resource(
        "digitalocean://clusters/{cluster_id}/pools",
        name="digitalocean_pools",
        description="A DigitalOcean cluster's pools and connection budget",
        mime_type=JSON,
    )
    async def pools(cluster_id: str, ctx: Context) -> str:
        from poolpilot.tools.digitalocean.models import ClusterId
        from poolpilot.tools.digitalocean.tools import digitalocean_list_pools

        cid = valid(ClusterId, "cluster_id", cluster_id)
        return await read(lambda: digitalocean_list_pools(ctx, cid, page_size=100))

    if not with_pool:
        return

    @app.resource(
        "digitalocean://clusters/{cluster_id}/pools/{pool_name}",
        name="digitalocean_pool",
        description="One DigitalOcean pool with its connection details (password redacted)",
        mime_type=JSON,
    )
    async def pool(cluster_id: str, pool_name: str, ctx: Context) -> str:
        from poolpilot.tools.digitalocean.models import ClusterId, PoolName
        from poolpilot.tools.digitalocean.tools import digitalocean_get_pool

        cid, name = valid(ClusterId, "cluster_id", cluster_id), valid(PoolName, "pool_name", pool_name)
        return await read(lambda: digitalocean_get_pool(ctx, cid, name))
