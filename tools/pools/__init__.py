"""The cross-provider toolset `pools`: one overview of every pool, and advice over it (next: pools as code).

It reads the other providers only through their faces (each face's fleet adapter and the client the server
already opened for it), so a new provider appears here without an edit. `FACE` is its contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from poolpilot.server.kernel.config import SettingsReader
from poolpilot.server.kernel.provider import Backend, Provider, Toolset

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from poolpilot.server.kernel.state import AppState, OpenContext, ProviderClient, ToolSpec

__all__ = ["FACE"]


class _Settings:
    """Its settings are the core ones (`POOLPILOT_ADVISE_*`, `POOLPILOT_OVERVIEW_TIMEOUT_S`)."""

    def configured(self) -> bool:
        return False

    def secrets(self) -> list[str]:
        return []

    def status(self, backend: Backend) -> str:
        return f"reads the enabled providers ({backend})"

    def validate(self, backend: Backend) -> None:
        return None


class _Mixed:
    """The toolset's client: the pools tools use the providers' clients, so there is nothing to open."""

    backend = "mixed"

    async def aclose(self) -> None:
        return None


def _read(_: SettingsReader) -> _Settings:
    return _Settings()


def _load(toolset: str) -> tuple[ToolSpec, ...]:
    if toolset == "pools_code":
        from poolpilot.tools.pools import codetools

        return codetools.SPECS
    from poolpilot.tools.pools import tools

    return tools.SPECS


async def _open(_: OpenContext) -> ProviderClient:
    return _Mixed()


def _extras(app: MCPServer[AppState], state: AppState, enabled: frozenset[str]) -> None:
    from poolpilot.tools.pools.resources import register_extras

    register_extras(app, state, enabled)


FACE = Provider(
    name="pools",
    description="Cross-provider view: every pool in one overview, right-sizing advice, and pools as code "
    "(export, plan, apply a desired state).",
    settings=_read,
    index={
        "pools_overview": "read",
        "pools_advise": "read",
        "pools_export": "read",
        "pools_plan": "read",
        "pools_apply": "destructive",
    },
    load=_load,
    open=_open,
    backend_rule="derived",
    extras=_extras,
    # Off by default (the default tool list stays ≤ 16): `--toolsets ...,pools_code`, or toolsets_enable.
    toolsets=(
        Toolset(
            "pools_code",
            "Pools as code: export, plan and apply a desired state of pools across providers.",
            ("pools_export", "pools_plan", "pools_apply"),
        ),
    ),
)
