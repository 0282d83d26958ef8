"""pgbouncer_get_config against each real PgBouncer (1.18, 1.24) of `local_pgbouncer`."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolpilot.tools.pgbouncer.admin import AdminConsole
from poolpilot.tools.pgbouncer.config import ShowConfigRow
from poolpilot.tools.pgbouncer.local import LocalPair
from tests.pgbouncer.harness import session

pytestmark = pytest.mark.anyio


async def test_pgbouncer_get_config_reads_values_defaults_and_changeability(
    local_pgbouncer: LocalPair, tmp_path: Path
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        pools = await s.ok("pgbouncer_get_config", key="pool_size")
        changed = await s.ok("pgbouncer_get_config", changed_only=True, page_size=100)
        first = await s.ok("pgbouncer_get_config", page_size=10)
        second = await s.ok("pgbouncer_get_config", page_size=10, cursor=first["next_cursor"])
        bad = await s.error("pgbouncer_get_config", key="a\u2028b")
    rows = {r["key"]: r for r in pools["settings"]}
    assert rows["default_pool_size"]["default"] == "20" and rows["default_pool_size"]["changeable"] is True
    assert all("pool_size" in k for k in rows)
    assert all(r["value"] != r["default"] for r in changed["settings"]) and changed["total"] >= 1
    assert first["total"] >= 80 and len(first["settings"]) == 10
    assert {r["key"] for r in first["settings"]}.isdisjoint(r["key"] for r in second["settings"])
    assert bad["code"] == "validation_error" and bad["field"] == "key"


async def test_pgbouncer_set_config_previews_sets_and_reads_back(
    local_pgbouncer: LocalPair, tmp_path: Path, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        before = (await s.ok("pgbouncer_get_config", key="server_idle_timeout"))["settings"][0]["value"]
        wanted = "61" if before != "61" else "62"
        preview = await s.ok("pgbouncer_set_config", key="server_idle_timeout", value=wanted)
        assert preview["preview"]["changes"][0] == {"field": "server_idle_timeout", "before": before, "after": wanted}
        assert "pgbouncer.ini" in preview["preview"]["impact"]
        done = await s.confirmed("pgbouncer_set_config", key="server_idle_timeout", value=wanted)
        assert done["value_now"] == wanted
        fixed = await s.error("pgbouncer_set_config", key="listen_port", value="1")
        unknown = await s.error("pgbouncer_set_config", key="no_such_key", value="1")
        hostile = await s.error("pgbouncer_set_config", key="server_idle_timeout", value="1'; RELOAD; --\n")
        await s.confirmed("pgbouncer_set_config", key="server_idle_timeout", value=before)
    rows = {r.key: r.value for r in await admin.show("SHOW CONFIG", ShowConfigRow)}
    assert rows["server_idle_timeout"] == before
    assert fixed["code"] == "not_supported" and unknown["code"] == "validation_error" and unknown["field"] == "key"
    assert hostile["code"] == "validation_error" and hostile["field"] == "value" and "RELOAD" not in str(hostile)


async def test_pgbouncer_set_config_quotes_a_value_with_a_quote(
    local_pgbouncer: LocalPair, tmp_path: Path, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        before = (await s.ok("pgbouncer_get_config", key="server_reset_query"))["settings"]
        old = next(r["value"] for r in before if r["key"] == "server_reset_query")
        done = await s.confirmed("pgbouncer_set_config", key="server_reset_query", value="SELECT 'x'")
        assert done["value_now"] == "SELECT 'x'"
        await s.confirmed("pgbouncer_set_config", key="server_reset_query", value=old or "")


async def _config(admin: AdminConsole) -> dict[str, str | None]:
    return {r.key: r.value for r in await admin.show("SHOW CONFIG", ShowConfigRow)}


async def test_pgbouncer_set_config_persist_survives_reload_and_changes_only_its_line(
    local_pgbouncer: LocalPair, tmp_path: Path, admin: AdminConsole
) -> None:
    path = local_pgbouncer.ini_path
    original, mode = path.read_bytes(), path.stat().st_mode
    try:
        async with session(local_pgbouncer, tmp_path) as s:
            preview = await s.ok("pgbouncer_set_config", key="default_pool_size", value="7", persist=True)
            line = {"field": "pgbouncer.ini", "before": "default_pool_size = 5", "after": "default_pool_size = 7"}
            assert preview["preview"]["changes"][1] == line and path.read_bytes() == original
            done = await s.confirmed("pgbouncer_set_config", key="default_pool_size", value="7", persist=True)
            added = await s.confirmed("pgbouncer_set_config", key="server_idle_timeout", value="61", persist=True)
        assert (done["value_now"], done["ini_line"], added["ini_line"]) == (
            "7",
            line["after"],
            "server_idle_timeout = 61",
        )
        await admin.reload()  # a RELOAD resets what only SET changed: these come from the file now
        config = await _config(admin)
        assert (config["default_pool_size"], config["server_idle_timeout"]) == ("7", "61")
        expected = original.replace(b"default_pool_size = 5\n", b"default_pool_size = 7\n")
        assert path.read_bytes() == expected + b"server_idle_timeout = 61\n"  # [pgbouncer] is the file's last section
        assert path.stat().st_mode == mode
    finally:
        path.write_bytes(original)
        await admin.reload()


async def test_pgbouncer_set_config_persist_refuses_hostile_values_and_overriding_includes_changing_nothing(
    local_pgbouncer: LocalPair, tmp_path: Path, admin: AdminConsole
) -> None:
    path = local_pgbouncer.ini_path
    original, before = path.read_bytes(), await _config(admin)
    hostile = ["30\n[databases]", "30 ; x", "30 # x", "[30", "3\u20280", "3\u20290", "3\u00850", "3\x000", " 30"]
    try:
        async with session(local_pgbouncer, tmp_path) as s:
            refused = [
                await s.error("pgbouncer_set_config", key="server_idle_timeout", value=v, persist=True) for v in hostile
            ]
            args = {"key": "server_idle_timeout", "value": "abc", "persist": True}  # PgBouncer refuses it at SET
            token = (await s.ok("pgbouncer_set_config", **args))["confirm_token"]
            rejected = await s.error("pgbouncer_set_config", **args, confirm_token=token)
            assert path.read_bytes() == original
            override = tmp_path / "override.ini"
            override.write_text("default_pool_size = 9\n")  # after the file's own line: it would win on RELOAD
            path.write_bytes(original + f"%include {override}\n".encode())
            included = await s.error("pgbouncer_set_config", key="default_pool_size", value="6", persist=True)
            assert path.read_bytes() == original + f"%include {override}\n".encode()
    finally:
        path.write_bytes(original)
    assert all(r["code"] == "validation_error" and r["field"] == "value" for r in refused), refused
    assert not any(v.strip() in str(r) for v, r in zip(hostile, refused, strict=True))
    assert rejected["code"] == "upstream_error" and "nothing was changed" in rejected["message"]
    assert "abc" not in rejected["message"]
    assert included["code"] == "not_supported" and "%include" in included["message"]
    assert await _config(admin) == before


async def test_pgbouncer_set_config_persist_that_cannot_write_says_the_runtime_changed_and_the_file_did_not(
    local_pgbouncer: LocalPair, tmp_path: Path, admin: AdminConsole
) -> None:
    path = local_pgbouncer.ini_path
    backup = path.with_name(path.name + ".bak")
    original, kept = path.read_bytes(), backup.read_bytes() if backup.is_file() else None
    backup.unlink(missing_ok=True)
    backup.mkdir()  # the write keeps the old file as <ini>.bak first: a directory there makes it fail, even as root
    try:
        async with session(local_pgbouncer, tmp_path) as s:
            preview = await s.ok("pgbouncer_set_config", key="server_idle_timeout", value="63", persist=True)
            args = {
                "key": "server_idle_timeout",
                "value": "63",
                "persist": True,
                "confirm_token": preview["confirm_token"],
            }
            failed = await s.error("pgbouncer_set_config", **args)
        assert "(the SET succeeded)" in failed["message"] and "NOT written" in failed["message"], failed
        assert (await _config(admin))["server_idle_timeout"] == "63" and path.read_bytes() == original
    finally:
        backup.rmdir()
        if kept is not None:
            backup.write_bytes(kept)
        await admin.reload()  # back to the file's value
