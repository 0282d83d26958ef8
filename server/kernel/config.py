"""Settings from flags and the environment, resolved once into one frozen `Settings`.

Every flag also reads a `POOLPILOT_*` variable (flag wins). The core settings are read here; each provider's
own settings (credentials, endpoints, instances) are read by its face through the same `SettingsReader`, which
records where each value came from (`Settings.sources`) and what doctor may show of it (`Settings.shown`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from poolpilot.server.kernel.provider import Provider, ProviderSettings

__all__ = ["ConfigError", "Settings", "SettingsReader", "complete", "load_settings"]

Backend = Literal["sandbox", "live"]
BackendChoice = Literal["auto", "sandbox", "live"]
ConfirmMode = Literal["auto", "token", "off"]
Transport = Literal["stdio", "sse", "streamable-http"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ConfigError(ValueError):
    """A setting that cannot work: names the setting and the fix, printed as one line before MCP starts."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        super().__init__(f"{setting}: {problem}. Fix: {fix}")
        self.setting = setting


@dataclass(frozen=True)
class Settings:
    backend: BackendChoice = "auto"
    # Each registered provider's own settings object (parsed by its face), and the backend each one uses.
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict, repr=False)
    backends: Mapping[str, Backend] = field(default_factory=dict)
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
    # Where tools/list is kept between starts (server/kernel/toolcache.py); None: built at every start.
    tool_cache: str | None = None
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
    # How long a sandbox job takes (None: the sandbox's own 2-6 s); tests of real subprocesses shorten it.
    sandbox_job_seconds: float | None = None
    # Shared state of replicas (issue 19): Redis URL; stateful streamable HTTP session bounds.
    state_url: str | None = field(default=None, repr=False)
    session_idle_timeout_s: float = 600.0
    max_sessions: int = 1000
    max_sessions_per_client: int = 100
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # What doctor shows of each setting read (secrets only as set/unset).
    shown: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def provider(self, name: str) -> ProviderSettings:
        """The named provider's settings (`complete()` fills them for every registered provider)."""
        try:
            return self.providers[name]
        except KeyError:
            raise ConfigError(name, "no settings were loaded for this provider", "load them with complete()") from None

    def provider_backend(self, provider: str) -> Backend:
        """Which backend answers for `provider`, as `complete()` decided from its face's backend rule."""
        found = self.backends.get(provider)
        if found is not None:
            return found
        return "live" if self.backend == "live" else "sandbox"

    def has_credentials(self, provider: str) -> bool:
        settings = self.providers.get(provider)
        return settings is not None and settings.configured()

    def secrets(self) -> list[str]:
        """Every operator secret, for the redactor."""
        values = [self.auth_token] + [v for p in self.providers.values() for v in p.secrets()]
        if self.confirm_secret:
            values.append(self.confirm_secret.decode("utf-8", "replace"))
        if self.state_url:
            values.append(urlsplit(self.state_url).password)
        return [v for v in values if v]


def complete(settings: Settings, faces: Sequence[Provider], reader: SettingsReader | None = None) -> Settings:
    """`settings` with every face's settings (read by `reader`, or the defaults: tests build `Settings` directly)
    and each provider's backend decided by its face's rule."""
    reader = reader or SettingsReader({}, {})
    providers = {f.name: settings.providers.get(f.name) or f.settings(reader) for f in faces}
    backends: dict[str, Backend] = {}
    for face in faces:
        if face.backend_rule == "live":
            backends[face.name] = "live"
        elif face.backend_rule == "sandbox_or_live":
            configured = providers[face.name].configured()
            backends[face.name] = (
                "live" if settings.backend == "live" or (settings.backend == "auto" and configured) else "sandbox"
            )
    read = [backends[f.name] for f in faces if f.backend_rule == "sandbox_or_live"]
    for face in faces:
        if face.backend_rule == "derived":  # live as soon as one provider it reads is live
            backends[face.name] = "live" if "live" in read else "sandbox"
    return replace(settings, providers=providers, backends={**backends, **settings.backends})


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsReader:
    """Looks a setting up in the flags, then the environment, then the default, and remembers which (and, for
    doctor, the value; secrets only as set/unset)."""

    def __init__(self, flags: Mapping[str, object], env: Mapping[str, str]) -> None:
        self.flags = flags
        self.env = env
        self.sources: dict[str, str] = {}
        self.shown: dict[str, str] = {}

    def get(self, name: str, *env_names: str) -> str | None:
        value = self.flags.get(name)
        if value is not None and value is not False:
            self.sources[name] = "flag"
            self.shown[name] = str(value)
            return str(value)
        for var in (f"POOLPILOT_{name.upper()}", *env_names):
            if self.env.get(var):
                self.sources[name] = f"env {var}"
                self.shown[name] = self.env[var]
                return self.env[var]
        self.sources[name] = "default"
        return None

    def secret(self, name: str, *env_names: str) -> tuple[str | None, str]:
        """The first of `env_names` that is set (never a flag: `ps` shows flags), and the variable it came from."""
        for var in env_names:
            if self.env.get(var):
                self.sources[name] = f"env {var}"
                self.shown[name] = "set"
                return self.env[var], var
        self.sources[name] = "unset"
        self.shown[name] = "unset"
        return None, env_names[0]

    def flag(self, name: str) -> bool:
        if self.flags.get(name) is True:
            self.sources[name] = "flag"
            self.shown[name] = "True"
            return True
        var = f"POOLPILOT_{name.upper()}"
        raw = self.env.get(var)
        if raw is None:
            self.sources[name] = "default"
            return False
        if raw.strip().lower() not in _TRUE | _FALSE:
            raise ConfigError(var, f"{raw!r} is not a boolean", "use true or false")
        self.sources[name] = f"env {var}"
        self.shown[name] = str(raw.strip().lower() in _TRUE)
        return raw.strip().lower() in _TRUE


def choice(value: str | None, setting: str, allowed: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise ConfigError(setting, f"{value!r} is not allowed", "use one of " + ", ".join(allowed))
    return value


def csv(value: str | None) -> tuple[str, ...] | None:
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


def non_negative(value: str | None, setting: str, default: float, *, integer: bool = False) -> float:
    if value is None:
        return default
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        number = -1
    if not 0 <= number < 1e9:
        raise ConfigError(setting, f"{value!r} is not a non-negative {'integer' if integer else 'number'}", "e.g. 2")
    return number


def fraction(value: str | None, setting: str, default: float) -> float:
    number = non_negative(value, setting, default)
    if not 0 < number <= 1:
        raise ConfigError(setting, f"{value!r} is not a share between 0 and 1", "e.g. 0.9 for 90 %")
    return number


def positive(value: str | None, setting: str, default: float) -> float:
    number = non_negative(value, setting, default)
    if number <= 0:
        raise ConfigError(setting, f"{value!r} is not a positive number of seconds", "e.g. 10")
    return number


PRINTABLE = re.compile(r"[\x21-\x7e]+")
ALNUM = re.compile(r"[A-Za-z0-9]+")


def check_shape(var: str, value: str | None, shape: re.Pattern[str], problem: str) -> None:
    """Malformed credentials fail at start-up, naming the variable and never echoing the value."""
    if value is not None and not shape.fullmatch(value):
        raise ConfigError(var, problem, f"set {var} to the credential alone, without quotes or whitespace")


def optional_seconds(value: str | None, setting: str) -> float | None:
    return None if value is None else non_negative(value, setting, 0.0)


def _count(value: str | None, setting: str, default: int) -> int:
    number = int(non_negative(value, setting, default, integer=True))
    if number < 1:
        raise ConfigError(setting, "must be at least 1", "e.g. 100")
    return number


def _state_url(r: SettingsReader, secret: str | None) -> str | None:
    url = r.get("state_url")
    r.shown["state_url"] = "set" if url else "unset"  # a Redis URL may carry a password
    if url is None:
        return None
    if urlsplit(url).scheme not in ("redis", "rediss"):  # the value may hold a password: never echoed
        raise ConfigError("POOLPILOT_STATE_URL", "is not a redis:// or rediss:// URL", "e.g. redis://redis:6379/0")
    if not secret:
        raise ConfigError(
            "POOLPILOT_STATE_URL",
            "needs POOLPILOT_CONFIRM_SECRET (tokens and the store's key namespace come from it)",
            "set the same POOLPILOT_CONFIRM_SECRET on every replica",
        )
    return url


def _tool_cache(value: str | None, env: Mapping[str, str]) -> str | None:
    if value is None:
        from poolpilot.server.kernel.toolcache import default_directory

        return default_directory(env)
    return None if value == "off" else value


def default_audit_path(env: Mapping[str, str]) -> str:
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return str(Path(base) / "poolpilot" / "audit.jsonl")


def load_settings(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    faces: Sequence[Provider] = (),
) -> Settings:
    """Resolve flags (wins) and environment into `Settings`, with each face's provider settings; raises
    `ConfigError` for what cannot work."""
    r = SettingsReader(flags or {}, os.environ if env is None else env)
    e = r.env
    backend = choice(r.get("backend"), "--backend", ("auto", "sandbox", "live"), "auto")
    confirm = choice(r.get("confirm"), "--confirm", ("auto", "token", "off"), "auto")
    secret_raw = e.get("POOLPILOT_CONFIRM_SECRET")
    if secret_raw is not None and len(secret_raw.encode()) < 32:
        raise ConfigError("POOLPILOT_CONFIRM_SECRET", "is shorter than 32 bytes", "use `openssl rand -hex 32`")
    r.sources["confirm_secret"] = "env POOLPILOT_CONFIRM_SECRET" if secret_raw else "per-process random"
    r.shown["confirm_secret"] = "set" if secret_raw else "unset"
    transport = choice(r.get("transport"), "--transport", ("stdio", "sse", "streamable-http"), "stdio")
    host = r.get("host") or "127.0.0.1"
    port_raw = r.get("port") or "8000"
    if not port_raw.isdigit() or not 0 <= int(port_raw) <= 65535:
        raise ConfigError("--port", f"{port_raw!r} is not a port number", "use 0-65535")
    auth_file = r.flags.get("auth_token_file") or e.get("POOLPILOT_AUTH_TOKEN_FILE")
    auth_token = (
        _read_secret_file(str(auth_file), "--auth-token-file") if auth_file else (e.get("POOLPILOT_AUTH_TOKEN") or None)
    )
    r.shown["auth_token"] = "set" if auth_token else "unset"
    if transport != "stdio" and host not in LOOPBACK and not auth_token:
        raise ConfigError(
            "--host",
            f"binding {host} off loopback needs a bearer token",
            "set POOLPILOT_AUTH_TOKEN or --auth-token-file PATH (or bind 127.0.0.1)",
        )
    core = Settings(
        backend=backend,  # type: ignore[arg-type]
        advise_budget_warn=fraction(r.get("advise_budget_warn"), "POOLPILOT_ADVISE_BUDGET_WARN", 0.9),
        advise_session_share=fraction(r.get("advise_session_share"), "POOLPILOT_ADVISE_SESSION_SHARE", 0.25),
        overview_timeout_s=positive(r.get("overview_timeout_s"), "POOLPILOT_OVERVIEW_TIMEOUT_S", 10.0),
        confirm=confirm,  # type: ignore[arg-type]
        confirm_secret=secret_raw.encode() if secret_raw else None,
        read_only=r.flag("read_only"),
        toolsets=csv(r.get("toolsets")),
        tools=csv(r.get("tools")),
        audit_log=r.get("audit_log") or default_audit_path(e),
        tool_cache=_tool_cache(r.get("tool_cache"), e),
        allow_secrets=r.flag("allow_secrets"),
        transport=transport,  # type: ignore[arg-type]
        host=host,
        port=int(port_raw),
        auth_token=auth_token,
        allowed_hosts=csv(r.get("allowed_hosts")) or (),
        allowed_origins=csv(r.get("allowed_origins")) or (),
        stateless=r.flag("stateless"),
        sandbox_faults=csv(r.get("faults")) or (),
        sandbox_job_seconds=optional_seconds(r.get("sandbox_job_seconds"), "POOLPILOT_SANDBOX_JOB_SECONDS"),
        state_url=_state_url(r, secret_raw),
        session_idle_timeout_s=positive(r.get("session_idle_timeout_s"), "POOLPILOT_SESSION_IDLE_TIMEOUT_S", 600.0),
        max_sessions=_count(r.get("max_sessions"), "POOLPILOT_MAX_SESSIONS", 1000),
        max_sessions_per_client=_count(r.get("max_sessions_per_client"), "POOLPILOT_MAX_SESSIONS_PER_CLIENT", 100),
    )
    settings = complete(core, faces, r)
    for face in faces:
        wanted = settings.toolsets is None or any(n in settings.toolsets for n in face.toolset_names())
        own = settings.provider(face.name)
        if wanted and backend == "live" and face.backend_rule == "sandbox_or_live" and not own.configured():
            var = face.env[0].name if face.env else face.name
            raise ConfigError("--backend live", f"{face.name} has no credentials", f"set {var} or use --toolsets")
        own.validate(settings.provider_backend(face.name))
    return replace(settings, sources=dict(r.sources), shown=dict(r.shown))
