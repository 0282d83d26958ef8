"""TaurusDB tools: instances and proxies (read), the proxy connection-pool switch (destructive, guarded), jobs.

`taurusdb_set_proxy_pool_type` follows server/guard.py. Its plan reads the proxy first: a proxy already in the
requested type is a `no_change` (nothing asked, nothing sent); a proxy that cannot switch (version flag false,
HTAP nodes, not ACTIVE) is refused with the reason, before anything is sent. After approval the PUT is sent
once (client.py never resends it: each PUT starts a new job).

Waiting (`wait=true`, the default) polls the job with backoff (1, 2, 4, 8, then every 10 s, like terraform's
10 s) until it is Completed or Failed or `timeout_s` passes, and sends MCP progress notifications as the job
moves. A new job is not queryable for a few seconds (ShowGaussMySqlJobInfo reference): for 30 s after the PUT
any non-final answer (400/404, 5xx, a 200 without a readable job) counts as Pending; after that it is reported.
A job that fails is a result, not an error (the change was attempted; `job.fail_reason` says why).
Reaching the timeout is not an error either: TaurusDB accepted the switch and keeps running it, so the result
says `wait_outcome="timed_out"` with the job id to follow with `taurusdb_get_job`.

Cancellation: a cancelled call stops polling at once (anyio cancels the sleep or the request in flight) and
leaves nothing half-done on our side. The job, once accepted, continues on TaurusDB, which offers no way to
cancel it: that is the provider's semantics. The audit log records the job id of a call cancelled while
waiting.
"""

from __future__ import annotations

import logging
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.state import ToolSpec
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs, tool
from poolpilot.tools.taurusdb.client import TaurusDBClient
from poolpilot.tools.taurusdb.jobs import follow_job
from poolpilot.tools.taurusdb.models import (
    Cursor,
    InstanceId,
    InstanceList,
    InstanceRow,
    JobId,
    JobResult,
    PageSize,
    PoolTypeChange,
    ProxyId,
    ProxyList,
    ProxyRow,
    job_from,
)
from poolpilot.tools.taurusdb.plans import PoolTypeArg, client, plan_switch, proxy_lock, proxy_row

__all__ = ["SPECS"]

log = logging.getLogger("poolpilot.taurusdb")

WaitArg = Annotated[bool, Field(strict=True, description="Poll the job until it ends or timeout_s passes")]
TimeoutArg = Annotated[int, Field(strict=True, ge=5, le=1800, description="Max seconds to wait for the job")]


# -- read tools -------------------------------------------------------------------------------------


@tool(Safety.READ, "List TaurusDB instances")
async def taurusdb_list_instances(ctx: Context, page_size: PageSize = 20, cursor: Cursor = None) -> InstanceList:
    """List TaurusDB instances as compact rows (id, name, status, region, versions)."""
    tdb = client(ctx)
    offset = int(cursor or 0)
    instances, total = await tdb.list_instances(page_size, offset)
    rows = [
        InstanceRow(
            id=i.id,
            name=i.name,
            status=i.status,
            region=i.region,
            version=(i.datastore and i.datastore.version) or None,
            kernel_version=(i.datastore and i.datastore.kernel_version) or None,
        )
        for i in instances
    ]
    more = offset + len(rows) < total and len(rows) > 0
    return InstanceList(
        backend=tdb.backend, rows=rows, total=total, next_cursor=str(offset + len(rows)) if more else None
    )


@tool(Safety.READ, "List TaurusDB proxies")
async def taurusdb_list_proxies(ctx: Context, instance_id: InstanceId) -> ProxyList:
    """List an instance's proxies: id, status, connection-pool type, whether it can switch (and why not)."""
    tdb = client(ctx)
    entries = await tdb.list_proxies(instance_id)
    return ProxyList(backend=tdb.backend, instance_id=instance_id, rows=[proxy_row(e) for e in entries])


@tool(Safety.READ, "Get TaurusDB job")
async def taurusdb_get_job(ctx: Context, job_id: JobId) -> JobResult:
    """Get a TaurusDB job: status (Pending, Running, Completed, Failed), progress and fail reason."""
    tdb = client(ctx)
    return JobResult(backend=tdb.backend, job=job_from(await tdb.get_job(job_id), job_id))


# -- switch the pool type (DESTRUCTIVE) -------------------------------------------------------------


# The token binds what changes; wait and timeout_s only say how long this call follows the job.
@guarded(title="Set TaurusDB proxy pool type", plan=plan_switch, lock=proxy_lock, unbound=("wait", "timeout_s"))
async def taurusdb_set_proxy_pool_type(
    ctx: Context,
    instance_id: InstanceId,
    proxy_id: ProxyId,
    pool_type: PoolTypeArg,
    g: Guarded[ProxyRow],
    wait: WaitArg = True,
    timeout_s: TimeoutArg = 300,
) -> PoolTypeChange:
    """Switch a proxy's connection-pool type (CLOSED/SESSION) and follow the job; asks for confirmation first."""
    tdb = client(ctx)
    decision, plan = g.decision, g.plan
    args = {"instance_id": instance_id, "proxy_id": proxy_id, "pool_type": pool_type}
    fields: dict[str, object] = {
        **decision.result_fields(tdb.backend),
        "instance_id": instance_id,
        "proxy_id": proxy_id,
        "proxy_name": plan.data.name,
        "before": plan.data.pool_type,
        "after": pool_type,
    }
    if not decision.approved:
        return PoolTypeChange.model_validate(fields)
    async with g.commit():  # the lock covers the PUT, not the wait: the job runs on TaurusDB
        submitted = await tdb.set_pool_type(instance_id, proxy_id, pool_type)
    fields["executed"] = True
    if submitted.job_id is None:
        # An unclear failure, but reading the proxy back showed the requested type.
        return PoolTypeChange.model_validate({**fields, "message": submitted.note, "pool_type_now": pool_type})
    job_id = submitted.job_id
    follow = f"Follow it with taurusdb_get_job(job_id={quote(job_id)})."
    # A call cancelled while waiting leaves the job id in the audit log: the job runs on.
    record = {
        "tool": "taurusdb_set_proxy_pool_type",
        "arguments": args,
        "target": plan.preview.target,
        "backend": tdb.backend,
    }
    job, outcome, failure = await follow_job(ctx, tdb, job_id, wait=wait, timeout_s=timeout_s, record=record)
    if outcome == "not_waited":
        message = f"Switch accepted as job {quote(job_id)}; it runs on TaurusDB. {follow}"
        return PoolTypeChange.model_validate({**fields, "job": job, "wait_outcome": outcome, "message": message})
    now = await _pool_type_now(tdb, instance_id, proxy_id) if outcome == "finished" else None
    job_text, now_text = quote(job_id), quote(now) if now else "unknown"
    if outcome == "timed_out":
        message = f"Job {job_text} is still {job.status} after {timeout_s} s; it continues on TaurusDB. {follow}"
    elif outcome == "poll_failed":
        message = f"Switch accepted as job {job_text}, but checking it failed ({failure}). {follow}"
    elif job.status == "Failed":
        reason = quote(job.fail_reason) if job.fail_reason else "no reason given"
        message = f"Job {job_text} failed: {reason}. The proxy shows {now_text}."
    elif now == pool_type:
        message = (
            f"Proxy {quote(plan.data.name)} switched from {quote(plan.data.pool_type)} to {pool_type} (job {job_text})."
        )
    else:
        message = f"Job {job_text} completed, but the proxy reads {now_text}; check taurusdb_list_proxies."
    return PoolTypeChange.model_validate(
        {**fields, "job": job, "wait_outcome": outcome, "pool_type_now": now, "message": message}
    )


async def _pool_type_now(tdb: TaurusDBClient, instance_id: str, proxy_id: str) -> str | None:
    try:
        return (await tdb.find_proxy(instance_id, proxy_id)).proxy.connection_pool_type
    except Exception:  # the result still says how the job ended; the type is just unknown
        log.debug("reading proxy %s back failed", proxy_id, exc_info=True)
        return None


SPECS: tuple[ToolSpec, ...] = specs(
    taurusdb_list_instances, taurusdb_list_proxies, taurusdb_set_proxy_pool_type, taurusdb_get_job
)
