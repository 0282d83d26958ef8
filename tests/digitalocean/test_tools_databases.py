"""Cluster, database and user tools through a real MCP client session on the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poolpilot.tools.digitalocean.sandbox_seed import MYSQL_APP_ID, PG_MAIN_ID, PG_SMALL_ID
from tests.digitalocean.harness import MODES, Answer, session

pytestmark = pytest.mark.anyio

DELETE = "digitalocean_delete_database"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", [None, "yes"], ids=["token", "elicitation"])
async def test_database_lifecycle_create_list_get_delete(tmp_path: Path, mode: str, answer: Answer | None) -> None:
    async with session(tmp_path, mode=mode, answer=answer) as s:
        created = await s.ok("digitalocean_create_database", cluster_id=PG_SMALL_ID, database_name="orders")
        assert created["outcome"] == "executed" and created["name"] == "orders"
        assert "orders" in created["target"] and created["backend"] == "sandbox"

        listed = await s.ok("digitalocean_list_databases", cluster_id=PG_SMALL_ID)
        assert [r["name"] for r in listed["rows"]] == ["defaultdb", "orders"]
        got = await s.ok("digitalocean_get_database", cluster_id=PG_SMALL_ID, database_name="orders")
        assert got == {"backend": "sandbox", "cluster_id": PG_SMALL_ID, "name": "orders", "pools": []}

        args = {"cluster_id": PG_SMALL_ID, "database_name": "orders"}
        result = await s.ok(DELETE, **args)
        if answer is None:
            assert result["outcome"] == "confirmation_required" and s.mutations() == [("POST", "databases_add")]
            assert "lost for good" in result["preview"]["impact"]
            result = await s.ok(DELETE, **args, confirm_token=result["confirm_token"])
        assert result["executed"] is True and result["deleted"] is True
        listed = await s.ok("digitalocean_list_databases", cluster_id=PG_SMALL_ID)
        assert [r["name"] for r in listed["rows"]] == ["defaultdb"]
        outcomes = [json.loads(line)["outcome"] for line in s.audit.read_text().splitlines()]
        assert outcomes[0] == "started" and outcomes[-1] == "executed"


@pytest.mark.parametrize("answer", ["decline", "cancel"])
async def test_delete_database_refused_by_the_user_keeps_it(tmp_path: Path, answer: Answer) -> None:
    async with session(tmp_path, answer=answer) as s:
        await s.ok("digitalocean_create_database", cluster_id=PG_SMALL_ID, database_name="tmpdb")
        result = await s.ok(DELETE, cluster_id=PG_SMALL_ID, database_name="tmpdb")
        assert result["executed"] is False and result["deleted"] is False
        assert "tmpdb" in s.sandbox.digitalocean.clusters[PG_SMALL_ID].dbs
        assert s.mutations() == [("POST", "databases_add")]


async def test_delete_database_used_by_pools_is_refused_before_asking(tmp_path: Path) -> None:
    async with session(tmp_path, answer="yes") as s:
        err = await s.error(DELETE, cluster_id=PG_MAIN_ID, database_name="app")
        assert err["code"] == "conflict" and '"app-session", "app-tx"' in err["message"]
        assert s.asked == [] and s.mutations() == []
        got = await s.ok("digitalocean_get_database", cluster_id=PG_MAIN_ID, database_name="app")
        assert got["pools"] == ["app-session", "app-tx"]


async def test_create_database_with_a_taken_name_is_a_conflict(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        err = await s.error("digitalocean_create_database", cluster_id=MYSQL_APP_ID, database_name="shop")
        assert err["code"] == "conflict" and s.mutations() == []


async def test_mysql_databases_work_without_pools(tmp_path: Path) -> None:
    async with session(tmp_path, confirm="off") as s:
        await s.ok("digitalocean_create_database", cluster_id=MYSQL_APP_ID, database_name="reports")
        got = await s.ok("digitalocean_get_database", cluster_id=MYSQL_APP_ID, database_name="reports")
        assert got["pools"] is None
        done = await s.ok(DELETE, cluster_id=MYSQL_APP_ID, database_name="reports")
        assert done["executed"] is True and done["confirmed_by"] == "off"


async def test_missing_database_and_cluster_are_named(tmp_path: Path) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    async with session(tmp_path) as s:
        err = await s.error("digitalocean_get_database", cluster_id=PG_MAIN_ID, database_name="ghost")
        assert (
            err["code"] == "not_found" and err["message"] == f'database "ghost" on cluster {PG_MAIN_ID} was not found'
        )
        assert "digitalocean_list_databases" in err["hint"] and err["http_status"] == 404
        err = await s.error(DELETE, cluster_id=PG_MAIN_ID, database_name="ghost")
        assert err["code"] == "not_found" and '"ghost"' in err["message"]
        err = await s.error("digitalocean_get_database", cluster_id=unknown, database_name="ghost")
        assert err["message"] == f"cluster {unknown} was not found" and "digitalocean_list_clusters" in err["hint"]
        err = await s.error("digitalocean_list_users", cluster_id=unknown)
        assert err["message"] == f"cluster {unknown} was not found"
        assert s.mutations() == []


async def test_list_clusters_filters_by_engine_and_pages(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        pg = await s.ok("digitalocean_list_clusters", engine="pg")
        assert [r["name"] for r in pg["rows"]] == ["pg-small", "pg-main"]
        assert pg["rows"][1] == {
            "id": PG_MAIN_ID,
            "name": "pg-main",
            "engine": "pg",
            "version": "16",
            "status": "online",
            "region": "nyc3",
            "size": "db-s-2vcpu-4gb",
            "nodes": 2,
            "ram_gb": 4,
        }
        first = await s.ok("digitalocean_list_clusters", page_size=1)
        assert first["total"] == 4 and first["next_cursor"] == "1"
        last = await s.ok("digitalocean_list_clusters", page_size=100, cursor="3")
        assert [r["name"] for r in last["rows"]] == ["pg-advanced"] and last["next_cursor"] is None
        err = await s.error("digitalocean_list_clusters", engine="postgres")
        assert err["field"] == "engine" and "pg" in (err["allowed"] or [])


async def test_get_cluster_shows_connection_details_without_secrets(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        cluster = await s.ok("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        assert cluster["pools_supported"] is True and cluster["ram_gb"] == 4
        assert cluster["db_names"] == ["defaultdb", "app", "analytics", "reporting"]
        conn = cluster["connection"]
        assert conn["host"].startswith("pg-main-") and conn["port"] == 25060
        assert (conn["database"], conn["user"], conn["sslmode"]) == ("defaultdb", "doadmin", "require")
        assert conn["password"] is None and ":***@" in conn["uri"]
        assert cluster["standby_connection"]["host"].startswith("replica-")
        mysql = await s.ok("digitalocean_get_cluster", cluster_id=MYSQL_APP_ID)
        assert mysql["pools_supported"] is False and mysql["connection"]["sslmode"] == "REQUIRED"


async def test_list_users_gives_names_and_roles(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        users = await s.ok("digitalocean_list_users", cluster_id=PG_MAIN_ID, page_size=2)
        assert users["rows"] == [{"name": "doadmin", "role": "primary"}, {"name": "app", "role": "normal"}]
        assert users["total"] == 4 and users["next_cursor"] == "2"
