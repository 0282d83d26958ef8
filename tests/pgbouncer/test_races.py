"""Two confirmed edits of one pool at once (issue 17): one writer per instance, so the second is refused as a
changed target and the file holds exactly the first edit, on every PgBouncer version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from poolpilot.tools.pgbouncer.local import LocalPair
from tests.pgbouncer.harness import session

pytestmark = pytest.mark.anyio


async def test_concurrent_confirmed_updates_of_one_pool_apply_one_and_refuse_the_other(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=2)
        changes: list[dict[str, Any]] = [{"pool_size": 3}, {"pool_mode": "session"}]
        tokens = [(await s.ok("pgbouncer_update_pool", database=db_name, **c))["confirm_token"] for c in changes]
        results: list[tuple[bool, dict[str, Any]]] = []

        async def one(change: dict[str, Any], token: str) -> None:
            results.append(await s.call("pgbouncer_update_pool", database=db_name, **change, confirm_token=token))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for change, token in zip(changes, tokens, strict=True):
                    tg.start_soon(one, change, token)
        done = [data for is_error, data in results if not is_error]
        refused = [data for is_error, data in results if is_error]
        assert len(done) == 1 and done[0]["executed"] is True
        assert [r["code"] for r in refused] == ["confirmation_invalid"]
        assert "nothing was changed" in refused[0]["message"]
        line = next(li for li in local_pgbouncer.ini_path.read_text().splitlines() if li.startswith(db_name))
        applied = "pool_size=3" in line, "pool_mode=session" in line
        assert sorted(applied) == [False, True]  # exactly one of the two edits is in the file
