"""What MCP resources share: reads that reuse a read tool's own code, validate URI parameters like the tool's
arguments (never echoing a rejected value), and pass through the server's redactor like every tool result."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from pydantic import BaseModel, TypeAdapter, ValidationError

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.state import AppState

__all__ = ["JSON", "Reader", "reader", "valid"]

JSON = "application/json"
Reader = Callable[[Callable[[], Awaitable[BaseModel]]], Awaitable[str]]


def valid(kind: Any, field: str, value: str) -> Any:
    """Validate a URI parameter as the matching tool argument would be, without echoing a rejected value."""
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        reason = exc.errors(include_url=False, include_input=False)[0]["msg"]
        raise ResourceError(f"validation_error: {field}: {reason}") from None


def reader(state: AppState) -> Reader:
    """Run a read and return its result as compact, redacted JSON; a not-found error is a missing resource."""

    async def read(call: Callable[[], Awaitable[BaseModel]]) -> str:
        await state.ready()  # the providers' clients open at the first call or read
        try:
            result = await call()
        except PoolpilotError as exc:
            text = state.redactor.text(exc.info.text())
            raise (ResourceNotFoundError if exc.info.code == "not_found" else ResourceError)(text) from None
        data = result.model_dump(mode="json", exclude_none=True)
        clean = state.redactor.value(data, allow_connection_secrets=state.settings.allow_secrets)
        return json.dumps(clean, separators=(",", ":"), ensure_ascii=False)

    return read
