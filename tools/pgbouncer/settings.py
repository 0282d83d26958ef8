"""PgBouncer's settings: the instances (`POOLPILOT_PGBOUNCER_<NAME>_DSN`, optional `_INI`) and the saturation
thresholds of pgbouncer_list_pools (more waiting clients, or an older wait, is "saturated")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from poolpilot.server.kernel.config import Settings, SettingsReader, non_negative
from poolpilot.server.kernel.provider import Backend

__all__ = ["PgBouncerInstance", "PgBouncerSettings", "dsn_password", "of", "read"]

PROVIDER = "pgbouncer"


@dataclass(frozen=True)
class PgBouncerInstance:
    name: str
    dsn: str = field(repr=False)
    ini_path: str | None = None


@dataclass(frozen=True)
class PgBouncerSettings:
    instances: tuple[PgBouncerInstance, ...] = ()
    max_wait_s: float = 1.0
    max_waiting_clients: int = 0

    def configured(self) -> bool:
        return bool(self.instances)

    def secrets(self) -> list[str]:
        return [p for p in (dsn_password(i.dsn) for i in self.instances) if p]

    def status(self, backend: Backend) -> str:
        names = ", ".join(i.name for i in self.instances)
        return f"live: {len(self.instances)} instance(s): {names}"

    def validate(self, backend: Backend) -> None:
        return None


_DSN_PASSWORD = re.compile(r"://[^:/@\s]*:([^@/\s]+)@|password=(\S+)")


def dsn_password(dsn: str) -> str | None:
    match = _DSN_PASSWORD.search(dsn)
    if match is None:
        return None
    return match.group(1) or match.group(2)


def _instances(env: Mapping[str, str]) -> tuple[PgBouncerInstance, ...]:
    found: list[PgBouncerInstance] = []
    for var in sorted(env):
        match = re.fullmatch(r"POOLPILOT_PGBOUNCER_([A-Z0-9_]+)_DSN", var)
        if match is None or not env[var]:
            continue
        key = match.group(1)
        name = key.lower().replace("_", "-")
        found.append(PgBouncerInstance(name=name, dsn=env[var], ini_path=env.get(f"POOLPILOT_PGBOUNCER_{key}_INI")))
    return tuple(found)


def read(r: SettingsReader) -> PgBouncerSettings:
    waiting = r.get("pgbouncer_max_waiting_clients")
    return PgBouncerSettings(
        instances=_instances(r.env),
        max_wait_s=non_negative(r.get("pgbouncer_max_wait_s"), "POOLPILOT_PGBOUNCER_MAX_WAIT_S", 1.0),
        max_waiting_clients=int(non_negative(waiting, "POOLPILOT_PGBOUNCER_MAX_WAITING_CLIENTS", 0, integer=True)),
    )


def of(settings: Settings) -> PgBouncerSettings:
    """This provider's settings; the defaults when `settings` was built without them (a test's `Settings()`)."""
    return cast(PgBouncerSettings, settings.providers.get(PROVIDER) or PgBouncerSettings())


def dsn_var(name: str) -> str:
    """The variable an instance's DSN came from (`main` -> POOLPILOT_PGBOUNCER_MAIN_DSN)."""
    return f"POOLPILOT_PGBOUNCER_{name.upper().replace('-', '_')}_DSN"
