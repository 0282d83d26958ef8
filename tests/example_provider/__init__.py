"""A test-only provider that proves issue 16's "one folder plus one line": a tiny in-memory pool API with one
read, one write and one destructive tool. Registered with one line (`registry.register("tests.example_provider")`),
it shows up, with no other edit, in tools/list, the guard, `poolpilot tools`, doctor, client configuration,
pools_overview and the resources. Its parts live in api.py; this face is everything the rest of poolpilot sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from poolpilot.server.kernel.config import SettingsReader
from poolpilot.server.kernel.provider import Backend, Check, EnvVar, Provider

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from poolpilot.server.kernel.config import Settings
    from poolpilot.server.kernel.fleet import FleetAdapter
    from poolpilot.server.kernel.state import AppState, OpenContext, ProviderClient, ToolSpec

__all__ = ["FACE", "ExampleSettings"]


@dataclass(frozen=True)
class ExampleSettings:
    token: str | None = field(default=None, repr=False)

    def configured(self) -> bool:
        return bool(self.token)

    def secrets(self) -> list[str]:
        return [self.token] if self.token else []

    def status(self, backend: Backend) -> str:
        return f"{backend}: an in-memory pool API with 2 seeded pools"

    def validate(self, backend: Backend) -> None:
        return None


def _read(r: SettingsReader) -> ExampleSettings:
    token, _ = r.secret("example_token", "EXAMPLE_TOKEN")
    return ExampleSettings(token=token)


def _load(_toolset: str) -> tuple[ToolSpec, ...]:
    from tests.example_provider.api import SPECS

    return SPECS


async def _open(ctx: OpenContext) -> ProviderClient:
    from tests.example_provider.api import ExampleClient

    return ExampleClient(ctx.settings.provider_backend("example"))


async def _probes(settings: Settings, timeout_s: float) -> list[Check]:
    return [Check(name="example api", status="ok", detail="answered in memory")]


def _extras(app: MCPServer[AppState], state: AppState, enabled: frozenset[str]) -> None:
    from tests.example_provider.api import register_resources

    register_resources(app, state, enabled)


def _fleet() -> FleetAdapter:
    from tests.example_provider.api import ADAPTER

    return ADAPTER


FACE = Provider(
    name="example",
    description="Example pools: a tiny in-memory API that proves one folder plus one line.",
    settings=_read,
    index={"example_list_pools": "read", "example_create_pool": "write", "example_delete_pool": "destructive"},
    load=_load,
    open=_open,
    probes=_probes,
    extras=_extras,
    fleet=_fleet,
    env=(EnvVar("EXAMPLE_TOKEN", secret=True, description="the example API's token"),),
)
