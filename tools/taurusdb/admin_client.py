"""The proxy-administration calls of TaurusDB v3, on the signed client of client.py: kernel version and upgrade,
proxy parameters, session consistency. Paths, methods and bodies are huaweicloudsdkgaussdb 3.1.219's
(`_http_info` in gaussdb_client.py): ShowProxyVersion, UpgradeProxyVersion, ShowProxyConfigurations,
UpdateProxyNewConfigurations (the SDK's name for the PUT of …/configurations), UpdateProxySessionConsistence.

The three changes each start a job on TaurusDB, so none is ever resent (like the pool-type PUT): after a timeout,
a 5xx or a broken connection the error says that a job may or may not have started, and how to check. The upgrade's
job id is `update_result[0].workflow_id`, accepted when `state` is "ACCEPT" (terraform-provider-huaweicloud reads
it so and follows it with GET /jobs).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx2

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.tools.taurusdb.admin_models import ApiProxyConfiguration, ApiProxyVersion, ApiUpgradeDetail
from poolpilot.tools.taurusdb.client import PROVIDER, TaurusDBClient, _uncertain
from poolpilot.tools.taurusdb.models import read_body

__all__ = [
    "ENGINE",
    "all_configurations",
    "get_proxy_version",
    "list_configurations",
    "set_configurations",
    "set_session_consistence",
    "upgrade_proxy_version",
]

ENGINE = "taurusproxy"  # ShowProxyVersion's engine_name path segment
_PAGE = 100
_MAX_PAGES = 10


def _proxy_path(instance_id: str, proxy_id: str, rest: str) -> str:
    return f"instances/{quote(instance_id, safe='')}/proxy/{quote(proxy_id, safe='')}/{rest}"


def _body(response: httpx2.Response, key: str) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or key not in body:
        raise PoolpilotError(
            ErrorInfo(
                code="upstream_error",
                message=f"TaurusDB answered HTTP {response.status_code} without {key!r}",
                hint="Retry the read in a minute; before repeating a change, read the proxy's state back.",
                provider=PROVIDER,
            )
        )
    return body


async def get_proxy_version(tdb: TaurusDBClient, instance_id: str, proxy_id: str) -> ApiProxyVersion:
    response = await tdb.send("GET", _proxy_path(instance_id, proxy_id, f"{ENGINE}/proxy-version"))
    try:
        data = response.json()
    except ValueError:
        data = None
    return read_body(ApiProxyVersion, data, f"the version of proxy {proxy_id}")


async def list_configurations(
    tdb: TaurusDBClient, instance_id: str, proxy_id: str, limit: int, offset: int, name: str | None = None
) -> tuple[list[ApiProxyConfiguration], int]:
    """One page of the proxy's parameters and their total count."""
    params: list[tuple[str, str | int | float | bool | None]] = [("limit", limit), ("offset", offset)]
    if name is not None:
        params.append(("name", name))
    response = await tdb.send("GET", _proxy_path(instance_id, proxy_id, "configurations"), params=params)
    body = _body(response, "configurations")
    items = body.get("configurations")
    what = f"the parameters of proxy {proxy_id}"
    rows = [read_body(ApiProxyConfiguration, i, what) for i in items] if isinstance(items, list) else []
    total = body.get("total_count")
    return rows, total if isinstance(total, int) and not isinstance(total, bool) else offset + len(rows)


async def all_configurations(tdb: TaurusDBClient, instance_id: str, proxy_id: str) -> list[ApiProxyConfiguration]:
    found: list[ApiProxyConfiguration] = []
    for page in range(_MAX_PAGES):
        batch, total = await list_configurations(tdb, instance_id, proxy_id, _PAGE, page * _PAGE)
        found += batch
        if not batch or len(found) >= total:
            break
    return found


async def upgrade_proxy_version(
    tdb: TaurusDBClient, instance_id: str, proxy_id: str, source_version: str, target_version: str
) -> str:
    """Start the upgrade once; its job id (the workflow id)."""
    body = json.dumps({"source_version": source_version, "target_version": target_version}).encode()
    response = await _change(tdb, "POST", _proxy_path(instance_id, proxy_id, "upgrade-version"), body, "upgrade")
    results = _body(response, "update_result").get("update_result")
    first = (
        read_body(ApiUpgradeDetail, results[0], "the upgrade result") if isinstance(results, list) and results else None
    )
    if first is None or first.state.upper() != "ACCEPT" or first.error_message or not first.workflow_id:
        reason = (first.error_message or first.state) if first is not None else "no update_result"
        raise PoolpilotError(
            ErrorInfo(
                code="upstream_error",
                message=f"TaurusDB did not accept the upgrade of proxy {proxy_id}: {reason[:200]}",
                hint="Check the version with taurusdb_get_proxy_version before trying again.",
                provider=PROVIDER,
            )
        )
    return first.workflow_id


async def set_configurations(tdb: TaurusDBClient, instance_id: str, proxy_id: str, items: list[dict[str, str]]) -> str:
    """PUT the changed parameters ({name, value, elem_type} each) once; the job id."""
    body = json.dumps({"configurations": items}).encode()
    path = _proxy_path(instance_id, proxy_id, "configurations")
    return _job_id(await _change(tdb, "PUT", path, body, "parameter change"), "parameter change")


async def set_session_consistence(tdb: TaurusDBClient, instance_id: str, proxy_id: str, mode: str) -> str:
    """PUT the consistency mode once; the job id. session_consistence says the same for older proxies."""
    wanted = {"session_consistence": "false" if mode == "eventual" else "true", "consistence_mode": mode}
    path = _proxy_path(instance_id, proxy_id, "session-consistence")
    change = "session-consistency change"
    return _job_id(await _change(tdb, "PUT", path, json.dumps(wanted).encode(), change), change)


def _job_id(response: httpx2.Response, what: str) -> str:
    job_id = _body(response, "job_id").get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise PoolpilotError(
            ErrorInfo(
                code="upstream_error",
                message=f"TaurusDB accepted the {what} (HTTP 200) without a job_id; it was not resent",
                hint="Read the proxy's state back before trying again.",
                provider=PROVIDER,
            )
        )
    return job_id


async def _change(tdb: TaurusDBClient, method: str, path: str, body: bytes, what: str) -> httpx2.Response:
    try:
        return await tdb.send(method, path, content=body, idempotent=False)
    except PoolpilotError as exc:
        if not _uncertain(exc.info):
            raise
        failure = f"HTTP {exc.info.http_status}" if exc.info.http_status else exc.info.code.replace("_", " ")
        raise PoolpilotError(
            exc.info.model_copy(
                update={
                    "message": f"the {what} got no clear answer ({failure}), so a job may or may not have started. "
                    "It was not resent: every request starts a new job.",
                    "hint": "Do not resend at once: read the state back in a minute or two (taurusdb_get_proxy_version "
                    "or taurusdb_get_proxy_parameters); a conflict answer means a job is still running.",
                }
            )
        ) from None
