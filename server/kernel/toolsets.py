"""Dynamic toolsets: which toolsets this server offers, which are on for a session, and the two tools that list
and enable them (`toolsets_list`, `toolsets_enable`).

Every tool a session may ever see is registered with the SDK once; a tool of a toolset that is off is left out of
that session's tools/list and refused when called, until the session enables its toolset. Read-only mode and the
`--tools` allowlist are applied before a tool gets here, so enabling a toolset never shows a tool they hide.

A session is a handshake-era connection (stdio, stateful streamable HTTP): the enabled set lives as long as it
does. A 2026-07-28 request or a stateless HTTP request has no connection that outlives it, so there is nothing to
remember the choice in: those clients are told to restart with `--toolsets`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp_types import ToolListChangedNotification
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import AfterValidator, BaseModel, Field

from poolpilot.server.kernel.catalogue import Toolsets, connection_of
from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.state import ToolSpec, app_state
from poolpilot.server.kernel.text import check_name
from poolpilot.server.kernel.tooldef import specs, tool

__all__ = ["SPECS", "TOOL_NAMES"]

ToolsetName = Annotated[
    str, Field(min_length=1, max_length=64, description="A toolset name from toolsets_list"), AfterValidator(check_name)
]


class ToolsetRow(BaseModel):
    name: str
    enabled: bool
    tools: int = Field(description="Tools it adds (after --read-only and --tools)")
    what: str
    note: str | None = Field(default=None, description="Why it cannot be enabled here")


class ToolsetList(BaseModel):
    toolsets: list[ToolsetRow]
    can_enable: bool = Field(description="Whether this connection can enable toolsets with toolsets_enable")
    hint: str


class ToolsetEnabled(BaseModel):
    toolset: str
    outcome: Literal["enabled", "already_enabled"]
    tools: list[str] = Field(description="The toolset's tools, now in tools/list")


_RESTART = "Ask the operator to restart poolpilot with --toolsets naming it (or POOLPILOT_TOOLSETS)."


def _why_not_dynamic(ctx: Context) -> str | None:
    """Why this request cannot enable a toolset for later requests, or None."""
    request = ctx.request_context
    if request.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return "this client speaks MCP 2026-07-28, which keeps no session to remember enabled toolsets in"
    connection = connection_of(ctx)
    if connection is None or (getattr(connection, "session_id", None) is None and not request.session.can_send_request):
        return "this is a stateless connection: nothing outlives the request to remember enabled toolsets in"
    return None


def _toolsets(ctx: Context) -> Toolsets:
    return app_state(ctx).toolsets


@tool(Safety.READ, "List toolsets")
async def toolsets_list(ctx: Context) -> ToolsetList:
    """List this server's toolsets, one row each (enabled or not, tool count, what for); enable with toolsets_enable."""
    catalogue = _toolsets(ctx)
    connection = connection_of(ctx)
    mine = catalogue.enabled(connection)
    rows = [
        ToolsetRow(
            name=e.name,
            enabled=e.on or e.name in mine,
            tools=len(e.tools),
            what=e.description,
            note=e.blocked or (None if e.tools else "every tool of it is hidden by --read-only or --tools"),
        )
        for e in catalogue.entries.values()
    ]
    why = _why_not_dynamic(ctx)
    hint = "Call toolsets_enable with a toolset's name; tools/list then shows its tools."
    return ToolsetList(toolsets=rows, can_enable=why is None, hint=hint if why is None else f"{why}. {_RESTART}")


@tool(Safety.READ, "Enable a toolset")
async def toolsets_enable(ctx: Context, toolset: ToolsetName) -> ToolsetEnabled:
    """Enable a toolset for this session: its tools join tools/list; read-only mode and the allowlist still apply."""
    catalogue = _toolsets(ctx)
    entry = catalogue.entries.get(toolset)
    if entry is None:
        raise PoolpilotError(
            ErrorInfo(
                code="not_found",
                message="there is no toolset by that name",
                field="toolset",
                allowed=list(catalogue.entries),
                hint="Call toolsets_list for the names.",
            )
        )
    if entry.blocked is not None:
        raise PoolpilotError(
            ErrorInfo(code="not_supported", message=f"{toolset} cannot be enabled: {entry.blocked}", hint=_RESTART)
        )
    connection = connection_of(ctx)
    if entry.on or (connection is not None and toolset in catalogue.enabled(connection)):
        return ToolsetEnabled(toolset=toolset, outcome="already_enabled", tools=list(entry.tools))
    why = _why_not_dynamic(ctx)
    if why is not None or connection is None:
        raise PoolpilotError(ErrorInfo(code="not_supported", message=f"{why}; nothing was enabled", hint=_RESTART))
    catalogue.enable(connection, toolset)
    # On the request's own stream: a streamable-HTTP client without a standing GET stream still gets it.
    await ctx.request_context.session.send_notification(
        ToolListChangedNotification(), related_request_id=ctx.request_context.request_id
    )
    return ToolsetEnabled(toolset=toolset, outcome="enabled", tools=list(entry.tools))


SPECS: tuple[ToolSpec, ...] = specs(toolsets_list, toolsets_enable)
TOOL_NAMES = frozenset(s.name for s in SPECS)
