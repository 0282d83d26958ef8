"""`poolpilot doctor`: one line per check (ok / warn / fail, with the exact fix), in the order a user needs them.

Changes nothing and sends only reads, each bounded by `timeout_s`: each live provider's own probes (its face's
`probes`: one list or version request, a signature sent once), and a scratch key set/read/deleted in the state
store.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import anyio
from pydantic import BaseModel

from poolpilot.server.kernel.config import LOOPBACK, ConfigError, Settings, load_settings
from poolpilot.server.kernel.probe import check as _check
from poolpilot.server.kernel.provider import Check, Provider
from poolpilot.server.kernel.store import probe_store
from poolpilot.server.shell.registry import faces as registered

__all__ = ["Check", "DoctorReport", "diagnose", "render", "run_doctor"]


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


def _config_fail(name: str, exc: ConfigError) -> Check:
    problem, _, fix = str(exc).partition(". Fix: ")
    return _check(name, "fail", problem, fix or None)


def _sources(settings: Settings) -> dict[str, SettingSource]:
    shown = settings.shown
    return {
        key: SettingSource(value=shown.get(key, ""), source=source) for key, source in sorted(settings.sources.items())
    }


def _providers(settings: Settings, faces: list[Provider], enabled: tuple[str, ...]) -> list[Check]:
    checks = []
    for face in faces:
        if face.backend_rule == "derived":
            continue  # reads the others: nothing of its own to check
        if not any(n in enabled for n in face.toolset_names()):
            hint = "see --toolsets"
            if face.unusable(settings.provider(face.name)) is not None:
                hint = face.unusable(settings.provider(face.name))[1]  # type: ignore[index]
            checks.append(_check(face.name, "ok", f"not enabled ({hint})"))
        else:
            checks.append(
                _check(face.name, "ok", settings.provider(face.name).status(settings.provider_backend(face.name)))
            )
    return checks


def _secret(settings: Settings) -> Check:
    name = "confirm secret"
    if settings.confirm_secret:
        return _check(name, "ok", "POOLPILOT_CONFIRM_SECRET set: tokens work across replicas")
    detail = "per-process: confirmation tokens die with the process and work on this replica only"
    replicas = settings.transport == "streamable-http" and settings.stateless
    fix = "set the same POOLPILOT_CONFIRM_SECRET (`openssl rand -hex 32`) on every replica"
    return _check(name, "warn", detail, fix) if replicas else _check(name, "ok", detail)


def _confirm(settings: Settings) -> Check:
    if settings.confirm != "off":
        return _check("confirm mode", "ok", f"{settings.confirm}: destructive tools ask before they act")
    return _check("confirm mode", "warn", "off: destructive tools act WITHOUT asking anyone", "drop --confirm off")


def _tool_cache(settings: Settings, faces: list[Provider]) -> Check:
    from poolpilot.server.shell.app import tool_cache

    cache = tool_cache(settings, faces)
    if cache is None:
        return _check("tool cache", "ok", "off: tools/list is built at every start")
    count, problem = cache.inspect()
    if problem is not None:
        fix = "set POOLPILOT_TOOL_CACHE to a directory only you can write, or to off"
        return _check("tool cache", "warn", f"{cache.path}: {problem}; every start builds tools/list", fix)
    if count:
        return _check("tool cache", "ok", f"{cache.path}: {count} tools for this code")
    return _check("tool cache", "ok", f"{cache.directory}: nothing for this code yet (the next start writes it)")


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


async def _store(settings: Settings, timeout_s: float) -> list[Check]:
    found = await probe_store(settings.state_url, timeout_s)  # reachable, version, one set/get/delete round trip
    return [_check("state store", "ok" if found.ok else "fail", found.detail, found.fix)]


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
    faces = registered()
    try:
        settings = load_settings(flags, env, faces)
        from poolpilot.server.shell.app import plan_tools

        plan_tools(settings, faces)
    except ConfigError as exc:
        checks += [_config_fail("settings", exc), _check("other checks", "fail", "skipped")]
    else:
        sources = _sources(settings)
        changed = ", ".join(sorted(k for k, v in settings.sources.items() if v.startswith(("flag", "env"))))
        checks.append(_check("settings", "ok", f"from flags/environment: {changed or 'none'}"))
        from poolpilot.server.shell.app import default_toolsets

        enabled = settings.toolsets if settings.toolsets is not None else default_toolsets(settings, faces)
        checks += _providers(settings, faces, enabled)
        probes: list[Probe] = [
            face.probes
            for face in faces
            if face.probes is not None
            and (settings.toolsets is None or any(n in settings.toolsets for n in face.toolset_names()))
            and settings.provider_backend(face.name) == "live"
        ]
        probes.append(_store)  # the shared state store, when configured (issue 19)
        results: list[list[Check]] = [[] for _ in probes]

        async def run(index: int, probe: Probe) -> None:
            results[index] = await probe(settings, timeout_s)

        async with anyio.create_task_group() as tg:  # concurrently: one unreachable endpoint costs timeout_s once
            for index, probe in enumerate(probes):
                tg.start_soon(run, index, probe)
        checks += [check for found in results for check in found]
        checks += [_confirm(settings), _secret(settings), _audit(settings), _tool_cache(settings, faces)]
        checks += _http(settings)
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
