"""WAIT_CLOSE through a tool (toolset `pgbouncer_admin`, off by default), guarded and under the instance's lock.

What WAIT_CLOSE does, run on 1.18 and 1.24 (same on both): it closes nothing itself. It waits until the server
connections marked `close_needed` (SHOW SERVERS) are gone; RECONNECT marks every server connection of a database,
and so does a RELOAD that changed the database's host, port or dbname. A marked idle connection closes at once, an
active one when its client releases it (transaction mode: at the end of the transaction; session mode: when the
client disconnects). With nothing marked it returns at once, even while servers are active. An unknown database is
an error ("no such database"). Dropping the waiting console connection ends the wait and changes nothing else.

So the preview counts the marked connections, and with none the call sends nothing. The wait is bounded by
`timeout_s`; while it runs, SHOW SERVERS is read on the shared console to report progress as connections close.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.guard import Change, GuardedResult, Plan, Preview
from poolpilot.server.kernel.state import ToolSpec, app_state
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs
from poolpilot.tools.pgbouncer.client import PgBouncerClient, _mapped
from poolpilot.tools.pgbouncer.models import ConsoleDatabaseFilter, InstanceName
from poolpilot.tools.pgbouncer.plans import instance_lock, pgb, target
from poolpilot.tools.pgbouncer.rows import Row

__all__ = ["SPECS", "ServerRow", "marked"]

_POLL_S = 0.25  # progress only: the wait itself ends when PgBouncer answers WAIT_CLOSE

WaitTimeoutS = Annotated[
    float, Field(strict=True, description="Seconds to wait at most for the connections to close", ge=0.1, le=120)
]


class ServerRow(Row):
    """The SHOW SERVERS columns WAIT_CLOSE is about (the column exists on 1.18 and 1.24)."""

    database: str
    close_needed: int


class WaitCloseResult(GuardedResult):
    instance: str
    database: str | None = None
    wait_outcome: Literal["closed", "timed_out"] | None = None
    waited_s: float | None = None
    still_to_close: dict[str, int] = Field(
        default_factory=dict, description="Server connections still marked to close, by database"
    )


async def marked(client: PgBouncerClient, instance: str, database: str | None) -> dict[str, int]:
    """Server connections marked `close_needed`, by database (only `database` when given)."""
    with _mapped(instance):
        rows = await client.console(instance).show("SHOW SERVERS", ServerRow)
    return dict(Counter(r.database for r in rows if r.close_needed and database in (None, r.database)))


def _listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{quote(db)}: {n}" for db, n in sorted(counts.items()))


async def _plan_wait_close(
    ctx: Context, instance: InstanceName, database: ConsoleDatabaseFilter = None, timeout_s: WaitTimeoutS = 30.0
) -> Plan[None]:
    client = pgb(ctx)
    if database is not None:
        await client.database(instance, database)  # an unknown name is not_found, before anything is sent
    counts = await marked(client, instance, database)
    total = sum(counts.values())
    preview = Preview(
        action="wait for marked server connections to close",
        target=target(instance, database),
        changes=[Change(field=f"{db}.servers_to_close", before=n, after=0) for db, n in sorted(counts.items())][:20],
        impact=f"sends WAIT_CLOSE and waits up to {timeout_s:g} s for the {total} server connection(s) marked to "
        f"close ({_listed(counts)}); idle ones close at once, active ones when their client releases them (session "
        "mode: when it disconnects); other connections are untouched, and no other change to this instance runs "
        "meanwhile",
    )
    no_change = (
        None
        if total
        else "No server connection is marked to close (RECONNECT, or a RELOAD that changed a database, marks them), "
        "so WAIT_CLOSE would return at once; nothing was sent."
    )
    # Live counts stay out of the fingerprint: they change on their own between preview and confirmation.
    return Plan(preview, fingerprint({"database": database}), None, no_change)


@guarded(title="Wait for PgBouncer server connections to close", plan=_plan_wait_close, lock=instance_lock)
async def pgbouncer_wait_close(
    ctx: Context,
    instance: InstanceName,
    g: Guarded[None],
    database: ConsoleDatabaseFilter = None,
    timeout_s: WaitTimeoutS = 30.0,
) -> WaitCloseResult:
    """Wait until server connections marked to close (after RECONNECT or RELOAD) are gone (WAIT_CLOSE); asks first."""
    fields: dict[str, object] = {**g.decision.result_fields("live"), "instance": instance, "database": database}
    if not g.decision.approved:
        return WaitCloseResult.model_validate(fields)
    client = pgb(ctx)
    # Not g.commit(): nothing is changed, and connections closing between preview and confirmation is no conflict.
    async with app_state(ctx).locks.hold(*g.locks):
        total = sum((await marked(client, instance, database)).values())
        started = client.clock()
        await ctx.report_progress(0, max(total, 1), f"WAIT_CLOSE sent; {total} server connection(s) marked to close")
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_report, ctx, client, instance, database, total)
            try:
                with _mapped(instance):
                    done = await client.console(instance).wait_close(database, timeout_s)
            finally:
                tasks.cancel_scope.cancel()
        waited = round(client.clock() - started, 3)
        left = await marked(client, instance, database)
    if done:
        message = f"WAIT_CLOSE returned after {waited:g} s: no server connection is marked to close any more."
    else:
        message = (
            f"WAIT_CLOSE did not return within {timeout_s:g} s: {sum(left.values())} server connection(s) are still "
            f"marked to close ({_listed(left) or 'none by now'}). They close when their clients release them "
            "(session mode: when the client disconnects). poolpilot stopped waiting (dropping its console connection "
            "ends PgBouncer's wait, nothing else); pgbouncer_list_servers shows them, or call again with a longer "
            "timeout_s."
        )
    outcome = "closed" if done else "timed_out"
    return WaitCloseResult.model_validate(
        {**fields, "executed": True, "message": message, "wait_outcome": outcome, "waited_s": waited}
        | {"still_to_close": left}
    )


async def _report(ctx: Context, client: PgBouncerClient, instance: str, database: str | None, total: int) -> None:
    """Progress as marked connections close; MCP wants each notification's progress above the last one's."""
    reported = 0
    while True:
        await client.sleep(_POLL_S)
        try:
            left = sum((await marked(client, instance, database)).values())
        except PoolpilotError:
            return  # progress is a courtesy: the wait goes on without it
        closed = min(total, total - left)
        if closed > reported:
            reported = closed
            await ctx.report_progress(closed, max(total, 1), f"{closed} of {total} server connection(s) closed")


SPECS: tuple[ToolSpec, ...] = specs(pgbouncer_wait_close)
