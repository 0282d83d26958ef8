"""The registered providers: one line each. Adding a provider is its folder plus one line here.

Everything else (settings, tools, the sandbox, doctor, client configuration, the fleet view) reads the faces
through this list. `register()` adds one at run time (tests register their example provider that way).
"""

from __future__ import annotations

import importlib

from poolpilot.server.kernel.provider import Provider

__all__ = ["faces", "register", "unregister"]

# One line per provider (the cross-provider toolset `pools` last: it reads the others).
_MODULES: list[str] = [
    "poolpilot.tools.digitalocean",
    "poolpilot.tools.taurusdb",
    "poolpilot.tools.pgbouncer",
    "poolpilot.tools.pools",
]


def register(module: str) -> None:
    """Register the provider whose face is `module.FACE` (before the cross-provider toolset)."""
    if module not in _MODULES:
        _MODULES.insert(len(_MODULES) - 1, module)


def unregister(module: str) -> None:
    """Take a registered provider out again (tests put the registry back as they found it)."""
    if module in _MODULES:
        _MODULES.remove(module)


def faces() -> list[Provider]:
    return [importlib.import_module(m).FACE for m in _MODULES]
