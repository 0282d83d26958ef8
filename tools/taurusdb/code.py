"""TaurusDB in pools as code: each database proxy's connection-pool type (CLOSED or SESSION).

Proxies are neither created nor deleted here, so a desired proxy that does not exist, or `prune` over proxies the
document leaves out, is a reason the plan is refused. A switch starts a job, and the step waits for it: the next
step (and the next plan) sees the new type. The switch is never resent after an unclear answer (the client reads
the proxy back instead).
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import BaseModel, ConfigDict

from poolpilot.server.kernel.desired import ActualLocation, Planned, PoolsAsCode, SpecValue, Step
from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.guard import Change
from poolpilot.server.kernel.state import ProviderClient
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.tools.taurusdb.client import PROVIDER, TaurusDBClient
from poolpilot.tools.taurusdb.fleet import instances
from poolpilot.tools.taurusdb.models import ApiInstance, job_from
from poolpilot.tools.taurusdb.plans import proxy_key, switch_blocker

__all__ = ["CODE", "TaurusDBProxy"]

_JOB_TIMEOUT_S = 600.0
_FIRST_POLL_S, _MAX_POLL_S = 1.0, 10.0
_INVISIBLE_GRACE_S = 30.0  # a new job may be unknown for a few seconds: pending, not failed


class TaurusDBProxy(BaseModel):
    """A TaurusDB database proxy (the pool key is its proxy id)."""

    model_config = ConfigDict(extra="forbid", title="taurusdb")

    pool_type: Literal["CLOSED", "SESSION"] | None = None


async def _export(client: ProviderClient, location: str | None) -> list[ActualLocation]:
    tdb = cast(TaurusDBClient, client)
    found = []
    for instance in await instances(tdb):
        if location in (None, instance.id, instance.name):
            found.append(await _instance(tdb, instance))
    return found


async def _instance(tdb: TaurusDBClient, instance: ApiInstance) -> ActualLocation:
    pools: dict[str, dict[str, SpecValue]] = {}
    blockers: dict[str, str] = {}
    for entry in await tdb.list_proxies(instance.id):
        proxy = entry.proxy
        pools[proxy.pool_id] = {"pool_type": proxy.connection_pool_type} if proxy.connection_pool_type else {}
        blocker = switch_blocker(entry)
        if blocker is not None:
            blockers[proxy.pool_id] = blocker[1]
    return ActualLocation(
        provider=PROVIDER,
        location=instance.id,
        name=instance.name or None,
        pools=pools,
        fingerprints={p: fingerprint(spec) for p, spec in pools.items()},
        facts={"blockers": blockers},
    )


def _plan(actual: ActualLocation, desired: dict[str, dict[str, SpecValue]], prune: bool) -> Planned:
    steps: list[Step] = []
    reasons: list[str] = []
    where = f"instance {quote(actual.name or actual.location)}"
    blockers = cast(dict[str, str], actual.facts["blockers"])
    for proxy, want in sorted(desired.items()):
        have = actual.pools.get(proxy)
        if have is None:
            reasons.append(f"proxy {quote(proxy)} on {where} does not exist; proxies are not created here")
            continue
        after = want.get("pool_type")
        if after is None or have.get("pool_type") == after:
            continue
        if proxy in blockers:
            reasons.append(f"proxy {quote(proxy)} on {where} cannot switch: {blockers[proxy]}")
        steps.append(
            Step(
                provider=PROVIDER,
                location=actual.location,
                pool=proxy,
                action="switch",
                changes=[Change(field="pool_type", before=have.get("pool_type"), after=after)],
                fingerprint=actual.fingerprints[proxy],
                spec={"pool_type": after},
            )
        )
    unlisted = sorted(set(actual.pools) - set(desired))
    if prune and unlisted:
        reasons.append(f"prune on {where} would delete proxies {', '.join(map(quote, unlisted[:5]))}: not done here")
    return steps, reasons


async def _apply(client: ProviderClient, step: Step) -> str | None:
    tdb = cast(TaurusDBClient, client)
    pool_type = cast(Literal["CLOSED", "SESSION"], step.spec["pool_type"])
    submitted = await tdb.set_pool_type(step.location, step.pool, pool_type)
    if submitted.job_id is None:
        return submitted.note
    await _wait(tdb, submitted.job_id)
    return f"job {submitted.job_id} completed"


async def _wait(tdb: TaurusDBClient, job_id: str) -> None:
    started = tdb.clock()
    delay = _FIRST_POLL_S
    while tdb.clock() - started < _JOB_TIMEOUT_S:
        await tdb.sleep(delay)
        delay = min(delay * 2, _MAX_POLL_S)
        try:
            job = job_from(await tdb.get_job(job_id), job_id)
        except PoolpilotError as exc:
            if exc.info.code == "not_found" and tdb.clock() - started < _INVISIBLE_GRACE_S:
                continue
            raise
        if job.status == "Completed":
            return
        if job.status == "Failed":
            reason = quote(job.fail_reason) if job.fail_reason else "no reason given"
            raise PoolpilotError(
                ErrorInfo(
                    code="upstream_error",
                    message=f"job {job_id} failed: {reason}",
                    hint="Read the proxy (taurusdb_list_proxies), then plan again.",
                    provider=PROVIDER,
                )
            )
    raise PoolpilotError(
        ErrorInfo(
            code="timeout",
            message=f"job {job_id} did not finish within {_JOB_TIMEOUT_S:g} s; it continues on TaurusDB",
            hint=f"Follow it with taurusdb_get_job(job_id={job_id!r}), then plan again.",
            provider=PROVIDER,
        )
    )


CODE = PoolsAsCode(
    spec=TaurusDBProxy,
    export=_export,
    plan=_plan,
    apply_step=_apply,
    lock=proxy_key,
)
