"""What the PgBouncer tools refuse, and how they fail safely: bad values, reload failures, no config file, secrets."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from poolpilot.server.kernel.config import ConfigError
from poolpilot.server.shell.app import load_settings
from poolpilot.tools.pgbouncer import ini
from poolpilot.tools.pgbouncer.admin import AdminConsole
from poolpilot.tools.pgbouncer.local import LocalPair
from poolpilot.tools.pgbouncer.settings import of
from tests.pgbouncer.harness import session

pytestmark = pytest.mark.anyio

POOL_PASSWORD = "Pool-Secret-0f9e8d7c"
REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def _edited_ini(pair: LocalPair, admin: AdminConsole, extra_lines: str) -> AsyncIterator[bytes]:
    """Put `extra_lines` first in [databases] and RELOAD; afterwards restore the file and reload again."""
    original = pair.ini_path.read_text()
    ini.write_atomically(pair.ini_path, original.replace("[databases]\n", "[databases]\n" + extra_lines, 1))
    await admin.reload()
    try:
        yield pair.ini_path.read_bytes()
    finally:
        ini.write_atomically(pair.ini_path, original)
        await admin.reload()


async def test_pgbouncer_update_pool_invalid_values_are_rejected_before_the_file_is_touched(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=2)
        before = local_pgbouncer.ini_path.read_bytes()
        host = await s.error("pgbouncer_update_pool", database=db_name, host="db host;drop")
        dbname = await s.error("pgbouncer_update_pool", database=db_name, dbname="app\nauth_type = trust")
        size = await s.error("pgbouncer_update_pool", database=db_name, pool_size=0)
        name = await s.error("pgbouncer_create_pool", database="two words", pool_size=2)
        reserved = await s.error("pgbouncer_create_pool", database="pgbouncer", pool_size=2)
        nothing = await s.error("pgbouncer_update_pool", database=db_name)
    assert (host["code"], host["field"]) == ("validation_error", "host") and "hostname" in host["allowed"][0]
    assert (dbname["field"], size["field"], name["field"], reserved["field"]) == (
        "dbname",
        "pool_size",
        "database",
        "database",
    )
    assert nothing["code"] == "validation_error" and "pool_size" in nothing["allowed"]
    assert "db host" not in host["message"] and "trust" not in dbname["message"]  # never echo a rejected value
    assert local_pgbouncer.ini_path.read_bytes() == before
    assert next(d.pool_size for d in await admin.show_databases() if d.name == db_name) == 2


async def test_pgbouncer_create_pool_reload_failure_restores_the_backup(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    # A line PgBouncer cannot load, already in the file: PgBouncer stops loading there (RELOAD still answers OK),
    # so the pool appended after it never loads. Only our verification against SHOW DATABASES can tell.
    async with _edited_ini(local_pgbouncer, admin, "pp_broken = host=127.0.0.1 no_such_param=1\n") as broken:
        async with session(local_pgbouncer, tmp_path) as s:
            error = await s.error("pgbouncer_create_pool", database=db_name, host="127.0.0.1", pool_size=3)
        assert error["code"] == "reload_failed"
        assert f'database: file has "{db_name}", PgBouncer shows None' in error["message"]
        assert "restored from its backup and reloaded" in error["message"]
        # The file was broken before this call: saying "the previous configuration is in force" would be false.
        assert 'did not fully load before this call either (database: file has "pp_broken"' in error["message"]
        assert "previous configuration" not in error["message"]
        assert local_pgbouncer.ini_path.read_bytes() == broken
        assert db_name not in {d.name for d in await admin.show_databases()}
    audit = [json.loads(line) for line in s.audit.read_text().splitlines()]
    assert [a["outcome"] for a in audit] == ["started", "failed:reload_failed"]


async def test_pgbouncer_reload_reports_pools_in_the_file_that_pgbouncer_did_not_load(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    lines = f"pp_broken = host=127.0.0.1 no_such_param=1\n{db_name} = host=127.0.0.1 pool_size=4\n"
    async with _edited_ini(local_pgbouncer, admin, lines), session(local_pgbouncer, tmp_path) as s:
        preview = await s.ok("pgbouncer_reload")
        assert {"field": db_name, "before": None, "after": db_name} in preview["preview"]["changes"]
        error = await s.error("pgbouncer_reload", confirm_token=preview["confirm_token"])
    assert error["code"] == "reload_failed" and "RELOAD was sent" in error["message"] and db_name in error["message"]


async def test_pgbouncer_create_pool_without_a_config_file_is_not_supported(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str
) -> None:
    async with session(local_pgbouncer, tmp_path, ini=False) as s:
        listed = await s.ok("pgbouncer_list_pools")
        errors = [
            await s.error("pgbouncer_create_pool", database=db_name, pool_size=2),
            await s.error("pgbouncer_update_pool", database=local_pgbouncer.demo_database, pool_size=2),
            await s.error("pgbouncer_delete_pool", database=local_pgbouncer.demo_database),
        ]
    assert any(p["database"] == local_pgbouncer.demo_database for p in listed["pools"])
    assert {e["code"] for e in errors} == {"not_supported"}
    assert all("POOLPILOT_PGBOUNCER_LOCAL_INI" in e["hint"] for e in errors)


async def test_pgbouncer_update_pool_never_shows_the_pool_or_dsn_passwords(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    line = f"{db_name} = host=127.0.0.1 password={POOL_PASSWORD} pool_size=2\n"
    async with _edited_ini(local_pgbouncer, admin, line), session(local_pgbouncer, tmp_path) as s:
        preview = await s.ok("pgbouncer_update_pool", database=db_name, pool_size=3)
        done = await s.ok(
            "pgbouncer_update_pool", database=db_name, pool_size=3, confirm_token=preview["confirm_token"]
        )
        assert f"password={POOL_PASSWORD}" in local_pgbouncer.ini_path.read_text()  # kept in the file
    assert done["line_before"] == f"{db_name} = host=127.0.0.1 password=*** pool_size=2"
    assert done["line_after"] == f"{db_name} = host=127.0.0.1 password=*** pool_size=3"
    admin_password = local_pgbouncer.admin_dsn.split(":")[2].split("@")[0]
    wrong = local_pgbouncer.admin_dsn.replace(admin_password, "Wrong-Dsn-Secret-123")
    async with session(local_pgbouncer, tmp_path / "wrong", dsn=wrong) as bad:
        refused = await bad.error("pgbouncer_list_pools")
    assert refused["code"] == "connection_error"
    for text in [*s.seen, *bad.seen, s.audit.read_text(), bad.audit.read_text() if bad.audit.exists() else ""]:
        assert POOL_PASSWORD not in text and admin_password not in text and "Wrong-Dsn-Secret-123" not in text


async def test_pgbouncer_list_pools_without_psycopg_names_the_extra_to_install(tmp_path: Path) -> None:
    # A child process where `import psycopg` fails, as on a core install without the extra.
    script = textwrap.dedent(
        """
        import sys, json, anyio
        sys.modules["psycopg"] = None
        from mcp import Client
        from poolpilot.server.shell.app import build_app
        from poolpilot.server.kernel.config import Settings
        from poolpilot.tools.pgbouncer.settings import PgBouncerInstance, PgBouncerSettings

        async def main():
            instance = PgBouncerInstance(name="local", dsn="postgresql://admin:Secret-xyz-1@127.0.0.1:1/pgbouncer")
            own = PgBouncerSettings(instances=(instance,))
            settings = Settings(audit_log=sys.argv[1], toolsets=("pgbouncer",), providers={"pgbouncer": own})
            async with Client(build_app(settings)) as client:
                result = await client.call_tool("pgbouncer_list_pools", {"instance": "local"})
                print(json.dumps(result.structured_content))

        anyio.run(main)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    with anyio.fail_after(30):
        done = await anyio.run_process([sys.executable, "-c", script, str(tmp_path / "audit.jsonl")], env=env)
    error = json.loads(done.stdout.decode().strip().splitlines()[-1])
    # The extra's name, in the form this installation takes it (a clone here: pip install -e '.[pgbouncer]').
    assert error["code"] == "not_supported" and "[pgbouncer]'" in error["hint"]


def test_pgbouncer_list_pools_thresholds_come_from_the_environment() -> None:
    env = {"POOLPILOT_PGBOUNCER_MAX_WAIT_S": "2.5", "POOLPILOT_PGBOUNCER_MAX_WAITING_CLIENTS": "3", "HOME": "/tmp"}
    settings = load_settings(env=env)
    assert (of(settings).max_wait_s, of(settings).max_waiting_clients) == (2.5, 3)
    assert of(load_settings(env={"HOME": "/tmp"})).max_waiting_clients == 0
    with pytest.raises(ConfigError, match="POOLPILOT_PGBOUNCER_MAX_WAITING_CLIENTS"):
        load_settings(env={**env, "POOLPILOT_PGBOUNCER_MAX_WAITING_CLIENTS": "-1"})


async def test_pgbouncer_update_pool_when_pgbouncer_stops_answering_after_the_write_restores_the_file(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    # A real failure after the write: PgBouncer is stopped (SIGSTOP) between the preview and the confirmed call,
    # so the file is written and then RELOAD gets no answer. The backup goes back and the error says what is in
    # force: the file is the previous one, PgBouncer's memory is unknown until it reloads.
    async with session(local_pgbouncer, tmp_path, read_timeout_s=1.0, connect_timeout_s=1.0) as s:
        await s.create(db_name, pool_size=2)
        before = local_pgbouncer.ini_path.read_bytes()
        preview = await s.ok("pgbouncer_update_pool", database=db_name, pool_size=3)
        pid = int((local_pgbouncer.root / "pgbouncer.pid").read_text())
        os.kill(pid, signal.SIGSTOP)
        try:
            error = await s.error(
                "pgbouncer_update_pool", database=db_name, pool_size=3, confirm_token=preview["confirm_token"]
            )
        finally:
            os.kill(pid, signal.SIGCONT)
        assert local_pgbouncer.ini_path.read_bytes() == before
    assert error["code"] == "timeout"
    assert "restored from its backup but RELOAD failed" in error["message"]
    assert "may still run the change until it reloads" in error["message"]
    await admin.reload()
    assert next(d.pool_size for d in await admin.show_databases() if d.name == db_name) == 2
    audit = [json.loads(line) for line in s.audit.read_text().splitlines()]
    assert [a["outcome"] for a in audit][-2:] == ["started", "failed:timeout"]


async def test_pgbouncer_update_pool_beside_a_pending_line_that_is_not_utf8_is_applied_and_verified(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    # Another pool's line in Latin-1, written but not yet reloaded: our RELOAD loads it too, and the verification
    # read must still parse SHOW DATABASES (it used to raise after the write, leaving the change applied).
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=2)
        path = local_pgbouncer.ini_path
        original = path.read_bytes()
        latin1 = f"{db_name}_l1 = host=127.0.0.1 dbname=caf".encode() + b"\xe9\n"
        path.write_bytes(original.replace(b"[databases]\n", b"[databases]\n" + latin1, 1))
        try:
            preview = await s.ok("pgbouncer_update_pool", database=db_name, pool_size=3)
            done = await s.ok(
                "pgbouncer_update_pool", database=db_name, pool_size=3, confirm_token=preview["confirm_token"]
            )
            listed = {p["database"] for p in (await s.ok("pgbouncer_list_pools", page_size=100))["pools"]}
        finally:
            ini.write_atomically(path, original.decode("utf-8"))
            await admin.reload()
    assert done["executed"] and done["line_after"].endswith("pool_size=3")
    assert {db_name, f"{db_name}_l1"} <= listed
