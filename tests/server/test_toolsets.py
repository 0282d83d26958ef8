"""Toolsets beyond one per provider, off by default, and enabled per session at run time (issue 22)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolListChangedNotification

from poolpilot.server.kernel.config import ConfigError
from poolpilot.server.shell.app import plan_tools
from tests.support import error_model, make_app, ok_data, open_client, sandbox_settings

pytestmark = pytest.mark.anyio

CLUSTER = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"
DEFAULT = {
    "digitalocean_list_clusters",
    "digitalocean_get_cluster",
    "digitalocean_list_pools",
    "digitalocean_get_pool",
    "digitalocean_create_pool",
    "digitalocean_update_pool",
    "digitalocean_delete_pool",
    "taurusdb_list_instances",
    "taurusdb_list_proxies",
    "taurusdb_set_proxy_pool_type",
    "taurusdb_get_job",
    "pools_overview",
    "pools_advise",
    "toolsets_list",
    "toolsets_enable",
}
DATABASES = {
    "digitalocean_list_databases",
    "digitalocean_get_database",
    "digitalocean_create_database",
    "digitalocean_delete_database",
}
USERS = {"digitalocean_list_users", "digitalocean_get_user", "digitalocean_create_user", "digitalocean_delete_user"}
CLUSTER_TOOLS = {
    "digitalocean_get_cluster_config",
    "digitalocean_update_cluster_config",
    "digitalocean_list_cluster_options",
    "digitalocean_resize_cluster",
}
ADMIN = {
    "taurusdb_get_proxy_version",
    "taurusdb_upgrade_proxy_version",
    "taurusdb_get_proxy_parameters",
    "taurusdb_set_proxy_parameters",
    "taurusdb_set_proxy_session_consistency",
}
CODE = {"pools_export", "pools_plan", "pools_apply"}


class Notices:
    """Counts tools/list_changed notifications the client receives."""

    def __init__(self) -> None:
        self.changed = 0
        self.arrived = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, ToolListChangedNotification):
            self.changed += 1
            self.arrived.set()


async def _names(client: Any) -> set[str]:
    return {t.name for t in (await client.list_tools(cache_mode="bypass")).tools}


async def test_default_tools_list_has_at_most_16_tools(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl", toolsets=None)
    async with open_client(app, mode="legacy") as client:
        names = await _names(client)
    assert names == DEFAULT
    assert len(names) <= 16


async def test_toolsets_list_shows_every_toolset_on_one_row_each(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl", toolsets=None)
    async with open_client(app, mode="legacy") as client:
        data = ok_data(await client.call_tool("toolsets_list", {}))
    rows = {r["name"]: r for r in data["toolsets"]}
    assert rows["digitalocean"]["enabled"] and rows["pools"]["enabled"]
    assert not rows["digitalocean_databases"]["enabled"] and rows["digitalocean_databases"]["tools"] == 4
    assert not rows["digitalocean_users"]["enabled"]
    assert rows["pgbouncer"]["note"] and not rows["pgbouncer"]["enabled"]  # not configured: cannot be enabled
    assert data["can_enable"] is True


async def test_toolsets_enable_adds_the_tools_for_this_session_and_notifies(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl", toolsets=None)
    notices = Notices()
    async with open_client(app, mode="legacy", message_handler=notices) as client:
        assert client.server_capabilities.tools is not None and client.server_capabilities.tools.list_changed
        refused = error_model(await client.call_tool("digitalocean_list_databases", {"cluster_id": CLUSTER}))
        assert refused["code"] == "tool_not_allowed" and "toolsets_enable" in refused["hint"]
        done = ok_data(await client.call_tool("toolsets_enable", {"toolset": "digitalocean_databases"}))
        assert done["outcome"] == "enabled" and set(done["tools"]) == DATABASES
        with anyio.fail_after(5):
            await notices.arrived.wait()  # delivered by the client's receive task
        assert notices.changed == 1
        assert await _names(client) == DEFAULT | DATABASES
        listed = ok_data(await client.call_tool("digitalocean_list_databases", {"cluster_id": CLUSTER}))
        assert listed["rows"]
        again = ok_data(await client.call_tool("toolsets_enable", {"toolset": "digitalocean_databases"}))
        assert again["outcome"] == "already_enabled"
        # Another session of the same server starts with the default list.
        async with open_client(app, mode="legacy") as other:
            assert await _names(other) == DEFAULT
            refused = error_model(await other.call_tool("digitalocean_get_database", {"cluster_id": CLUSTER}))
            assert refused["code"] == "tool_not_allowed"


async def test_tools_register_at_the_first_list_without_a_cache_and_run_time_toolsets_show_per_session(
    tmp_path: Path,
) -> None:
    """Registering a tool builds its models and schemas: start-up leaves it to the first tools/list (without a tool
    cache; tests/server/test_tool_cache.py has the cached start) or the first call (issue 23)."""
    app, _, _ = make_app(tmp_path / "audit.jsonl", toolsets=None)

    async def registered() -> set[str]:
        return {t.name for t in await MCPServer.list_tools(app)}  # the SDK's own registry, not tools/list

    assert await registered() == set()
    async with open_client(app, mode="legacy") as client:
        assert await _names(client) == DEFAULT  # no tool cache: tools/list built the tools it lists
        assert await registered() == DEFAULT
        ok_data(await client.call_tool("toolsets_enable", {"toolset": "digitalocean_databases"}))
        assert await _names(client) == DEFAULT | DATABASES
        assert await registered() == DEFAULT | DATABASES
    async with open_client(app, mode="legacy") as other:  # enabled for that session, not for the server
        assert await _names(other) == DEFAULT
        ok_data(await other.call_tool("toolsets_enable", {"toolset": "digitalocean_databases"}))
        assert await _names(other) == DEFAULT | DATABASES


async def test_read_only_still_holds_for_an_enabled_toolset(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl", toolsets=None, read_only=True)
    async with open_client(app, mode="legacy") as client:
        ok_data(await client.call_tool("toolsets_enable", {"toolset": "digitalocean_databases"}))
        names = await _names(client)
        refused = error_model(
            await client.call_tool("digitalocean_create_database", {"cluster_id": CLUSTER, "database_name": "x"})
        )
    assert {"digitalocean_list_databases", "digitalocean_get_database"} <= names
    assert not names & {"digitalocean_create_database", "digitalocean_delete_database"}
    assert refused["code"] == "read_only"


async def test_tools_allowlist_still_holds_for_an_enabled_toolset(tmp_path: Path) -> None:
    allow = ("toolsets_enable", "digitalocean_list_databases", "digitalocean_list_clusters")
    app, _, _ = make_app(tmp_path / "audit.jsonl", toolsets=None, tools=allow)
    async with open_client(app, mode="legacy") as client:
        done = ok_data(await client.call_tool("toolsets_enable", {"toolset": "digitalocean_databases"}))
        names = await _names(client)
        refused = error_model(await client.call_tool("digitalocean_get_database", {"cluster_id": CLUSTER}))
    assert done["tools"] == ["digitalocean_list_databases"]
    assert names == set(allow)
    assert refused["code"] == "tool_not_allowed"


async def test_a_2026_client_is_told_to_use_the_toolsets_flag(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl", toolsets=None)
    async with open_client(app, mode="2026-07-28") as client:
        listed = ok_data(await client.call_tool("toolsets_list", {}))
        refused = error_model(await client.call_tool("toolsets_enable", {"toolset": "digitalocean_databases"}))
        names = await _names(client)
    assert listed["can_enable"] is False and "--toolsets" in listed["hint"]
    assert refused["code"] == "not_supported" and "--toolsets" in refused["hint"]
    assert names == DEFAULT


async def test_toolsets_enable_refuses_unknown_and_hostile_names_without_echoing_them(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl", toolsets=None)
    async with open_client(app, mode="legacy") as client:
        unknown = error_model(await client.call_tool("toolsets_enable", {"toolset": "nosuch_lure"}))
        hostile = error_model(await client.call_tool("toolsets_enable", {"toolset": "pools\u2028x"}))
        blocked = error_model(await client.call_tool("toolsets_enable", {"toolset": "pgbouncer"}))
    assert unknown["code"] == "not_found" and "nosuch_lure" not in str(unknown)
    assert "digitalocean_databases" in unknown["allowed"]
    assert hostile["code"] == "validation_error" and "\u2028" not in str(hostile)
    assert blocked["code"] == "not_supported"


async def test_toolsets_flag_names_an_extra_toolset_alone(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl", toolsets=("digitalocean_databases",))
    async with open_client(app, mode="legacy") as client:
        names = await _names(client)
        listed = ok_data(await client.call_tool("digitalocean_list_databases", {"cluster_id": CLUSTER}))
    assert names == DATABASES | {"toolsets_list", "toolsets_enable"}
    assert listed["rows"]


def test_unknown_toolset_flag_names_the_extra_toolsets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_tools(sandbox_settings(tmp_path / "audit.jsonl", toolsets=("nosuch",)))
    assert "digitalocean_users" in str(caught.value)
