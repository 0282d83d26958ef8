"""TaurusDB's plan resolvers and proxy rules: whether a proxy can switch its pool type (and why not), its row, and
the switch's plan (fresh read, preview, fingerprint). Nothing is sent when a plan raises."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from poolpilot.server.kernel.errors import ErrorCode, ErrorInfo, PoolpilotError
from poolpilot.server.kernel.guard import Change, Plan, Preview
from poolpilot.server.kernel.state import app_state
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.tools.taurusdb.client import PROVIDER, TaurusDBClient
from poolpilot.tools.taurusdb.models import ApiProxyEntry, InstanceId, PoolType, ProxyId, ProxyRow

__all__ = ["PoolTypeArg", "client", "plan_switch", "proxy_key", "proxy_lock", "proxy_row", "switch_blocker"]


_IMPACT: dict[str, str] = {
    "SESSION": "TaurusDB runs a job on the proxy; then backend connections are reused across client sessions, "
    "except sessions using PREPARE, temporary tables, user variables, LOCK TABLE, multi-statements or "
    "procedures, which stay pinned",
    "CLOSED": "TaurusDB runs a job on the proxy; then every client session holds its own backend connection again",
}


PoolTypeArg = Annotated[PoolType, Field(description="CLOSED: pooling off; SESSION: session-level pooling")]


def client(ctx: Context) -> TaurusDBClient:
    return app_state(ctx).client(PROVIDER, TaurusDBClient)


def switch_blocker(entry: ApiProxyEntry) -> tuple[ErrorCode, str, str] | None:
    """Why this proxy cannot switch its pool type now (error code, reason, next step), or None."""
    proxy = entry.proxy
    if proxy.switch_connection_pool_type_enabled is False:
        return (
            "not_supported",
            "its proxy version does not support switching the connection-pool type "
            "(switch_connection_pool_type_enabled is false)",
            "Upgrade the proxy kernel to 2.22.07.000 or later (taurusdb_upgrade_proxy_version, toolset "
            "taurusdb_proxy_admin), then check `switchable` with taurusdb_list_proxies.",
        )
    if entry.htap_nodes:
        # taurusdb_03_0033: "Consistency levels and connection pooling are not supported" with HTAP analysis.
        return (
            "not_supported",
            "proxies with HTAP analysis nodes do not support connection pooling",
            "Use a proxy without HTAP nodes.",
        )
    if proxy.status and proxy.status != "ACTIVE":
        return (
            "conflict",
            f"the proxy is {quote(proxy.status)}, not ACTIVE",
            "Wait until taurusdb_list_proxies shows it ACTIVE, then retry.",
        )
    return None


def proxy_row(entry: ApiProxyEntry) -> ProxyRow:
    proxy = entry.proxy
    blocker = switch_blocker(entry)
    return ProxyRow(
        proxy_id=proxy.pool_id,
        name=proxy.name,
        status=proxy.status,
        pool_type=proxy.connection_pool_type,
        switchable=blocker is None,
        why_not=blocker[1] if blocker else None,
        node_count=proxy.node_num if proxy.node_num is not None else len(proxy.nodes or []),
    )


async def plan_switch(
    ctx: Context, instance_id: InstanceId, proxy_id: ProxyId, pool_type: PoolTypeArg
) -> Plan[ProxyRow]:
    entry = await client(ctx).find_proxy(instance_id, proxy_id)
    row = proxy_row(entry)
    preview = Preview(
        action="set connection-pool type",
        target=f"proxy {quote(row.name)} ({proxy_id}) on instance {instance_id}",
        changes=[Change(field="connection_pool_type", before=row.pool_type, after=pool_type)],
        impact=_IMPACT[pool_type],
    )
    state = fingerprint({"instance": instance_id, "proxy": row.model_dump()})
    if row.pool_type == pool_type:
        why = f"Proxy {quote(row.name)} already uses {pool_type}; no job was started and nothing was sent."
        return Plan(preview=preview, fingerprint=state, data=row, no_change=why)
    blocker = switch_blocker(entry)
    if blocker is not None:
        code, reason, hint = blocker
        raise PoolpilotError(
            ErrorInfo(
                code=code,
                message=f"proxy {quote(row.name)} ({proxy_id}) cannot switch to {pool_type}: {reason}; "
                "nothing was sent",
                hint=hint,
                provider=PROVIDER,
            )
        )
    return Plan(preview=preview, fingerprint=state, data=row)


def proxy_key(instance_id: str, proxy_id: str) -> str:
    """One writer per proxy, from the tool or from pools_apply (the PUT, not the job's wait)."""
    return f"taurusdb:proxy:{instance_id}/{proxy_id}"


def proxy_lock(args: Mapping[str, Any]) -> tuple[str, ...]:
    return (proxy_key(args["instance_id"], args["proxy_id"]),)
