"""Tools declared once, next to their functions: `@tool(...)` for reads and writes, `@guarded(...)` for the
destructive tools the guard confirms. The name is the function's name, the description its docstring; the
safety class sets both the MCP annotations and what the guard enforces.

A guarded tool is written as its plan resolver plus a body that gets one `Guarded` argument::

    async def _plan_delete_pool(ctx: Context, cluster_id: ClusterId, pool_name: PoolName) -> Plan[PoolRow]:
        ...                                              # fresh reads and validation; nothing is sent

    @guarded(title="Delete DO pool", plan=_plan_delete_pool, lock=cluster_lock)
    async def acme_delete_pool(
        ctx: Context, cluster_id: ClusterId, pool_name: PoolName, g: Guarded[PoolRow]
    ) -> PoolDeletion:
        \"\"\"Delete a connection pool; asks for confirmation first.\"\"\"
        if not g.decision.approved:                     # preview + token, declined, cancelled, no change
            return PoolDeletion(**g.decision.result_fields(backend), ...)
        async with g.commit():                          # one writer per target; re-read; refuse if changed
            await do.delete_pool(cluster_id, pool_name)
        ...

The decorator derives what the SDK sees from that: the tool's arguments (the body's, minus `ctx` and `g`), the
plan and ask resolvers, and `confirm_token`; the canonical arguments the token binds (all of them, minus
`unbound`); and the re-plan after a handshake-era "yes" and inside `commit()` (the plan resolver called with the
same arguments). No tool restates its name or its arguments.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.guard import Confirm, ConfirmToken, Decision, NotAsked, Plan, Safety
from poolpilot.server.kernel.state import ToolSpec, app_state

__all__ = ["Guarded", "asker", "guarded", "spec_of", "specs", "tool"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Awaitable[object]])


def tool(
    safety: Safety, title: str, *, lock: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None
) -> Callable[[F], F]:
    """Declare a read or write tool: its name is the function's, its description the docstring. A write tool with
    a `lock` runs whole under its target's lock (e.g. a budget check and the create that uses the budget)."""

    def declare(fn: F) -> F:
        declared = fn
        if lock is not None:

            @functools.wraps(fn)
            async def locked(**kwargs: Any) -> object:
                async with app_state(kwargs["ctx"]).locks.hold(*lock(kwargs)):
                    return await fn(**kwargs)

            locked.__annotations__ = _hints(fn)  # resolved here: the SDK reads them with this module's globals
            declared = locked  # type: ignore[assignment]
        declared.__poolpilot_spec__ = ToolSpec(fn.__name__, declared, safety, title)  # type: ignore[attr-defined]
        return declared

    return declare


def spec_of(fn: Callable[..., Awaitable[object]]) -> ToolSpec:
    found = getattr(fn, "__poolpilot_spec__", None)
    if not isinstance(found, ToolSpec):
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} is not declared with @tool or @guarded")
    return found


def specs(*fns: Callable[..., Awaitable[object]]) -> tuple[ToolSpec, ...]:
    return tuple(spec_of(fn) for fn in fns)


Asker = Callable[..., Awaitable[Elicit[Confirm] | NotAsked]]


def asker(plan_fn: Callable[..., Awaitable[Plan[T]]]) -> Asker:
    """The ask resolver of the guarded tool whose plan resolver is `plan_fn`: `Guard.ask` on that plan.

    The SDK reads a resolver's dependencies from its type hints, so the closure gets real (not string)
    annotations, `plan` being `Annotated[Plan[...], Resolve(plan_fn)]` with `plan_fn`'s own return type. Its name
    (`ask[<plan_fn>]` in `plan_fn`'s module) becomes the question's wire key and shows in SDK errors.
    """

    async def ask(ctx: Context, plan: Plan[T], confirm_token: str | None = None) -> Elicit[Confirm] | NotAsked:
        return app_state(ctx).guard.ask(ctx, plan, confirm_token)

    plan_type = typing.get_type_hints(plan_fn)["return"]  # raises at import when plan_fn is not annotated
    if typing.get_origin(plan_type) is not Plan:
        raise TypeError(f"{plan_fn.__qualname__} must be annotated to return Plan[...], not {plan_type!r}")
    ask.__annotations__ = {
        "ctx": Context,
        "plan": Annotated[plan_type, Resolve(plan_fn)],
        "confirm_token": ConfirmToken,
        "return": Elicit[Confirm] | NotAsked,
    }
    ask.__module__ = plan_fn.__module__
    ask.__name__ = ask.__qualname__ = f"ask[{plan_fn.__qualname__}]"
    return ask


@dataclass
class Guarded(Generic[T]):
    """What a guarded tool's body gets: the guard's decision, the plan to execute, and `commit()`."""

    decision: Decision
    plan: Plan[T]
    replan: Callable[[], Awaitable[Plan[T]]]
    locks: tuple[str, ...]
    _ctx: Context = field(repr=False)

    @asynccontextmanager
    async def commit(self) -> AsyncIterator[Plan[T]]:
        """Hold the target's lock, re-read it, and refuse (`confirmation_invalid`, nothing sent) when it no longer
        matches what was confirmed; the body sends its one mutating request inside (issue 17: no lost update)."""
        async with app_state(self._ctx).locks.hold(*self.locks):
            fresh = await self.replan()
            if fresh.fingerprint != self.plan.fingerprint or fresh.no_change is not None:
                raise PoolpilotError(
                    ErrorInfo(
                        code="confirmation_invalid",
                        message="the target changed since the preview was made (another change came first); "
                        "nothing was changed",
                        hint="Get a fresh preview (call without confirm_token), show the user what changed, "
                        "and ask again.",
                    )
                )
            self.plan = fresh
            yield fresh


def _hints(fn: Callable[..., object]) -> dict[str, Any]:
    return typing.get_type_hints(fn, include_extras=True)


def guarded(
    *,
    title: str,
    plan: Callable[..., Awaitable[Plan[T]]],
    lock: Callable[[Mapping[str, Any]], tuple[str, ...]],
    unbound: tuple[str, ...] = (),
    safety: Safety = Safety.DESTRUCTIVE,
) -> Callable[[Callable[..., Awaitable[object]]], Callable[..., Awaitable[object]]]:
    """Declare a destructive tool confirmed by the guard (see the module docstring). `lock` names the target's
    lock keys from the arguments; `unbound` lists arguments the confirmation token does not bind."""
    ask = asker(plan)
    plan_type = _hints(plan)["return"]
    plan_params = [p for p in inspect.signature(plan).parameters if p != "ctx"]

    def declare(body: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[object]]:
        hints = _hints(body)
        sig = inspect.signature(body)
        own = [p.replace(annotation=hints[p.name]) for p in sig.parameters.values() if p.name not in ("ctx", "g")]
        missing = [p for p in plan_params if p not in {q.name for q in own}]
        if missing or "g" not in sig.parameters or "ctx" not in sig.parameters:
            raise TypeError(f"{body.__name__}: needs ctx, g and the plan's arguments (missing {missing})")
        kw = inspect.Parameter.KEYWORD_ONLY
        resolvers = [
            inspect.Parameter("plan", kw, annotation=Annotated[plan_type, Resolve(plan)]),
            inspect.Parameter("approval", kw, annotation=Annotated[ElicitationResult[Confirm], Resolve(ask)]),
        ]
        token = inspect.Parameter("confirm_token", kw, default=None, annotation=ConfirmToken)
        required = [p.replace(kind=kw) for p in own if p.default is inspect.Parameter.empty]
        optional = [p.replace(kind=kw) for p in own if p.default is not inspect.Parameter.empty]
        ctx_param = inspect.Parameter("ctx", kw, annotation=Context)
        params = [ctx_param, *required, *resolvers, *optional, token]
        name = body.__name__
        provider = name.split("_", 1)[0]

        @functools.wraps(body)
        async def run(**kwargs: Any) -> object:
            ctx: Context = kwargs.pop("ctx")
            resolved: Plan[T] = kwargs.pop("plan")
            approval: ElicitationResult[Confirm] = kwargs.pop("approval")
            confirm_token: str | None = kwargs.pop("confirm_token", None)
            state = app_state(ctx)
            args = {k: v for k, v in kwargs.items() if k not in unbound}
            plan_args = {k: kwargs[k] for k in plan_params}

            async def replan() -> Plan[T]:
                return await plan(ctx, **plan_args)

            client = state.clients.get(provider)
            decision, fresh = await state.guard.decide(
                tool=name,
                args=args,
                plan=resolved,
                approval=approval,
                confirm_token=confirm_token,
                replan=replan,
                backend=client.backend if client is not None else "live",
            )
            g = Guarded(decision=decision, plan=fresh, replan=replan, locks=lock(kwargs), _ctx=ctx)
            return await body(ctx=ctx, g=g, **kwargs)

        run.__signature__ = inspect.Signature(params, return_annotation=hints["return"])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params} | {"return": hints["return"]}
        del run.__wrapped__  # the SDK must read `run`'s signature, not the body's
        run.__poolpilot_spec__ = ToolSpec(name, run, safety, title)  # type: ignore[attr-defined]
        return run

    return declare
