"""Plans of the proxy-administration changes (admin_tools.py): fresh reads, validation, preview and fingerprint of a
kernel upgrade, a parameter change and a session-consistency change. Nothing is sent when a plan raises; errors
name the argument at fault and never repeat a rejected value."""

from __future__ import annotations

import re
from typing import NoReturn

from mcp.server.mcpserver import Context
from pydantic import BaseModel

from poolpilot.server.kernel.errors import ErrorCode, ErrorInfo, PoolpilotError
from poolpilot.server.kernel.guard import Change, Plan, Preview
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.tools.taurusdb.admin_client import all_configurations, get_proxy_version
from poolpilot.tools.taurusdb.admin_models import (
    ApiProxyConfiguration,
    ConsistenceMode,
    ParameterChange,
    ParameterSetting,
    VersionArg,
)
from poolpilot.tools.taurusdb.client import PROVIDER
from poolpilot.tools.taurusdb.models import ApiProxyEntry, InstanceId, ProxyId
from poolpilot.tools.taurusdb.plans import client, proxy_row

__all__ = ["ConsistencyData", "ParametersData", "UpgradeData", "plan_consistency", "plan_parameters", "plan_upgrade"]

_RANGE = re.compile(r"(-?[0-9]{1,18})-(-?[0-9]{1,18})")
_CONSISTENCY_IMPACT: dict[str, str] = {
    "session": "reads through this proxy see the session's own earlier writes",
    "global": "reads through this proxy see every write committed before them (more reads may go to the primary)",
    "eventual": "reads through this proxy may return data a replica has not caught up on yet",
}


class UpgradeData(BaseModel):
    name: str
    current: str
    target: str


class ParametersData(BaseModel):
    name: str
    changes: list[ParameterChange]
    items: list[dict[str, str]]  # the PUT's configurations: name, value, elem_type


class ConsistencyData(BaseModel):
    name: str
    before: str | None


def _fail(
    code: ErrorCode, message: str, hint: str, field: str | None = None, allowed: list[str] | None = None
) -> NoReturn:
    raise PoolpilotError(
        ErrorInfo(code=code, message=message, hint=hint, provider=PROVIDER, field=field, allowed=allowed)
    )


def _key(version: str) -> tuple[int, ...] | None:
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isascii() and p.isdigit() for p in parts) else None


def _target(entry: ApiProxyEntry, proxy_id: str, instance_id: str) -> str:
    return f"proxy {quote(entry.proxy.name)} ({proxy_id}) on instance {instance_id}"


def _require_active(entry: ApiProxyEntry, proxy_id: str) -> None:
    status = entry.proxy.status
    if status and status != "ACTIVE":
        _fail(
            "conflict",
            f"proxy {quote(entry.proxy.name)} ({proxy_id}) is {quote(status)}, not ACTIVE; nothing was sent",
            "Wait until taurusdb_list_proxies shows it ACTIVE, then retry.",
        )


async def plan_upgrade(
    ctx: Context, instance_id: InstanceId, proxy_id: ProxyId, target_version: VersionArg = None
) -> Plan[UpgradeData]:
    tdb = client(ctx)
    entry = await tdb.find_proxy(instance_id, proxy_id)
    version = await get_proxy_version(tdb, instance_id, proxy_id)
    current, latest = version.current_version, version.latest_version
    name = quote(entry.proxy.name)
    if version.can_upgrade is False:
        _fail(
            "not_supported",
            f"TaurusDB reports can_upgrade=false for proxy {name} ({proxy_id}): version {quote(current)}, latest "
            f"{quote(latest)}; nothing was sent",
            "The proxy is on the newest kernel TaurusDB offers; nothing to upgrade.",
            field="target_version",
        )
    target = target_version or latest
    now_key, target_key, latest_key = _key(current), _key(target), _key(latest)
    if now_key is not None and target_key is not None and target_key <= now_key:
        _fail(
            "validation_error",
            f"target_version must be newer than proxy {name}'s current version {quote(current)}; nothing was sent",
            "Leave target_version out to upgrade to the latest version (taurusdb_get_proxy_version shows it).",
            field="target_version",
            allowed=[latest] if latest else None,
        )
    if target_version is not None and latest_key is not None and target_key is not None and target_key > latest_key:
        _fail(
            "validation_error",
            f"target_version is newer than the latest version TaurusDB offers ({quote(latest)}); nothing was sent",
            "Leave target_version out to upgrade to the latest version.",
            field="target_version",
            allowed=[latest],
        )
    _require_active(entry, proxy_id)
    impact = (
        "TaurusDB runs a job that restarts the proxy nodes: client connections through this proxy drop "
        "(intermittent disconnections) and must reconnect; upgrade off-peak"
    )
    risk = version.risk
    if risk is not None and risk.service_impact_duration:
        impact += f"; TaurusDB estimates the impact at {quote(risk.service_impact_duration)}"
    preview = Preview(
        action="upgrade proxy kernel version",
        target=_target(entry, proxy_id, instance_id),
        changes=[Change(field="proxy_version", before=current, after=target)],
        impact=impact,
    )
    state = fingerprint(
        {"instance": instance_id, "proxy": proxy_row(entry).model_dump(), "version": version.model_dump()}
    )
    data = UpgradeData(name=entry.proxy.name, current=current, target=target)
    return Plan(preview=preview, fingerprint=state, data=data)


def _check_value(row: ApiProxyConfiguration, value: str) -> None:
    """The value against the parameter's value_range: "low-high" for integers, "a,b,c" for choices; a range in
    another form is left to TaurusDB."""
    bounds = _RANGE.fullmatch(row.value_range) if row.data_type.lower() in ("integer", "int", "long") else None
    field = f"parameters.{row.name}"
    if bounds is not None:
        low, high = int(bounds.group(1)), int(bounds.group(2))
        number = value.strip()
        digits = number.removeprefix("-")
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 18 and low <= int(number) <= high):
            _fail(
                "validation_error",
                f"the value of {row.name} must be an integer from {low} to {high}; nothing was sent",
                "Correct the value and call the tool again.",
                field=field,
                allowed=[row.value_range],
            )
    elif bounds is None and "," in row.value_range:
        choices = [c.strip() for c in row.value_range.split(",")]
        if value not in choices:
            _fail(
                "validation_error",
                f"the value of {row.name} must be one of the allowed values; nothing was sent",
                "Use one of `allowed` exactly (values are case-sensitive).",
                field=field,
                allowed=choices,
            )


async def plan_parameters(
    ctx: Context, instance_id: InstanceId, proxy_id: ProxyId, parameters: list[ParameterSetting]
) -> Plan[ParametersData]:
    tdb = client(ctx)
    entry = await tdb.find_proxy(instance_id, proxy_id)
    rows = {row.name: row for row in await all_configurations(tdb, instance_id, proxy_id)}
    changes: list[ParameterChange] = []
    items: list[dict[str, str]] = []
    seen: set[str] = set()
    for position, setting in enumerate(parameters, start=1):
        name, value = setting.name, setting.value
        if name in seen:
            _fail(
                "validation_error",
                f"parameter {position} of {len(parameters)} names a parameter given before; nothing was sent",
                "Give each parameter once.",
                field="parameters",
            )
        seen.add(name)
        row = rows.get(name)
        if row is None:
            _fail(
                "validation_error",
                f"parameter {position} of {len(parameters)} is not a parameter of proxy {quote(entry.proxy.name)} "
                "(names are case-sensitive); nothing was sent",
                "Use a name from `allowed` (taurusdb_get_proxy_parameters lists them with their ranges).",
                field="parameters",
                allowed=sorted(rows)[:100],
            )
        _check_value(row, value)
        if value != row.value:
            changes.append(ParameterChange(name=name, before=row.value, after=value))
            items.append({"name": name, "value": value, "elem_type": row.elem_type or "system"})
    _require_active(entry, proxy_id)
    preview = Preview(
        action="set proxy parameters",
        target=_target(entry, proxy_id, instance_id),
        changes=[Change(field=c.name, before=c.before, after=c.after) for c in changes],
        impact="TaurusDB runs a job that applies the values on every proxy node; the API does not say whether a "
        "parameter needs a proxy restart (ShowProxyConfigurations has no such field), so plan for short "
        "disconnections",
    )
    state = fingerprint(
        {
            "instance": instance_id,
            "proxy": proxy_row(entry).model_dump(),
            "parameters": {name: rows[name].model_dump() for name in sorted(seen)},
        }
    )
    data = ParametersData(name=entry.proxy.name, changes=changes, items=items)
    if not changes:
        why = f"Proxy {quote(entry.proxy.name)} already has these values; no job was started and nothing was sent."
        return Plan(preview=preview, fingerprint=state, data=data, no_change=why)
    return Plan(preview=preview, fingerprint=state, data=data)


async def plan_consistency(
    ctx: Context, instance_id: InstanceId, proxy_id: ProxyId, consistence_mode: ConsistenceMode
) -> Plan[ConsistencyData]:
    entry = await client(ctx).find_proxy(instance_id, proxy_id)
    before = entry.proxy.consistence_mode or None
    preview = Preview(
        action="set proxy consistency",
        target=_target(entry, proxy_id, instance_id),
        changes=[Change(field="consistence_mode", before=before, after=consistence_mode)],
        impact=f"TaurusDB runs a job on the proxy; then {_CONSISTENCY_IMPACT[consistence_mode]}",
    )
    state = fingerprint({"instance": instance_id, "proxy": proxy_row(entry).model_dump(), "consistence": before})
    data = ConsistencyData(name=entry.proxy.name, before=before)
    if before == consistence_mode:
        why = f"Proxy {quote(entry.proxy.name)} already uses {consistence_mode} consistency; nothing was sent."
        return Plan(preview=preview, fingerprint=state, data=data, no_change=why)
    if entry.htap_nodes:
        # taurusdb_03_0033: "Consistency levels and connection pooling are not supported" with HTAP analysis.
        _fail(
            "not_supported", "proxies with HTAP analysis nodes do not support consistency levels", "Use another proxy."
        )
    _require_active(entry, proxy_id)
    return Plan(preview=preview, fingerprint=state, data=data)
