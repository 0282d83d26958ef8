"""Resources and prompts of the pools toolset on both protocol generations: cheap listing (one resource plus
templates), redacted JSON reads, errors without echoes, and prompt texts that name the tools to call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent, TextResourceContents

from poolpilot.tools.digitalocean.sandbox_seed import PG_SMALL_ID
from poolpilot.tools.taurusdb.sandbox_seed import INSTANCE_PROD
from tests.support import make_app, open_client

pytestmark = pytest.mark.anyio

MODES = ("legacy", "auto")
TEMPLATES = {
    "digitalocean://clusters/{cluster_id}/pools",
    "digitalocean://clusters/{cluster_id}/pools/{pool_name}",
    "taurusdb://instances/{instance_id}/proxies",
}


async def _read(client: Client, uri: str) -> tuple[str, Any]:
    with anyio.fail_after(5):
        result = await client.read_resource(uri)
    (content,) = result.contents
    assert isinstance(content, TextResourceContents) and content.mime_type == "application/json"
    return content.text, json.loads(content.text)


@pytest.mark.parametrize("mode", MODES)
async def test_resources_list_shows_the_overview_and_templates_only(audit_path: Path, mode: str) -> None:
    app, sandbox, _ = make_app(audit_path)
    async with open_client(app, mode=mode) as client:
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
    assert [r.uri for r in resources] == ["poolpilot://overview"]
    assert {t.uri_template for t in templates} == TEMPLATES  # no pgbouncer: none configured
    assert sandbox.requests == 0  # listing reads nothing upstream


@pytest.mark.parametrize("mode", MODES)
async def test_overview_resource_reads_the_overview_as_compact_json(audit_path: Path, mode: str) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app, mode=mode) as client:
        text, data = await _read(client, "poolpilot://overview")
    assert data["backend"] == "sandbox" and {r["provider"] for r in data["rows"]} == {"digitalocean", "taurusdb"}
    assert "\n" not in text and "null" not in text


@pytest.mark.parametrize("mode", MODES)
async def test_pool_resource_reads_one_pool_with_its_password_redacted(audit_path: Path, mode: str) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app, mode=mode) as client:
        text, pool = await _read(client, f"digitalocean://clusters/{PG_SMALL_ID}/pools/web")
        _, pools = await _read(client, f"digitalocean://clusters/{PG_SMALL_ID}/pools")
    assert (pool["name"], pool["size"], pool["user"]) == ("web", 10, "doadmin")
    assert "sbx-doadmin-pg-small" not in text and "password" not in pool["connection"]
    assert pools["budget"] == {"max": 22, "allocated": 10, "available": 12}


async def test_proxies_resource_reads_an_instances_proxies(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app) as client:
        _, data = await _read(client, f"taurusdb://instances/{INSTANCE_PROD}/proxies")
    assert {r["name"]: r["pool_type"] for r in data["rows"]} == {"proxy-prod-rw": "CLOSED", "proxy-prod-ro": "SESSION"}


async def test_pool_resource_unknown_pool_is_an_error_naming_the_next_step(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(f"digitalocean://clusters/{PG_SMALL_ID}/pools/nope-pool")
    assert "not_found" in str(caught.value) and "digitalocean_list_pools" in str(caught.value)


async def test_pool_resource_bad_cluster_id_is_refused_without_echo_or_request(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    async with open_client(app) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource("digitalocean://clusters/not-a-uuid-secret/pools")
    assert "validation_error: cluster_id" in str(caught.value) and "not-a-uuid-secret" not in str(caught.value)
    assert sandbox.requests == 0


async def test_resources_and_prompts_follow_the_tool_allowlist(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path, tools=("digitalocean_list_pools",))
    async with open_client(app) as client:
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
        prompts = (await client.list_prompts()).prompts
    assert (resources, prompts) == ([], [])
    assert [t.uri_template for t in templates] == ["digitalocean://clusters/{cluster_id}/pools"]


@pytest.mark.parametrize("mode", MODES)
async def test_diagnose_pools_prompt_names_the_overview_and_advice_tools(audit_path: Path, mode: str) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app, mode=mode) as client:
        listed = {p.name: p for p in (await client.list_prompts()).prompts}
        with anyio.fail_after(5):
            got = await client.get_prompt("diagnose_pools", {"provider": "digitalocean"})
    args = {a.name: a.required for a in listed["diagnose_pools"].arguments or []}
    assert args == {"provider": False}
    assert {a.name for a in listed["resize_pool"].arguments or []} == {"provider", "location", "pool"}
    (message,) = got.messages
    assert message.role == "user" and isinstance(message.content, TextContent)
    text = message.content.text
    assert "pools_overview (provider='digitalocean')" in text and "pools_advise" in text and "ask me" in text


@pytest.mark.parametrize("mode", MODES)
async def test_resize_pool_prompt_walks_through_the_budget_and_the_guarded_update(audit_path: Path, mode: str) -> None:
    app, _, _ = make_app(audit_path)
    args = {"provider": "digitalocean", "location": PG_SMALL_ID, "pool": "web"}
    async with open_client(app, mode=mode) as client:
        with anyio.fail_after(5):
            got = await client.get_prompt("resize_pool", args)
        with pytest.raises(MCPError):
            await client.get_prompt("resize_pool", {**args, "provider": "aws"})
    content = got.messages[0].content
    assert isinstance(content, TextContent)
    assert "digitalocean_list_pools" in content.text and "max, allocated, available" in content.text
    assert f'digitalocean_update_pool(cluster_id="{PG_SMALL_ID}", pool_name="web"' in content.text
    assert "confirm_token" in content.text
