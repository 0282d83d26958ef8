"""Pool tools through a real MCP client session on the sandbox: lifecycle, confirmation, validation, budget."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from poolpilot.tools.digitalocean.sandbox_seed import MYSQL_APP_ID, PG_ADVANCED_ID, PG_MAIN_ID, PG_SMALL_ID
from tests.digitalocean.harness import MODES, Answer, Session, session

pytestmark = pytest.mark.anyio

UPDATE = "digitalocean_update_pool"
DELETE = "digitalocean_delete_pool"
CREATE = "digitalocean_create_pool"


async def _confirmed(s: Session, tool: str, answer: Answer | None, **args: Any) -> dict[str, Any]:
    """Run a guarded call to completion: on the token path, preview first, then redeem the token."""
    first = await s.ok(tool, **args)
    if answer is not None:
        return first
    assert first["outcome"] == "confirmation_required" and first["executed"] is False
    assert first["confirm_token"] and first["expires_at"]
    assert "Show this preview to the user" in first["message"]
    return await s.ok(tool, **args, confirm_token=first["confirm_token"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", [None, "yes"], ids=["token", "elicitation"])
async def test_pool_lifecycle_create_list_update_delete(tmp_path: Path, mode: str, answer: Answer | None) -> None:
    async with session(tmp_path, mode=mode, answer=answer) as s:
        created = await s.ok(
            CREATE, cluster_id=PG_MAIN_ID, pool_name="api-v2", mode="session", size=7, db="app", user="app"
        )
        assert created["outcome"] == "executed" and created["backend"] == "sandbox"
        assert created["pool"]["name"] == "api-v2" and created["pool"]["connection"]["port"] == 25061
        assert created["budget"] == {"max": 97, "allocated": 57, "available": 40}

        listed = await s.ok("digitalocean_list_pools", cluster_id=PG_MAIN_ID)
        assert "api-v2" in [row["name"] for row in listed["rows"]]
        assert listed["budget"] == {"max": 97, "allocated": 57, "available": 40}

        changed = await _confirmed(s, UPDATE, answer, cluster_id=PG_MAIN_ID, pool_name="api-v2", size=12)
        assert changed["executed"] is True and changed["outcome"] == "executed"
        assert changed["confirmed_by"] == ("token" if answer is None else "elicitation")
        assert changed["before"]["size"] == 7
        assert changed["after"] == {"name": "api-v2", "mode": "session", "size": 12, "db": "app", "user": "app"}
        assert changed["preview"]["changes"] == [{"field": "size", "before": 7, "after": 12}]
        assert s.pool(PG_MAIN_ID, "api-v2") == ("session", 12, "app", "app")  # the user was kept

        deleted = await _confirmed(s, DELETE, answer, cluster_id=PG_MAIN_ID, pool_name="api-v2")
        assert deleted["executed"] is True and deleted["deleted"]["size"] == 12
        assert s.pool(PG_MAIN_ID, "api-v2") is None
        listed = await s.ok("digitalocean_list_pools", cluster_id=PG_MAIN_ID)
        assert listed["budget"]["allocated"] == 50
        if answer is not None:
            assert len(s.asked) == 2 and 'update pool: pool "api-v2"' in s.asked[0]
        audit = [json.loads(line) for line in s.audit.read_text().splitlines()]
        assert [r["outcome"] for r in audit if r["tool"] == DELETE][-1] == "executed"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", ["decline", "cancel", "no"])
async def test_update_pool_refused_by_the_user_changes_nothing(tmp_path: Path, mode: str, answer: Answer) -> None:
    async with session(tmp_path, mode=mode, answer=answer) as s:
        result = await s.ok(UPDATE, cluster_id=PG_MAIN_ID, pool_name="app-tx", mode="session")
        assert result["executed"] is False
        assert result["outcome"] == ("cancelled" if answer == "cancel" else "declined")
        assert result["confirm_token"] is None
        assert "nothing was changed" in result["message"]
        assert s.mutations() == []
        assert s.pool(PG_MAIN_ID, "app-tx") == ("transaction", 20, "app", "app")


@pytest.mark.parametrize("mode", MODES)
async def test_delete_pool_declined_keeps_the_pool(tmp_path: Path, mode: str) -> None:
    async with session(tmp_path, mode=mode, answer="decline") as s:
        result = await s.ok(DELETE, cluster_id=PG_SMALL_ID, pool_name="web")
        assert result["outcome"] == "declined" and result["deleted"] is None
        assert s.mutations() == [] and s.pool(PG_SMALL_ID, "web") is not None


@pytest.mark.parametrize("mode", MODES)
async def test_question_shows_the_preview_and_stays_the_same(tmp_path: Path, mode: str) -> None:
    async with session(tmp_path, mode=mode, answer="yes") as s:
        await s.ok(UPDATE, cluster_id=PG_MAIN_ID, pool_name="app-tx", mode="statement")
        assert len(s.asked) == 1
        assert s.asked[0].startswith(
            f'update pool: pool "app-tx" on cluster "pg-main" ({PG_MAIN_ID}) (mode "transaction" → "statement"). '
            'Impact: pool now has mode "transaction", size 20, db "app", user "app"; '
            'DigitalOcean reconfigures PgBouncer for pool "app-tx"; clients using it may be disconnected; statement '
            "mode breaks clients that rely on session state such as named prepared statements. Proceed? (state "
        )
        assert re.fullmatch(r"[0-9a-f]{8}\)", s.asked[0].rsplit("(state ", 1)[1])


async def test_update_pool_size_keeps_the_pool_user(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        args = {"cluster_id": PG_MAIN_ID, "pool_name": "app-session", "size": 12}
        preview = await s.ok(UPDATE, **args)
        assert preview["confirmation_required"] is True and s.mutations() == []
        await s.ok(UPDATE, **args, confirm_token=preview["confirm_token"])
        pool = await s.ok("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name="app-session")
        assert (pool["user"], pool["mode"], pool["size"]) == ("migrator", "session", 12)


async def test_update_inbound_pool_mode_keeps_it_inbound(tmp_path: Path) -> None:
    async with session(tmp_path, confirm="off") as s:
        result = await s.ok(UPDATE, cluster_id=PG_MAIN_ID, pool_name="analytics_inbound", mode="session")
        assert result["after"]["user"] is None and result["confirmed_by"] == "off"
        assert s.pool(PG_MAIN_ID, "analytics_inbound") == ("session", 15, "analytics", "")


async def test_update_pool_switches_to_inbound_user_only_when_asked(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        args = {"cluster_id": PG_MAIN_ID, "pool_name": "reporting", "inbound_user": True}
        preview = await s.ok(UPDATE, **args)
        assert preview["preview"]["changes"] == [{"field": "user", "before": "reporter", "after": None}]
        assert "inbound user" in preview["preview"]["impact"]
        done = await s.ok(UPDATE, **args, confirm_token=preview["confirm_token"])
        assert done["after"]["user"] is None
        assert s.pool(PG_MAIN_ID, "reporting") == ("statement", 5, "reporting", "")


async def test_update_pool_to_its_current_state_sends_nothing(tmp_path: Path) -> None:
    async with session(tmp_path, answer="yes") as s:
        result = await s.ok(UPDATE, cluster_id=PG_MAIN_ID, pool_name="app-tx", size=20, mode="transaction", user="app")
        assert result["outcome"] == "no_change" and result["executed"] is False
        assert result["confirm_token"] is None and "nothing was sent" in result["message"]
        assert s.asked == [] and s.mutations() == []


async def test_update_pool_counts_its_own_size_as_freed(tmp_path: Path) -> None:
    async with session(tmp_path, confirm="off") as s:
        # pg-small: budget 22, web holds 10 of it; growing web to 22 replaces those 10.
        assert (await s.ok(UPDATE, cluster_id=PG_SMALL_ID, pool_name="web", size=22))["after"]["size"] == 22
        err = await s.error(UPDATE, cluster_id=PG_SMALL_ID, pool_name="web", size=23)
        assert err["code"] == "budget_exceeded" and err["field"] == "size"
        assert err["message"] == "size 23 exceeds the 22 connections left on pg-small."
        assert err["hint"].startswith("retry with size <= 22 ")
        assert [m for m in s.mutations() if m[0] == "PUT"] == [("PUT", "databases_update_connectionPool")]


async def test_create_pool_over_budget_is_refused_before_sending(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        err = await s.error(CREATE, cluster_id=PG_SMALL_ID, pool_name="big", mode="session", size=40, db="defaultdb")
        assert err["code"] == "budget_exceeded"
        assert err["message"] == "size 40 exceeds the 12 connections left on pg-small."
        assert "retry with size <= 12" in err["hint"]
        assert s.mutations() == []
        created = await s.ok(CREATE, cluster_id=PG_SMALL_ID, pool_name="big", mode="session", size=12, db="defaultdb")
        assert created["budget"] == {"max": 22, "allocated": 22, "available": 0}
        assert created["pool"]["user"] is None  # no user given: an inbound-user pool
        err = await s.error(CREATE, cluster_id=PG_SMALL_ID, pool_name="one", mode="session", size=1, db="defaultdb")
        assert err["code"] == "budget_exceeded" and "shrinking or deleting" in err["hint"]


async def test_create_pool_with_a_taken_name_is_a_conflict(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        err = await s.error(CREATE, cluster_id=PG_SMALL_ID, pool_name="web", mode="session", size=1, db="defaultdb")
        assert err["code"] == "conflict" and "already exists" in err["message"]
        assert s.mutations() == []


async def test_pool_tools_explain_that_pools_need_postgresql(tmp_path: Path) -> None:
    cluster_id = MYSQL_APP_ID
    async with session(tmp_path) as s:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("digitalocean_list_pools", {}),
            ("digitalocean_get_pool", {"pool_name": "any-pool"}),
            (CREATE, {"pool_name": "p-1", "mode": "session", "size": 1, "db": "defaultdb"}),
            (UPDATE, {"pool_name": "any-pool", "size": 2}),
            (DELETE, {"pool_name": "any-pool"}),
        ]
        for tool, args in calls:
            err = await s.error(tool, cluster_id=cluster_id, **args)
            assert err["code"] == "not_supported", tool
            assert "only on PostgreSQL clusters" in err["message"] and "engine pg" in err["hint"]
        assert s.mutations() == []


async def test_advanced_pg_pools_are_readable_and_writes_are_refused_with_the_reason(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        listed = await s.ok("digitalocean_list_pools", cluster_id=PG_ADVANCED_ID)
        assert listed["rows"] == [] and listed["budget"] == {"max": None, "allocated": 0, "available": None}
        missing = await s.error("digitalocean_get_pool", cluster_id=PG_ADVANCED_ID, pool_name="any-pool")
        assert missing["code"] == "not_found"
        cluster = await s.ok("digitalocean_get_cluster", cluster_id=PG_ADVANCED_ID)
        assert cluster["pools_supported"] is True and cluster["engine"] == "advanced_pg"
        writes: list[tuple[str, dict[str, Any]]] = [
            (CREATE, {"pool_name": "p-1", "mode": "session", "size": 1, "db": "defaultdb"}),
            (UPDATE, {"pool_name": "any-pool", "size": 2}),
            (DELETE, {"pool_name": "any-pool"}),
        ]
        for tool, args in writes:
            err = await s.error(tool, cluster_id=PG_ADVANCED_ID, **args)
            assert err["code"] == "not_supported", tool
            assert "documents pool changes for PostgreSQL clusters (engine pg) only" in err["message"]
            assert "digitalocean_list_pools" in err["hint"]
        assert s.mutations() == []


INVALID: list[tuple[str, dict[str, Any], str, list[str] | None]] = [
    (CREATE, {"cluster_id": "not-a-uuid"}, "cluster_id", None),
    (CREATE, {"pool_name": "ab"}, "pool_name", None),
    (CREATE, {"pool_name": "x" * 61}, "pool_name", None),
    (CREATE, {"pool_name": "a/b/c"}, "pool_name", None),
    (CREATE, {"pool_name": "a%2Fb"}, "pool_name", None),
    (CREATE, {"pool_name": "a..b"}, "pool_name", None),
    (CREATE, {"pool_name": "bad\nname"}, "pool_name", None),
    (CREATE, {"pool_name": " padded"}, "pool_name", None),
    (CREATE, {"mode": "batch"}, "mode", ["session", "transaction", "statement"]),
    (CREATE, {"size": 0}, "size", None),
    (CREATE, {"size": "many"}, "size", None),
    (CREATE, {"db": "a/b"}, "db", None),
    (CREATE, {"user": ""}, "user", None),
    (UPDATE, {"mode": "batch"}, "mode", ["session", "transaction", "statement"]),
    (UPDATE, {"size": -1}, "size", None),
    (UPDATE, {"user": "app", "inbound_user": True}, "inbound_user", None),
    (UPDATE, {"size": None}, "arguments", ["mode", "size", "db", "user", "inbound_user"]),
    (DELETE, {"pool_name": ".."}, "pool_name", None),
    ("digitalocean_get_pool", {"cluster_id": PG_MAIN_ID.replace("-", "")}, "cluster_id", None),
    ("digitalocean_list_pools", {"page_size": 101}, "page_size", None),
    ("digitalocean_list_pools", {"cursor": "abc"}, "cursor", None),
]


@pytest.mark.parametrize(("tool", "bad", "field", "allowed"), INVALID, ids=[f"{t}-{f}" for t, _, f, _ in INVALID])
async def test_invalid_arguments_name_the_field_and_send_nothing(
    tmp_path: Path, tool: str, bad: dict[str, Any], field: str, allowed: list[str] | None
) -> None:
    base = {"cluster_id": PG_MAIN_ID, "pool_name": "new-pool", "mode": "session", "size": 5, "db": "app"}
    if tool != CREATE:
        base = {"cluster_id": PG_MAIN_ID, "pool_name": "app-tx"}
    async with session(tmp_path) as s:
        err = await s.error(tool, **{**base, **bad})
        assert err["code"] == "validation_error"
        assert err["field"] == field
        assert field in err["message"] and "nothing was sent" in err["hint"]
        if allowed is not None:
            assert err["allowed"] == allowed
        assert s.sandbox.requests == 0


async def test_unknown_db_or_user_lists_the_allowed_names_and_creates_nothing(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        base = {"cluster_id": PG_MAIN_ID, "pool_name": "new-pool", "mode": "session", "size": 5}
        err = await s.error(CREATE, **base, db="nope")
        assert (err["field"], err["allowed"]) == ("db", ["defaultdb", "app", "analytics", "reporting"])
        err = await s.error(CREATE, **base, db="app", user="nobody")
        assert (err["field"], err["allowed"]) == ("user", ["doadmin", "app", "reporter", "migrator"])
        err = await s.error(UPDATE, cluster_id=PG_MAIN_ID, pool_name="app-tx", db="nope")
        assert err["field"] == "db"
        assert s.mutations() == []


async def test_list_pools_pages_with_a_cursor_and_keeps_the_whole_budget(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        first = await s.ok("digitalocean_list_pools", cluster_id=PG_MAIN_ID, page_size=3)
        assert [r["name"] for r in first["rows"]] == ["app-tx", "app-session", "reporting"]
        assert first["total"] == 4 and first["next_cursor"] == "3"
        assert first["budget"]["allocated"] == 50
        rest = await s.ok("digitalocean_list_pools", cluster_id=PG_MAIN_ID, page_size=3, cursor=first["next_cursor"])
        assert [r["name"] for r in rest["rows"]] == ["analytics_inbound"] and rest["next_cursor"] is None


async def test_pool_names_are_percent_encoded_in_paths(tmp_path: Path) -> None:
    async with session(tmp_path, confirm="off") as s:
        name = "odd name.v1?x#y"
        await s.ok(CREATE, cluster_id=PG_MAIN_ID, pool_name=name, mode="session", size=1, db="app")
        assert s.pool(PG_MAIN_ID, name) == ("session", 1, "app", "")
        assert (await s.ok("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name=name))["name"] == name
        await s.ok(UPDATE, cluster_id=PG_MAIN_ID, pool_name=name, size=2)
        await s.ok(DELETE, cluster_id=PG_MAIN_ID, pool_name=name)
        assert s.pool(PG_MAIN_ID, name) is None
