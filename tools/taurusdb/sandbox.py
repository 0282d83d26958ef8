"""A stateful fake of the four TaurusDB (GaussDB for MySQL) v3 operations poolpilot uses.

Shapes follow openapi.yaml (huaweicloudsdkgaussdb 3.1.219) and CLIENTS.md, so Huawei's own SDK works against it.
Requests are authenticated like Huawei's gateway: an SDK-HMAC-SHA256 signature with the example credentials below
(±15 min of skew against the sandbox clock; an `X-Security-Token` of temporary credentials must be among the signed
headers, any value is accepted), or `X-Auth-Token` equal to `iam_token`. Errors are `{error_code,
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
| proxy c | 9c1e4a7b2d3f4e5a8b6c0d1e2f3a4b5cpo01 | proxy-analytics-legacy | analytics, CLOSED, true -> DBS.05000001 |
| proxy d | 4f6a8c0e2b4d4f6a8c0e2b4d6f8a0c2epo01 | proxy-analytics-old | analytics, CLOSED, false -> DBS.200004 |
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from poolpilot.server.kernel.shapes import Shape
from poolpilot.tools.taurusdb.sandbox_admin import ADMIN_ROUTES, apply_admin, handle_admin
from poolpilot.tools.taurusdb.sandbox_admin import ApiError as _ApiError
from poolpilot.tools.taurusdb.sandbox_seed import (
    INSTANCE_ANALYTICS,
    INSTANCE_PROD,
    POOL_JOB,
    POOL_TYPES,
    PROXY_FLAG_FALSE,
    PROXY_OLD_KERNEL,
    PROXY_SESSION,
    PROXY_SWITCHABLE,
    SANDBOX_AK,
    SANDBOX_PROJECT_ID,
    SANDBOX_SK,
    SandboxInstance,
    SandboxJob,
    SandboxProxy,
    iso_time,
    seed_instances,
    seed_proxies,
)
from poolpilot.tools.taurusdb.signer import verify_request

# Credentials, seed ids and the object model are re-exported so callers need only this module.
__all__ = [
    "INSTANCE_ANALYTICS",
    "INSTANCE_PROD",
    "PROXY_FLAG_FALSE",
    "PROXY_OLD_KERNEL",
    "PROXY_SESSION",
    "PROXY_SWITCHABLE",
    "SANDBOX_AK",
    "SANDBOX_PROJECT_ID",
    "SANDBOX_SK",
    "SandboxInstance",
    "SandboxJob",
    "SandboxProxy",
    "TaurusDBSandbox",
]

_SECRETS = {SANDBOX_AK: SANDBOX_SK}
_NO_SUCH_API = "The API does not exist or has not been published in the environment."
_FAULTS = {
    400: ("DBS.200001", "Parameter error."),
    401: ("APIG.0301", "Incorrect IAM authentication information: verify aksk signature fail"),
    403: ("APIG.0302", "The IAM user is not authorized to access the API."),
    404: ("APIGW.0101", _NO_SUCH_API),
    409: ("DBS.200019", "Another operation is being performed on the DB instance."),
    429: ("APIG.0308", "The throttling threshold has been reached."),
    500: ("DBS.05000000", "server error."),
    502: ("APIG.0202", "Backend unavailable."),
    503: ("APIG.0202", "Backend unavailable."),
    504: ("APIG.0203", "Backend timeout."),
}


# (method, path after /v3/{project_id}/ with every id replaced by {}) -> endpoint name used for fault matching.
_ROUTES = {
    ("GET", "instances"): "list_instances",
    ("GET", "instances/{}/proxies"): "list_proxies",
    ("PUT", "instances/{}/proxy/{}/connection-pool-type"): "set_pool_type",
    ("GET", "jobs"): "get_job",
    **ADMIN_ROUTES,  # proxy version, parameters, session consistency (sandbox_admin.py)
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
    # Ids sit at the instance and proxy places; later segments are literal (taurusproxy/proxy-version).
    name = _ROUTES.get((method, "/".join("{}" if i in (1, 3) else part for i, part in enumerate(rest))))
    return None if name is None else _Route(name, parts[1], *rest[1:4:2])


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
    endpoints = frozenset(_ROUTES.values())  # fault targets

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        job_seconds: tuple[float, float] = (2.0, 6.0),
        job_visible_after_s: float = 0.0,
        iam_token: str = "sandbox-iam-token",
        clock_skew_s: float = 0.0,
        shape: Shape | None = None,
    ) -> None:
        self._clock = clock
        # A shape variant of the success bodies (server/kernel/shapes.py); None: the seeds' shapes, unchanged.
        self.shape = shape
        self.job_seconds = job_seconds
        self.job_visible_after_s = job_visible_after_s
        self.iam_token = iam_token
        self.clock_skew_s = clock_skew_s
        self.instances: dict[str, SandboxInstance] = {}
        self.proxies: dict[str, SandboxProxy] = {}
        self.jobs: dict[str, SandboxJob] = {}
        # X-Security-Token values that arrived signed (temporary credentials: any token is accepted).
        self.security_tokens: list[str] = []
        self.reset()

    def reset(self) -> None:
        """Back to the seeds: no jobs, every proxy at its seeded pool type."""
        self.instances = {instance.id: instance for instance in seed_instances()}
        self.proxies = {proxy.pool_id: proxy for proxy in seed_proxies()}
        self.jobs = {}

    def export_state(self) -> dict[str, object]:
        """What the API can change (each proxy's pool type, kernel version, switch flag, session consistency and
        parameters, and the jobs) as JSON; job times are clock times."""
        return {
            "proxies": {
                pid: {
                    "pool_type": p.connection_pool_type,
                    "updated_at": p.updated_at,
                    "version": p.version,
                    "switch": p.switch_connection_pool_type_enabled,
                    "consistence_mode": p.consistence_mode,
                    "parameters": dict(p.parameters),
                }
                for pid, p in self.proxies.items()
            },
            "jobs": [dataclasses.asdict(job) for job in self.jobs.values()],
        }

    def import_state(self, data: object) -> None:
        """Restore what `export_state` wrote, on top of the seeds; a proxy it does not know is skipped, and a file
        from before the proxy-admin tools (`[pool_type, updated_at]` per proxy) restores just those two."""
        self.reset()
        if not isinstance(data, dict):
            return
        for pid, saved in dict(data.get("proxies", {})).items():
            proxy = self.proxies.get(pid)
            if proxy is None:
                continue
            if isinstance(saved, list):
                saved = {"pool_type": saved[0], "updated_at": saved[1]}
            proxy.connection_pool_type, proxy.updated_at = str(saved["pool_type"]), str(saved["updated_at"])
            proxy.version = str(saved.get("version", proxy.version))
            proxy.switch_connection_pool_type_enabled = bool(
                saved.get("switch", proxy.switch_connection_pool_type_enabled)
            )
            proxy.consistence_mode = str(saved.get("consistence_mode", proxy.consistence_mode))
            proxy.parameters.update({str(k): str(v) for k, v in dict(saved.get("parameters", {})).items()})
        jobs = [SandboxJob(**job) for job in data.get("jobs", [])]
        self.jobs = {job.id: job for job in jobs}

    def now(self) -> float:
        """The sandbox's own time: the clock plus the configured skew (signatures are checked against it)."""
        return self._clock() + self.clock_skew_s

    def settle(self) -> None:
        """Apply every job that has completed by now to its proxy."""
        now = self.now()
        for job in self.jobs.values():
            if not job.applied and job.status(now) == "Completed":
                proxy = self.proxies.get(job.proxy_id)
                if proxy is not None and job.name == POOL_JOB:
                    proxy.connection_pool_type = job.connection_pool_type
                    proxy.updated_at = iso_time(job.completed_at)
                elif proxy is not None:
                    apply_admin(proxy, job)
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
            return self._error(404, "APIGW.0101", _NO_SUCH_API)
        body = await request.body()
        denied = self._authenticate(request, body, route.project)
        if denied is not None:
            return denied
        self.settle()
        try:
            if route.name == "list_instances":
                payload = self._list_instances(request.query_params)
            elif route.name == "list_proxies":
                payload = self._list_proxies(route.instance_id, request.query_params)
            elif route.name == "set_pool_type":
                payload = self._set_pool_type(route, body)
            elif route.name == "get_job":
                payload = self._get_job(request.query_params)
            else:
                payload = handle_admin(self, route.name, route.instance_id, route.proxy_id, request.query_params, body)
        except _ApiError as failure:
            return self._error(failure.status, failure.code, failure.message)
        return self._json(200, payload if self.shape is None else self.shape(route.name, payload))

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
                request.method,
                raw.decode("latin-1"),
                query.decode("latin-1"),
                headers,
                body,
                secret_for=_SECRETS.get,
                now=self.now(),
            )
            if reason is None and "x-security-token" in headers:
                # Temporary credentials: the token must be signed with the request (huaweicloudsdkcore does).
                signed = headers["authorization"].partition("SignedHeaders=")[2].split(",", 1)[0].split(";")
                if "x-security-token" in signed:
                    self.security_tokens.append(headers["x-security-token"])
                else:
                    reason = "signed header missing: x-security-token"
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
                400,
                "DBS.200004",
                "The proxy version does not support changing the connection pool type "
                "(switch_connection_pool_type_enabled is false). Upgrade the proxy kernel first.",
            )
        if proxy.kernel_too_early:
            raise _ApiError(400, "DBS.05000001", "The kernel version is too early.")
        if any(job.proxy_id == proxy.pool_id and not job.applied for job in self.jobs.values()):
            raise _ApiError(409, *_FAULTS[409])
        now = self.now()
        job = SandboxJob(
            id=str(uuid.uuid4()),
            instance_id=instance.id,
            proxy_id=proxy.pool_id,
            connection_pool_type=str(pool_type),
            created_at=now,
            running_at=now + self.job_seconds[0],
            completed_at=now + self.job_seconds[1],
            visible_at=now + self.job_visible_after_s,
        )
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
