"""Settings from flags and the environment, resolved once into one frozen `Settings`.

Every flag also reads a `POOLPILOT_*` variable (flag wins); provider credentials follow the providers' own
conventions (`DIGITALOCEAN_TOKEN`, `HUAWEICLOUD_SDK_AK`, …). `Settings.sources` records where each value came
from, for `poolpilot doctor`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["PROVIDERS", "ConfigError", "PgBouncerInstance", "Settings", "load_settings"]

Backend = Literal["sandbox", "live"]
BackendChoice = Literal["auto", "sandbox", "live"]
ConfirmMode = Literal["auto", "token", "off"]
Transport = Literal["stdio", "sse", "streamable-http"]

PROVIDERS = ("digitalocean", "taurusdb", "pgbouncer")
DEFAULT_DO_URL = "https://api.digitalocean.com"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ConfigError(ValueError):
    """A setting that cannot work: names the setting and the fix, printed as one line before MCP starts."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        super().__init__(f"{setting}: {problem}. Fix: {fix}")
        self.setting = setting


@dataclass(frozen=True)
class PgBouncerInstance:
    name: str
    dsn: str = field(repr=False)
    ini_path: str | None = None


@dataclass(frozen=True)
class Settings:
    backend: BackendChoice = "auto"
    digitalocean_token: str | None = field(default=None, repr=False)
    digitalocean_token_var: str = "DIGITALOCEAN_TOKEN"
    digitalocean_url: str = DEFAULT_DO_URL
    huawei_ak: str | None = field(default=None, repr=False)
    huawei_sk: str | None = field(default=None, repr=False)
    huawei_project_id: str | None = None
    huawei_region: str | None = None
    taurusdb_url: str | None = None
    taurusdb_iam_token: str | None = field(default=None, repr=False)
    taurusdb_language: Literal["en-us", "zh-cn"] = "en-us"
    pgbouncer: tuple[PgBouncerInstance, ...] = ()
    # Saturation thresholds of pgbouncer_list_pools: more waiting clients, or an older wait, is "saturated".
    pgbouncer_max_wait_s: float = 1.0
    pgbouncer_max_waiting_clients: int = 0
    # pools_advise: warn when a DO cluster's pools allocate this share of its budget, or one session pool holds
    # this share; pools_overview gives each provider this long before reporting it as timed out.
    advise_budget_warn: float = 0.9
    advise_session_share: float = 0.25
    overview_timeout_s: float = 10.0
    confirm: ConfirmMode = "auto"
    confirm_secret: bytes | None = field(default=None, repr=False)
    confirm_ttl_s: float = 300.0
    read_only: bool = False
    toolsets: tuple[str, ...] | None = None
    tools: tuple[str, ...] | None = None
    audit_log: str | None = None
    allow_secrets: bool = False
    transport: Transport = "stdio"
    host: str = "127.0.0.1"
    port: int = 8000
    auth_token: str | None = field(default=None, repr=False)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    stateless: bool = False
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    sandbox_faults: tuple[str, ...] = ()
    # How long a sandbox TaurusDB job takes (None: the sandbox's 2-6 s); tests of real subprocesses shorten it.
    sandbox_job_seconds: float | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def provider_backend(self, provider: str) -> Backend:
        """Which backend answers for `provider`: PgBouncer is always live; the others follow `backend`."""
        if provider == "pgbouncer":
            return "live"
        if self.backend != "auto":
            return self.backend
        return "live" if self.has_credentials(provider) else "sandbox"

    def has_credentials(self, provider: str) -> bool:
        if provider == "digitalocean":
            return bool(self.digitalocean_token)
        if provider == "taurusdb":
            return bool(self.taurusdb_iam_token) or bool(self.huawei_ak and self.huawei_sk)
        if provider == "pools":  # the cross-provider view is live as soon as one provider it reads is
            return any(self.has_credentials(p) for p in PROVIDERS)
        return bool(self.pgbouncer)

    def secrets(self) -> list[str]:
        """Every operator secret, for the redactor."""
        values = [self.digitalocean_token, self.huawei_sk, self.huawei_ak, self.taurusdb_iam_token, self.auth_token]
        values += [_dsn_password(i.dsn) for i in self.pgbouncer]
        if self.confirm_secret:
            values.append(self.confirm_secret.decode("utf-8", "replace"))
        return [v for v in values if v]


_DSN_PASSWORD = re.compile(r"://[^:/@\s]*:([^@/\s]+)@|password=(\S+)")


def _dsn_password(dsn: str) -> str | None:
    match = _DSN_PASSWORD.search(dsn)
    if match is None:
        return None
    return match.group(1) or match.group(2)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class _Reader:
    """Looks a setting up in the flags, then the environment, then the default, and remembers which."""

    def __init__(self, flags: Mapping[str, object], env: Mapping[str, str]) -> None:
        self.flags = flags
        self.env = env
        self.sources: dict[str, str] = {}

    def get(self, name: str, *env_names: str) -> str | None:
        value = self.flags.get(name)
        if value is not None and value is not False:
            self.sources[name] = "flag"
            return str(value)
        for var in (f"POOLPILOT_{name.upper()}", *env_names):
            if self.env.get(var):
                self.sources[name] = f"env {var}"
                return self.env[var]
        self.sources[name] = "default"
        return None

    def flag(self, name: str) -> bool:
        if self.flags.get(name) is True:
            self.sources[name] = "flag"
            return True
        var = f"POOLPILOT_{name.upper()}"
        raw = self.env.get(var)
        if raw is None:
            self.sources[name] = "default"
            return False
        if raw.strip().lower() not in _TRUE | _FALSE:
            raise ConfigError(var, f"{raw!r} is not a boolean", "use true or false")
        self.sources[name] = f"env {var}"
        return raw.strip().lower() in _TRUE


def _choice(value: str | None, setting: str, allowed: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise ConfigError(setting, f"{value!r} is not allowed", "use one of " + ", ".join(allowed))
    return value


def _csv(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _read_secret_file(path: str, setting: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(setting, f"cannot read {path} ({exc.strerror})", "point it at a readable file") from None
    if not text:
        raise ConfigError(setting, f"{path} is empty", "write the token into the file")
    return text


def _pgbouncer_instances(env: Mapping[str, str]) -> tuple[PgBouncerInstance, ...]:
    found: list[PgBouncerInstance] = []
    for var in sorted(env):
        match = re.fullmatch(r"POOLPILOT_PGBOUNCER_([A-Z0-9_]+)_DSN", var)
        if match is None or not env[var]:
            continue
        key = match.group(1)
        name = key.lower().replace("_", "-")
        found.append(PgBouncerInstance(name=name, dsn=env[var], ini_path=env.get(f"POOLPILOT_PGBOUNCER_{key}_INI")))
    return tuple(found)


def _non_negative(value: str | None, setting: str, default: float, *, integer: bool = False) -> float:
    if value is None:
        return default
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        number = -1
    if not 0 <= number < 1e9:
        raise ConfigError(setting, f"{value!r} is not a non-negative {'integer' if integer else 'number'}", "e.g. 2")
    return number


def _fraction(value: str | None, setting: str, default: float) -> float:
    number = _non_negative(value, setting, default)
    if not 0 < number <= 1:
        raise ConfigError(setting, f"{value!r} is not a share between 0 and 1", "e.g. 0.9 for 90 %")
    return number


def _positive(value: str | None, setting: str, default: float) -> float:
    number = _non_negative(value, setting, default)
    if number <= 0:
        raise ConfigError(setting, f"{value!r} is not a positive number of seconds", "e.g. 10")
    return number


_PRINTABLE = re.compile(r"[\x21-\x7e]+")
_ALNUM = re.compile(r"[A-Za-z0-9]+")


def _check_shape(var: str, value: str | None, shape: re.Pattern[str], problem: str) -> None:
    """Malformed credentials fail at start-up, naming the variable and never echoing the value."""
    if value is not None and not shape.fullmatch(value):
        raise ConfigError(var, problem, f"set {var} to the credential alone, without quotes or whitespace")


def _optional_seconds(value: str | None, setting: str) -> float | None:
    return None if value is None else _non_negative(value, setting, 0.0)


def default_audit_path(env: Mapping[str, str]) -> str:
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return str(Path(base) / "poolpilot" / "audit.jsonl")


def load_settings(flags: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve flags (wins) and environment into `Settings`; raises `ConfigError` for what cannot work."""
    r = _Reader(flags or {}, os.environ if env is None else env)
    e = r.env
    backend = _choice(r.get("backend"), "--backend", ("auto", "sandbox", "live"), "auto")
    token_var = next((v for v in ("DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN") if e.get(v)), "DIGITALOCEAN_TOKEN")
    do_token = e.get(token_var) or None
    r.sources["digitalocean_token"] = f"env {token_var}" if do_token else "unset"
    ak, sk = e.get("HUAWEICLOUD_SDK_AK") or None, e.get("HUAWEICLOUD_SDK_SK") or None
    project = e.get("HUAWEICLOUD_SDK_PROJECT_ID") or None
    for var, value in (("HUAWEICLOUD_SDK_AK", ak), ("HUAWEICLOUD_SDK_SK", sk), ("HUAWEICLOUD_SDK_PROJECT_ID", project)):
        r.sources[var] = f"env {var}" if value else "unset"
    _check_shape(token_var, do_token, _PRINTABLE, "has spaces or control characters (a pasted newline?)")
    _check_shape("HUAWEICLOUD_SDK_AK", ak, _ALNUM, "must be letters and digits only (an access key id)")
    _check_shape("HUAWEICLOUD_SDK_SK", sk, _ALNUM, "must be letters and digits only (a secret access key)")
    _check_shape(
        "POOLPILOT_TAURUSDB_IAM_TOKEN", e.get("POOLPILOT_TAURUSDB_IAM_TOKEN") or None, _PRINTABLE, "is malformed"
    )
    if project is not None and not re.fullmatch(r"[A-Za-z0-9]{32}", project):
        raise ConfigError("HUAWEICLOUD_SDK_PROJECT_ID", "must be 32 letters or digits", "copy it from the console")
    if bool(ak) != bool(sk):
        missing = "HUAWEICLOUD_SDK_SK" if ak else "HUAWEICLOUD_SDK_AK"
        raise ConfigError(missing, "is not set while its pair is", "set both HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK")
    region = r.get("region", "HUAWEICLOUD_SDK_REGION")
    taurus_url = r.get("taurusdb_url")
    iam_token = e.get("POOLPILOT_TAURUSDB_IAM_TOKEN") or None
    language = _choice(r.get("taurusdb_language"), "POOLPILOT_TAURUSDB_LANGUAGE", ("en-us", "zh-cn"), "en-us")
    confirm = _choice(r.get("confirm"), "--confirm", ("auto", "token", "off"), "auto")
    secret_raw = e.get("POOLPILOT_CONFIRM_SECRET")
    if secret_raw is not None and len(secret_raw.encode()) < 32:
        raise ConfigError("POOLPILOT_CONFIRM_SECRET", "is shorter than 32 bytes", "use `openssl rand -hex 32`")
    r.sources["confirm_secret"] = "env POOLPILOT_CONFIRM_SECRET" if secret_raw else "per-process random"
    transport = _choice(r.get("transport"), "--transport", ("stdio", "sse", "streamable-http"), "stdio")
    host = r.get("host") or "127.0.0.1"
    port_raw = r.get("port") or "8000"
    if not port_raw.isdigit() or not 0 <= int(port_raw) <= 65535:
        raise ConfigError("--port", f"{port_raw!r} is not a port number", "use 0-65535")
    auth_file = r.flags.get("auth_token_file") or e.get("POOLPILOT_AUTH_TOKEN_FILE")
    auth_token = (
        _read_secret_file(str(auth_file), "--auth-token-file") if auth_file else (e.get("POOLPILOT_AUTH_TOKEN") or None)
    )
    if transport != "stdio" and host not in LOOPBACK and not auth_token:
        raise ConfigError(
            "--host",
            f"binding {host} off loopback needs a bearer token",
            "set POOLPILOT_AUTH_TOKEN or --auth-token-file PATH (or bind 127.0.0.1)",
        )
    if region is not None:
        from poolpilot.tools.taurusdb.regions import REGIONS  # only when a region is set: keeps start-up lean

        if region not in REGIONS and not taurus_url:
            raise ConfigError(
                "HUAWEICLOUD_SDK_REGION", f"{region!r} is not in the region table", "use one of " + ", ".join(REGIONS)
            )
    settings = Settings(
        backend=backend,  # type: ignore[arg-type]
        digitalocean_token=do_token,
        digitalocean_token_var=token_var,
        digitalocean_url=(r.get("digitalocean_url") or DEFAULT_DO_URL).rstrip("/"),
        huawei_ak=ak,
        huawei_sk=sk,
        huawei_project_id=project,
        huawei_region=region,
        taurusdb_url=taurus_url.rstrip("/") if taurus_url else None,
        taurusdb_iam_token=iam_token,
        taurusdb_language=language,  # type: ignore[arg-type]
        pgbouncer=_pgbouncer_instances(e),
        pgbouncer_max_wait_s=_non_negative(r.get("pgbouncer_max_wait_s"), "POOLPILOT_PGBOUNCER_MAX_WAIT_S", 1.0),
        pgbouncer_max_waiting_clients=int(
            _non_negative(
                r.get("pgbouncer_max_waiting_clients"), "POOLPILOT_PGBOUNCER_MAX_WAITING_CLIENTS", 0, integer=True
            )
        ),
        advise_budget_warn=_fraction(r.get("advise_budget_warn"), "POOLPILOT_ADVISE_BUDGET_WARN", 0.9),
        advise_session_share=_fraction(r.get("advise_session_share"), "POOLPILOT_ADVISE_SESSION_SHARE", 0.25),
        overview_timeout_s=_positive(r.get("overview_timeout_s"), "POOLPILOT_OVERVIEW_TIMEOUT_S", 10.0),
        confirm=confirm,  # type: ignore[arg-type]
        confirm_secret=secret_raw.encode() if secret_raw else None,
        read_only=r.flag("read_only"),
        toolsets=_csv(r.get("toolsets")),
        tools=_csv(r.get("tools")),
        audit_log=r.get("audit_log") or default_audit_path(e),
        allow_secrets=r.flag("allow_secrets"),
        transport=transport,  # type: ignore[arg-type]
        host=host,
        port=int(port_raw),
        auth_token=auth_token,
        allowed_hosts=_csv(r.get("allowed_hosts")) or (),
        allowed_origins=_csv(r.get("allowed_origins")) or (),
        stateless=r.flag("stateless"),
        sandbox_faults=_csv(r.get("faults")) or (),
        sandbox_job_seconds=_optional_seconds(r.get("sandbox_job_seconds"), "POOLPILOT_SANDBOX_JOB_SECONDS"),
        sources=r.sources,
    )
    if settings.backend == "live":
        for provider, var in (("digitalocean", "DIGITALOCEAN_TOKEN"), ("taurusdb", "HUAWEICLOUD_SDK_AK")):
            if settings.toolsets is not None and provider not in settings.toolsets:
                continue
            if not settings.has_credentials(provider):
                raise ConfigError("--backend live", f"{provider} has no credentials", f"set {var} or use --toolsets")
    if settings.provider_backend("taurusdb") == "live" and settings.huawei_ak and not project:
        raise ConfigError("HUAWEICLOUD_SDK_PROJECT_ID", "is not set", "set the 32-character project id of the region")
    if settings.provider_backend("taurusdb") == "live" and not (region or taurus_url):
        raise ConfigError("HUAWEICLOUD_SDK_REGION", "is not set", "set a region such as cn-north-4")
    return settings
