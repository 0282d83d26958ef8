"""A stateful fake of the four TaurusDB (GaussDB for MySQL) v3 operations poolpilot uses.

Shapes follow openapi.yaml (huaweicloudsdkgaussdb 3.1.219) and CLIENTS.md, so Huawei's own SDK works against it.
Requests are authenticated like Huawei's gateway: an SDK-HMAC-SHA256 signature with the example credentials below
(±15 min of skew against the sandbox clock), or `X-Auth-Token` equal to `iam_token`. Errors are `{error_code,
error_msg}` (gateway `APIG*` ones also carry `request_id`); every response has `X-Request-Id`, `Date` (clock +
`clock_skew_s`) and `Content-Length`. Each PUT starts a new job, even when the type is unchanged, as the real API
does: Pending, Running after `job_seconds[0]`, Completed after `job_seconds[1]`, and only then does the proxy's
type change. GET /jobs answers 400 until `job_visible_after_s` has passed. State catches up with the clock at each
request; call `settle()` before reading `proxies` directly.

Codes no source settles ("unverified" below): path project not the credentials' -> 403 `APIG.0302`; unknown
instance or proxy -> 400 `DBS.201028`; job not (yet) visible -> 400 `DBS.200001`; flag false -> 400 `DBS.200004`;
faults 429 `APIG.0308`, 500 `DBS.05000000`, 502/503 `APIG.0202`, 504 `APIG.0203`. The proxy list has no
`total_count` (openapi.yaml); the instance list has.

Seeds (project 054e292c9880d4992f02c0196d3ea468; `reset()` restores them):

| seed | id | name | instance, type, switch flag -> PUT |
|---|---|---|---|
| instance | af315b8e6aaa41799bd9a31f2de15abcin07 | taurus-prod | |
| instance | 7d2c4f1a9b3e4c5d8e6f0a1b2c3d4e5fin07 | taurus-analytics | |
| proxy a | 5881e1ca66af4aefbc64dc2874e55b3fpo01 | proxy-prod-rw | taurus-prod, CLOSED, true -> 200 job |
| proxy b | 3b9d2e7f0c1a4b5d9e8f7a6b5c4d3e2fpo01 | proxy-prod-ro | taurus-prod, SESSION, true -> 200 job |
| proxy c | 9c1e4a7b2d3f4e5a8b6c0d1e2f3a4b5cpo01 | proxy-analytics-legacy | analytics, CLOSED, true -> 400 DBS.05000001 |
| proxy d | 4f6a8c0e2b4d4f6a8c0e2b4d6f8a0c2epo01 | proxy-analytics-old | analytics, CLOSED, false -> 400 DBS.200004 |
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tools.taurusdb.signer import verify_request

__all__ = ["SANDBOX_AK", "SANDBOX_PROJECT_ID", "SANDBOX_SK", "TaurusDBSandbox"]

# The fake example credentials of signing-vectors.json (DECISIONS.md: the sandbox accepts exactly these).
SANDBOX_AK = "HPUAEXAMPLEAK0000001"
SANDBOX_SK = "exampleSecretKey0123456789abcdefghijklmn"
SANDBOX_PROJECT_ID = "054e292c9880d4992f02c0196d3ea468"
INSTANCE_PROD = "af315b8e6aaa41799bd9a31f2de15abcin07"
INSTANCE_ANALYTICS = "7d2c4f1a9b3e4c5d8e6f0a1b2c3d4e5fin07"
PROXY_SWITCHABLE = "5881e1ca66af4aefbc64dc2874e55b3fpo01"
PROXY_SESSION = "3b9d2e7f0c1a4b5d9e8f7a6b5c4d3e2fpo01"
PROXY_OLD_KERNEL = "9c1e4a7b2d3f4e5a8b6c0d1e2f3a4b5cpo01"
PROXY_FLAG_FALSE = "4f6a8c0e2b4d4f6a8c0e2b4d6f8a0c2epo01"
POOL_TYPES = ("CLOSED", "SESSION")
_SECRETS = {SANDBOX_AK: SANDBOX_SK}
_FAULTS = {
    429: ("APIG.0308", "The throttling threshold has been reached."),
    500: ("DBS.05000000", "server error."),
    502: ("APIG.0202", "Backend unavailable."),
    503: ("APIG.0202", "Backend unavailable."),
    504: ("APIG.0203", "Backend timeout."),
}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))


@dataclass
class SandboxInstance:
    id: str
    name: str
    region: str
    private_ip: str
    readonly_ip: str
    proxy_ips: list[str]
    master_node_id: str
    readonly_node_id: str

    def body(self) -> dict[str, object]:
        return {
            "id": self.id, "name": self.name, "status": "ACTIVE", "private_ips": [self.private_ip],
            "proxy_ips": self.proxy_ips, "readonly_private_ips": [self.readonly_ip], "public_ips": [],
            "port": "3306", "type": "Cluster", "region": self.region,
            "datastore": {"type": "gaussdb-mysql", "version": "8.0.30", "kernel_version": "2.0.57.240900"},
            "created": "2025-03-11T08:01:44+0800", "updated": "2025-09-04T16:01:02+0800", "db_user_name": "root",
            "vpc_id": "3305eb40-2707-4940-921c-9f335f84a2ca", "subnet_id": "0f2e9c34-7b1a-4c5d-9e8f-1a2b3c4d5e6f",
            "security_group_id": "0d2f9a2c-3c5b-4f1e-8a6d-1e2f3a4b5c6d", "flavor_ref": "gaussdb.mysql.xlarge.x86.4",
            "flavor_info": {"vcpus": "4", "ram": "16"}, "volume": {"type": "POOLED", "size": "40"},
            "backup_strategy": {"start_time": "02:00-03:00", "keep_days": "7"}, "enterprise_project_id": "0",
            "time_zone": "UTC+08:00", "charge_info": {"charge_mode": "postPaid"}, "tags": [],
        }  # fmt: skip

    def node(self, node_id: str, suffix: str, weight: int, az: str) -> dict[str, object]:
        return {
            "id": node_id, "instance_id": self.id, "status": "ACTIVE", "name": f"{self.name}_{suffix}",
            "weight": weight, "availability_zone": [{"code": f"{self.region}{az}", "description": f"AZ-{az}"}],
        }  # fmt: skip


@dataclass
class SandboxProxy:
    pool_id: str
    instance_id: str
    name: str
    type: str  # readwrite | readonly
    address: str
    connection_pool_type: str
    switch_connection_pool_type_enabled: bool
    kernel_too_early: bool  # the flag says it can switch, yet the PUT answers DBS.05000001
    node_ids: tuple[str, ...]
    updated_at: str = "2025-09-04T08:01:02+0000"

    def body(self, instance: SandboxInstance) -> dict[str, object]:
        nodes = [
            {"id": node_id, "status": "ACTIVE", "name": f"proxy-node-{n}", "role": "master" if n == 1 else "slave",
             "az_code": f"{instance.region}{'ab'[(n - 1) % 2]}", "frozen_flag": 0}
            for n, node_id in enumerate(self.node_ids, start=1)
        ]  # fmt: skip
        proxy = {
            "pool_id": self.pool_id, "status": "ACTIVE", "address": self.address, "port": 3306,
            "pool_status": "ACTIVE", "delay_threshold_in_seconds": 30, "elb_vip": "", "eip": "", "vcpus": "2",
            "ram": "4", "node_num": len(nodes), "type": self.type, "created_at": "2025-03-11T08:21:05+0000",
            "updated_at": self.updated_at, "support_ap_node": False, "mode": "Cluster", "nodes": nodes,
            "flavor_ref": "gaussdb.proxy.large.x86.2", "name": self.name, "transaction_split": "OFF",
            "connection_pool_type": self.connection_pool_type,
            "switch_connection_pool_type_enabled": self.switch_connection_pool_type_enabled, "route_mode": 0,
            "balance_route_mode_enabled": True, "consistence_mode": "session",
            "subnet_id": "0f2e9c34-7b1a-4c5d-9e8f-1a2b3c4d5e6f", "ssl_option": "false",
            "new_node_auto_add_status": "OFF", "new_node_weight": 0,
        }  # fmt: skip
        return {
            "proxy": proxy,
            "master_node": instance.node(instance.master_node_id, "node01", 0, "a"),
            "readonly_nodes": [instance.node(instance.readonly_node_id, "node02", 100, "b")],
            "htap_nodes": [],
        }


@dataclass
class SandboxJob:
    id: str
    instance_id: str
    proxy_id: str
    connection_pool_type: str
    created_at: float  # sandbox (skewed) time, like everything else it reports
    running_at: float
    completed_at: float
    visible_at: float
    applied: bool = False

    def status(self, now: float) -> str:
        if now >= self.completed_at:
            return "Completed"
        return "Running" if now >= self.running_at else "Pending"

    def body(self, now: float, instance_name: str) -> dict[str, object]:
        status = self.status(now)
        span = max(self.completed_at - self.running_at, 1e-9)
        return {
            "id": self.id, "name": "ModifyProxyConnectionPoolType", "status": status,
            "created": _iso(self.created_at), "ended": _iso(self.completed_at) if status == "Completed" else "",
            "process": f"{min(99, int(100 * (now - self.running_at) / span))}%" if status == "Running" else "",
            "instance": {"id": self.instance_id, "name": instance_name}, "entities": {}, "fail_reason": "",
        }  # fmt: skip


def _seed_instances() -> list[SandboxInstance]:
    return [
        SandboxInstance(INSTANCE_PROD, "taurus-prod", "cn-north-4", "192.168.0.10", "192.168.0.11",
                        ["192.168.0.62", "192.168.0.63"], "1b3d5f7a9c0e4a2b8d6f0a1c3e5a7b9dno07",
                        "4d6f8b0c2e3a5b7d9f1b3c5d7e9f1a2bno07"),
        SandboxInstance(INSTANCE_ANALYTICS, "taurus-analytics", "cn-north-4", "192.168.1.10", "192.168.1.11",
                        ["192.168.1.62", "192.168.1.63"], "6a8c0e2f4b6d8f0a2c4e6a8b0d2f4a6cno07",
                        "8e0a2c4f6b8d0f2a4c6e8a0b2d4f6a8eno07"),
    ]  # fmt: skip


def _seed_proxies() -> list[SandboxProxy]:
    return [
        SandboxProxy(PROXY_SWITCHABLE, INSTANCE_PROD, "proxy-prod-rw", "readwrite", "192.168.0.62", "CLOSED", True,
                     False, ("8f1a6b0c2d7e4e2f9a0b1c2d3e4f5a6bpn01", "9e2b7c1d3e8f4f3a8b1c2d3e4f5a6b7cpn01")),
        SandboxProxy(PROXY_SESSION, INSTANCE_PROD, "proxy-prod-ro", "readonly", "192.168.0.63", "SESSION", True,
                     False, ("2c4e6a8b0d2f4a6c8e0a2b4d6f8a0c2epn01", "3d5f7b9c1e3a5c7e9a1b3d5f7a9c1e3apn01")),
        SandboxProxy(PROXY_OLD_KERNEL, INSTANCE_ANALYTICS, "proxy-analytics-legacy", "readwrite", "192.168.1.62",
                     "CLOSED", True, True, ("5e7a9c1b3d5f4a7c9e1b3d5f7a9c2e4apn01",)),
        SandboxProxy(PROXY_FLAG_FALSE, INSTANCE_ANALYTICS, "proxy-analytics-old", "readonly", "192.168.1.63",
                     "CLOSED", False, False, ("6f8b0d2c4e6a5b8d0f2c4e6a8b0d3f5bpn01",)),
    ]  # fmt: skip


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# (method, path after /v3/{project_id}/ with every id replaced by {}) -> endpoint name used for fault matching.
_ROUTES = {
    ("GET", "instances"): "list_instances",
    ("GET", "instances/{}/proxies"): "list_proxies",
    ("PUT", "instances/{}/proxy/{}/connection-pool-type"): "set_pool_type",
    ("GET", "jobs"): "get_job",
}


class _Route(NamedTuple):
    name: str
    project: str
    instance_id: str = ""
    proxy_id: str = ""


def _route(method: str, segments: list[str]) -> _Route | None:
    parts = segments[1:] if segments[:1] == [""] else segments
    if len(parts) < 3 or parts[0] != "v3" or not parts[1]:
        return None
    rest = parts[2:]
    name = _ROUTES.get((method, "/".join("{}" if i % 2 else part for i, part in enumerate(rest))))
    return None if name is None else _Route(name, parts[1], *rest[1::2])


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise _ApiError(400, "DBS.200001", f"Parameter error: {name} must be an integer {bound}.")
    return value


def _page(query: Mapping[str, str]) -> slice:
    offset = _int_param(query, "offset", 0, 0, None)
    return slice(offset, offset + _int_param(query, "limit", 100, 1, 100))


def _matches(value: str, pattern: str | None) -> bool:
    # ListGaussMySqlInstances: exact match, or fuzzy when the pattern starts with "*"; a lone "*" is refused.
    if pattern is None:
        return True
    if pattern == "*":
        raise _ApiError(400, "DBS.200001", "Parameter error: a lone '*' is not a valid filter.")
    return pattern[1:] in value if pattern.startswith("*") else pattern == value


class TaurusDBSandbox:
    """The fake TaurusDB API; `handle` gets the raw path already split on "/" and each segment decoded."""

    prefix = "v3"

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        job_seconds: tuple[float, float] = (2.0, 6.0),
        job_visible_after_s: float = 0.0,
        iam_token: str = "sandbox-iam-token",
        clock_skew_s: float = 0.0,
    ) -> None:
        self._clock = clock
        self.job_seconds = job_seconds
        self.job_visible_after_s = job_visible_after_s
        self.iam_token = iam_token
        self.clock_skew_s = clock_skew_s
        self.instances: dict[str, SandboxInstance] = {}
        self.proxies: dict[str, SandboxProxy] = {}
        self.jobs: dict[str, SandboxJob] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the seeds: no jobs, every proxy at its seeded pool type."""
        self.instances = {instance.id: instance for instance in _seed_instances()}
        self.proxies = {proxy.pool_id: proxy for proxy in _seed_proxies()}
        self.jobs = {}

    def now(self) -> float:
        """The sandbox's own time: the clock plus the configured skew (signatures are checked against it)."""
        return self._clock() + self.clock_skew_s

    def settle(self) -> None:
        """Apply every job that has completed by now to its proxy."""
        now = self.now()
        for job in self.jobs.values():
            if not job.applied and job.status(now) == "Completed":
                proxy = self.proxies.get(job.proxy_id)
                if proxy is not None:
                    proxy.connection_pool_type = job.connection_pool_type
                    proxy.updated_at = _iso(job.completed_at)
                job.applied = True

    def endpoint(self, method: str, segments: list[str]) -> str | None:
        route = _route(method.upper(), segments)
        return None if route is None else route.name

    def error(self, status: int, *, retry_after: int | None = None) -> Response:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        code, message = _FAULTS.get(status, ("DBS.05000000" if status >= 500 else "DBS.200001", f"{phrase}."))
        return self._error(status, code, message, retry_after=retry_after)

    async def handle(self, request: Request, segments: list[str]) -> Response:
        # The gateway matches the API before it authenticates: an unknown route is 404 even unsigned.
        route = _route(request.method.upper(), segments)
        if route is None:
            return self._error(404, "APIGW.0101", "The API does not exist or has not been published.")
        body = await request.body()
        denied = self._authenticate(request, body, route.project)
        if denied is not None:
            return denied
        self.settle()
        try:
            if route.name == "list_instances":
                return self._json(200, self._list_instances(request.query_params))
            if route.name == "list_proxies":
                return self._json(200, self._list_proxies(route.instance_id, request.query_params))
            if route.name == "set_pool_type":
                return self._json(200, self._set_pool_type(route, body))
            return self._json(200, self._get_job(request.query_params))
        except _ApiError as failure:
            return self._error(failure.status, failure.code, failure.message)

    def _authenticate(self, request: Request, body: bytes, project: str) -> Response | None:
        headers = request.headers
        token = headers.get("x-auth-token")
        if token is not None:
            if not hmac.compare_digest(token.encode(), self.iam_token.encode()):
                return self._error(401, "APIG.0301", "Incorrect IAM authentication information: decrypt token fail")
        elif "authorization" in headers:
            raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
            query: bytes = request.scope.get("query_string", b"")
            reason = verify_request(
                request.method, raw.decode("latin-1"), query.decode("latin-1"), headers, body,
                secret_for=_SECRETS.get, now=self.now(),
            )  # fmt: skip
            if reason is not None:
                detail = "verify aksk signature fail" if reason == "signature mismatch" else reason
                return self._error(401, "APIG.0301", f"Incorrect IAM authentication information: {detail}")
        else:
            return self._error(401, "APIG.0301", "Incorrect IAM authentication information: x-auth-token not found")
        # unverified: 403 when the signature or token is fine but names another project.
        if project != SANDBOX_PROJECT_ID or headers.get("x-project-id", project) != project:
            detail = f"project {project} is not the credentials' project"
            return self._error(403, "APIG.0302", f"The IAM user is not authorized to access the API: {detail}.")
        return None

    def _instance(self, instance_id: str) -> SandboxInstance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise _ApiError(400, "DBS.201028", "The DB instance does not exist.")  # unverified code for instances
        return instance

    def _list_instances(self, query: Mapping[str, str]) -> dict[str, object]:
        page = _page(query)
        rows = [i for i in self.instances.values() if _matches(i.id, query.get("id"))]
        rows = [i for i in rows if _matches(i.name, query.get("name"))]
        return {"instances": [i.body() for i in rows[page]], "total_count": len(rows)}

    def _list_proxies(self, instance_id: str, query: Mapping[str, str]) -> dict[str, object]:
        # The 2026 API reference says limit defaults to 100 (the SDK docstring says 10); the SDK always sends it.
        page = _page(query)
        instance = self._instance(instance_id)
        rows = [p for p in self.proxies.values() if p.instance_id == instance.id]
        return {"proxy_list": [p.body(instance) for p in rows[page]]}

    def _set_pool_type(self, route: _Route, body: bytes) -> dict[str, object]:
        try:
            wanted = json.loads(body or b"null")
        except ValueError:
            wanted = None
        pool_type = wanted.get("connection_pool_type") if isinstance(wanted, dict) else None
        if pool_type not in POOL_TYPES:
            raise _ApiError(400, "DBS.200001", "Parameter error: connection_pool_type must be CLOSED or SESSION.")
        instance = self._instance(route.instance_id)
        proxy = self.proxies.get(route.proxy_id)
        if proxy is None or proxy.instance_id != instance.id:
            raise _ApiError(400, "DBS.201028", "The proxy instance does not exist.")
        if not proxy.switch_connection_pool_type_enabled:
            raise _ApiError(  # unverified code: no documented one exists (ENDPOINTS.md)
                400, "DBS.200004",
                "The proxy version does not support changing the connection pool type "
                "(switch_connection_pool_type_enabled is false). Upgrade the proxy kernel first.",
            )  # fmt: skip
        if proxy.kernel_too_early:
            raise _ApiError(400, "DBS.05000001", "The kernel version is too early.")
        if any(job.proxy_id == proxy.pool_id and not job.applied for job in self.jobs.values()):
            raise _ApiError(409, "DBS.200019", "Another operation is being performed on the DB instance.")
        now = self.now()
        job = SandboxJob(
            id=str(uuid.uuid4()), instance_id=instance.id, proxy_id=proxy.pool_id, connection_pool_type=str(pool_type),
            created_at=now, running_at=now + self.job_seconds[0], completed_at=now + self.job_seconds[1],
            visible_at=now + self.job_visible_after_s,
        )  # fmt: skip
        self.jobs[job.id] = job
        return {"job_id": job.id}

    def _get_job(self, query: Mapping[str, str]) -> dict[str, object]:
        job_id = query.get("id")
        if not job_id:
            raise _ApiError(400, "DBS.200001", "Parameter error: id is required.")
        job = self.jobs.get(job_id)
        now = self.now()
        if job is None or now < job.visible_at:
            raise _ApiError(400, "DBS.200001", f"Parameter error: job {job_id} does not exist.")  # unverified code
        instance = self.instances.get(job.instance_id)
        return {"job": job.body(now, instance.name if instance else "")}

    def _json(self, status: int, payload: dict[str, object], *, retry_after: int | None = None) -> Response:
        request_id = uuid.uuid4().hex
        if str(payload.get("error_code", "")).startswith("APIG"):
            payload = {**payload, "request_id": request_id}  # gateway errors carry it in the body too
        headers = {"X-Request-Id": request_id, "Date": formatdate(self.now(), usegmt=True)}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return JSONResponse(payload, status_code=status, headers=headers)

    def _error(self, status: int, code: str, message: str, *, retry_after: int | None = None) -> Response:
        return self._json(status, {"error_code": code, "error_msg": message}, retry_after=retry_after)
