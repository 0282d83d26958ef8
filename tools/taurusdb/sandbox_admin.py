"""The TaurusDB sandbox's proxy administration: kernel version and upgrade, proxy parameters, session consistency.

Routes and bodies follow huaweicloudsdkgaussdb 3.1.219 (request `_http_info` in gaussdb_client.py, the model
classes) and the API reference pages:

| method, path after …/instances/{instance_id}/proxy/{proxy_id}/ | SDK request | answer |
|---|---|---|
| GET taurusproxy/proxy-version | ShowProxyVersion (engine_name taurusproxy) | current/latest_version, can_upgrade |
| POST upgrade-version | UpgradeProxyVersion | update_result[{instance_id, workflow_id, state, error_message}] |
| GET configurations?limit&offset&name | ShowProxyConfigurations | total_count, configurations[ProxyConfiguration] |
| PUT configurations | UpdateProxyNewConfigurations | job_id |
| PUT session-consistence | UpdateProxySessionConsistence | job_id |

Every change is a job on the sandbox clock (`job_seconds`, like the pool-type switch), visible through GET /jobs;
the upgrade's job id is its `workflow_id` with `state` "ACCEPT" (terraform-provider-huaweicloud follows it so). The
upgrade job sets the proxy's version (and the pool-type flag once the version supports SESSION), which lifts the
pool-type switch's DBS.05000001. Another unfinished job on the proxy answers 409 DBS.200019. Unverified: the job
names, 400 DBS.200001 for every refused body (unknown parameter, value out of range, wrong source version).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from poolpilot.tools.taurusdb.sandbox_seed import (
    LATEST_PROXY_VERSION,
    SESSION_MIN_VERSION,
    SandboxJob,
    SandboxProxy,
    parameter_rows,
    version_key,
)

if TYPE_CHECKING:
    from poolpilot.tools.taurusdb.sandbox import TaurusDBSandbox

__all__ = ["ADMIN_ROUTES", "ApiError", "apply_admin", "handle_admin"]

UPGRADE_JOB = "UpgradeProxyVersion"
PARAMETERS_JOB = "ModifyProxyConfigurations"
CONSISTENCY_JOB = "ModifyProxySessionConsistence"
_CONSISTENCE_MODES = ("session", "global", "eventual")
_BAD = "DBS.200001"

ADMIN_ROUTES = {
    ("GET", "instances/{}/proxy/{}/taurusproxy/proxy-version"): "get_proxy_version",
    ("POST", "instances/{}/proxy/{}/upgrade-version"): "upgrade_proxy_version",
    ("GET", "instances/{}/proxy/{}/configurations"): "get_proxy_configurations",
    ("PUT", "instances/{}/proxy/{}/configurations"): "set_proxy_configurations",
    ("PUT", "instances/{}/proxy/{}/session-consistence"): "set_session_consistence",
}


class ApiError(Exception):
    """An error answer: HTTP status and Huawei's `{error_code, error_msg}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def handle_admin(
    sb: TaurusDBSandbox, name: str, instance_id: str, proxy_id: str, query: Mapping[str, str], body: bytes
) -> dict[str, object]:
    proxy = _proxy(sb, instance_id, proxy_id)
    if name == "get_proxy_version":
        return _version(proxy)
    if name == "get_proxy_configurations":
        return _configurations(proxy, query)
    data = _json(body)  # a bad body is refused before a running job is noticed
    if name == "upgrade_proxy_version":
        kind, settings = UPGRADE_JOB, {"version": _target(proxy, data)}
    elif name == "set_proxy_configurations":
        kind, settings = PARAMETERS_JOB, _parameters(proxy, data)
    else:
        kind, settings = CONSISTENCY_JOB, {"consistence_mode": _consistence(data)}
    if any(job.proxy_id == proxy.pool_id and not job.applied for job in sb.jobs.values()):
        raise ApiError(409, "DBS.200019", "Another operation is being performed on the DB instance.")
    job = _new_job(sb, proxy, kind, settings)
    if kind == UPGRADE_JOB:
        return {"update_result": [{"instance_id": instance_id, "workflow_id": job.id, "state": "ACCEPT"}]}
    return {"job_id": job.id}


def apply_admin(proxy: SandboxProxy, job: SandboxJob) -> None:
    """What a completed proxy-admin job does to its proxy."""
    if job.name == UPGRADE_JOB:
        proxy.version = job.settings["version"]
        if not proxy.kernel_too_early:
            proxy.switch_connection_pool_type_enabled = True
    elif job.name == PARAMETERS_JOB:
        proxy.parameters.update(job.settings)
    elif job.name == CONSISTENCY_JOB:
        proxy.consistence_mode = job.settings["consistence_mode"]


def _proxy(sb: TaurusDBSandbox, instance_id: str, proxy_id: str) -> SandboxProxy:
    if instance_id not in sb.instances:
        raise ApiError(400, "DBS.201028", "The DB instance does not exist.")
    proxy = sb.proxies.get(proxy_id)
    if proxy is None or proxy.instance_id != instance_id:
        raise ApiError(400, "DBS.201028", "The proxy instance does not exist.")
    return proxy


def _version(proxy: SandboxProxy) -> dict[str, object]:
    can = (version_key(proxy.version) or ()) < (version_key(LATEST_PROXY_VERSION) or ())
    body: dict[str, object] = {
        "current_version": proxy.version,
        "latest_version": LATEST_PROXY_VERSION,
        "can_upgrade": can,
    }
    if can:
        body["risk"] = {
            "level": 1,
            "suggest": f"Versions before {SESSION_MIN_VERSION} do not support the session-level connection pool.",
            "influence": "Intermittent disconnections occur while the proxy nodes restart.",
            "guidance": "Upgrade during off-peak hours; applications must reconnect.",
            "service_impact_duration": "about 30 seconds per proxy node",
            "upgrade_duration": "about 5 minutes",
        }
    return body


def _configurations(proxy: SandboxProxy, query: Mapping[str, str]) -> dict[str, object]:
    rows = [row for row in parameter_rows(proxy.parameters) if query.get("name") in (None, "", row["name"])]
    offset = _int(query, "offset", 0, 0, 1_000_000)
    limit = _int(query, "limit", 10, 1, 100)  # the SDK documents 10 by default, at most 100
    return {"total_count": len(rows), "configurations": rows[offset : offset + limit]}


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ApiError(400, _BAD, f"Parameter error: {name} must be an integer {low}-{high}.")
    return int(raw)


def _json(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, _BAD, "Parameter error: the request body must be a JSON object.")
    return data


def _target(proxy: SandboxProxy, data: Mapping[str, object]) -> str:
    source, target = data.get("source_version"), data.get("target_version")
    if not isinstance(source, str) or not isinstance(target, str):
        raise ApiError(400, _BAD, "Parameter error: source_version and target_version are required strings.")
    if source != proxy.version:
        raise ApiError(400, _BAD, "Parameter error: source_version is not the proxy's current version.")
    wanted, now, latest = version_key(target), version_key(source), version_key(LATEST_PROXY_VERSION)
    # The reference: the target must not be lower than the source; the sandbox offers only the latest version.
    if wanted is None or now is None or latest is None or wanted < now or wanted > latest:
        raise ApiError(400, _BAD, "Parameter error: target_version is not an available version for this proxy.")
    return target


def _parameters(proxy: SandboxProxy, data: Mapping[str, object]) -> dict[str, str]:
    items = data.get("configurations")
    if not isinstance(items, list) or not items:
        raise ApiError(400, _BAD, "Parameter error: configurations must be a non-empty list.")
    rows = {row["name"]: row for row in parameter_rows(proxy.parameters)}
    changes: dict[str, str] = {}
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        row = rows.get(name) if isinstance(name, str) else None
        if row is None or not isinstance(value, str):
            raise ApiError(400, _BAD, "Parameter error: a configuration name is not a parameter of this proxy.")
        if not _in_range(value, row["data_type"], row["value_range"]):
            raise ApiError(400, _BAD, f"Parameter error: the value of {row['name']} is out of range.")
        changes[row["name"]] = value
    return changes


def _in_range(value: str, data_type: str, value_range: str) -> bool:
    if data_type == "integer":
        low, _, high = value_range.partition("-")
        return value.isascii() and value.isdigit() and int(low) <= int(value) <= int(high)
    return value in value_range.split(",")


def _consistence(data: Mapping[str, object]) -> str:
    mode, session = data.get("consistence_mode"), data.get("session_consistence")
    if mode in (None, "") and session in ("true", "false"):
        return "session" if session == "true" else "eventual"  # empty mode: session_consistence decides
    if mode not in _CONSISTENCE_MODES or session not in (None, "true", "false"):
        raise ApiError(400, _BAD, "Parameter error: consistence_mode must be session, global or eventual.")
    return str(mode)


def _new_job(sb: TaurusDBSandbox, proxy: SandboxProxy, name: str, settings: dict[str, str]) -> SandboxJob:
    now = sb.now()
    job = SandboxJob(
        id=str(uuid.uuid4()),
        instance_id=proxy.instance_id,
        proxy_id=proxy.pool_id,
        connection_pool_type="",
        created_at=now,
        running_at=now + sb.job_seconds[0],
        completed_at=now + sb.job_seconds[1],
        visible_at=now + sb.job_visible_after_s,
        name=name,
        settings=settings,
    )
    sb.jobs[job.id] = job
    return job
