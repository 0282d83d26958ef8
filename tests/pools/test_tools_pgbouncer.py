"""pools_overview and pools_advise with a real PgBouncer configured beside the sandbox providers: its live pool
rows, a waiting client firing `pgbouncer_waiting`, and the confirmed suggested call clearing it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from poolpilot.tools.pgbouncer.local import LocalPair
from poolpilot.tools.pgbouncer.settings import PgBouncerInstance, PgBouncerSettings
from tests.pgbouncer.harness import connect
from tests.support import make_app, open_client

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def _client(pair: LocalPair, audit: Path, mode: str = "auto") -> AsyncIterator[Client]:
    instance = PgBouncerInstance(name="local", dsn=pair.admin_dsn, ini_path=str(pair.ini_path))
    app, _, _ = make_app(audit, providers={"pgbouncer": PgBouncerSettings(instances=(instance,))})
    async with open_client(app, mode=mode) as client:
        yield client


async def _data(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    data: dict[str, Any] | None = result.structured_content
    assert not result.is_error and data is not None, result.content
    return data


async def _create(client: Client, pair: LocalPair, database: str) -> None:
    base = {"instance": "local", "host": "127.0.0.1", "port": pair.pg_port, "dbname": pair.demo_database}
    await _data(client, "pgbouncer_create_pool", database=database, pool_size=1, pool_mode="transaction", **base)


async def _waiting_findings(client: Client, database: str, *, present: bool) -> list[dict[str, Any]]:
    """pgbouncer_waiting findings for `database`, polled until there are some (or none): SHOW POOLS lags."""
    while True:
        data = await _data(client, "pools_advise", provider="pgbouncer")
        found = [f for f in data["findings"] if f["rule"] == "pgbouncer_waiting" and f["pool"] == database]
        if bool(found) is present:
            return found


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_pools_overview_includes_the_real_pgbouncer_beside_the_sandbox(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, mode: str
) -> None:
    async with _client(local_pgbouncer, tmp_path / "audit.jsonl", mode) as client:
        with anyio.fail_after(15):
            await _create(client, local_pgbouncer, db_name)
            data = await _data(client, "pools_overview")
            healthy = await _data(client, "pools_advise", provider="pgbouncer", location="local")
    assert data["backend"] == "mixed" and data["errors"] == []
    assert {r["provider"] for r in data["rows"]} == {"digitalocean", "taurusdb", "pgbouncer"}
    row = next(r for r in data["rows"] if r["provider"] == "pgbouncer" and r["pool"] == db_name)
    assert (row["location"], row["backend"], row["mode"], row["size"]) == ("local", "live", "transaction", 1)
    assert (row["clients_waiting"], row["max_wait_s"], row["saturation"]) == (0, 0.0, "ok")
    assert not [f for f in healthy["findings"] if f["pool"] == db_name]


async def test_pools_advise_waiting_clients_suggest_a_bigger_pool_that_clears_the_finding(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str
) -> None:
    async with _client(local_pgbouncer, tmp_path / "audit.jsonl") as client:
        with anyio.fail_after(20):
            await _create(client, local_pgbouncer, db_name)
            holder = await connect(local_pgbouncer, db_name)
            waiter = await connect(local_pgbouncer, db_name)
            try:
                await holder.execute("SELECT 1")  # autocommit off: the transaction keeps the only server
                async with anyio.create_task_group() as group:
                    group.start_soon(waiter.execute, "SELECT 1")  # no server left: it waits
                    (finding,) = await _waiting_findings(client, db_name, present=True)
                    assert finding["evidence"]["clients_waiting"] == 1 and finding["evidence"]["pool_size"] == 1
                    call = finding["suggested_call"]
                    assert call == {
                        "tool": "pgbouncer_update_pool",
                        "arguments": {"instance": "local", "database": db_name, "pool_size": 2},
                    }
                    preview = await _data(client, call["tool"], **call["arguments"])
                    token = preview["confirm_token"]
                    done = await _data(client, call["tool"], **call["arguments"], confirm_token=token)
                    assert done["executed"] is True
                    assert await _waiting_findings(client, db_name, present=False) == []
            finally:
                await holder.close()
                await waiter.close()
