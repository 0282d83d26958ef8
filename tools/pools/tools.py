"""Cross-provider tools (`pools_*`): one overview of every pool, and rule-based advice over it.

Both are reads. They reach the provider clients the server already opened (`app_state(ctx).clients`), so only
providers enabled on this server are read; the toolset's own client is a placeholder. Results are compact: the
text is one line of JSON without nulls, the same data as `structuredContent`. Advice never acts: each finding
names the exact call that would apply its fix, which the caller makes through that tool's guard.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import AfterValidator, BaseModel, Field

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError, validation_error
from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.state import AppState, ToolSpec, app_state
from poolpilot.server.kernel.text import check_name
from poolpilot.server.kernel.tooldef import specs, tool
from poolpilot.tools.pools.collect import adapters, collect, enabled_providers
from poolpilot.tools.pools.models import Advice, Overview
from poolpilot.tools.pools.rules import Thresholds, advise

__all__ = ["SPECS", "compact", "thresholds"]

# Checked at call time against the enabled providers (the registry is the one provider list).
ProviderFilter = Annotated[str | None, Field(max_length=64, description="Only this provider (a toolset name)")]


def _printable(value: str | None) -> str | None:
    # The kernel's name rule: hidden characters (newlines, NUL, bidi overrides, line separators) and dot segments
    # are in no id or name; refused, not looked up.
    return None if value is None else check_name(value)


LocationFilter = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=100,
        description="Only this DO cluster (id or name), TaurusDB instance (id or name) or PgBouncer instance (name)",
    ),
    AfterValidator(_printable),
]


def thresholds(state: AppState) -> Thresholds:
    """The advice thresholds from the settings (PgBouncer's are the ones pgbouncer_list_pools uses too)."""
    s = state.settings
    contributed: dict[str, float] = {}
    for name, face in state.providers.items():
        contributed.update(face.thresholds(s.provider(name)))
    base = Thresholds(budget_warn=s.advise_budget_warn, session_share=s.advise_session_share)
    return replace(base, **contributed)  # type: ignore[arg-type]


def compact(model: BaseModel) -> CallToolResult:
    """One line of JSON without nulls, for the text and the structured content alike."""
    data = model.model_dump(mode="json", exclude_none=True)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _checked(state: AppState, provider: str | None) -> None:
    enabled = enabled_providers(state)
    if not enabled:
        raise PoolpilotError(
            ErrorInfo(
                code="not_supported",
                message="no provider is enabled on this server, so there are no pools to show",
                hint="Ask the operator to enable a provider toolset (--toolsets).",
            )
        )
    if provider is not None and provider not in enabled:
        raise validation_error("provider", "this provider is not enabled on this server", allowed=enabled)


@tool(Safety.READ, "Overview of all pools")
async def pools_overview(
    ctx: Context, provider: ProviderFilter = None, location: LocationFilter = None
) -> Annotated[CallToolResult, Overview]:
    """List every pool across the enabled providers as uniform rows with budget and health figures."""
    state = app_state(ctx)
    _checked(state, provider)
    return compact(await collect(state, provider=provider, location=location))


@tool(Safety.READ, "Advice on all pools")
async def pools_advise(
    ctx: Context, provider: ProviderFilter = None, location: LocationFilter = None
) -> Annotated[CallToolResult, Advice]:
    """Find pools to fix (budget, session mode, orphans, waiting clients) and the exact call for each; never acts."""
    state = app_state(ctx)
    _checked(state, provider)
    overview = await collect(state, provider=provider, location=location)
    limits = thresholds(state)
    rules = [rule for adapter in adapters(state).values() for rule in adapter.rules]
    return compact(
        Advice(
            backend=overview.backend,
            findings=advise(overview, limits, rules),
            errors=overview.errors,
            thresholds=limits.as_dict(),
        )
    )


SPECS: tuple[ToolSpec, ...] = specs(pools_overview, pools_advise)
