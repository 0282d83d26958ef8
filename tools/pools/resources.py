"""MCP resources and prompts of the pools toolset, registered through the toolset's `extras` hook.

- `poolpilot://overview`: the pools_overview result as JSON (the only listed resource).
- Templates for single objects, so listing stays cheap (no resource per pool): DO pools of a cluster and one
  pool, TaurusDB proxies of an instance, PgBouncer pools of an instance.
- Prompts `diagnose_pools` and `resize_pool`: short texts naming the tools to call.

A resource or prompt is registered only when the tool it mirrors is enabled (`--toolsets`, `--tools`,
`--read-only`), so a resource never shows what the allowlist hides. Reads reuse the read tools' own code, are
validated like tool arguments, and pass through the server's redactor like every tool result.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.state import AppState

__all__ = ["register_extras"]

JSON = "application/json"
ProviderText = Annotated[str, Field(description="digitalocean, taurusdb or pgbouncer")]
LocationText = Annotated[str, Field(description="DO cluster id, TaurusDB instance id or PgBouncer instance")]
PoolText = Annotated[str, Field(description="Pool name, TaurusDB proxy id or PgBouncer database")]

_RESIZE_STEPS: dict[str, str] = {
    "digitalocean": (
        "1. Call digitalocean_list_pools(cluster_id={location!r}) and read the budget: max, allocated, available.\n"
        "2. Pick a size for pool {pool!r} that keeps allocated <= max (its current size counts as free).\n"
        "3. Call digitalocean_update_pool(cluster_id={location!r}, pool_name={pool!r}, size=<new size>)."
    ),
    "pgbouncer": (
        "1. Call pgbouncer_list_pools(instance={location!r}, database={pool!r}): clients waiting, max wait, "
        "pool size, saturation.\n"
        "2. Pick a pool_size that stays within the database's max_db_connections and the server's limits.\n"
        "3. Call pgbouncer_update_pool(instance={location!r}, database={pool!r}, pool_size=<new size>)."
    ),
    "taurusdb": (
        "TaurusDB proxies have no pool size; only the pool type (CLOSED or SESSION) changes.\n"
        "1. Call taurusdb_list_proxies(instance_id={location!r}) and check that proxy {pool!r} is switchable.\n"
        "2. Call taurusdb_set_proxy_pool_type(instance_id={location!r}, proxy_id={pool!r}, pool_type=<type>)."
    ),
}
_GUARDED = (
    "The update is guarded: it asks the user, or returns a preview and a confirm_token. Show the preview, and "
    "pass the token only after the user agrees. Then read the pool again to confirm the change."
)


def _valid(kind: Any, field: str, value: str) -> Any:
    """Validate a URI parameter as the matching tool argument would be, without echoing a rejected value."""
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        reason = exc.errors(include_url=False, include_input=False)[0]["msg"]
        raise ResourceError(f"validation_error: {field}: {reason}") from None


def register_extras(app: MCPServer[Any]) -> None:
    """Register the pools resources and prompts on `app` (a PoolpilotServer; anything else gets none)."""
    from poolpilot.server.shell.app import PoolpilotServer  # the app module imports toolsets by name, never the reverse

    if not isinstance(app, PoolpilotServer):
        return
    state, enabled = app.state, set(app.specs)

    def dumps(data: object) -> str:
        clean = state.redactor.value(data, allow_connection_secrets=state.settings.allow_secrets)
        return json.dumps(clean, separators=(",", ":"), ensure_ascii=False)

    async def read(call: Callable[[], Awaitable[BaseModel]]) -> str:
        try:
            result = await call()
        except PoolpilotError as exc:
            text = state.redactor.text(exc.info.text())
            raise (ResourceNotFoundError if exc.info.code == "not_found" else ResourceError)(text) from None
        return dumps(result.model_dump(mode="json", exclude_none=True))

    if "pools_overview" in enabled:
        _overview(app, state, read)
        _prompts(app, enabled)
    if "digitalocean_list_pools" in enabled:
        _digitalocean(app, read, with_pool="digitalocean_get_pool" in enabled)
    if "taurusdb_list_proxies" in enabled:
        _taurusdb(app, read)
    if "pgbouncer_list_pools" in enabled:
        _pgbouncer(app, read)


Reader = Callable[[Callable[[], Awaitable[BaseModel]]], Awaitable[str]]


def _overview(app: MCPServer[Any], state: AppState, read: Reader) -> None:
    from poolpilot.tools.pools.collect import collect

    # A static resource gets no Context (SDK rule), so it reads the app state the lifespan fills.
    @app.resource("poolpilot://overview", name="overview", description="pools_overview as JSON", mime_type=JSON)
    async def overview() -> str:
        return await read(lambda: collect(state))


def _digitalocean(app: MCPServer[Any], read: Reader, *, with_pool: bool) -> None:
    from poolpilot.tools.digitalocean.models import ClusterId, PoolName
    from poolpilot.tools.digitalocean.tools import digitalocean_get_pool, digitalocean_list_pools

    @app.resource(
        "digitalocean://clusters/{cluster_id}/pools",
        name="digitalocean_pools",
        description="A DigitalOcean cluster's pools and connection budget",
        mime_type=JSON,
    )
    async def pools(cluster_id: str, ctx: Context) -> str:
        cid = _valid(ClusterId, "cluster_id", cluster_id)
        return await read(lambda: digitalocean_list_pools(ctx, cid, page_size=100))

    if not with_pool:
        return

    @app.resource(
        "digitalocean://clusters/{cluster_id}/pools/{pool_name}",
        name="digitalocean_pool",
        description="One DigitalOcean pool with its connection details (password redacted)",
        mime_type=JSON,
    )
    async def pool(cluster_id: str, pool_name: str, ctx: Context) -> str:
        cid, name = _valid(ClusterId, "cluster_id", cluster_id), _valid(PoolName, "pool_name", pool_name)
        return await read(lambda: digitalocean_get_pool(ctx, cid, name))


def _taurusdb(app: MCPServer[Any], read: Reader) -> None:
    from poolpilot.tools.taurusdb.models import InstanceId
    from poolpilot.tools.taurusdb.tools import taurusdb_list_proxies

    @app.resource(
        "taurusdb://instances/{instance_id}/proxies",
        name="taurusdb_proxies",
        description="A TaurusDB instance's proxies: pool type and whether it can switch",
        mime_type=JSON,
    )
    async def proxies(instance_id: str, ctx: Context) -> str:
        iid = _valid(InstanceId, "instance_id", instance_id)
        return await read(lambda: taurusdb_list_proxies(ctx, iid))


def _pgbouncer(app: MCPServer[Any], read: Reader) -> None:
    from poolpilot.tools.pgbouncer.models import InstanceName
    from poolpilot.tools.pgbouncer.tools import pgbouncer_list_pools

    @app.resource(
        "pgbouncer://{instance}/pools",
        name="pgbouncer_pools",
        description="A PgBouncer instance's pools: clients waiting, max wait, saturation",
        mime_type=JSON,
    )
    async def pools(instance: str, ctx: Context) -> str:
        name = _valid(InstanceName, "instance", instance)
        return await read(lambda: pgbouncer_list_pools(ctx, name, page_size=100))


def _provider(value: str | None, *, required: bool) -> str | None:
    """Prompt arguments are free text: an unknown provider is refused as invalid params, never rendered."""
    if value in _RESIZE_STEPS or (not value and not required):
        return value or None
    raise MCPError(INVALID_PARAMS, "provider: use digitalocean, taurusdb or pgbouncer")


def _prompts(app: MCPServer[Any], enabled: set[str]) -> None:
    @app.prompt(name="diagnose_pools", title="Diagnose pools", description="Find pools in trouble and propose fixes")
    async def diagnose_pools(provider: ProviderText | None = None) -> str:
        chosen = _provider(provider, required=False)
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
        chosen = _provider(provider, required=True) or ""
        steps = _RESIZE_STEPS[chosen].format(location=location, pool=pool)
        return f"Help me resize pool {pool!r} at {location!r} ({chosen}).\n{steps}\n{_GUARDED}"
