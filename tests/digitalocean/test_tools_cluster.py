"""Cluster tools through a real MCP client session on the sandbox: config (read, guarded PATCH), size options,
resize (guarded, followed to online on the manual clock with MCP progress), and list clusters by tag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from poolpilot.tools.digitalocean.sandbox_seed import MYSQL_APP_ID, PG_ADVANCED_ID, PG_MAIN_ID, PG_SMALL_ID
from tests.digitalocean.harness import Session, session

pytestmark = pytest.mark.anyio

GET = "digitalocean_get_cluster_config"
UPDATE = "digitalocean_update_cluster_config"
OPTIONS = "digitalocean_list_cluster_options"
RESIZE = "digitalocean_resize_cluster"


async def _confirmed(s: Session, tool: str, **args: Any) -> dict[str, Any]:
    first = await s.ok(tool, **args)
    assert first["outcome"] == "confirmation_required", first
    return await s.ok(tool, **args, confirm_token=first["confirm_token"])


async def _with_progress(s: Session, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any], list[float]]:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    result = await s.client.call_tool(tool, args, progress_callback=on_progress)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content, seen


async def test_get_config_shows_the_pgbouncer_block_and_max_connections(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        got = await s.ok(GET, cluster_id=PG_MAIN_ID)
        assert got["engine"] == "pg" and got["max_connections"] == 100
        assert got["pgbouncer"]["server_idle_timeout"] == 600 and got["pgbouncer"]["autodb_pool_mode"] == "transaction"
        mysql = await s.ok(GET, cluster_id=MYSQL_APP_ID)
        assert mysql["pgbouncer"] == {k: None for k in got["pgbouncer"]} and mysql["max_connections"] is None


async def test_update_config_previews_before_after_and_sends_only_given_fields(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        args = {"cluster_id": PG_MAIN_ID, "server_idle_timeout": 300, "ignore_startup_parameters": ["search_path"]}
        preview = await s.ok(UPDATE, **args)
        assert preview["preview"]["changes"] == [
            {"field": "server_idle_timeout", "before": 600, "after": 300},
            {"field": "ignore_startup_parameters", "before": "(none)", "after": "search_path"},
        ]
        assert preview["before"]["pgbouncer"]["server_idle_timeout"] == 600 and s.mutations() == []
        done = await s.ok(UPDATE, **args, confirm_token=preview["confirm_token"])
        assert done["executed"] is True and done["after"]["pgbouncer"]["server_idle_timeout"] == 300
        assert done["after"]["pgbouncer"]["ignore_startup_parameters"] == ["search_path"]
        assert done["after"]["pgbouncer"]["server_lifetime"] == 3600  # untouched
        assert s.mutations() == [("PATCH", "databases_patch_config")]
        again = await s.ok(UPDATE, **args)
        assert again["outcome"] == "no_change" and len(s.mutations()) == 1


async def test_update_config_refuses_lowering_max_connections_and_bad_input(tmp_path: Path) -> None:
    async with session(tmp_path, confirm="off") as s:
        err = await s.error(UPDATE, cluster_id=PG_MAIN_ID, max_connections=50)
        assert err["code"] == "validation_error" and err["field"] == "max_connections" and "100" in err["message"]
        err = await s.error(UPDATE, cluster_id=PG_MAIN_ID)
        assert err["field"] == "arguments" and "max_connections" in err["allowed"]
        err = await s.error(UPDATE, cluster_id=PG_MAIN_ID, server_lifetime=59)
        assert err["field"] == "server_lifetime"
        err = await s.error(UPDATE, cluster_id=PG_MAIN_ID, min_pool_size=True)
        assert err["field"] == "min_pool_size"
        err = await s.error(UPDATE, cluster_id=MYSQL_APP_ID, min_pool_size=1)
        assert err["code"] == "not_supported"
        assert s.mutations() == []
        done = await s.ok(UPDATE, cluster_id=PG_MAIN_ID, max_connections=150, autodb_pool_mode="session")
        assert done["executed"] is True and done["after"]["max_connections"] == 150
        assert "restarts PostgreSQL" in done["preview"]["impact"]


async def test_list_cluster_options_lists_real_slugs_per_node_count(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        got = await s.ok(OPTIONS, engine="pg")
        one = next(r for r in got["rows"] if r["num_nodes"] == 1)
        two = next(r for r in got["rows"] if r["num_nodes"] == 2)
        assert one["sizes"][:3] == ["db-s-1vcpu-1gb", "db-s-1vcpu-2gb", "db-s-2vcpu-4gb"]
        assert "db-s-1vcpu-1gb" not in two["sizes"] and {r["engine"] for r in got["rows"]} == {"pg"}
        assert "16" in got["versions"]["pg"]


async def test_resize_follows_the_cluster_to_online_with_progress_and_raises_the_budget(tmp_path: Path) -> None:
    async with session(tmp_path, confirm="off") as s:
        args = {"cluster_id": PG_SMALL_ID, "size": "db-s-2vcpu-4gb", "num_nodes": 1}
        done, progress = await _with_progress(s, RESIZE, args)
        assert done["executed"] is True and done["wait_outcome"] == "online" and done["status"] == "online"
        assert done["size_before"] == "db-s-1vcpu-1gb" and done["budget_before"]["max"] == 22
        assert done["budget_after"] == {"max": 97, "allocated": 10, "available": 87}
        assert {"field": "pool_budget", "before": 22, "after": 97} in done["preview"]["changes"]
        assert progress == sorted(progress) and len(set(progress)) == len(progress) and progress[-1] == 900
        assert s.mutations() == [("PUT", "databases_update_clusterSize")]
        pools = await s.ok("digitalocean_list_pools", cluster_id=PG_SMALL_ID)
        assert pools["budget"]["max"] == 97


async def test_resize_that_outlasts_the_wait_says_it_was_accepted_and_still_resizing(tmp_path: Path) -> None:
    async with session(tmp_path, confirm="off") as s:
        args = {"cluster_id": PG_SMALL_ID, "size": "db-s-1vcpu-2gb", "num_nodes": 1, "timeout_s": 30}
        done, progress = await _with_progress(s, RESIZE, args)
        assert done["executed"] is True and done["wait_outcome"] == "timed_out" and done["status"] == "resizing"
        assert "accepted" in done["message"] and "digitalocean_get_cluster" in done["message"]
        assert progress[-1] <= 30
        busy = await s.error(RESIZE, cluster_id=PG_SMALL_ID, size="db-s-2vcpu-4gb", num_nodes=1)
        assert busy["code"] == "conflict" and "resizing" in busy["message"]
        quick = await s.ok(RESIZE, cluster_id=PG_MAIN_ID, size="db-s-4vcpu-8gb", num_nodes=2, wait=False)
        assert quick["wait_outcome"] == "not_waited" and quick["status"] == "resizing"


async def test_resize_validates_size_nodes_and_budget_before_sending(tmp_path: Path) -> None:
    async with session(tmp_path, confirm="off") as s:
        err = await s.error(RESIZE, cluster_id=PG_MAIN_ID, size="db-s-9vcpu-9gb", num_nodes=2)
        assert err["field"] == "size" and "db-s-4vcpu-8gb" in err["allowed"] and "db-s-9vcpu-9gb" not in err["message"]
        err = await s.error(RESIZE, cluster_id=PG_MAIN_ID, size="db-s-1vcpu-1gb", num_nodes=2)
        assert err["field"] == "size" and "db-s-1vcpu-1gb" not in err["allowed"]
        err = await s.error(RESIZE, cluster_id=PG_MAIN_ID, size="db-s-1vcpu-2gb", num_nodes=2)
        assert err["code"] == "budget_exceeded" and "50" in err["message"]  # 47 < 50 allocated
        err = await s.error(RESIZE, cluster_id=PG_MAIN_ID, size="db-s-2vcpu-4gb", num_nodes=4)
        assert err["field"] == "num_nodes"
        err = await s.error(RESIZE, cluster_id=PG_ADVANCED_ID, size="db-s-2vcpu-4gb", num_nodes=1)
        assert err["code"] == "not_supported"
        err = await s.error(RESIZE, cluster_id=PG_MAIN_ID, size="DB-S-2VCPU/4GB", num_nodes=2)
        assert err["field"] == "size"
        same = await s.ok(RESIZE, cluster_id=PG_MAIN_ID, size="db-s-2vcpu-4gb", num_nodes=2)
        assert same["outcome"] == "no_change"
        assert s.mutations() == []


async def test_list_clusters_filters_by_tag(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        got = await s.ok("digitalocean_list_clusters", tag_name="production")
        assert [r["name"] for r in got["rows"]] == ["pg-main"]
        none = await s.ok("digitalocean_list_clusters", tag_name="nope")
        assert none["rows"] == [] and none["total"] == 0
        err = await s.error("digitalocean_list_clusters", tag_name="a&b=c")
        assert err["field"] == "tag_name"


async def test_resize_of_a_mysql_cluster_has_no_pool_budget(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        preview = await s.ok(RESIZE, cluster_id=MYSQL_APP_ID, size="db-s-2vcpu-4gb")
        assert [c["field"] for c in preview["preview"]["changes"]] == ["size"]
        assert preview["budget_before"] is None and "pool budget" not in preview["preview"]["impact"]
