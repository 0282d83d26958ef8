"""Pools as code on a real PgBouncer (1.18 and 1.24, tests/pgbouncer): the export round trip, then a create, an
update and a pruned delete of `[databases]` lines, each applied, reloaded and verified, and planned to no change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from poolpilot.tools.pgbouncer import ini
from poolpilot.tools.pgbouncer.local import LocalPair
from poolpilot.tools.pgbouncer.settings import PgBouncerInstance, PgBouncerSettings
from tests.support import make_app, ok_data, open_client

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def _client(pair: LocalPair, audit: Path) -> AsyncIterator[Client]:
    instance = PgBouncerInstance(name="local", dsn=pair.admin_dsn, ini_path=str(pair.ini_path))
    providers = {"pgbouncer": PgBouncerSettings(instances=(instance,))}
    toolsets = ("digitalocean", "taurusdb", "pgbouncer", "pools", "pools_code")
    app, _, _ = make_app(audit, providers=providers, confirm="off", toolsets=toolsets)
    with anyio.fail_after(30):
        async with open_client(app, mode="auto") as client:
            yield client


async def _ok(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    return ok_data(await client.call_tool(tool, args))


async def _converge(client: Client, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Plan, apply, and plan again (which must show no changes); the applied steps."""
    plan = await _ok(client, "pools_plan", document=doc)
    applied = await _ok(client, "pools_apply", document=doc, plan_id=plan["plan_id"])
    assert applied["failed"] == 0, applied["message"]
    again = await _ok(client, "pools_plan", document=doc)
    assert again["changes"] is False, again["steps"]
    return [(s["action"], s["pool"]) for s in plan["steps"]]


async def test_pools_as_code_creates_updates_and_prunes_real_pgbouncer_lines(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str
) -> None:
    pair = local_pgbouncer
    async with _client(pair, tmp_path / "audit.jsonl") as client:
        doc = await _ok(client, "pools_export", provider="pgbouncer")
        assert (await _ok(client, "pools_plan", document=doc))["changes"] is False
        spec = {"host": "127.0.0.1", "port": pair.pg_port, "dbname": pair.demo_database, "pool_size": 2}
        doc["pools"].append({"provider": "pgbouncer", "location": "local", "pool": db_name, "spec": spec})
        assert await _converge(client, doc) == [("create", db_name)]
        doc["pools"][-1]["spec"] = {**spec, "pool_size": 3, "pool_mode": "transaction"}
        assert await _converge(client, doc) == [("update", db_name)]
        loaded = ini.load(pair.ini_path).databases()[db_name]
        assert (loaded.pool_size, loaded.pool_mode) == (3, "transaction")
        doc["pools"].pop()
        doc["scopes"] = [{"provider": "pgbouncer", "location": "local", "prune": True}]
        assert await _converge(client, doc) == [("delete", db_name)]
        rows = (await _ok(client, "pools_overview", provider="pgbouncer"))["rows"]
    assert db_name not in ini.load(pair.ini_path).databases()
    assert all(r["pool"] != db_name for r in rows)
