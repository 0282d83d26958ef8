"""TaurusDB proxy administration (toolset `taurusdb_proxy_admin`, off by default): the proxy's kernel version and its
upgrade, its parameters, its session consistency.

The three changes are destructive and guarded like the pool-type switch (server/kernel/tooldef.py): the plan reads
the proxy fresh (admin_plans.py), the token binds what changes, `commit()` holds the proxy's lock, re-reads and
refuses when the proxy changed since the preview; the request is sent once (every request starts a job on TaurusDB,
admin_client.py) and the job is followed with progress (jobs.py) until it ends or `timeout_s` passes. A timeout is
a result, not an error: the job runs on, and the result says how to follow it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context
from pydantic import Field

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.state import ToolSpec
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs, tool
from poolpilot.tools.taurusdb.admin_client import (
    get_proxy_version,
    list_configurations,
    set_configurations,
    set_session_consistence,
    upgrade_proxy_version,
)
from poolpilot.tools.taurusdb.admin_models import (
    ConsistenceMode,
    ParameterName,
    ParameterSetting,
    ProxyParameter,
    ProxyParameterChange,
    ProxyParameters,
    ProxyUpgrade,
    ProxyVersion,
    SessionConsistencyChange,
    UpgradeRisk,
    VersionArg,
)
from poolpilot.tools.taurusdb.admin_plans import (
    ConsistencyData,
    ParametersData,
    UpgradeData,
    plan_consistency,
    plan_parameters,
    plan_upgrade,
)
from poolpilot.tools.taurusdb.client import TaurusDBClient
from poolpilot.tools.taurusdb.jobs import follow_job
from poolpilot.tools.taurusdb.models import Cursor, InstanceId, Job, PageSize, ProxyId, WaitOutcome
from poolpilot.tools.taurusdb.plans import client, proxy_lock
from poolpilot.tools.taurusdb.tools import TimeoutArg, WaitArg

__all__ = ["SPECS", "TOOLSET"]

TOOLSET = "taurusdb_proxy_admin"
ParameterNameFilter = Annotated[ParameterName | None, Field(description="Only this parameter")]
Parameters = Annotated[
    list[ParameterSetting],
    Field(min_length=1, max_length=50, description="Parameters to set: name and new value (a string)"),
]
ConsistenceArg = Annotated[
    ConsistenceMode, Field(description="session: own writes visible; global: all committed writes; eventual: none")
]
_UNBOUND = ("wait", "timeout_s")
D = TypeVar("D")


# -- reads ------------------------------------------------------------------------------------------


@tool(Safety.READ, "Get TaurusDB proxy version")
async def taurusdb_get_proxy_version(ctx: Context, instance_id: InstanceId, proxy_id: ProxyId) -> ProxyVersion:
    """Get a TaurusDB proxy's kernel version, the latest one, whether it can upgrade, and the upgrade risk."""
    tdb = client(ctx)
    api = await get_proxy_version(tdb, instance_id, proxy_id)
    risk = api.risk
    return ProxyVersion(
        backend=tdb.backend,
        instance_id=instance_id,
        proxy_id=proxy_id,
        current_version=api.current_version,
        latest_version=api.latest_version,
        can_upgrade=bool(api.can_upgrade),
        risk=UpgradeRisk.model_validate({k: v or None for k, v in risk.model_dump().items()}) if risk else None,
    )


@tool(Safety.READ, "Get TaurusDB proxy parameters")
async def taurusdb_get_proxy_parameters(
    ctx: Context,
    instance_id: InstanceId,
    proxy_id: ProxyId,
    name: ParameterNameFilter = None,
    page_size: PageSize = 100,
    cursor: Cursor = None,
) -> ProxyParameters:
    """List a TaurusDB proxy's parameters: value, allowed range, type and description."""
    tdb = client(ctx)
    offset = int(cursor or 0)
    found, total = await list_configurations(tdb, instance_id, proxy_id, page_size, offset, name)
    rows = [
        ProxyParameter(
            name=p.name,
            value=p.value,
            value_range=p.value_range,
            data_type=p.data_type,
            elem_type=p.elem_type,
            description=p.description,
        )
        for p in found
    ]
    more = offset + len(rows) < total and len(rows) > 0
    return ProxyParameters(
        backend=tdb.backend,
        instance_id=instance_id,
        proxy_id=proxy_id,
        rows=rows,
        total=total,
        next_cursor=str(offset + len(rows)) if more else None,
    )


# -- changes (DESTRUCTIVE) --------------------------------------------------------------------------


def _ending(job: Job, outcome: WaitOutcome, failure: str, timeout_s: int, done: str, now: str | None) -> str:
    """The result message of a followed job (`done`: what success looks like; `now`: the state read back)."""
    job_text = quote(job.job_id)
    follow = f"Follow it with taurusdb_get_job(job_id={job_text})."
    if outcome == "not_waited":
        return f"Accepted as job {job_text}; it runs on TaurusDB. {follow}"
    if outcome == "timed_out":
        return f"Job {job_text} is still {job.status} after {timeout_s} s; it continues on TaurusDB. {follow}"
    if outcome == "poll_failed":
        return f"Accepted as job {job_text}, but checking it failed ({failure}). {follow}"
    if job.status == "Failed":
        reason = quote(job.fail_reason) if job.fail_reason else "no reason given"
        return f"Job {job_text} failed: {reason}." + (f" The proxy shows {now}." if now else "")
    return f"{done} (job {job_text})."


async def _read_back(outcome: WaitOutcome, read: Callable[[], Awaitable[str]]) -> str | None:
    """What `read` finds once the job finished; None when it did not finish, or the read failed or found nothing
    (the result still says how the job ended; the value is just unknown)."""
    if outcome != "finished":
        return None
    try:
        return await read() or None
    except PoolpilotError:
        return None


def _fields(g: Guarded[Any], tdb: TaurusDBClient, instance_id: str, proxy_id: str, **what: object) -> dict[str, object]:
    """The result fields every proxy change starts with: the guard's decision, the proxy, and `what` changes."""
    fields = {**g.decision.result_fields(tdb.backend), "instance_id": instance_id, "proxy_id": proxy_id}
    return fields | {"proxy_name": g.plan.data.name, **what}


async def _change(
    ctx: Context,
    g: Guarded[D],
    fields: dict[str, object],
    tool: str,
    args: dict[str, object],
    send: Callable[[D], Awaitable[str]],
    wait: bool,
    timeout_s: int,
) -> tuple[Job, WaitOutcome, str]:
    """Send the change once, under the proxy's lock and on the plan re-read there (`send` gets its data and
    returns the job id); mark `fields` executed; follow the job with progress (record: the call as made)."""
    tdb = client(ctx)
    target = g.plan.preview.target
    async with g.commit() as fresh:
        job_id = await send(fresh.data)
    fields["executed"] = True
    record = {"tool": tool, "arguments": args, "target": target, "backend": tdb.backend}
    return await follow_job(ctx, tdb, job_id, wait=wait, timeout_s=timeout_s, record=record)


@guarded(title="Upgrade TaurusDB proxy version", plan=plan_upgrade, lock=proxy_lock, unbound=_UNBOUND)
async def taurusdb_upgrade_proxy_version(
    ctx: Context,
    instance_id: InstanceId,
    proxy_id: ProxyId,
    g: Guarded[UpgradeData],
    target_version: VersionArg = None,
    wait: WaitArg = True,
    timeout_s: TimeoutArg = 900,
) -> ProxyUpgrade:
    """Upgrade a proxy's kernel (restarts it; connections drop) and follow the job; asks for confirmation first."""
    tdb = client(ctx)
    plan = g.plan
    fields = _fields(g, tdb, instance_id, proxy_id, before=plan.data.current, after=plan.data.target)
    if not g.decision.approved:
        return ProxyUpgrade.model_validate(fields)

    async def send(data: UpgradeData) -> str:
        return await upgrade_proxy_version(tdb, instance_id, proxy_id, data.current, data.target)

    args: dict[str, object] = {"instance_id": instance_id, "proxy_id": proxy_id, "target_version": target_version}
    job, outcome, failure = await _change(ctx, g, fields, "taurusdb_upgrade_proxy_version", args, send, wait, timeout_s)

    async def version() -> str:
        return (await get_proxy_version(tdb, instance_id, proxy_id)).current_version

    now = await _read_back(outcome, version)
    done = (
        f"Proxy {quote(plan.data.name)} upgraded from {quote(plan.data.current)} to {quote(plan.data.target)}"
        if now == plan.data.target
        else f"Job completed, but the proxy reads version {quote(now) if now else 'unknown'}; check "
        "taurusdb_get_proxy_version"
    )
    message = _ending(job, outcome, failure, timeout_s, done, quote(now) if now else None)
    return ProxyUpgrade.model_validate(
        {**fields, "job": job, "wait_outcome": outcome, "version_now": now, "message": message}
    )


@guarded(title="Set TaurusDB proxy parameters", plan=plan_parameters, lock=proxy_lock, unbound=_UNBOUND)
async def taurusdb_set_proxy_parameters(
    ctx: Context,
    instance_id: InstanceId,
    proxy_id: ProxyId,
    parameters: Parameters,
    g: Guarded[ParametersData],
    wait: WaitArg = True,
    timeout_s: TimeoutArg = 300,
) -> ProxyParameterChange:
    """Change proxy parameters (checked against their ranges) and follow the job; asks for confirmation first."""
    tdb = client(ctx)
    plan = g.plan
    fields = _fields(g, tdb, instance_id, proxy_id, changes=plan.data.changes)
    if not g.decision.approved:
        return ProxyParameterChange.model_validate(fields)

    async def send(data: ParametersData) -> str:
        return await set_configurations(tdb, instance_id, proxy_id, data.items)

    settings = [p.model_dump() for p in parameters]
    args: dict[str, object] = {"instance_id": instance_id, "proxy_id": proxy_id, "parameters": settings}
    job, outcome, failure = await _change(ctx, g, fields, "taurusdb_set_proxy_parameters", args, send, wait, timeout_s)
    names = ", ".join(quote(c.name) for c in plan.data.changes)
    done = f"Proxy {quote(plan.data.name)}: {names} set; read them back with taurusdb_get_proxy_parameters"
    message = _ending(job, outcome, failure, timeout_s, done, None)
    return ProxyParameterChange.model_validate({**fields, "job": job, "wait_outcome": outcome, "message": message})


@guarded(title="Set TaurusDB proxy consistency", plan=plan_consistency, lock=proxy_lock, unbound=_UNBOUND)
async def taurusdb_set_proxy_session_consistency(
    ctx: Context,
    instance_id: InstanceId,
    proxy_id: ProxyId,
    consistence_mode: ConsistenceArg,
    g: Guarded[ConsistencyData],
    wait: WaitArg = True,
    timeout_s: TimeoutArg = 300,
) -> SessionConsistencyChange:
    """Set a proxy's read consistency (session, global, eventual) and follow the job; asks for confirmation first."""
    tdb = client(ctx)
    plan = g.plan
    fields = _fields(g, tdb, instance_id, proxy_id, before=plan.data.before, after=consistence_mode)
    if not g.decision.approved:
        return SessionConsistencyChange.model_validate(fields)

    async def send(_: ConsistencyData) -> str:
        return await set_session_consistence(tdb, instance_id, proxy_id, consistence_mode)

    args: dict[str, object] = {"instance_id": instance_id, "proxy_id": proxy_id, "consistence_mode": consistence_mode}
    job, outcome, failure = await _change(
        ctx, g, fields, "taurusdb_set_proxy_session_consistency", args, send, wait, timeout_s
    )

    async def mode() -> str:
        return (await tdb.find_proxy(instance_id, proxy_id)).proxy.consistence_mode

    now = await _read_back(outcome, mode)
    done = (
        f"Proxy {quote(plan.data.name)} now uses {consistence_mode} consistency"
        if now == consistence_mode
        else f"Job completed, but the proxy reads consistency {quote(now) if now else 'unknown'} "
        f"(asked for {consistence_mode})"
    )
    message = _ending(job, outcome, failure, timeout_s, done, quote(now) if now else None)
    return SessionConsistencyChange.model_validate(
        {**fields, "job": job, "wait_outcome": outcome, "mode_now": now, "message": message}
    )


SPECS: tuple[ToolSpec, ...] = specs(
    taurusdb_get_proxy_version,
    taurusdb_upgrade_proxy_version,
    taurusdb_get_proxy_parameters,
    taurusdb_set_proxy_parameters,
    taurusdb_set_proxy_session_consistency,
)
