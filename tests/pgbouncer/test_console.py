"""DISABLE / ENABLE / KILL through the tools, against each real PgBouncer (1.18, 1.24) of `local_pgbouncer`."""

from __future__ import annotations

from pathlib import Path

import anyio
import psycopg
import pytest

from poolpilot.tools.pgbouncer.admin import AdminConsole
from poolpilot.tools.pgbouncer.local import LocalPair
from tests.pgbouncer.harness import connect, session

pytestmark = pytest.mark.anyio


async def _loaded(admin: AdminConsole, name: str) -> tuple[bool, bool]:
    row = next(d for d in await admin.show_databases() if d.name == name)
    return row.disabled, row.paused


async def test_pgbouncer_disable_refuses_new_clients_until_enable(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=2)
        preview = await s.ok("pgbouncer_disable_database", database=db_name)
        assert preview["preview"]["changes"][0] == {"field": "disabled", "before": False, "after": True}
        assert await _loaded(admin, db_name) == (False, False)  # a preview sends nothing
        done = await s.ok("pgbouncer_disable_database", database=db_name, confirm_token=preview["confirm_token"])
        assert done["executed"] and done["command"] == "DISABLE"
        assert (await _loaded(admin, db_name))[0] is True
        with anyio.fail_after(10), pytest.raises(psycopg.OperationalError):
            await connect(local_pgbouncer, db_name)
        enabled = await s.ok("pgbouncer_enable_database", database=db_name)
        again = await s.ok("pgbouncer_enable_database", database=db_name)
        assert (enabled["outcome"], again["outcome"]) == ("executed", "no_change")
        with anyio.fail_after(10):
            async with await connect(local_pgbouncer, db_name, autocommit=True) as conn:
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    audit = s.audit.read_text()
    assert '"tool":"pgbouncer_disable_database"' in audit and '"tool":"pgbouncer_enable_database"' in audit


async def test_pgbouncer_kill_drops_connections_and_resume_lets_clients_in(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=2)
        with anyio.fail_after(15):
            held = await connect(local_pgbouncer, db_name)
            try:
                await held.execute("SELECT 1")  # a transaction holding a server connection
                preview = await s.ok("pgbouncer_kill_database", database=db_name)
                assert "drops 1 client" in preview["preview"]["impact"]
                done = await s.confirmed("pgbouncer_kill_database", database=db_name)
                assert "pgbouncer_resume_database" in done["message"]
                with pytest.raises(psycopg.OperationalError):
                    await held.execute("SELECT 1")
            finally:
                await held.close()
            assert (await _loaded(admin, db_name))[1] is True  # KILL leaves it paused
            await s.ok("pgbouncer_resume_database", database=db_name)
            async with await connect(local_pgbouncer, db_name, autocommit=True) as conn:
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
        unknown = await s.error("pgbouncer_kill_database", database="no_such_db")
    assert unknown["code"] == "not_found"
