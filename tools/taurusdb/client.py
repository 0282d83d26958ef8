"""TaurusDB (GaussDB for MySQL) v3: one async method per endpoint poolpilot uses, over the kernel's `Upstream`.

Every request is signed with our own SDK-HMAC-SHA256 signer (signer.py), shaped like huaweicloudsdkgaussdb's
(CLIENTS.md): `Content-Type: application/json` on GETs too and `application/json;charset=utf-8` on the PUT,
`X-Project-Id`, `X-Language`, and a query string sent exactly as it was signed. With an IAM token configured,
`X-Auth-Token` replaces the signature.

Retries (DECISIONS.md): reads are retried by `Upstream`; a 401 never is (more than 5 failed signatures lock the
AK for 5 minutes). The pool-type PUT starts a new job on every call, so it is never resent: after a timeout,
a 5xx or a broken connection the client reads the proxy back and says honestly what it knows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx2

from poolpilot.server.kernel.errors import ErrorCode, ErrorInfo, PoolpilotError
from poolpilot.server.kernel.http import UPSTREAM_LIMITS, ProviderErrorParts, Upstream, live_transport, unreachable_hint
from poolpilot.server.kernel.state import OpenContext
from poolpilot.tools.taurusdb.models import PROJECT_ID_PATTERN, ApiInstance, ApiJob, ApiProxyEntry, PoolType, read_body
from poolpilot.tools.taurusdb.regions import REGIONS, endpoint_for
from poolpilot.tools.taurusdb.settings import of
from poolpilot.tools.taurusdb.signer import canonical_query, sign_request

__all__ = ["PROVIDER", "Submitted", "TaurusDBClient", "open_client", "parse_error"]

PROVIDER = "taurusdb"
SANDBOX_BASE_URL = "http://sandbox.invalid"
USER_AGENT = "poolpilot-taurusdb/1"
_PAGE = 100
_MAX_PAGES = 20

OLD_KERNEL = "DBS.05000001"
AUTH_FAILED = "APIG.0301"
NO_SUCH_API = "APIGW.0101"
# terraform-provider-huaweicloud services/taurusdb/common.go: another operation is running on the instance.
CONFLICT_CODES = frozenset({"DBS.200019", "DBS.201014", "DBS.201015", "DBS.200047", "DBS.05000084", "DBS.212033"})
# terraform resource_huaweicloud_gaussdb_mysql_proxy.go treats both as "proxy not found" (one is a 409).
NOT_FOUND_CODES = frozenset({"DBS.201028", "DBS.200932"})
_REFINED: dict[str, ErrorCode] = {
    OLD_KERNEL: "not_supported",
    AUTH_FAILED: "auth_failed",
    **dict.fromkeys(NOT_FOUND_CODES, "not_found"),
    **dict.fromkeys(CONFLICT_CODES, "conflict"),
}


@dataclass(frozen=True)
class Submitted:
    """What the PUT achieved: a job id, or (after an unclear failure) a read-back proving the change happened."""

    job_id: str | None
    note: str | None = None


def parse_error(response: httpx2.Response) -> ProviderErrorParts:
    """`{error_code, error_msg}` (the SDK also reads errorCode/errorMsg and code/message); id from X-Request-Id."""
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ProviderErrorParts(message=f"TaurusDB answered HTTP {response.status_code} (no JSON body)")
    code = next((body[k] for k in ("error_code", "errorCode", "code") if isinstance(body.get(k), str)), None)
    message = next((body[k] for k in ("error_msg", "errorMsg", "message") if isinstance(body.get(k), str)), None)
    request_id = body.get("request_id")
    return ProviderErrorParts(
        provider_code=code,
        message=message[:300] if message else None,
        request_id=response.headers.get("x-request-id") or (request_id if isinstance(request_id, str) else None),
    )


def _hinter(where: str, unreachable: str, creds: str) -> Callable[[ErrorInfo], str | None]:

    def hint(info: ErrorInfo) -> str | None:
        code = info.provider_code
        if info.code == "auth_failed":
            return (
                f"Ask the operator to check {creds} and this machine's clock (signatures more than 15 minutes "
                "off are refused), then run `poolpilot doctor`. Not retried: more than 5 failed signatures lock the "
                "AK for 5 minutes."
            )
        if code == OLD_KERNEL:
            return (
                "The proxy kernel is too old for SESSION: upgrade the proxy kernel (2.22.07.000 or later) with "
                "taurusdb_get_proxy_version and taurusdb_upgrade_proxy_version (toolset taurusdb_proxy_admin), then "
                "try again; nothing was changed."
            )
        if code == NO_SUCH_API:
            return f"The API was not found at {where}: check POOLPILOT_TAURUSDB_URL or HUAWEICLOUD_SDK_REGION."
        if info.code == "not_found":
            return "Check the ids with taurusdb_list_instances and taurusdb_list_proxies (ids are exact)."
        if info.code == "conflict":
            return "Another operation is running on this instance or proxy; retry in a minute or two."
        if info.code == "forbidden":
            return (
                "The credentials may not use this project or lack an IAM action (gaussdbformysql:proxy:list, "
                "gaussdbformysql:proxy:switchConnectionPoolType); ask the operator to check HUAWEICLOUD_SDK_PROJECT_ID."
            )
        if info.code == "rate_limited":
            return "TaurusDB throttled the request; wait a few seconds and retry."
        if info.code == "validation_error":
            return "TaurusDB refused these parameters; correct them and call the tool again."
        if info.code in ("timeout", "connection_error"):
            return unreachable
        if info.code == "upstream_error":
            return "TaurusDB failed; read the state back with taurusdb_list_proxies before retrying a change."
        return None

    return hint


def _seg(value: str) -> str:
    return quote(value, safe="")


def _uncertain(info: ErrorInfo) -> bool:
    """The PUT may have started a job: a server error, a timeout, or a connection broken after sending."""
    if info.code == "connection_error" and info.message.endswith("ConnectError"):
        return False  # the connection was never made, so nothing was sent
    return info.code in ("timeout", "connection_error") or (info.http_status or 0) >= 500


class TaurusDBClient:
    """The four TaurusDB operations poolpilot uses. Every failure is a `PoolpilotError` (server/errors.py)."""

    provider = PROVIDER

    def __init__(
        self,
        upstream: Upstream,
        *,
        project_id: str,
        hint: Callable[[ErrorInfo], str | None],
        problem: ErrorInfo | None = None,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        self.upstream = upstream
        self.backend = upstream.backend
        self.project_id = project_id
        self._hint = hint
        self._problem = problem
        # Job polling sleeps and measures its timeout through these seams (a ManualClock in tests).
        self.sleep = sleep
        self.clock = clock

    async def aclose(self) -> None:
        await self.upstream.aclose()

    async def list_instances(self, limit: int, offset: int) -> tuple[list[ApiInstance], int]:
        """One page of instances and the total count."""
        response = await self._send("GET", "instances", params=[("limit", limit), ("offset", offset)])
        body = self._body(response, "instances")
        items = body.get("instances")
        rows = [read_body(ApiInstance, item, "the instance list") for item in items] if isinstance(items, list) else []
        total = body.get("total_count")
        return rows, total if isinstance(total, int) else offset + len(rows)

    async def list_proxies(self, instance_id: str) -> list[ApiProxyEntry]:
        """Every proxy of an instance; the list has no total_count, so page until a short page comes back."""
        found: list[ApiProxyEntry] = []
        for page in range(_MAX_PAGES):
            params: list[tuple[str, str | int | float | bool | None]] = [("limit", _PAGE), ("offset", page * _PAGE)]
            response = await self._send("GET", f"instances/{_seg(instance_id)}/proxies", params=params)
            items = self._body(response, "proxy_list").get("proxy_list")
            what = f"the proxies of instance {instance_id}"
            batch = [read_body(ApiProxyEntry, item, what) for item in items] if isinstance(items, list) else []
            found.extend(batch)
            if len(batch) < _PAGE:
                break
        return found

    async def find_proxy(self, instance_id: str, proxy_id: str) -> ApiProxyEntry:
        for entry in await self.list_proxies(instance_id):
            if entry.proxy.pool_id == proxy_id:
                return entry
        raise PoolpilotError(
            ErrorInfo(
                code="not_found",
                message=f"proxy {proxy_id} is not a proxy of instance {instance_id}",
                hint=f"List them with taurusdb_list_proxies(instance_id={instance_id!r}) and use an exact proxy_id.",
                provider=PROVIDER,
            )
        )

    async def set_pool_type(self, instance_id: str, proxy_id: str, pool_type: PoolType) -> Submitted:
        """Start the switch job once; after an unclear failure read the proxy back instead of resending."""
        path = f"instances/{_seg(instance_id)}/proxy/{_seg(proxy_id)}/connection-pool-type"
        # simplejson's default separators, byte for byte what the SDK sends (and signs).
        body = json.dumps({"connection_pool_type": pool_type}).encode()
        try:
            response = await self._send("PUT", path, content=body, idempotent=False)
        except PoolpilotError as exc:
            if not _uncertain(exc.info):
                raise
            return await self._reconcile(instance_id, proxy_id, pool_type, exc.info)
        job_id = self._body(response, "job_id").get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise self._broken("TaurusDB accepted the switch (HTTP 200) without a job_id; it was not resent")
        return Submitted(job_id=job_id)

    async def get_job(self, job_id: str) -> ApiJob:
        try:
            response = await self._send("GET", "jobs", params=[("id", job_id)])
        except PoolpilotError as exc:
            info = exc.info
            # The id is validated before sending, so a 400/404 here means the service does not know the job.
            if info.http_status in (400, 404) and info.provider_code != NO_SUCH_API:
                raise PoolpilotError(
                    info.model_copy(
                        update={
                            "code": "not_found",
                            "message": f"job {job_id} was not found ({info.message})",
                            "hint": "A new job becomes visible a few seconds after it starts and is kept one "
                            "month: retry in a few seconds, and check the job_id.",
                        }
                    )
                ) from None
            raise
        job = self._body(response, "job").get("job")
        if not isinstance(job, dict):
            raise self._broken("the job query answered without a job")
        return read_body(ApiJob, job, f"job {job_id}")

    # -- helpers -----------------------------------------------------------------------------------

    async def _reconcile(self, instance_id: str, proxy_id: str, pool_type: PoolType, info: ErrorInfo) -> Submitted:
        try:
            entry: ApiProxyEntry | None = await self.find_proxy(instance_id, proxy_id)
        except PoolpilotError:
            entry = None
        failure = f"HTTP {info.http_status}" if info.http_status else info.code.replace("_", " ")
        if entry is not None and entry.proxy.connection_pool_type == pool_type:
            return Submitted(
                job_id=None, note=f"The switch request failed ({failure}), yet the proxy now shows {pool_type}."
            )
        seen = (
            f"the proxy still shows {entry.proxy.connection_pool_type}"
            if entry is not None
            else "reading the proxy back failed too"
        )
        raise PoolpilotError(
            info.model_copy(
                update={
                    "message": f"the pool-type switch of proxy {proxy_id} got no clear answer ({failure}); {seen}, "
                    "so a job may or may not have started. It was not resent: every request starts a new job.",
                    "hint": "Do not resend at once: call taurusdb_list_proxies in a minute or two; if the type is "
                    "still unchanged, call this tool again (a conflict answer means a job is still running).",
                }
            )
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str | int | float | bool | None]] | None = None,
        content: bytes | None = None,
        idempotent: bool | None = None,
    ) -> httpx2.Response:
        if self._problem is not None:
            raise PoolpilotError(self._problem)
        try:
            return await self.upstream.request(
                method, f"/v3/{_seg(self.project_id)}/{path}", params=params, content=content, idempotent=idempotent
            )
        except PoolpilotError as exc:
            refined = _REFINED.get(exc.info.provider_code or "")
            if refined is None or refined == exc.info.code:
                raise
            info = exc.info.model_copy(update={"code": refined})
            raise PoolpilotError(info.model_copy(update={"hint": self._hint(info)})) from None

    send = _send  # the proxy-admin calls (admin_client.py) go the same way

    def _body(self, response: httpx2.Response, key: str) -> dict[str, object]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or key not in body:
            raise self._broken(f"TaurusDB answered HTTP {response.status_code} without {key!r}")
        return body

    def _broken(self, message: str) -> PoolpilotError:
        info = ErrorInfo(code="upstream_error", message=message, provider=PROVIDER)
        return PoolpilotError(info.model_copy(update={"hint": self._hint(info)}))


def _live_problem(ctx: OpenContext) -> ErrorInfo | None:
    """A live configuration that cannot work, reported on each call rather than failing server start-up."""
    s = of(ctx.settings)

    def problem(message: str, hint: str) -> ErrorInfo:
        return ErrorInfo(code="auth_failed", message=message, hint=hint, provider=PROVIDER)

    if not s.configured():
        return problem(
            "TaurusDB has no credentials",
            "Ask the operator to set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or POOLPILOT_TAURUSDB_IAM_TOKEN).",
        )
    if not s.project_id or not re.fullmatch(PROJECT_ID_PATTERN, s.project_id):
        return problem(
            "HUAWEICLOUD_SDK_PROJECT_ID is not set or not 32 letters/digits",
            "Ask the operator to set the region's project id.",
        )
    if not (s.url or (s.region and s.region in REGIONS)):
        return problem(
            "no TaurusDB endpoint is configured",
            "Ask the operator to set HUAWEICLOUD_SDK_REGION or POOLPILOT_TAURUSDB_URL.",
        )
    return None


async def open_client(ctx: OpenContext) -> TaurusDBClient:
    settings = ctx.settings
    backend = settings.provider_backend(PROVIDER)
    own = of(settings)
    transport: httpx2.AsyncBaseTransport | None = None
    problem: ErrorInfo | None = None
    token: str | None = None
    security_token: str | None = None
    if backend == "sandbox":
        if ctx.sandbox is None:
            raise RuntimeError("the TaurusDB sandbox backend needs a sandbox")
        # The example credentials of signing-vectors.json, the only ones the sandbox accepts (DECISIONS.md).
        from poolpilot.tools.taurusdb.sandbox_seed import SANDBOX_AK, SANDBOX_PROJECT_ID, SANDBOX_SK

        transport = ctx.sandbox.transport()
        base_url, ak, sk, project = SANDBOX_BASE_URL, SANDBOX_AK, SANDBOX_SK, SANDBOX_PROJECT_ID
    else:
        problem, transport = _live_problem(ctx), live_transport()
        region = own.region
        base_url = own.url or (endpoint_for(region) if region in REGIONS and region else "")
        ak, sk, token = own.ak or "", own.sk or "", own.iam_token
        project = own.project_id or ""
        security_token = own.security_token
    ctx.redactor.add(ak, sk, token, security_token)
    where = "the embedded sandbox" if backend == "sandbox" else base_url or "the TaurusDB endpoint"
    unreachable = unreachable_hint(backend, where, "POOLPILOT_TAURUSDB_URL, HUAWEICLOUD_SDK_REGION")
    creds = "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK" + (" and _SECURITY_TOKEN (expires)" if security_token else "")
    if token is not None:
        creds = "POOLPILOT_TAURUSDB_IAM_TOKEN (tokens expire after 24 h)"
    hint = _hinter(where, unreachable, creds)
    language, clock = own.language, ctx.clock

    def prepare(request: httpx2.Request) -> None:
        headers = request.headers
        with_body = request.method in ("PUT", "POST")
        headers["Content-Type"] = "application/json;charset=utf-8" if with_body else "application/json"
        headers["User-Agent"] = USER_AGENT
        headers["X-Project-Id"] = project
        headers["X-Language"] = language
        # The SDK sends the canonical (sorted, %20-encoded) query itself; the gateway signs what arrives.
        query = list(request.url.params.multi_items())
        if query:
            request.url = request.url.copy_with(query=canonical_query(query).encode("ascii"))
        if token is not None:
            headers["X-Auth-Token"] = token
            return
        if security_token is not None:  # temporary credentials: huaweicloudsdkcore adds it before signing
            headers["X-Security-Token"] = security_token
        # Sign exactly the headers the SDK signs: Accept, Connection and the like may be rewritten on the way.
        names = ("Content-Type", "Host", "User-Agent", "X-Language", "X-Project-Id", "X-Security-Token")
        signed = {name: headers[name] for name in names if name in headers}
        path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        headers.update(
            sign_request(request.method, headers["Host"], path, query, signed, request.content, ak=ak, sk=sk, now=clock)
        )

    client = httpx2.AsyncClient(
        base_url=base_url or SANDBOX_BASE_URL,
        transport=transport,
        timeout=httpx2.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
        limits=UPSTREAM_LIMITS,
    )
    upstream = Upstream(
        provider=PROVIDER,
        backend=backend,
        client=client,
        parse_error=parse_error,
        hint=hint,
        prepare=prepare,
        sleep=ctx.sleep,
        jitter=ctx.jitter,
        clock=clock,
    )
    return TaurusDBClient(upstream, project_id=project, hint=hint, problem=problem, sleep=ctx.sleep, clock=clock)
