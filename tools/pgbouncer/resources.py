"""PgBouncer's resource template: an instance's pools."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from poolpilot.server.kernel.resources import JSON, Reader, reader, valid
from poolpilot.server.kernel.state import AppState

__all__ = ["register"]


def register(app: MCPServer[AppState], state: AppState, enabled: frozenset[str]) -> None:
    """Register when the read tool it mirrors is enabled, so a resource never shows what the allowlist hides."""
    if "pgbouncer_list_pools" in enabled:
        _register(app, reader(state))


def _register(app: MCPServer[Any], read: Reader) -> None:
    from poolpilot.tools.pgbouncer.models import InstanceName
    from poolpilot.tools.pgbouncer.tools import pgbouncer_list_pools

    @app.resource(
        "pgbouncer://{instance}/pools",
        name="pgbouncer_pools",
        description="A PgBouncer instance's pools: clients waiting, max wait, saturation",
        mime_type=JSON,
    )
    async def pools(instance: str, ctx: Context) -> str:
        name = valid(InstanceName, "instance", instance)
        return await read(lambda: pgbouncer_list_pools(ctx, name, page_size=100))
