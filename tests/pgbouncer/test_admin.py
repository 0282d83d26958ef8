"""AdminConsole against each real PgBouncer (1.18, 1.24) and PostgreSQL started by the `local_pgbouncer` fixture."""

import os
import statistics
import time
import traceback

import anyio
import psycopg
import pytest

from poolpilot.tools.pgbouncer import ini
from poolpilot.tools.pgbouncer.admin import (
    AdminColumnError,
    AdminCommandError,
    AdminConnectError,
    AdminConsole,
    PauseTimedOut,
    ShowDatabasesRow,
    ShowPoolsRow,
    quote_ident,
)
from poolpilot.tools.pgbouncer.local import LocalPair

pytestmark = pytest.mark.anyio

WRONG_PASSWORD = "Wr0ng-Secret-Passw0rd"


async def _paused(admin: AdminConsole, name: str) -> bool:
    return next(d.paused for d in await admin.show_databases() if d.name == name)


# SHOW DATABASES columns as the two versions of the matrix return them.
DATABASES_1_18 = "name host port database force_user pool_size min_pool_size reserve_pool pool_mode max_connections "
DATABASES_1_18 += "current_connections paused disabled"
DATABASES_1_24 = "name host port database force_user pool_size min_pool_size reserve_pool_size server_lifetime "
DATABASES_1_24 += "pool_mode load_balance_hosts max_connections current_connections max_client_connections "
DATABASES_1_24 += "current_client_connections paused disabled"


async def test_show_version_names_pgbouncer(admin: AdminConsole) -> None:
    assert (await admin.show_version()).startswith("PgBouncer ")


async def test_local_pair_runs_the_pgbouncer_version_its_test_id_names(
    admin: AdminConsole, request: pytest.FixtureRequest
) -> None:
    version: str = request.node.callspec.params["local_pgbouncer"]
    assert (await admin.show_version()).startswith(f"PgBouncer {version}.")


def _database_row(columns: str) -> dict[str, object]:
    row: dict[str, object] = {c: 0 for c in columns.split()}
    return row | {"name": "appdb", "host": "127.0.0.1", "database": "appdb", "force_user": None, "pool_mode": None}


@pytest.mark.parametrize(
    ("columns", "reserve"), [(DATABASES_1_18, "reserve_pool"), (DATABASES_1_24, "reserve_pool_size")]
)
def test_show_databases_rows_read_reserve_pool_under_either_name_and_drop_unknown_columns(
    columns: str, reserve: str
) -> None:
    raw = _database_row(columns) | {reserve: 3, "pool_size": 7}
    (row,) = ShowDatabasesRow.from_rows("SHOW DATABASES", columns.split(), [raw])
    assert (row.reserve_pool, row.pool_size) == (3, 7)
    assert set(row.model_dump()) == set(ShowDatabasesRow.model_fields)  # server_lifetime & co. are not carried


def test_show_databases_without_a_reserve_pool_column_names_both_names() -> None:
    columns = DATABASES_1_24.replace("reserve_pool_size ", "")
    with pytest.raises(AdminColumnError) as caught:
        ShowDatabasesRow.from_rows("SHOW DATABASES", columns.split(), [])
    assert str(caught.value) == "SHOW DATABASES returned no column reserve_pool_size or reserve_pool"


def test_show_pools_value_of_another_type_names_the_column_not_the_value() -> None:
    columns = "database user cl_active cl_waiting sv_active sv_idle sv_used sv_tested sv_login maxwait maxwait_us"
    raw: dict[str, object] = {c: 0 for c in columns.split()} | {"database": "appdb", "user": "app"}
    with pytest.raises(AdminColumnError) as caught:
        ShowPoolsRow.from_rows("SHOW POOLS", columns.split(), [raw | {"cl_waiting": "Secret-Looking-Value"}])
    assert caught.value.column == "cl_waiting" and "Secret-Looking-Value" not in str(caught.value)
    (row,) = ShowPoolsRow.from_rows("SHOW POOLS", columns.split(), [raw])
    assert row.pool_mode is None  # an optional field whose column is absent keeps its default


async def test_show_databases_reads_a_value_that_is_not_utf8_without_failing(
    admin: AdminConsole, local_pgbouncer: LocalPair, db_name: str
) -> None:
    # pgbouncer.ini is bytes to PgBouncer: a Latin-1 dbname comes back as such from the console.
    path = local_pgbouncer.ini_path
    original = path.read_bytes()
    line = f"{db_name} = host=127.0.0.1 dbname=caf".encode() + b"\xe9\n"
    path.write_bytes(original.replace(b"[databases]\n", b"[databases]\n" + line, 1))
    try:
        await admin.reload()
        rows = {d.name: d for d in await admin.show_databases()}
    finally:
        path.write_bytes(original)
        await admin.reload()
    assert rows[db_name].database == "caf\\xe9"


async def test_show_databases_lists_the_demo_database_as_configured(
    admin: AdminConsole, local_pgbouncer: LocalPair
) -> None:
    rows = {row.name: row for row in await admin.show_databases()}
    demo = rows[local_pgbouncer.demo_database]
    assert (demo.host, demo.port, demo.database, demo.pool_size) == ("127.0.0.1", local_pgbouncer.pg_port, "appdb", 5)
    assert not demo.paused and not demo.disabled


async def test_show_pools_and_stats_see_a_client_of_the_demo_database(
    admin: AdminConsole, local_pgbouncer: LocalPair
) -> None:
    with anyio.fail_after(5):
        async with await psycopg.AsyncConnection.connect(local_pgbouncer.app_dsn, autocommit=True) as client:
            await client.execute("SELECT 1")
            pools = [p for p in await admin.show_pools() if p.database == "appdb"]
            assert sum(p.cl_active for p in pools) >= 1 and pools[0].user == "app"
            assert all(p.max_wait_s >= 0 for p in pools)
    stats = {s.database: s for s in await admin.show_stats()}
    assert stats["appdb"].total_query_count >= 1


async def test_show_pools_300_rounds_never_hit_the_prepared_statement_error(admin: AdminConsole) -> None:
    # psycopg's default cursor would prepare the query after 5 runs; the console refuses prepared statements.
    took: list[float] = []
    for _ in range(300):
        started = time.perf_counter()
        assert await admin.show_pools()
        took.append(time.perf_counter() - started)
    print(f"SHOW POOLS p50 {statistics.median(took) * 1000:.3f} ms over 300 rounds")


async def test_pause_with_a_client_in_a_transaction_times_out_and_resumes(
    admin: AdminConsole, local_pgbouncer: LocalPair
) -> None:
    with anyio.fail_after(5):
        async with await psycopg.AsyncConnection.connect(local_pgbouncer.app_dsn) as holder:
            await holder.execute("SELECT 1")  # opens a transaction, holding a server connection
            with pytest.raises(PauseTimedOut) as caught:
                await admin.pause("appdb", timeout_s=0.3)
            await holder.rollback()
        assert caught.value.resumed and caught.value.clients_active >= 1
        assert "RESUME appdb was sent" in str(caught.value)
        assert not await _paused(admin, "appdb")
        async with await psycopg.AsyncConnection.connect(local_pgbouncer.app_dsn) as newcomer:
            assert await (await newcomer.execute("SELECT 1")).fetchone() == (1,)  # would hang if still paused


async def test_pause_cancelled_by_the_caller_leaves_the_database_not_paused(
    admin: AdminConsole, local_pgbouncer: LocalPair
) -> None:
    with anyio.fail_after(5):
        async with await psycopg.AsyncConnection.connect(local_pgbouncer.app_dsn) as holder:
            await holder.execute("SELECT 1")
            with anyio.move_on_after(0.3) as scope:
                await admin.pause("appdb", timeout_s=30)
            await holder.rollback()
        assert scope.cancelled_caught
        assert not await _paused(admin, "appdb")


async def test_pause_of_an_idle_database_returns_and_resume_undoes_it(admin: AdminConsole) -> None:
    with anyio.fail_after(5):
        waited = await admin.pause("appdb", timeout_s=3)
        try:
            assert waited < 3 and await _paused(admin, "appdb")
        finally:
            await admin.resume("appdb")
        assert not await _paused(admin, "appdb")


async def test_pause_of_an_unknown_database_raises_the_console_error(admin: AdminConsole) -> None:
    with pytest.raises(AdminCommandError, match="no such database"):
        await admin.pause("no_such_db", timeout_s=1)


async def test_resume_of_a_database_that_is_not_paused_raises_the_console_error(admin: AdminConsole) -> None:
    with pytest.raises(AdminCommandError, match="is not paused") as caught:
        await admin.resume("appdb")
    assert caught.value.sqlstate == "08P01"
    assert await admin.show_version()  # the console connection survives a refused command


async def test_stats_user_can_read_but_not_pause(local_pgbouncer: LocalPair) -> None:
    async with AdminConsole(local_pgbouncer.stats_dsn) as stats:
        assert await stats.show_pools()
        with pytest.raises(AdminCommandError, match="admin access needed"):
            await stats.pause("appdb", timeout_s=1)


async def test_reload_after_editing_the_ini_shows_the_new_database(
    admin: AdminConsole, local_pgbouncer: LocalPair, db_name: str
) -> None:
    path = local_pgbouncer.ini_path
    before, owner = ini.load(path), os.stat(path)
    entry = ini.DatabaseEntry(
        name=db_name,
        host="127.0.0.1",
        port=local_pgbouncer.pg_port,
        dbname="appdb",
        pool_size=3,
        pool_mode="transaction",
    )
    ini.write_atomically(path, before.with_entry(entry), expected=before.text)
    try:
        after = os.stat(path)
        assert (after.st_uid, after.st_gid, after.st_mode) == (owner.st_uid, owner.st_gid, owner.st_mode)
        await admin.reload()
        row = next(d for d in await admin.show_databases() if d.name == db_name)
        loaded = (row.host, row.port, row.database, row.pool_size, row.pool_mode)
        assert loaded == ("127.0.0.1", local_pgbouncer.pg_port, "appdb", 3, "transaction")
        with anyio.fail_after(5):
            async with await psycopg.AsyncConnection.connect(local_pgbouncer.dsn(db_name)) as client:
                assert await (await client.execute("SELECT current_database()")).fetchone() == ("appdb",)
    finally:
        ini.write_atomically(path, ini.load(path).without(db_name))
        await admin.reload()


async def test_reload_of_a_file_pgbouncer_cannot_load_answers_ok_so_restore_the_backup(
    admin: AdminConsole, local_pgbouncer: LocalPair, db_name: str
) -> None:
    path = local_pgbouncer.ini_path
    original = path.read_bytes()
    broken = original.decode().replace("[databases]\n", f'[databases]\n"quoted name" = dbname=appdb\n{db_name} =\n')
    ini.write_atomically(path, broken)
    try:
        await admin.reload()  # PgBouncer logs "syntax error in configuration" yet answers RELOAD
        assert db_name not in {d.name for d in await admin.show_databases()}
    finally:
        ini.restore_backup(path)
        await admin.reload()
    assert path.read_bytes() == original


async def test_bad_password_error_names_no_password(local_pgbouncer: LocalPair) -> None:
    dsn = local_pgbouncer.admin_dsn.replace(local_pgbouncer.admin_dsn.split(":")[2].split("@")[0], WRONG_PASSWORD)
    console = AdminConsole(dsn)
    with pytest.raises(AdminConnectError) as caught:
        await console.show_pools()
    seen = "".join(traceback.format_exception(caught.value)) + repr(caught.value) + repr(console)
    assert "authentication failed" in str(caught.value)
    assert WRONG_PASSWORD not in seen and dsn not in seen


async def test_unreachable_console_error_names_no_password() -> None:
    console = AdminConsole(f"postgresql://admin:{WRONG_PASSWORD}@127.0.0.1:1/pgbouncer", connect_timeout_s=2)
    with pytest.raises(AdminConnectError) as caught:
        await console.show_version()
    assert WRONG_PASSWORD not in "".join(traceback.format_exception(caught.value))


def test_dsn_for_another_database_or_unparsable_is_refused_without_echoing_it() -> None:
    for dsn in (f"postgresql://admin:{WRONG_PASSWORD}@localhost/appdb", f"host=x password='{WRONG_PASSWORD}"):
        with pytest.raises(ValueError) as caught:
            AdminConsole(dsn)
        assert WRONG_PASSWORD not in str(caught.value)


@pytest.mark.parametrize(("name", "quoted"), [("appdb", '"appdb"'), ('we"ird', '"we""ird"'), ("a b;c", '"a b;c"')])
def test_quote_ident_doubles_quotes_inside_double_quotes(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


@pytest.mark.parametrize("name", ["", "a\nRESUME", "x" * 62])
def test_quote_ident_rejects_empty_control_characters_and_too_long(name: str) -> None:
    with pytest.raises(ini.InvalidSetting) as caught:
        quote_ident(name)
    assert caught.value.field == "database"
