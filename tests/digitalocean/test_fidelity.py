"""Live fidelity on DigitalOcean: standby endpoints of HA pools, unknown budgets, every PostgreSQL engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolpilot.server.kernel.shapes import compose, extended, nulled
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from tests.digitalocean.harness import session

pytestmark = pytest.mark.anyio


async def test_get_pool_on_an_ha_cluster_has_standby_endpoints_with_the_password_masked(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        pool = await s.ok("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name="app-tx")
        standby, private = pool["standby_connection"], pool["standby_private_connection"]
        assert standby["host"].startswith("replica-") and private["host"].startswith("private-replica-")
        assert standby["port"] == 25061 and standby["database"] == "app-tx" and standby["user"] == "app"
        for conn in (standby, private):
            assert conn["password"] is None and ":***@" in conn["uri"] and "sbx-app" not in conn["uri"]
        cluster = await s.ok("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        assert cluster["standby_private_connection"]["host"].startswith("private-replica-")


async def test_get_pool_on_a_single_node_cluster_has_no_standby_endpoints(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        pool = await s.ok("digitalocean_get_pool", cluster_id=PG_SMALL_ID, pool_name="web")
        assert pool["standby_connection"] is None and pool["standby_private_connection"] is None


async def test_standby_passwords_show_only_when_the_operator_allows_secrets(tmp_path: Path) -> None:
    async with session(tmp_path, allow_secrets=True) as s:
        pool = await s.ok("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name="app-tx")
        assert pool["standby_connection"]["password"] == "sbx-app-pg-main"


async def test_create_pool_with_an_unknown_budget_is_sent_with_a_warning(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        s.sandbox.digitalocean.clusters[PG_SMALL_ID].size = "c-96-intel"  # a slug without RAM
        created = await s.ok(
            "digitalocean_create_pool", cluster_id=PG_SMALL_ID, pool_name="big", mode="session", size=12, db="defaultdb"
        )
        assert created["budget"] == {"max": None, "allocated": 22, "available": None}
        assert "budget of pg-small is unknown" in created["note"] and "DigitalOcean enforces it" in created["note"]
        assert s.pool(PG_SMALL_ID, "big") == ("session", 12, "defaultdb", "")


async def test_create_pool_with_an_unknown_budget_reports_digitaloceans_refusal(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        s.sandbox.digitalocean.clusters[PG_SMALL_ID].size = "c-96-intel"  # the fake still enforces 1 GB: 22
        err = await s.error(
            "digitalocean_create_pool", cluster_id=PG_SMALL_ID, pool_name="big", mode="session", size=13, db="defaultdb"
        )
        assert err["code"] == "validation_error" and err["http_status"] == 422
        assert s.pool(PG_SMALL_ID, "big") is None


async def test_update_pool_growing_with_an_unknown_budget_warns_in_the_preview(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        s.sandbox.digitalocean.clusters[PG_SMALL_ID].size = "c-96-intel"
        preview = await s.ok("digitalocean_update_pool", cluster_id=PG_SMALL_ID, pool_name="web", size=12)
        assert preview["confirmation_required"] is True
        assert "DigitalOcean enforces it" in preview["preview"]["impact"]
        shrink = await s.ok("digitalocean_update_pool", cluster_id=PG_SMALL_ID, pool_name="web", size=5)
        assert "budget" not in shrink["preview"]["impact"]


async def test_tools_read_nulled_and_extended_shapes(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        required = {"id", "name", "engine", "mode", "size", "db", "database", "databases", "pool", "pools", "users"}
        s.sandbox.digitalocean.shape = compose(nulled(frozenset(required | {"dbs", "user"})), extended)
        clusters = await s.ok("digitalocean_list_clusters")
        assert clusters["total"] == 4 and clusters["rows"][0]["status"] == "" and clusters["rows"][0]["nodes"] == 1
        cluster = await s.ok("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        assert cluster["connection"] is None and cluster["tags"] == [] and cluster["standby_connection"] is None
        pools = await s.ok("digitalocean_list_pools", cluster_id=PG_MAIN_ID)
        assert [row["name"] for row in pools["rows"]][:1] == ["app-tx"] and pools["budget"]["max"] == 97
        pool = await s.ok("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name="app-tx")
        assert pool["connection"] is None and pool["user"] == "app"  # "user" is kept: the user envelope
        users = await s.ok("digitalocean_list_users", cluster_id=PG_MAIN_ID)
        assert users["rows"][0] == {"name": "doadmin", "role": None}


async def test_a_pool_body_without_a_required_field_is_a_clean_upstream_error(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        s.sandbox.digitalocean.shape = nulled(frozenset({"pool", "name", "mode", "db"}))  # size: null
        err = await s.error("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name="app-tx")
        assert err["code"] == "upstream_error" and err["provider"] == "digitalocean"
        assert "size" in err["message"] and "cannot read" in err["message"]
