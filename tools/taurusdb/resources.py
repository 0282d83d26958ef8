"""TaurusDB's resource template: an instance's proxies."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from poolpilot.server.kernel.resources import JSON, Reader, reader, valid
from poolpilot.server.kernel.state import AppState

__all__ = ["register"]


def register(app: MCPServer[AppState], state: AppState, enabled: frozenset[str]) -> None:
    """Register when the read tool it mirrors is enabled, so a resource never shows what the allowlist hides."""
    if "taurusdb_list_proxies" in enabled:
        _register(app, reader(state))


def _register(app: MCPServer[Any], read: Reader) -> None:
    @app.resource(
        "taurusdb://instances/{instance_id}/proxies",
        name="taurusdb_proxies",
        description="A TaurusDB instance's proxies: pool type and whether it can switch",
        mime_type=JSON,
    )
    async def proxies(instance_id: str, ctx: Context) -> str:
        # Imported at the first read, not at registration (start-up imports no tool module: issue 23).
        from poolpilot.tools.taurusdb.models import InstanceId
        from poolpilot.tools.taurusdb.tools import taurusdb_list_proxies

        iid = valid(InstanceId, "instance_id", instance_id)
        return await read(lambda: taurusdb_list_proxies(ctx, iid))
