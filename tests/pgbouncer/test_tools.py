"""The PgBouncer tools through an MCP client, against each real PgBouncer (1.18, 1.24) of `local_pgbouncer`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from poolpilot.tools.pgbouncer.admin import AdminConsole
from poolpilot.tools.pgbouncer.local import LocalPair
from tests.pgbouncer.harness import MODES, Session, connect, session
from tests.support import ManualClock

pytestmark = pytest.mark.anyio


async def _row(s: Session, database: str, **wanted: Any) -> dict[str, Any]:
    """The list_pools row of `database` once it matches `wanted` (polled: PgBouncer updates asynchronously)."""
    with anyio.fail_after(5):
        while True:
            rows = (await s.ok("pgbouncer_list_pools", database=database))["pools"]
            row: dict[str, Any] = next((r for r in rows if r["user"] is not None), rows[0])
            if all(row[k] >= v if isinstance(v, int) else row[k] == v for k, v in wanted.items()):
                return row


async def test_pgbouncer_list_pools_unknown_instance_lists_the_configured_ones(
    local_pgbouncer: LocalPair, tmp_path: Path
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        error = await s.error("pgbouncer_list_pools", instance="nope")
    assert (error["code"], error["field"], error["allowed"]) == ("validation_error", "instance", ["local"])


async def test_pgbouncer_create_pool_serves_queries_through_pgbouncer(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        created = await s.create(db_name, pool_size=3, pool_mode="transaction", reserve_pool=1)
        assert created["outcome"] == "executed"
        assert created["line"].startswith(f"{db_name} = host=127.0.0.1 port=")
        loaded = next(d for d in await admin.show_databases() if d.name == db_name)
        assert (loaded.pool_size, loaded.pool_mode, loaded.reserve_pool, loaded.database) == (
            3,
            "transaction",
            1,
            "appdb",
        )
        with anyio.fail_after(5):
            async with await connect(local_pgbouncer, db_name, autocommit=True) as conn:
                assert await (await conn.execute("SELECT current_database()")).fetchone() == ("appdb",)
                row = await _row(s, db_name, user="app")
        assert (row["pool_size"], row["pool_mode"], row["saturation"]) == (3, "transaction", "ok")
        again = await s.error("pgbouncer_create_pool", database=db_name, pool_size=2)
        assert again["code"] == "conflict"
    audit = s.audit.read_text()
    assert '"tool":"pgbouncer_create_pool"' in audit and '"outcome":"started"' in audit


async def test_pgbouncer_update_pool_token_path_changes_size_and_mode(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=2)
        args = {"database": db_name, "pool_size": 7, "pool_mode": "transaction"}
        preview = await s.ok("pgbouncer_update_pool", **args)
        assert preview["outcome"] == "confirmation_required"
        changes = {c["field"]: (c["before"], c["after"]) for c in preview["preview"]["changes"]}
        assert changes["pool_size"] == (2, 7) and changes["pool_mode"] == (None, "transaction")
        assert "pool_size=2" in changes["line"][0] and "pool_size=7 pool_mode=transaction" in changes["line"][1]
        loaded = next(d for d in await admin.show_databases() if d.name == db_name)
        assert loaded.pool_size == 2  # a preview changes nothing
        done = await s.ok("pgbouncer_update_pool", **args, confirm_token=preview["confirm_token"])
        assert done["executed"] and "pool_size=7" in done["line_after"]
        other = {**args, "pool_size": 8}
        reused = await s.error("pgbouncer_update_pool", **other, confirm_token=preview["confirm_token"])
        assert reused["code"] == "confirmation_invalid"
        same = await s.ok("pgbouncer_update_pool", **args)
        assert same["outcome"] == "no_change"
    loaded = next(d for d in await admin.show_databases() if d.name == db_name)
    assert (loaded.pool_size, loaded.pool_mode) == (7, "transaction")


@pytest.mark.parametrize("mode", MODES)
async def test_pgbouncer_update_pool_elicitation_accept_applies_the_change(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole, mode: str
) -> None:
    async with session(local_pgbouncer, tmp_path, mode=mode, answer="yes") as s:
        await s.create(db_name, pool_size=2)
        done = await s.ok("pgbouncer_update_pool", database=db_name, pool_size=4, pool_mode="session")
        assert done["executed"] and done["confirmed_by"] == "elicitation"
    assert len(s.asked) == 1 and f'database "{db_name}" on PgBouncer local' in s.asked[0]
    loaded = next(d for d in await admin.show_databases() if d.name == db_name)
    assert (loaded.pool_size, loaded.pool_mode) == (4, "session")


async def test_pgbouncer_update_pool_declined_changes_nothing(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str
) -> None:
    async with session(local_pgbouncer, tmp_path, answer="decline") as s:
        await s.create(db_name, pool_size=2)
        before = local_pgbouncer.ini_path.read_bytes()
        declined = await s.ok("pgbouncer_update_pool", database=db_name, pool_size=9)
        assert (declined["outcome"], declined["executed"]) == ("declined", False)
    assert local_pgbouncer.ini_path.read_bytes() == before


async def test_pgbouncer_list_pools_saturated_when_more_clients_than_its_size_hold_transactions(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=2, pool_mode="transaction")
        with anyio.fail_after(10):
            holders = [await connect(local_pgbouncer, db_name) for _ in range(4)]
            try:
                for conn in holders[:2]:
                    await conn.execute("SELECT 1")  # autocommit off: the transaction keeps its server
                full = await _row(s, db_name, sv_active=2)
                assert (full["saturation"], full["cl_waiting"]) == ("at_capacity", 0)
                assert "all 2 server connections of the pool are in use" in full["reasons"]
                async with anyio.create_task_group() as tg:
                    for conn in holders[2:]:
                        tg.start_soon(conn.execute, "SELECT 1")  # no server left: these wait
                    row = await _row(s, db_name, cl_waiting=2)
                    assert row["saturation"] == "saturated" and row["sv_active"] == 2
                    assert "2 client(s) waiting for a server (threshold 0)" in row["reasons"]
                    # Lenient on both waiting thresholds: on a loaded machine the clients may already have
                    # waited longer than the default 1 s by the time this second session reads the pool.
                    async with session(
                        local_pgbouncer, tmp_path, pgbouncer_max_waiting_clients=5, pgbouncer_max_wait_s=600.0
                    ) as lenient:
                        relaxed = await _row(lenient, db_name, cl_waiting=2)
                    assert relaxed["saturation"] == "at_capacity"
                    for conn in holders[:2]:
                        await conn.rollback()  # frees the servers, so the waiting queries run
            finally:
                for conn in holders:
                    await conn.close()


async def test_pgbouncer_pause_database_waits_for_the_active_client_then_resume_lets_clients_in(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path, answer="yes") as s:
        await s.create(db_name, pool_mode="transaction")
        result: dict[str, Any] = {}
        with anyio.fail_after(10):
            async with await connect(local_pgbouncer, db_name) as holder:
                await holder.execute("SELECT 1")  # a transaction PAUSE has to wait for

                async def pause() -> None:
                    result.update(await s.ok("pgbouncer_pause_database", database=db_name, timeout_s=8))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(pause)
                    while not next(d.paused for d in await admin.show_databases() if d.name == db_name):
                        pass  # each SHOW DATABASES awaits the network, so this loop yields
                    await holder.rollback()
            assert result["executed"] and result["confirmed_by"] == "elicitation"
            assert result["clients_waited_for"] == 1 and result["waited_s"] > 0
            again = await s.ok("pgbouncer_pause_database", database=db_name)
            assert again["outcome"] == "no_change"
            resumed = await s.ok("pgbouncer_resume_database", database=db_name)
            assert resumed["outcome"] == "executed"
            async with await connect(local_pgbouncer, db_name, autocommit=True) as newcomer:
                assert await (await newcomer.execute("SELECT 1")).fetchone() == (1,)  # hangs if still paused
            idle = await s.ok("pgbouncer_resume_database", database=db_name)
            assert idle["outcome"] == "no_change"


async def test_pgbouncer_pause_database_timeout_resumes_and_says_so(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_mode="transaction")
        with anyio.fail_after(10):
            async with await connect(local_pgbouncer, db_name) as holder:
                await holder.execute("SELECT 1")
                args = {"database": db_name, "timeout_s": 0.3}
                preview = await s.ok("pgbouncer_pause_database", **args)
                error = await s.error("pgbouncer_pause_database", **args, confirm_token=preview["confirm_token"])
                await holder.rollback()
    assert error["code"] == "timeout" and "RESUME" in error["message"] and "not paused" in error["hint"]
    assert not next(d.paused for d in await admin.show_databases() if d.name == db_name)


async def test_pgbouncer_reconnect_database_and_reload_run_after_confirmation(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name)
        reconnected = await s.confirmed("pgbouncer_reconnect_database", database=db_name)
        reloaded = await s.confirmed("pgbouncer_reload")
        missing = await s.error("pgbouncer_reconnect_database", database="pp_no_such_db")
    assert (reconnected["command"], reloaded["command"]) == ("RECONNECT", "RELOAD")
    assert missing["code"] == "not_found" and db_name in missing["allowed"]


async def test_pgbouncer_delete_pool_removes_the_line_and_the_database(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=2)
        deleted = await s.confirmed("pgbouncer_delete_pool", database=db_name)
        gone = await s.error("pgbouncer_delete_pool", database=db_name)
    assert deleted["deleted_line"].startswith(f"{db_name} = ") and gone["code"] == "not_found"
    assert f"{db_name} =" not in local_pgbouncer.ini_path.read_text()
    assert db_name not in {d.name for d in await admin.show_databases()}


async def test_pgbouncer_get_stats_window_gives_per_second_rates(local_pgbouncer: LocalPair, tmp_path: Path) -> None:
    clock = ManualClock()
    with anyio.fail_after(5):
        conn = await connect(local_pgbouncer, local_pgbouncer.demo_database, autocommit=True)
    async with conn:
        await conn.execute("SELECT 1")

        async def traffic(seconds: float) -> None:
            """The sampling window: ten queries through PgBouncer, on a clock that moves only here."""
            for _ in range(10):
                await conn.execute("SELECT 1")
            clock.advance(seconds)

        async with session(local_pgbouncer, tmp_path, clock=clock, sleep=traffic) as s:
            with anyio.fail_after(5):
                # PgBouncer 1.18 counts one query more in the first window after a server connection is set up.
                await s.ok("pgbouncer_get_stats", database=local_pgbouncer.demo_database, window_s=1)
                stats = await s.ok("pgbouncer_get_stats", database=local_pgbouncer.demo_database, window_s=2)
                plain = await s.ok("pgbouncer_get_stats", database=local_pgbouncer.demo_database)
    (row,) = stats["databases"]
    assert stats["window_s"] == 2 and row["query_per_s"] == 5.0 and row["xact_per_s"] == 5.0
    assert row["total_query_count"] >= 10 and row["waiting_clients_avg"] == 0
    assert plain["window_s"] == 0 and plain["databases"][0]["query_per_s"] is None
