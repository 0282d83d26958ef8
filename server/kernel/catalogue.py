"""The toolset catalogue: which toolsets this server offers and, per connection, which ones it enabled at run time
(server/kernel/toolsets.py has the tools that read and change it; the pipeline filters tools/list by it)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context

__all__ = ["ToolsetEntry", "Toolsets", "connection_of"]


@dataclass(frozen=True)
class ToolsetEntry:
    name: str
    description: str
    # The tools this server would show for it, after --read-only and --tools.
    tools: tuple[str, ...]
    # On for every session from the start (--toolsets, or on by default).
    on: bool
    # Why no session can enable it here (its provider is not enabled on this server); None: it can be enabled.
    blocked: str | None = None


class Toolsets:
    """The toolset catalogue and, per connection, the toolsets it enabled at run time."""

    def __init__(self, entries: Sequence[ToolsetEntry] = ()) -> None:
        self.entries = {e.name: e for e in entries}
        # tool -> its toolset, for every registered tool that is off until a session enables its toolset
        self.dynamic = {t: e.name for e in entries if not e.on and e.blocked is None for t in e.tools}
        self._enabled: weakref.WeakKeyDictionary[object, set[str]] = weakref.WeakKeyDictionary()

    def enabled(self, connection: object | None) -> frozenset[str]:
        return frozenset(self._enabled.get(connection, ())) if connection is not None else frozenset()

    def visible(self, tool: str, connection: object | None) -> bool:
        toolset = self.dynamic.get(tool)
        return toolset is None or toolset in self.enabled(connection)

    def enable(self, connection: object, name: str) -> None:
        self._enabled.setdefault(connection, set()).add(name)


def connection_of(ctx: Context[Any, Any] | None) -> object | None:
    """The object that lives as long as the client's connection: the SDK keeps it on the per-request session
    proxy and exposes no public handle to it, so this reads the one attribute (absent: no connection)."""
    if ctx is None or ctx.request_context is None:
        return None
    return getattr(ctx.request_context.session, "_connection", None)
