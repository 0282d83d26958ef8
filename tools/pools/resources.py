"""MCP resources and prompts of the pools toolset, registered through its face's `extras` hook.

- `poolpilot://overview`: the pools_overview result as JSON (the only listed resource). Each provider registers
  its own resource templates (tools/<provider>/resources.py).
- Prompts `diagnose_pools` and `resize_pool`: short texts naming the tools to call; the resize steps come from
  the enabled providers' fleet adapters.

A resource or prompt is registered only when the tool it mirrors is enabled (`--toolsets`, `--tools`,
`--read-only`), so a resource never shows what the allowlist hides.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import Field

from poolpilot.server.kernel.resources import JSON, reader
from poolpilot.server.kernel.state import AppState
from poolpilot.server.kernel.text import quote

__all__ = ["register_extras"]

ProviderText = Annotated[str, Field(description="A provider: one of the enabled provider toolsets")]
LocationText = Annotated[str, Field(description="Where the pool is: cluster, instance or PgBouncer instance")]
PoolText = Annotated[str, Field(description="Pool name, proxy id or PgBouncer database")]

_GUARDED = (
    "The update is guarded: it asks the user, or returns a preview and a confirm_token. Show the preview, and "
    "pass the token only after the user agrees. Then read the pool again to confirm the change."
)


def register_extras(app: MCPServer[AppState], state: AppState, enabled: frozenset[str]) -> None:
    """Register the pools resources and prompts on `app`."""
    if {"pools_export", "pools_plan", "pools_apply"} <= enabled:
        _reconcile(app)
    if "pools_overview" not in enabled:
        return
    read = reader(state)

    # A static resource gets no Context (SDK rule), so it reads the app state the lifespan fills.
    @app.resource("poolpilot://overview", name="overview", description="pools_overview as JSON", mime_type=JSON)
    async def overview() -> str:
        from poolpilot.tools.pools.collect import collect  # at the first read (start-up imports no tool module)

        return await read(lambda: collect(state))

    @functools.cache
    def steps() -> dict[str, str]:
        """The providers' resize steps, read at the first prompt (a fleet adapter imports its provider's modules)."""
        return {
            name: face.fleet().resize_steps
            for name, face in state.providers.items()
            if face.fleet is not None and face.fleet().resize_steps
        }

    _prompts(app, enabled, steps)


def _provider(value: str | None, steps: dict[str, str], *, required: bool) -> str | None:
    """Prompt arguments are free text: an unknown provider is refused as invalid params, never rendered."""
    if value in steps or (not value and not required):
        return value or None
    raise MCPError(INVALID_PARAMS, "provider: use " + ", ".join(steps))


def _prompts(app: MCPServer[AppState], enabled: frozenset[str], steps: Callable[[], dict[str, str]]) -> None:
    @app.prompt(name="diagnose_pools", title="Diagnose pools", description="Find pools in trouble and propose fixes")
    async def diagnose_pools(provider: ProviderText | None = None) -> str:
        chosen = _provider(provider, steps(), required=False)
        scope = f"provider={chosen!r}" if chosen else "no filter"
        advise = ", then pools_advise with the same filter" if "pools_advise" in enabled else ""
        return (
            f"Call pools_overview ({scope}){advise}. Explain each finding in a sentence or two, with its "
            "figures, most severe first, and any provider listed under errors. For each fix, propose its "
            "suggested_call exactly as given and ask me before making it: those calls are guarded and return a "
            "preview or ask for confirmation. Change nothing without my agreement."
        )

    @app.prompt(name="resize_pool", title="Resize a pool", description="Walk through the budget and a guarded update")
    async def resize_pool(provider: ProviderText, location: LocationText, pool: PoolText) -> str:
        chosen = _provider(provider, steps(), required=True) or ""
        # Both may be copied from provider data: quoted JSON-style (escapes visible), they are data in the prompt.
        location, pool = quote(location), quote(pool)
        how = steps()[chosen].format(location=location, pool=pool)
        return f"Help me resize pool {pool} at {location} ({chosen}).\n{how}\n{_GUARDED}"


def _reconcile(app: MCPServer[AppState]) -> None:
    @app.prompt(
        name="reconcile_pools",
        title="Reconcile pools with a document",
        description="Export, edit, plan and apply a desired state of pools under one confirmation",
    )
    async def reconcile_pools(provider: ProviderText | None = None) -> str:
        # Free text from the client: quoted (escapes visible) so it reads as data, never as an instruction.
        scope = f"provider={quote(provider)}" if provider else "no filter"
        return (
            f"1. Call pools_export ({scope}) and show me the document: pools keyed by provider, location and pool, "
            "each with its fields under spec; scopes say what else is read and whether unlisted pools are deleted "
            "(prune, off by default).\n"
            "2. Edit it as I ask. Omitted fields are kept; a new pool needs every field its provider requires.\n"
            "3. Call pools_plan with the edited document. Show me the steps in their order, each budget before, "
            "after and at its peak, and the drift summary. If it is refused, explain every reason and fix the "
            "document with me.\n"
            "4. Only after I agree, call pools_apply with the same document and the plan_id. It asks me, or "
            "returns a preview and a confirm_token: pass the token only after I agree. If a step fails, report "
            "which steps are done, failed and not started, then plan again: the new plan lists what is left."
        )
