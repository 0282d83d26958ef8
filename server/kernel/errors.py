"""One error model for every failure a tool can meet.

Hierarchy::

    ToolError (mcp SDK)
    └── PoolpilotError        carries an `ErrorInfo`; raised by tools, clients, the guard
                              and turned into one `isError` result by `render_error`.

Anything else that escapes a tool becomes `internal_error` with an incident id; its traceback goes only
to the (redacted) log, never to the model.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, ValidationError

from poolpilot.server.kernel.text import escape

__all__ = [
    "ErrorCode",
    "ErrorInfo",
    "PoolpilotError",
    "from_validation_error",
    "internal_error",
    "render_error",
    "validation_error",
]

ErrorCode = Literal[
    "validation_error",
    "not_found",
    "auth_failed",
    "forbidden",
    "rate_limited",
    "conflict",
    "budget_exceeded",
    "not_supported",
    "upstream_error",
    "connection_error",
    "timeout",
    "confirmation_invalid",
    "read_only",
    "tool_not_allowed",
    "audit_failed",
    "state_store_unavailable",
    "reload_failed",
    "internal_error",
]


class ErrorInfo(BaseModel):
    """What went wrong, in a shape a model can act on."""

    model_config = ConfigDict(extra="forbid")

    code: ErrorCode
    message: str
    hint: str | None = None
    provider: str | None = None
    provider_code: str | None = None
    http_status: int | None = None
    request_id: str | None = None
    retry_after_s: float | None = None
    field: str | None = None
    allowed: list[str] | None = None
    incident_id: str | None = None

    def text(self) -> str:
        """The one-line text form: `code: message Next: hint`."""
        line = f"{self.code}: {self.message}"
        return f"{line} Next: {self.hint}" if self.hint else line


class PoolpilotError(ToolError):
    """A failure the caller can read and act on."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.text())
        self.info = info


def validation_error(
    field: str,
    message: str,
    *,
    allowed: Sequence[str] | None = None,
    hint: str | None = None,
    provider: str | None = None,
) -> PoolpilotError:
    """A bad argument, named with the values that would have been accepted. Never echo the value."""
    return PoolpilotError(
        ErrorInfo(
            code="validation_error",
            message=f"{field}: {message}",
            field=field,
            allowed=list(allowed) if allowed is not None else None,
            hint=hint or "Correct this argument and call the tool again; nothing was sent upstream.",
            provider=provider,
        )
    )


def from_validation_error(exc: ValidationError, tool: str) -> ErrorInfo:
    """Map the SDK's argument validation (pydantic) into our model, without the rejected input or URLs."""
    problems: list[str] = []
    fields: list[str] = []
    allowed: list[str] | None = None
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in err["loc"] if part != "arguments") or "arguments"
        fields.append(loc)
        problems.append(f"{loc}: {err['msg']}")
        ctx = err.get("ctx") or {}
        expected = ctx.get("expected")
        if allowed is None and isinstance(expected, str):
            allowed = [part.strip(" '") for part in expected.replace(" or ", ",").split(",") if part.strip(" '")]
    field = fields[0] if len(set(fields)) == 1 else None
    return ErrorInfo(
        code="validation_error",
        message=f"invalid arguments for {tool}: " + "; ".join(problems),
        field=field,
        allowed=allowed,
        hint="Correct the named arguments and call the tool again; nothing was sent upstream.",
    )


def internal_error() -> ErrorInfo:
    incident = secrets.token_hex(6)
    return ErrorInfo(
        code="internal_error",
        message=f"poolpilot hit an unexpected error (incident {incident}); nothing more is known to be changed.",
        hint="Read the state back with a list/get tool before retrying; report the incident id to the operator.",
        incident_id=incident,
    )


def render_error(info: ErrorInfo) -> CallToolResult:
    """The `isError` result: text for every client, the model as structuredContent for those that read it.

    Message and hint are prose that may carry provider text (an upstream error message, a name): any hidden
    character left in them is written as a visible escape (server/kernel/text.py), so none can add a line."""
    info = info.model_copy(update={"message": escape(info.message), "hint": escape(info.hint) if info.hint else None})
    data = info.model_dump(exclude_none=True)
    return CallToolResult(content=[TextContent(type="text", text=info.text())], structured_content=data, is_error=True)
