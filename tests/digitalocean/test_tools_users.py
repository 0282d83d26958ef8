"""User tools through a real MCP client session on the sandbox: get, create (password redacted), guarded delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from poolpilot.tools.digitalocean.sandbox_seed import MYSQL_APP_ID, PG_MAIN_ID, PG_SMALL_ID
from tests.digitalocean.harness import Session, session
from tests.support import Sandbox

pytestmark = pytest.mark.anyio

CREATE = "digitalocean_create_user"
DELETE = "digitalocean_delete_user"
GET = "digitalocean_get_user"


async def _token(s: Session, tool: str, **args: Any) -> str:
    preview = await s.ok(tool, **args)
    assert preview["outcome"] == "confirmation_required" and preview["executed"] is False
    token = preview["confirm_token"]
    assert isinstance(token, str)
    return token


async def test_create_user_password_is_redacted_unless_secrets_are_allowed(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        created = await s.ok(CREATE, cluster_id=PG_MAIN_ID, user_name="svc", pg_allow_replication=True)
        stored = s.sandbox.digitalocean.clusters[PG_MAIN_ID].users["svc"].password
        assert created["user"]["name"] == "svc" and created["user"]["pg_allow_replication"] is True
        assert created["user"].get("password") is None
        seen = json.dumps(created) + s.audit.read_text()
        assert stored not in seen
        assert s.mutations() == [("POST", "databases_add_user")]
    async with session(tmp_path, allow_secrets=True) as s:
        created = await s.ok(CREATE, cluster_id=PG_MAIN_ID, user_name="svc")
        stored = s.sandbox.digitalocean.clusters[PG_MAIN_ID].users["svc"].password
        assert created["user"]["password"] == stored and len(stored) == 16
        assert stored not in s.audit.read_text()


async def test_create_existing_user_is_a_conflict_and_sends_nothing(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        err = await s.error(CREATE, cluster_id=PG_MAIN_ID, user_name="app")
        assert err["code"] == "conflict" and "nothing was sent" in err["message"]
        err = await s.error(CREATE, cluster_id=MYSQL_APP_ID, user_name="x", pg_allow_replication=False)
        assert err["code"] == "validation_error" and err["field"] == "pg_allow_replication"
        assert s.mutations() == []


@pytest.mark.parametrize("name", ["a/b", "..", ".", "a%2Fb", "a\u2028b", "a\u200bb", " x", "a" * 64, ""])
async def test_hostile_user_names_are_refused_before_anything_is_sent(tmp_path: Path, name: str) -> None:
    async with session(tmp_path) as s:
        for tool in (GET, CREATE, DELETE):
            result = await s.call(tool, {"cluster_id": PG_MAIN_ID, "user_name": name})
            assert result.is_error and (result.structured_content or {})["field"] == "user_name"
            text = json.dumps(result.structured_content) + "".join(getattr(c, "text", "") for c in result.content)
            assert len(name) < 3 or name not in text  # a rejected value is never echoed
        assert s.sandbox.digitalocean.calls == []


async def test_get_user_names_its_pools_and_a_missing_one_is_not_found(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        got = await s.ok(GET, cluster_id=PG_MAIN_ID, user_name="app")
        assert got["role"] == "normal" and got["pools"] == ["app-tx"] and got.get("password") is None
        err = await s.error(GET, cluster_id=PG_MAIN_ID, user_name="ghost")
        assert err["code"] == "not_found" and "user" in err["message"] and "digitalocean_list_users" in err["hint"]


async def test_delete_user_with_token_deletes_it(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        await s.ok(CREATE, cluster_id=PG_SMALL_ID, user_name="temp")
        args = {"cluster_id": PG_SMALL_ID, "user_name": "temp"}
        token = await _token(s, DELETE, **args)
        assert "temp" in s.sandbox.digitalocean.clusters[PG_SMALL_ID].users
        done = await s.ok(DELETE, **args, confirm_token=token)
        assert done["executed"] is True and done["deleted"] is True and done["confirmed_by"] == "token"
        assert "temp" not in s.sandbox.digitalocean.clusters[PG_SMALL_ID].users
        assert s.mutations()[-1] == ("DELETE", "databases_delete_user")


async def test_delete_user_used_by_pools_or_primary_is_refused(tmp_path: Path) -> None:
    async with session(tmp_path, confirm="off") as s:
        err = await s.error(DELETE, cluster_id=PG_MAIN_ID, user_name="app")
        assert err["code"] == "conflict" and '"app-tx"' in err["message"] and "orphaned" in err["message"]
        err = await s.error(DELETE, cluster_id=PG_MAIN_ID, user_name="doadmin")
        assert err["code"] == "not_supported"
        err = await s.error(DELETE, cluster_id=PG_MAIN_ID, user_name="ghost")
        assert err["code"] == "not_found"
        assert s.mutations() == []


async def test_delete_user_refused_when_a_pool_starts_using_it_after_the_preview(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        await s.ok(CREATE, cluster_id=PG_MAIN_ID, user_name="late")
        args = {"cluster_id": PG_MAIN_ID, "user_name": "late"}
        token = await _token(s, DELETE, **args)
        s.sandbox.digitalocean.clusters[PG_MAIN_ID].pools["reporting"].user = "late"  # someone else, meanwhile
        err = await s.error(DELETE, **args, confirm_token=token)
        assert err["code"] == "conflict" and '"reporting"' in err["message"]
        assert "late" in s.sandbox.digitalocean.clusters[PG_MAIN_ID].users


async def test_delete_user_refused_when_the_user_changed_while_the_user_thinks(tmp_path: Path) -> None:
    def someone_else_changes_the_user(sandbox: Sandbox) -> None:
        sandbox.digitalocean.clusters[PG_MAIN_ID].users["late"].pg_allow_replication = True

    async with session(tmp_path, mode="legacy", answer="yes", on_ask=someone_else_changes_the_user) as s:
        await s.ok(CREATE, cluster_id=PG_MAIN_ID, user_name="late")
        err = await s.error(DELETE, cluster_id=PG_MAIN_ID, user_name="late")
        assert err["code"] == "confirmation_invalid" and "changed while the user was being asked" in err["message"]
        assert ("DELETE", "databases_delete_user") not in s.mutations()
        assert "late" in s.sandbox.digitalocean.clusters[PG_MAIN_ID].users
