"""The live code path: the sandbox served on a real loopback port, poolpilot pointed at it by base URL."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from poolpilot.server.kernel.config import Settings
from poolpilot.server.shell.app import build_app
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from poolpilot.tools.digitalocean.settings import DigitalOceanSettings
from tests.support import Sandbox, served

pytestmark = pytest.mark.anyio

TOKEN = "dop_v1_live_path_test_token_0123456789"


@asynccontextmanager
async def live_client(
    tmp_path: Path, url: str, token_var: str = "DIGITALOCEAN_TOKEN", **overrides: Any
) -> AsyncIterator[Client]:
    settings = Settings(
        backend="live",
        providers={"digitalocean": DigitalOceanSettings(token=TOKEN, url=url, token_var=token_var)},
        toolsets=("digitalocean",),
        audit_log=str(tmp_path / "audit.jsonl"),
        **overrides,
    )
    async with Client(build_app(settings), raise_exceptions=True) as client:
        yield client


async def _ok(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    assert TOKEN not in json.dumps(data)
    return data


async def test_pool_lifecycle_over_a_real_port(tmp_path: Path) -> None:
    sandbox = Sandbox()
    with served(sandbox) as url:
        async with live_client(tmp_path, url) as client:
            with anyio.fail_after(20):
                assert (await _ok(client, "digitalocean_list_clusters"))["backend"] == "live"
                # A space travels percent-encoded through a real server.
                new = {"cluster_id": PG_MAIN_ID, "pool_name": "live pool_1", "mode": "session", "size": 4, "db": "app"}
                created = await _ok(client, "digitalocean_create_pool", **new, user="reporter")
                assert created["pool"]["connection"]["port"] == 25061
                listed = await _ok(client, "digitalocean_list_pools", cluster_id=PG_MAIN_ID)
                assert listed["budget"] == {"max": 97, "allocated": 54, "available": 43}
                args = {"cluster_id": PG_MAIN_ID, "pool_name": "live pool_1", "size": 9}
                preview = await _ok(client, "digitalocean_update_pool", **args)
                assert preview["confirmation_required"] is True
                done = await _ok(client, "digitalocean_update_pool", **args, confirm_token=preview["confirm_token"])
                assert done["after"] == {
                    "name": "live pool_1",
                    "mode": "session",
                    "size": 9,
                    "db": "app",
                    "user": "reporter",
                }
                args = {"cluster_id": PG_MAIN_ID, "pool_name": "live pool_1"}
                preview = await _ok(client, "digitalocean_delete_pool", **args)
                await _ok(client, "digitalocean_delete_pool", **args, confirm_token=preview["confirm_token"])
    assert "live pool_1" not in sandbox.digitalocean.clusters[PG_MAIN_ID].pools


async def test_live_errors_name_the_object_and_the_token_variable(tmp_path: Path) -> None:
    with served(Sandbox()) as url:
        async with live_client(tmp_path, url) as client:
            result = await client.call_tool("digitalocean_get_pool", {"cluster_id": PG_SMALL_ID, "pool_name": "ghost"})
            assert result.is_error and result.structured_content is not None
            assert result.structured_content["message"] == f'pool "ghost" on cluster {PG_SMALL_ID} was not found'
    with served(Sandbox(do_require_token="some-other-token")) as url:
        async with live_client(tmp_path, url, token_var="DIGITALOCEAN_ACCESS_TOKEN") as client:
            result = await client.call_tool("digitalocean_list_clusters", {})
            assert result.is_error and result.structured_content is not None
            assert result.structured_content["code"] == "auth_failed"
            assert result.structured_content["hint"].startswith("Ask the operator to set DIGITALOCEAN_ACCESS_TOKEN")
            assert TOKEN not in json.dumps(result.structured_content) + str(result.content)


async def test_unreachable_url_is_a_connection_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])  # bound but not listening: connections are refused
        async with live_client(tmp_path, f"http://127.0.0.1:{port}", connect_timeout_s=1.0) as client:
            with anyio.fail_after(20):
                result = await client.call_tool("digitalocean_list_clusters", {})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["code"] == "connection_error"
    assert f"http://127.0.0.1:{port}" in result.structured_content["hint"]
