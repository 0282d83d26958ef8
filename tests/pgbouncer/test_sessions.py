"""pgbouncer_list_clients / pgbouncer_list_servers against each real PgBouncer (1.18, 1.24) of `local_pgbouncer`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from poolpilot.tools.pgbouncer.local import LocalPair
from tests.pgbouncer.harness import Session, connect, session

pytestmark = pytest.mark.anyio


async def _until(s: Session, tool: str, wanted: int, **args: Any) -> dict[str, Any]:
    """The tool's answer once it has at least `wanted` rows (PgBouncer updates its lists asynchronously)."""
    with anyio.fail_after(5):
        while True:
            data = await s.ok(tool, **args)
            if len(data["rows"]) >= wanted:
                return data


async def test_pgbouncer_list_clients_shows_who_waits_longest_first_and_servers_show_the_holders(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=1, pool_mode="transaction")
        with anyio.fail_after(10):
            holders = [await connect(local_pgbouncer, db_name)]
            holders += [await connect(local_pgbouncer, db_name, autocommit=True) for _ in range(2)]
            try:
                await holders[0].execute("SELECT 1")  # autocommit off: the transaction keeps the one server
                async with anyio.create_task_group() as tg:
                    for conn in holders[1:]:
                        tg.start_soon(conn.execute, "SELECT 1")  # no server left: these wait
                    waiting = await _until(s, "pgbouncer_list_clients", 2, database=db_name, waiting_only=True)
                    every = await s.ok("pgbouncer_list_clients", database=db_name)
                    servers = await _until(s, "pgbouncer_list_servers", 1, database=db_name)
                    await holders[0].rollback()  # frees the server, so the waiting queries run
            finally:
                for conn in holders:
                    await conn.close()
    assert {r["state"] for r in waiting["rows"]} <= {"waiting", "waiting_cancel_req"}
    assert all(r["database"] == db_name and r["user"] for r in waiting["rows"])
    assert [r["waiting_s"] for r in waiting["rows"]] == sorted((r["waiting_s"] for r in waiting["rows"]), reverse=True)
    assert every["states"].get("waiting", 0) >= 2 and len(every["rows"]) >= 3
    assert all(r["addr"] for r in every["rows"])
    assert servers["rows"][0]["state"] == "active" and servers["rows"][0]["port"] == local_pgbouncer.pg_port
    text = repr(every) + repr(servers)
    assert "ptr" not in text and "password" not in text.lower()


async def test_pgbouncer_list_clients_refuses_a_bad_cursor_and_pages(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=2)
        with anyio.fail_after(10):
            conns = [await connect(local_pgbouncer, db_name, autocommit=True) for _ in range(3)]
            try:
                await _until(s, "pgbouncer_list_clients", 3, database=db_name)
                first = await s.ok("pgbouncer_list_clients", database=db_name, page_size=2)
                second = await s.ok("pgbouncer_list_clients", database=db_name, page_size=2, cursor="2")
                bad = await s.error("pgbouncer_list_clients", cursor="x")
            finally:
                for conn in conns:
                    await conn.close()
    assert len(first["rows"]) == 2 and first["next_cursor"] == "2" and len(second["rows"]) >= 1
    assert bad["code"] == "validation_error" and bad["field"] == "cursor"
