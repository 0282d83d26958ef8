"""Following a TaurusDB job after a change was accepted: polling with backoff, MCP progress, and the audit line of a
call cancelled while waiting. Used by the pool-type switch (tools.py) and the proxy-admin changes (admin_tools.py).

Waiting polls the job with backoff (1, 2, 4, 8, then every 10 s, like terraform's 10 s) until it is Completed or
Failed or `timeout_s` passes, and sends MCP progress notifications as the job moves. A new job is not queryable for
a few seconds (ShowGaussMySqlJobInfo reference): for 30 s after the request any non-final answer (400/404, 5xx, a
200 without a readable job) counts as Pending; after that it is reported.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

import anyio
from mcp.server.mcpserver import Context

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.state import app_state
from poolpilot.tools.taurusdb.client import TaurusDBClient
from poolpilot.tools.taurusdb.models import Job, WaitOutcome, job_from

__all__ = ["follow_job", "wait_job"]

log = logging.getLogger("poolpilot.taurusdb")
_FIRST_POLL_S = 1.0
_MAX_POLL_S = 10.0
# How long after the request a job that cannot be read yet still counts as Pending ("queryable a few seconds after
# creation"). Within it, any answer but a final one (credentials, permissions) is read as "not visible yet".
_INVISIBLE_GRACE_S = 30.0
_FINAL = frozenset({"auth_failed", "forbidden"})


async def wait_job(ctx: Context, tdb: TaurusDBClient, job_id: str, timeout_s: float) -> tuple[Job, WaitOutcome, str]:
    """Poll until the job ends or the timeout passes; progress goes out whenever the job moves forward."""
    started = tdb.clock()
    deadline = started + timeout_s
    job = Job(job_id=job_id, status="Pending")
    await ctx.report_progress(0, 100, f"job {job_id} accepted; waiting for TaurusDB")
    reported = 0.0
    delay = _FIRST_POLL_S
    while True:
        remaining = deadline - tdb.clock()
        if remaining <= 0:
            return job, "timed_out", ""
        await tdb.sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_POLL_S)
        try:
            job = await _poll(tdb, job_id, started)
        except PoolpilotError as exc:
            return job, "poll_failed", exc.info.text()
        except Exception:  # the change was accepted: never lose its job id to an answer nobody foresaw
            log.exception("reading TaurusDB job %s failed unexpectedly", job_id)
            return job, "poll_failed", "reading the job failed unexpectedly (details in the server log)"
        value = _progress_value(job)
        # MCP requires progress to increase with every notification: send only when the job moved forward.
        if value > reported:
            reported = value
            percent = f" {job.progress}%" if job.status == "Running" and job.progress is not None else ""
            await ctx.report_progress(value, 100, f"job {job_id}: {job.status}{percent}")
        if job.status in ("Completed", "Failed"):
            return job, "finished", ""


async def follow_job(
    ctx: Context, tdb: TaurusDBClient, job_id: str, *, wait: bool, timeout_s: float, record: Mapping[str, object]
) -> tuple[Job, WaitOutcome, str]:
    """`wait_job`, or a Pending job when the caller does not wait. A call cancelled while waiting leaves the job id
    in the audit log (`record` says which call): the job runs on TaurusDB, which offers no way to cancel it."""
    if not wait:
        return Job(job_id=job_id, status="Pending"), "not_waited", ""
    try:
        return await wait_job(ctx, tdb, job_id, timeout_s)
    except anyio.get_cancelled_exc_class():
        with contextlib.suppress(PoolpilotError):
            app_state(ctx).audit.write({**record, "outcome": "cancelled_while_waiting", "job_id": job_id})
        raise


async def _poll(tdb: TaurusDBClient, job_id: str, started: float) -> Job:
    try:
        return job_from(await tdb.get_job(job_id), job_id)
    except PoolpilotError as exc:
        if exc.info.code not in _FINAL and tdb.clock() - started < _INVISIBLE_GRACE_S:
            return Job(job_id=job_id, status="Pending")
        raise


def _progress_value(job: Job) -> float:
    if job.status in ("Completed", "Failed"):
        return 100.0
    if job.status == "Running":
        return float(min(99, max(1, job.progress or 0)))
    return 0.0
