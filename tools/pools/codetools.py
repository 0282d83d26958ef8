"""`pools_export`, `pools_plan` (reads) and `pools_apply` (destructive, guarded): pools as code (issue 21).

`pools_apply` is confirmed once for the whole plan, the token bound to the document and the `plan_id`. Its plan
resolver plans afresh and refuses when the `plan_id` differs from the one the user reviewed. Inside `commit()`
(which re-plans under the lock and checks the `plan_id` again) each step takes its target's own lock (the one the
provider's tools take), re-reads its location, checks the pool's fingerprint, writes one audit line with the plan
id and step, and acts. The first failure stops the run: the result says which steps are done, which failed and
which were not started; planning again then converges (a create whose answer was lost was read back, not resent).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field, WithJsonSchema

from poolpilot.server.kernel.desired import DesiredState, Step
from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.guard import GuardedResult, Plan, Preview, Safety
from poolpilot.server.kernel.state import AppState, ToolSpec, app_state
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs, tool
from poolpilot.tools.pools.code import Computed, PoolsPlan, coders, compute, export, read_scope
from poolpilot.tools.pools.docschema import tool_input_schema
from poolpilot.tools.pools.tools import LocationFilter, ProviderFilter, compact

__all__ = ["SPECS", "PoolsApplied", "StepResult"]

Document = Annotated[DesiredState, WithJsonSchema(tool_input_schema())]
# The same model validates it; the schema is not repeated (tools/list is paid for on every turn).
SameDocument = Annotated[
    DesiredState, WithJsonSchema({"type": "object", "description": "The document given to pools_plan, unchanged"})
]
PlanId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="plan_id from pools_plan of this document")]


class StepResult(BaseModel):
    n: int
    status: Literal["done", "failed", "not_started"]
    note: str | None = None
    error: ErrorInfo | None = None


class PoolsApplied(GuardedResult):
    plan_id: str
    steps: list[Step] = Field(default_factory=list)
    results: list[StepResult] = Field(default_factory=list)
    done: int = 0
    failed: int = 0
    not_started: int = 0


def _enabled(state: AppState, provider: str | None) -> None:
    names = list(coders(state))
    if not names:
        raise PoolpilotError(
            ErrorInfo(
                code="not_supported",
                message="no provider taking part in pools as code is enabled on this server",
                hint="Ask the operator to enable a provider toolset (--toolsets).",
            )
        )
    if provider is not None and provider not in names:
        raise PoolpilotError(
            ErrorInfo(code="validation_error", message="provider: not enabled here", field="provider", allowed=names)
        )


@tool(Safety.READ, "Export pools as a document")
async def pools_export(
    ctx: Context, provider: ProviderFilter = None, location: LocationFilter = None
) -> Annotated[CallToolResult, DesiredState]:
    """Export the current pools as a desired-state document; planning it unchanged shows no changes."""
    state = app_state(ctx)
    _enabled(state, provider)
    return compact(await export(state, provider, location))


@tool(Safety.READ, "Plan a pools document")
async def pools_plan(ctx: Context, document: Document) -> Annotated[CallToolResult, PoolsPlan]:
    """Diff a desired-state document against the pools: ordered steps, budgets before/after, drift, plan_id."""
    state = app_state(ctx)
    _enabled(state, None)
    plan = (await compute(state, document)).plan
    # Not `compact`: a change's `before` / `after` of null (absent before a create) is information.
    data = plan.model_dump(mode="json")
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


async def _plan_apply(ctx: Context, document: SameDocument, plan_id: PlanId) -> Plan[Computed]:
    state = app_state(ctx)
    _enabled(state, None)
    computed = await compute(state, document)
    plan = computed.plan
    if plan.plan_id != plan_id:
        raise PoolpilotError(
            ErrorInfo(
                code="conflict",
                message="the pools or the document changed since that plan was made (its plan_id no longer "
                "matches); nothing was changed",
                hint="Call pools_plan again, show the user the new steps, and apply with the new plan_id.",
                field="plan_id",
            )
        )
    where = len({(s.provider, s.location) for s in plan.steps})
    preview = Preview(
        action="apply pools plan",
        target=f"plan {plan_id[:12]}: {len(plan.steps)} steps at {where} locations",
        impact=plan.summary + " Steps run in order and stop at the first failure.",
    )
    return Plan(preview, plan_id, computed, None if plan.changes else "No changes: the pools match the document.")


def _locks(args: Mapping[str, Any]) -> tuple[str, ...]:
    # One apply per scope at a time; each step also takes its target's provider lock (see the module docstring).
    document: DesiredState = args["document"]
    keys = {f"pools:{e.provider}:{e.location}" for e in document.pools}
    keys |= {f"pools:{s.provider}:{s.location or '*'}" for s in document.scopes}
    return tuple(sorted(keys))


async def _step(ctx: Context, g: Guarded[Computed], step: Step) -> str | None:
    state = app_state(ctx)
    code = coders(state)[step.provider]
    client = state.clients[step.provider]
    target = f"{step.provider} {quote(step.location)} {quote(step.pool)}"
    async with state.locks.hold(code.lock(step.location, step.pool)):
        fresh = await read_scope(state, [(step.provider, step.location)])
        actual = fresh.get((step.provider, step.location))
        now = "absent" if actual is None else actual.fingerprints.get(step.pool, "absent")
        if now != step.fingerprint:
            raise PoolpilotError(
                ErrorInfo(
                    code="confirmation_invalid",
                    message=f"{target} changed since the plan was made; this step was not sent",
                    hint="Call pools_plan again and review the new steps.",
                    provider=step.provider,
                )
            )
        state.audit.write(
            {
                "tool": "pools_apply",
                "plan_id": g.plan.fingerprint,
                "step": step.n,
                "action": step.action,
                "target": target,
                "changes": [c.model_dump() for c in step.changes],
                "backend": client.backend,
                "outcome": "started",
            }
        )
        return await code.apply_step(client, step)


@guarded(title="Apply a pools plan", plan=_plan_apply, lock=_locks)
async def pools_apply(ctx: Context, document: SameDocument, plan_id: PlanId, g: Guarded[Computed]) -> PoolsApplied:
    """Apply a reviewed pools_plan (same document and plan_id) step by step; asks for confirmation first."""
    plan = g.plan.data.plan
    fields: dict[str, object] = {**g.decision.result_fields(plan.backend), "plan_id": plan_id, "steps": plan.steps}
    if not g.decision.approved:
        return PoolsApplied.model_validate(fields)
    results: list[StepResult] = []
    async with g.commit() as fresh:
        steps = fresh.data.plan.steps
        total = len(steps)
        for step in steps:
            if any(r.status == "failed" for r in results):
                results.append(StepResult(n=step.n, status="not_started"))
                continue
            try:
                note = await _step(ctx, g, step)
            except PoolpilotError as exc:
                results.append(StepResult(n=step.n, status="failed", error=exc.info))
                with contextlib.suppress(PoolpilotError):  # the result must still say what was done
                    app_state(ctx).audit.write(
                        {
                            "tool": "pools_apply",
                            "plan_id": plan_id,
                            "step": step.n,
                            "outcome": "failed",
                            "error": exc.info.code,
                        }
                    )
                continue
            results.append(StepResult(n=step.n, status="done", note=note))
            await ctx.report_progress(step.n, total, f"step {step.n}/{total}: {step.action} {quote(step.pool)} done")
    done = sum(r.status == "done" for r in results)
    failed = next((r for r in results if r.status == "failed"), None)
    if failed is None:
        message = f"Applied all {done} steps of plan {plan_id[:12]}."
    else:
        error = failed.error.text() if failed.error else "unknown error"
        left = sum(r.status == "not_started" for r in results)
        message = (
            f"Stopped at step {failed.n} of {total}: {error} {done} steps done, step {failed.n} failed, {left} not "
            "started. Call pools_plan again: the new plan lists only what is left."
        )
    return PoolsApplied.model_validate(
        {
            **fields,
            "executed": done > 0,
            "message": message,
            "results": results,
            "done": done,
            "failed": 0 if failed is None else 1,
            "not_started": sum(r.status == "not_started" for r in results),
        }
    )


SPECS: tuple[ToolSpec, ...] = specs(pools_export, pools_plan, pools_apply)
