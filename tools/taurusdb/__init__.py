"""Huawei Cloud TaurusDB (GaussDB for MySQL): instances, database proxies and their connection-pool type.

`FACE` is this provider's whole contract with the rest of poolpilot (server/kernel/provider.py). Importing this
module is cheap: the client, signer, models, tools and the sandbox load inside the callables, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from poolpilot.server.kernel.provider import Check, EnvVar, Provider, Toolset
from poolpilot.tools.taurusdb import settings as _settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from poolpilot.server.kernel.config import Settings
    from poolpilot.server.kernel.fleet import FleetAdapter
    from poolpilot.server.kernel.sandbox import FakeProvider, SandboxOptions
    from poolpilot.server.kernel.state import AppState, OpenContext, ProviderClient, ToolSpec

__all__ = ["FACE"]


def _load(toolset: str) -> tuple[ToolSpec, ...]:
    if toolset == "taurusdb_proxy_admin":
        from poolpilot.tools.taurusdb import admin_tools

        return admin_tools.SPECS
    from poolpilot.tools.taurusdb import tools

    return tools.SPECS


async def _open(ctx: OpenContext) -> ProviderClient:
    from poolpilot.tools.taurusdb.client import open_client

    return await open_client(ctx)


def _sandbox(options: SandboxOptions) -> FakeProvider:
    from poolpilot.tools.taurusdb.sandbox import TaurusDBSandbox

    return TaurusDBSandbox(
        clock=options.clock,
        job_seconds=options.take("job_seconds", (2.0, 6.0)),
        job_visible_after_s=options.take("job_visible_after_s", 0.0),
        clock_skew_s=options.take("taurus_clock_skew_s", 0.0),
    )


def _banner(base: str, options: SandboxOptions) -> tuple[list[str], dict[str, str]]:
    # The example credentials of the signing vectors, which the sandbox accepts (DECISIONS.md).
    from poolpilot.tools.taurusdb.sandbox_seed import SANDBOX_AK, SANDBOX_SK
    from poolpilot.tools.taurusdb.sandbox_seed import SANDBOX_PROJECT_ID as SANDBOX_PROJECT

    lines = [
        f"  TaurusDB:     {base}/v3  AK {SANDBOX_AK}  SK {SANDBOX_SK}",
        f"                project {SANDBOX_PROJECT} (or X-Auth-Token: sandbox-iam-token)",
    ]
    env = {
        "POOLPILOT_TAURUSDB_URL": base,
        "HUAWEICLOUD_SDK_AK": SANDBOX_AK,
        "HUAWEICLOUD_SDK_SK": SANDBOX_SK,
        "HUAWEICLOUD_SDK_PROJECT_ID": SANDBOX_PROJECT,
    }
    return lines, env


async def _probes(settings: Settings, timeout_s: float) -> list[Check]:
    from poolpilot.tools.taurusdb.doctor import probe

    return await probe(_settings.of(settings), timeout_s)


def _extras(app: MCPServer[AppState], state: AppState, enabled: frozenset[str]) -> None:
    from poolpilot.tools.taurusdb.resources import register

    register(app, state, enabled)


def _fleet() -> FleetAdapter:
    from dataclasses import replace

    from poolpilot.tools.taurusdb.code import CODE
    from poolpilot.tools.taurusdb.fleet import ADAPTER

    return replace(ADAPTER, code=CODE)


FACE = Provider(
    name="taurusdb",
    description="Huawei Cloud TaurusDB (GaussDB for MySQL): instances, database proxies and their connection pools.",
    settings=_settings.read,
    index={
        "taurusdb_list_instances": "read",
        "taurusdb_list_proxies": "read",
        "taurusdb_set_proxy_pool_type": "destructive",
        "taurusdb_get_job": "read",
        "taurusdb_get_proxy_version": "read",
        "taurusdb_upgrade_proxy_version": "destructive",
        "taurusdb_get_proxy_parameters": "read",
        "taurusdb_set_proxy_parameters": "destructive",
        "taurusdb_set_proxy_session_consistency": "destructive",
    },
    load=_load,
    open=_open,
    sandbox=_sandbox,
    sandbox_banner=_banner,
    probes=_probes,
    extras=_extras,
    fleet=_fleet,
    # Off by default (the default tool list stays ≤ 16): `--toolsets` or toolsets_enable adds it.
    toolsets=(
        Toolset(
            "taurusdb_proxy_admin",
            "TaurusDB: a proxy's kernel version and upgrade, its parameters and its session consistency.",
            (
                "taurusdb_get_proxy_version",
                "taurusdb_upgrade_proxy_version",
                "taurusdb_get_proxy_parameters",
                "taurusdb_set_proxy_parameters",
                "taurusdb_set_proxy_session_consistency",
            ),
        ),
    ),
    env=(
        EnvVar("HUAWEICLOUD_SDK_AK", secret=True, description="Huawei Cloud access key id"),
        EnvVar("HUAWEICLOUD_SDK_SK", secret=True, description="Huawei Cloud secret access key"),
        EnvVar("HUAWEICLOUD_SDK_SECURITY_TOKEN", secret=True, description="security token of temporary AK/SK"),
        EnvVar("POOLPILOT_TAURUSDB_IAM_TOKEN", secret=True, description="an IAM token instead of AK/SK"),
        EnvVar("HUAWEICLOUD_SDK_PROJECT_ID", secret=False, description="Huawei Cloud project id of the region"),
        EnvVar("HUAWEICLOUD_SDK_REGION", secret=False, description="Huawei Cloud region, e.g. cn-north-4"),
        EnvVar("POOLPILOT_TAURUSDB_URL", secret=False, description="API endpoint instead of the region's"),
        EnvVar("POOLPILOT_TAURUSDB_LANGUAGE", secret=False, description="language of error messages"),
    ),
)
