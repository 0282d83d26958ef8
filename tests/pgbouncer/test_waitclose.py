"""pgbouncer_wait_close against each real PgBouncer (1.18, 1.24) of `local_pgbouncer`: a client in session mode holds
a server connection that RECONNECT marked to close; WAIT_CLOSE waits for that client to let go."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from poolpilot.tools.pgbouncer.admin import AdminConsole
from poolpilot.tools.pgbouncer.local import LocalPair
from tests.pgbouncer.harness import connect, session

pytestmark = pytest.mark.anyio


async def test_pgbouncer_wait_close_times_out_on_a_held_server_then_returns_once_it_is_released(
    local_pgbouncer: LocalPair, tmp_path: Path, db_name: str, admin: AdminConsole
) -> None:
    async with session(local_pgbouncer, tmp_path) as s:
        await s.create(db_name, pool_size=2)
        nothing = await s.ok("pgbouncer_wait_close", database=db_name)
        assert nothing["outcome"] == "no_change" and not nothing["executed"]  # nothing marked: nothing sent
        held = await connect(local_pgbouncer, db_name)
        await held.execute("SELECT 1")  # session mode: this client keeps its server connection until it leaves
        await admin.reconnect(db_name)  # marks that server connection close_needed
        preview = await s.ok("pgbouncer_wait_close", database=db_name, timeout_s=0.3)
        assert preview["preview"]["changes"] == [{"field": f"{db_name}.servers_to_close", "before": 1, "after": 0}]
        late = await s.confirmed("pgbouncer_wait_close", database=db_name, timeout_s=0.3)
        assert (late["wait_outcome"], late["still_to_close"]) == ("timed_out", {db_name: 1})
        assert "still marked to close" in late["message"] and late["waited_s"] >= 0.3
        token = (await s.ok("pgbouncer_wait_close", timeout_s=10))["confirm_token"]  # every database
        started = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            started.set()

        async def release() -> None:
            await started.wait()  # the call is past its confirmation: closing now or before WAIT_CLOSE ends it
            await held.close()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(release)
            args = {"instance": "local", "timeout_s": 10, "confirm_token": token}
            try:
                result = await s.client.call_tool("pgbouncer_wait_close", args, progress_callback=on_progress)
            finally:
                tasks.cancel_scope.cancel()  # no progress would leave `release` waiting: fail on the result instead
                await held.close()
        done = result.structured_content
        assert not result.is_error and done is not None, result
        assert (done["wait_outcome"], done["still_to_close"], done["database"]) == ("closed", {}, None)
        assert done["waited_s"] < 10
        unknown = await s.error("pgbouncer_wait_close", database="no_such_db")
    assert unknown["code"] == "not_found"
    assert '"tool":"pgbouncer_wait_close"' in s.audit.read_text()
