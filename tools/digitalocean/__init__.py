"""DigitalOcean Managed PostgreSQL: clusters, databases, users and PgBouncer connection pools.

`FACE` is this provider's whole contract with the rest of poolpilot (server/kernel/provider.py). Importing this
module is cheap: the client, models, tools and the sandbox load inside the callables, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from poolpilot.server.kernel.provider import Check, EnvVar, Provider, Toolset
from poolpilot.tools.digitalocean import settings as _settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from poolpilot.server.kernel.config import Settings
    from poolpilot.server.kernel.fleet import FleetAdapter
    from poolpilot.server.kernel.sandbox import FakeProvider, SandboxOptions
    from poolpilot.server.kernel.state import AppState, OpenContext, ProviderClient, ToolSpec

__all__ = ["FACE"]


def _load(toolset: str) -> tuple[ToolSpec, ...]:
    if toolset == "digitalocean_users":
        from poolpilot.tools.digitalocean import user_tools

        return user_tools.SPECS
    if toolset == "digitalocean_cluster":
        from poolpilot.tools.digitalocean import cluster_tools

        return cluster_tools.SPECS
    from poolpilot.tools.digitalocean import tools

    return tools.DATABASES if toolset == "digitalocean_databases" else tools.SPECS


async def _open(ctx: OpenContext) -> ProviderClient:
    from poolpilot.tools.digitalocean.client import open_client

    return await open_client(ctx)


def _sandbox(options: SandboxOptions) -> FakeProvider:
    from poolpilot.tools.digitalocean.sandbox import DigitalOceanSandbox

    return DigitalOceanSandbox(
        clock=options.clock,
        require_token=options.take("do_require_token", None),
        rate_limit_per_minute=options.take("do_rate_limit_per_minute", 250),
        rate_limit_per_hour=options.take("do_rate_limit_per_hour", 5000),
        password=options.password,
        enforce_budget=options.take("do_enforce_budget", True),
        resize_seconds=options.take("do_resize_seconds", 60.0),
    )


def _banner(base: str, options: SandboxOptions) -> tuple[list[str], dict[str, str]]:
    token = options.take("do_require_token", None)
    line = f"  DigitalOcean: {base}/v2  (any bearer token{' = ' + repr(token) if token else ''})"
    return [line], {"POOLPILOT_DIGITALOCEAN_URL": base, "DIGITALOCEAN_TOKEN": token or "sandbox"}


async def _probes(settings: Settings, timeout_s: float) -> list[Check]:
    from poolpilot.tools.digitalocean.doctor import probe

    return await probe(_settings.of(settings), timeout_s)


def _extras(app: MCPServer[AppState], state: AppState, enabled: frozenset[str]) -> None:
    from poolpilot.tools.digitalocean.resources import register

    register(app, state, enabled)


def _fleet() -> FleetAdapter:
    from dataclasses import replace

    from poolpilot.tools.digitalocean.code import CODE
    from poolpilot.tools.digitalocean.fleet import ADAPTER

    return replace(ADAPTER, code=CODE)


FACE = Provider(
    name="digitalocean",
    description="DigitalOcean Managed Databases: clusters, databases, users and PgBouncer connection pools.",
    settings=_settings.read,
    index={
        "digitalocean_list_clusters": "read",
        "digitalocean_get_cluster": "read",
        "digitalocean_list_pools": "read",
        "digitalocean_get_pool": "read",
        "digitalocean_create_pool": "write",
        "digitalocean_update_pool": "destructive",
        "digitalocean_delete_pool": "destructive",
        "digitalocean_list_databases": "read",
        "digitalocean_get_database": "read",
        "digitalocean_create_database": "write",
        "digitalocean_delete_database": "destructive",
        "digitalocean_list_users": "read",
        "digitalocean_get_user": "read",
        "digitalocean_create_user": "write",
        "digitalocean_delete_user": "destructive",
        "digitalocean_get_cluster_config": "read",
        "digitalocean_update_cluster_config": "destructive",
        "digitalocean_list_cluster_options": "read",
        "digitalocean_resize_cluster": "destructive",
    },
    load=_load,
    open=_open,
    sandbox=_sandbox,
    sandbox_banner=_banner,
    probes=_probes,
    extras=_extras,
    fleet=_fleet,
    # Off by default (the default tool list stays ≤ 16): `--toolsets` or toolsets_enable adds them.
    toolsets=(
        Toolset(
            "digitalocean_databases",
            "DigitalOcean: list, get, create and delete the databases of a cluster.",
            (
                "digitalocean_list_databases",
                "digitalocean_get_database",
                "digitalocean_create_database",
                "digitalocean_delete_database",
            ),
        ),
        Toolset(
            "digitalocean_users",
            "DigitalOcean: list, get, create and delete the database users of a cluster.",
            (
                "digitalocean_list_users",
                "digitalocean_get_user",
                "digitalocean_create_user",
                "digitalocean_delete_user",
            ),
        ),
        Toolset(
            "digitalocean_cluster",
            "DigitalOcean: a cluster's PgBouncer settings and max_connections, size options and resize.",
            (
                "digitalocean_get_cluster_config",
                "digitalocean_update_cluster_config",
                "digitalocean_list_cluster_options",
                "digitalocean_resize_cluster",
            ),
        ),
    ),
    env=(
        EnvVar("DIGITALOCEAN_TOKEN", secret=True, description="DigitalOcean API token"),
        EnvVar("DIGITALOCEAN_ACCESS_TOKEN", secret=True, description="DigitalOcean API token (pydo's name)"),
        EnvVar("DIGITALOCEAN_API_TOKEN", secret=True, description="DigitalOcean API token (DigitalOcean MCP's name)"),
        EnvVar("POOLPILOT_DIGITALOCEAN_URL", secret=False, description="API base URL (a sandbox or a proxy)"),
    ),
)
