"""The example provider's client (an in-memory pool API), its tools, fleet adapter and resource template."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.fleet import FleetAdapter, OverviewRow, Sink
from poolpilot.server.kernel.guard import Change, GuardedResult, Plan, Preview, Safety
from poolpilot.server.kernel.resources import JSON, reader
from poolpilot.server.kernel.state import AppState, ProviderClient, ToolSpec, app_state
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs, tool

__all__ = ["ADAPTER", "SPECS", "ExampleClient", "register_resources"]

PoolName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$", description="Pool name")]


class ExampleClient:
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.pools: dict[str, int] = {"alpha": 5, "beta": 8}

    async def aclose(self) -> None:
        return None


class PoolRow(BaseModel):
    name: str
    size: int


class PoolList(BaseModel):
    backend: str
    rows: list[PoolRow]


class PoolCreated(BaseModel):
    backend: str
    pool: PoolRow


class PoolDeletion(GuardedResult):
    pool_name: str


def _client(ctx: Context) -> ExampleClient:
    return app_state(ctx).client("example", ExampleClient)


@tool(Safety.READ, "List example pools")
async def example_list_pools(ctx: Context) -> PoolList:
    """List the example pools with their sizes."""
    api = _client(ctx)
    return PoolList(backend=api.backend, rows=[PoolRow(name=n, size=s) for n, s in sorted(api.pools.items())])


@tool(Safety.WRITE, "Create example pool")
async def example_create_pool(
    ctx: Context, pool_name: PoolName, size: Annotated[int, Field(strict=True, ge=1, le=100)]
) -> PoolCreated:
    """Create an example pool."""
    api = _client(ctx)
    app_state(ctx).guard.start_write(
        tool="example_create_pool", args={"pool_name": pool_name, "size": size}, target=pool_name, backend=api.backend
    )
    api.pools[pool_name] = size
    return PoolCreated(backend=api.backend, pool=PoolRow(name=pool_name, size=size))


async def _plan_delete(ctx: Context, pool_name: PoolName) -> Plan[int]:
    api = _client(ctx)
    if pool_name not in api.pools:
        raise PoolpilotError(
            ErrorInfo(code="not_found", message=f"pool {quote(pool_name)} was not found", hint="List the pools.")
        )
    size = api.pools[pool_name]
    preview = Preview(
        action="delete pool",
        target=f"example pool {quote(pool_name)}",
        changes=[Change(field="size", before=size, after=None)],
        impact="its clients are disconnected",
    )
    return Plan(preview=preview, fingerprint=fingerprint({"pool": pool_name, "size": size}), data=size)


def _lock(args: Mapping[str, Any]) -> tuple[str, ...]:
    return (f"example:pool:{args['pool_name']}",)


@guarded(title="Delete example pool", plan=_plan_delete, lock=_lock)
async def example_delete_pool(ctx: Context, pool_name: PoolName, g: Guarded[int]) -> PoolDeletion:
    """Delete an example pool; asks for confirmation first."""
    api = _client(ctx)
    fields = {**g.decision.result_fields(api.backend), "pool_name": pool_name}
    if not g.decision.approved:
        return PoolDeletion.model_validate(fields)
    async with g.commit():
        del api.pools[pool_name]
    return PoolDeletion.model_validate({**fields, "executed": True, "message": "Deleted."})


SPECS: tuple[ToolSpec, ...] = specs(example_list_pools, example_create_pool, example_delete_pool)


async def _collect(client: ProviderClient, location: str | None, sink: Sink) -> None:
    api = cast(ExampleClient, client)
    for name, size in sorted(api.pools.items()):
        sink.rows.append(OverviewRow(provider="example", location="memory", pool=name, size=size, backend=api.backend))


ADAPTER = FleetAdapter(collect=_collect, resize_steps="Call example_list_pools, then recreate {pool} at {location}.")


def register_resources(app: MCPServer[AppState], state: AppState, enabled: frozenset[str]) -> None:
    if "example_list_pools" not in enabled:
        return
    read = reader(state)

    @app.resource("example://pools/{scope}", name="example_pools", description="The example pools", mime_type=JSON)
    async def pools(scope: str, ctx: Context) -> str:
        return await read(lambda: example_list_pools(ctx))
