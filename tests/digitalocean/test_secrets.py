"""Passwords and connection URIs stay out of every result unless the operator allows secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from poolpilot.tools.digitalocean.sandbox_seed import MYSQL_APP_ID, PG_MAIN_ID
from tests.digitalocean.harness import session
from tests.support import ManualClock, Sandbox

pytestmark = pytest.mark.anyio

SEED = "s3cr3t-seed"  # every seeded password is f"{SEED}-{user}-{cluster}"


def _sandbox() -> Sandbox:
    clock = ManualClock()
    return Sandbox(clock=clock, sleep=clock.sleep, password=SEED)


CALLS: list[tuple[str, dict[str, Any]]] = [
    ("digitalocean_list_clusters", {}),
    ("digitalocean_get_cluster", {"cluster_id": PG_MAIN_ID}),
    ("digitalocean_get_cluster", {"cluster_id": MYSQL_APP_ID}),
    ("digitalocean_list_pools", {"cluster_id": PG_MAIN_ID}),
    ("digitalocean_get_pool", {"cluster_id": PG_MAIN_ID, "pool_name": "app-tx"}),
    ("digitalocean_list_users", {"cluster_id": PG_MAIN_ID}),
    (
        "digitalocean_create_pool",
        {"cluster_id": PG_MAIN_ID, "pool_name": "s-1", "mode": "session", "size": 1, "db": "app", "user": "app"},
    ),
    ("digitalocean_update_pool", {"cluster_id": PG_MAIN_ID, "pool_name": "s-1", "size": 2}),
    ("digitalocean_delete_pool", {"cluster_id": PG_MAIN_ID, "pool_name": "s-1"}),
]


async def test_no_password_reaches_the_session(tmp_path: Path) -> None:
    async with session(tmp_path, sandbox=_sandbox(), confirm="off") as s:
        for tool, args in CALLS:
            result = await s.client.call_tool(tool, args)
            assert not result.is_error, (tool, result.content)
            seen = json.dumps(result.structured_content) + "".join(getattr(c, "text", "") for c in result.content)
            assert SEED not in seen, tool
        assert SEED not in s.audit.read_text()


async def test_operator_may_allow_connection_secrets(tmp_path: Path) -> None:
    async with session(tmp_path, sandbox=_sandbox(), allow_secrets=True) as s:
        pool = await s.ok("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name="app-tx")
        assert pool["connection"]["password"] == f"{SEED}-app-pg-main"
        assert f"app:{SEED}-app-pg-main@" in pool["connection"]["uri"]
        users = await s.ok("digitalocean_list_users", cluster_id=PG_MAIN_ID)
        assert SEED not in json.dumps(users)  # user lists never carry passwords
