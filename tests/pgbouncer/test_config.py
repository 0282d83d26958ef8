"""pgbouncer_get_config against each real PgBouncer (1.18, 1.24) of `local_pgbouncer`."""

from __future__ import annotations

from pathlib import Path

import pytest

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
