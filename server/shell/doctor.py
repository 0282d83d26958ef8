"""`poolpilot doctor`: one line per check (ok / warn / fail, with the exact fix), in the order a user needs them.

Changes nothing and sends only reads, each bounded by `timeout_s`: DigitalOcean list clusters, TaurusDB list
instances (limit 1), PgBouncer SHOW VERSION. A TaurusDB signature goes out once, never again (5 failures lock
the key); when it is rejected, the server's `Date` header tells how far this machine's clock is off.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

import anyio
import httpx2
from pydantic import BaseModel

from poolpilot.server.kernel.config import LOOPBACK, ConfigError, Settings, load_settings

__all__ = ["Check", "DoctorReport", "diagnose", "render", "run_doctor"]

Status = Literal["ok", "warn", "fail"]
_SECRET_SETTINGS = ("digitalocean_token", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "confirm_secret")
_ATTRIBUTE = {"region": "huawei_region", "faults": "sandbox_faults", "HUAWEICLOUD_SDK_PROJECT_ID": "huawei_project_id"}
_MAX_SKEW_S = 900  # Huawei's gateway rejects X-Sdk-Date more than 15 minutes off


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    fix: str | None = None


class SettingSource(BaseModel):
    value: str  # secrets: "set" or "unset", never the value
    source: str  # "flag", "env VAR", "default", "unset", "per-process random"


class DoctorReport(BaseModel):
    ok: bool
    python: str
    poolpilot: str
    mcp: str
    settings: dict[str, SettingSource]
    checks: list[Check]


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed" if package != "poolpilot" else "0.0.0 (source tree)"


def _check(name: str, status: Status, detail: str, fix: str | None = None) -> Check:
    return Check(name=name, status=status, detail=detail, fix=fix)


def _config_fail(name: str, exc: ConfigError) -> Check:
    problem, _, fix = str(exc).partition(". Fix: ")
    return _check(name, "fail", problem, fix or None)


def _sources(settings: Settings) -> dict[str, SettingSource]:
    out: dict[str, SettingSource] = {}
    for key, source in sorted(settings.sources.items()):
        if key in _SECRET_SETTINGS:
            value = "unset" if source in ("unset", "per-process random") else "set"
        else:
            raw = getattr(settings, _ATTRIBUTE.get(key, key), None)
            value = ",".join(raw) if isinstance(raw, tuple) else ("" if raw is None else str(raw))
        out[key] = SettingSource(value=value, source=source)
    for key, secret in (("auth_token", settings.auth_token), ("taurusdb_iam_token", settings.taurusdb_iam_token)):
        out[key] = SettingSource(value="set" if secret else "unset", source="env or file" if secret else "unset")
    return out


def _providers(settings: Settings) -> list[Check]:
    from poolpilot.server.shell.app import default_toolsets

    enabled = settings.toolsets if settings.toolsets is not None else default_toolsets(settings)
    checks = []
    for name in ("digitalocean", "taurusdb", "pgbouncer"):
        if name not in enabled:
            hint = "set POOLPILOT_PGBOUNCER_<NAME>_DSN to manage one" if name == "pgbouncer" else "see --toolsets"
            checks.append(_check(name, "ok", f"not enabled ({hint})"))
        elif name == "pgbouncer":
            names = ", ".join(i.name for i in settings.pgbouncer)
            checks.append(_check(name, "ok", f"live: {len(settings.pgbouncer)} instance(s): {names}"))
        elif settings.provider_backend(name) == "sandbox":
            var = "DIGITALOCEAN_TOKEN" if name == "digitalocean" else "HUAWEICLOUD_SDK_AK/SK"
            detail = f"sandbox (demo data, not production); set {var} to use your account"
            checks.append(_check(name, "ok", detail))
        elif name == "digitalocean":
            source = settings.sources.get("digitalocean_token", "unset")
            detail = f"live: token from {source}, endpoint {settings.digitalocean_url}"
            checks.append(_check(name, "ok", detail))
        else:
            how = "IAM token" if settings.taurusdb_iam_token else "AK/SK from env HUAWEICLOUD_SDK_AK/SK"
            where = settings.taurusdb_url or f"region {settings.huawei_region}"
            checks.append(_check(name, "ok", f"live: {how}, {where}"))
    return checks


class _Answer(NamedTuple):
    status: int
    date: str | None


async def _get(
    url: str, headers: Mapping[str, str], timeout_s: float, env_var: str, provider: str
) -> tuple[Check, _Answer | None]:
    """Resolve the host, then one GET: the endpoint check, and the answer for the credential check."""
    name = f"{provider} endpoint"
    parts = urlsplit(url)
    host = parts.hostname or ""
    fix = f"check {env_var} and this machine's DNS, proxy and firewall"
    started = time.monotonic()
    try:
        with anyio.fail_after(timeout_s):
            await anyio.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except TimeoutError:
        return _check(name, "fail", f"{host} did not resolve within {timeout_s:g} s", fix), None
    except OSError as exc:
        return _check(name, "fail", f"{host} does not resolve ({exc.strerror})", fix), None
    try:
        with anyio.fail_after(timeout_s):
            async with httpx2.AsyncClient(timeout=timeout_s) as client:
                response = await client.get(url, headers=dict(headers))
    except (TimeoutError, httpx2.TimeoutException):
        detail = f"{parts.netloc} accepted no request or sent no answer within {timeout_s:g} s"
        return _check(name, "fail", detail, fix), None
    except httpx2.HTTPError as exc:
        cause = exc.__context__ or exc
        kind = "TLS handshake failed" if "ssl" in type(cause).__module__.lower() else "connection failed"
        return _check(name, "fail", f"{parts.netloc}: {kind} ({type(cause).__name__})", fix), None
    elapsed = int((time.monotonic() - started) * 1000)
    answer = _Answer(response.status_code, response.headers.get("date"))
    detail = f"{parts.scheme}://{parts.netloc} answered HTTP {response.status_code} in {elapsed} ms"
    return _check(name, "ok", detail), answer


async def _digitalocean(settings: Settings, timeout_s: float) -> list[Check]:
    var = settings.digitalocean_token_var
    url = f"{settings.digitalocean_url}/v2/databases?per_page=1"
    headers = {"Authorization": f"Bearer {settings.digitalocean_token}", "Accept": "application/json"}
    endpoint, answer = await _get(url, headers, timeout_s, "POOLPILOT_DIGITALOCEAN_URL", "digitalocean")
    if answer is None:
        return [endpoint]
    name = "digitalocean credentials"
    token_page = "https://cloud.digitalocean.com/account/api/tokens"
    if answer.status == 200:
        check = _check(name, "ok", f"{var} accepted (list clusters answered)")
    elif answer.status == 401:
        fix = f"set {var} to a valid token ({token_page}) with database:read at least"
        check = _check(name, "fail", f"DigitalOcean rejected the token in {var} (401)", fix)
    elif answer.status == 403:
        fix = f"create a token with the database scopes at {token_page} and put it in {var}"
        check = _check(name, "fail", f"the token in {var} lacks database:read (403)", fix)
    elif answer.status == 429:
        check = _check(name, "warn", "rate limited (429)", "wait a minute and run doctor again")
    else:
        detail = f"list clusters answered HTTP {answer.status}"
        check = _check(name, "fail", detail, "check POOLPILOT_DIGITALOCEAN_URL")
    return [endpoint, check]


def _taurus_region(settings: Settings) -> tuple[Check, str | None]:
    from poolpilot.tools.taurusdb.regions import REGIONS, endpoint_for

    region, url = settings.huawei_region, settings.taurusdb_url
    name = "taurusdb region"
    if url is None:
        if region not in REGIONS:
            return _check(name, "fail", "no region", "set HUAWEICLOUD_SDK_REGION"), None
        return _check(name, "ok", f"{region} -> {endpoint_for(region)}"), endpoint_for(region)
    labels = (urlsplit(url).hostname or "").split(".")
    named = [r for r in REGIONS if r in labels]
    if region is not None and named and region not in named:
        detail = f"POOLPILOT_TAURUSDB_URL points at {named[0]} but HUAWEICLOUD_SDK_REGION is {region}"
        return _check(name, "fail", detail, "make them agree, or unset POOLPILOT_TAURUSDB_URL"), url
    note = f"region {region}" if region else "no region set"
    return _check(name, "ok", f"custom endpoint {url} ({note})"), url


def _skew(answer: _Answer) -> float | None:
    try:
        return parsedate_to_datetime(answer.date).timestamp() - time.time() if answer.date else None
    except (TypeError, ValueError):
        return None


def _minutes(skew: float) -> str:
    return f"{round(abs(skew) / 60)} minutes {'behind' if skew > 0 else 'ahead of'} the server's"


async def _taurusdb(settings: Settings, timeout_s: float) -> list[Check]:
    from poolpilot.tools.taurusdb.signer import canonical_query, sign_request

    region_check, base = _taurus_region(settings)
    if base is None:
        return [region_check]
    project = settings.huawei_project_id or ""
    path = f"/v3/{project}/instances"
    query = [("limit", 1)]
    netloc = urlsplit(base).netloc
    headers = {"Host": netloc, "Content-Type": "application/json", "X-Project-Id": project}
    if settings.taurusdb_iam_token:
        headers["X-Auth-Token"] = settings.taurusdb_iam_token
    else:
        ak, sk = settings.huawei_ak or "", settings.huawei_sk or ""
        headers.update(sign_request("GET", netloc, path, query, headers, None, ak=ak, sk=sk))
    url = f"{base.rstrip('/')}{path}?{canonical_query(query)}"
    endpoint, answer = await _get(url, headers, timeout_s, "POOLPILOT_TAURUSDB_URL/HUAWEICLOUD_SDK_REGION", "taurusdb")
    return [region_check, endpoint] + ([] if answer is None else [_taurus_credentials(settings, answer)])


def _taurus_credentials(settings: Settings, answer: _Answer) -> Check:
    name = "taurusdb credentials"
    skew = _skew(answer)
    vars_ = "POOLPILOT_TAURUSDB_IAM_TOKEN" if settings.taurusdb_iam_token else "HUAWEICLOUD_SDK_AK/SK"
    if answer.status == 200:
        if skew is not None and abs(skew) > _MAX_SKEW_S / 3:
            detail = f"{vars_} accepted, but this machine's clock is {_minutes(skew)} (signing fails beyond 15)"
            return _check(name, "warn", detail, "sync the clock (e.g. `timedatectl set-ntp true`)")
        return _check(name, "ok", f"{vars_} accepted (list instances answered)")
    if answer.status == 401:
        if skew is not None and abs(skew) > _MAX_SKEW_S and not settings.taurusdb_iam_token:
            detail = f"signature rejected: this machine's clock is {_minutes(skew)}; signing fails beyond 15"
            fix = "sync the clock (e.g. `timedatectl set-ntp true`), then run doctor once; do not retry in a loop"
            return _check(name, "fail", detail, fix)
        detail = f"TaurusDB rejected {vars_} (401)"
        fix = f"check {vars_}; more than 5 failed signatures lock the key for 5 minutes, so fix before retrying"
        return _check(name, "fail", detail, fix)
    if answer.status == 403:
        detail = f"project {settings.huawei_project_id} is not the credentials' project in this region (403)"
        fix = "copy the project id of this region (console: My Credentials > Projects) to HUAWEICLOUD_SDK_PROJECT_ID"
        return _check(name, "fail", detail, fix)
    if answer.status == 404:
        return _check(
            name, "fail", "no TaurusDB API there (404)", "check HUAWEICLOUD_SDK_REGION/POOLPILOT_TAURUSDB_URL"
        )
    return _check(name, "warn", f"list instances answered HTTP {answer.status}", "run doctor later")


async def _pgbouncer(settings: Settings, timeout_s: float) -> list[Check]:
    checks = []
    for instance in settings.pgbouncer:
        name = f"pgbouncer {instance.name}"
        var = f"POOLPILOT_PGBOUNCER_{instance.name.upper().replace('-', '_')}_DSN"
        try:
            from poolpilot.tools.pgbouncer.admin import AdminConsole, AdminError

            console = AdminConsole(instance.dsn, connect_timeout_s=timeout_s, command_timeout_s=timeout_s)
            with anyio.fail_after(timeout_s * 2):
                async with console:
                    version = await console.show_version()
            checks.append(_check(name, "ok", f"SHOW VERSION: {version}"))
        except ImportError:
            checks.append(_check(name, "fail", "psycopg is not installed", "pip install 'poolpilot[pgbouncer]'"))
        except ValueError as exc:
            checks.append(_check(name, "fail", str(exc), f"fix {var}"))
        except TimeoutError:
            checks.append(_check(name, "fail", f"no answer within {timeout_s * 2:g} s", f"check {var} and the network"))
        except AdminError as exc:
            checks.append(_check(name, "fail", str(exc), f"check {var} (admin_users, auth)"))
    return checks


def _secret(settings: Settings) -> Check:
    name = "confirm secret"
    if settings.confirm_secret:
        return _check(name, "ok", "POOLPILOT_CONFIRM_SECRET set: tokens work across replicas")
    detail = "per-process: confirmation tokens die with the process and work on this replica only"
    replicas = settings.transport == "streamable-http" and settings.stateless
    fix = "set the same POOLPILOT_CONFIRM_SECRET (`openssl rand -hex 32`) on every replica"
    return _check(name, "warn", detail, fix) if replicas else _check(name, "ok", detail)


def _audit(settings: Settings) -> Check:
    path = settings.audit_log or "-"
    if path == "-":
        return _check("audit log", "ok", "stderr")
    target = Path(path)
    existing = target if target.exists() else next((p for p in target.parents if p.exists()), Path("/"))
    writable = os.access(existing, os.W_OK) and (existing != target or target.is_file())
    if writable:
        return _check("audit log", "ok", f"{path} is writable{'' if target.exists() else ' (will be created)'}")
    fix = "point --audit-log/POOLPILOT_AUDIT_LOG at a writable file"
    return _check("audit log", "fail", f"{path} is not writable ({existing})", fix)


def _http(settings: Settings) -> list[Check]:
    from poolpilot.server.shell.transports import bind_socket, check_http

    if settings.transport == "stdio":
        return []
    loopback = settings.host in LOOPBACK
    token = "a bearer token is required" if settings.auth_token else "no bearer token (allowed on loopback)"
    checks = [_check("http bind", "ok", f"{settings.host} ({'loopback' if loopback else 'network'}): {token}")]
    try:
        bind_socket(settings).close()
        checks.append(_check("http port", "ok", f"{settings.host}:{settings.port} is free"))
    except ConfigError as exc:
        checks.append(_config_fail("http port", exc))
    try:
        check_http(settings)
    except ConfigError as exc:
        checks.append(_config_fail("http hosts", exc))
        return checks
    if loopback:
        checks.append(_check("http hosts", "ok", "Host/Origin limited to loopback names"))
    else:
        hosts = ", ".join(settings.allowed_hosts) or settings.host
        origins = ", ".join(settings.allowed_origins) or "none (browser requests get 403)"
        checks.append(_check("http hosts", "ok", f"Host: {hosts}; Origin: {origins}"))
    return checks


Probe = Callable[[Settings, float], Awaitable[list[Check]]]


async def diagnose(
    flags: Mapping[str, object], env: Mapping[str, str] | None = None, *, timeout_s: float = 5.0
) -> DoctorReport:
    """Run every check; never raises for a configuration problem (it becomes a failed check)."""
    python, poolpilot, mcp = sys.version.split()[0], _version("poolpilot"), _version("mcp")
    modern = sys.version_info >= (3, 11)
    checks = [
        _check(
            "versions",
            "ok" if modern else "fail",
            f"Python {python}, poolpilot {poolpilot}, mcp {mcp}",
            None if modern else "use Python 3.11 or newer",
        )
    ]
    sources: dict[str, SettingSource] = {}
    try:
        settings = load_settings(flags, env)
        from poolpilot.server.shell.app import select_tools

        select_tools(settings)
    except ConfigError as exc:
        checks += [_config_fail("settings", exc), _check("other checks", "fail", "skipped")]
    else:
        sources = _sources(settings)
        changed = ", ".join(sorted(k for k, v in settings.sources.items() if v.startswith(("flag", "env"))))
        checks.append(_check("settings", "ok", f"from flags/environment: {changed or 'none'}"))
        checks += _providers(settings)
        probes: list[Probe] = [
            probe
            for provider, probe in (("digitalocean", _digitalocean), ("taurusdb", _taurusdb))
            if (settings.toolsets is None or provider in settings.toolsets)
            and settings.provider_backend(provider) == "live"
        ]
        results: list[list[Check]] = [[] for _ in (*probes, _pgbouncer)]

        async def run(index: int, probe: Probe) -> None:
            results[index] = await probe(settings, timeout_s)

        async with anyio.create_task_group() as tg:  # concurrently: one unreachable endpoint costs timeout_s once
            for index, probe in enumerate((*probes, _pgbouncer)):
                tg.start_soon(run, index, probe)
        checks += [check for found in results for check in found]
        checks += [_secret(settings), _audit(settings), *_http(settings)]
    ok = not any(c.status == "fail" for c in checks)
    return DoctorReport(ok=ok, python=python, poolpilot=poolpilot, mcp=mcp, settings=sources, checks=checks)


def render(report: DoctorReport) -> str:
    lines = []
    for check in report.checks:
        line = f"{check.status:<4} {check.name}: {check.detail}"
        if check.fix and check.status != "ok":
            line += f" -> fix: {check.fix}"
        lines.append(line)
    return "\n".join(lines)


def run_doctor(flags: Mapping[str, object], *, as_json: bool, timeout_s: float = 5.0) -> int:
    report = anyio.run(lambda: diagnose(flags, timeout_s=timeout_s))
    print(report.model_dump_json(indent=2) if as_json else render(report))
    return 0 if report.ok else 1
