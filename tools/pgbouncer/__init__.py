"""Self-hosted PgBouncer: live pools and stats over the admin console, guarded `pgbouncer.ini` edits.

`FACE` is this provider's whole contract with the rest of poolpilot (server/kernel/provider.py). It has no sandbox:
PgBouncer is never faked (`poolpilot sandbox --with-pgbouncer` starts a real local pair instead). Importing this
module is cheap: psycopg, the client and the tools load inside the callables, on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from poolpilot.server.kernel.config import ConfigError
from poolpilot.server.kernel.provider import Check, EnvVar, LocalCompanion, Provider, ProviderSettings, Toolset
from poolpilot.tools.pgbouncer import settings as _settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from poolpilot.server.kernel.config import Settings
    from poolpilot.server.kernel.fleet import FleetAdapter
    from poolpilot.server.kernel.state import AppState, OpenContext, ProviderClient, ToolSpec

__all__ = ["FACE"]


def _load(toolset: str) -> tuple[ToolSpec, ...]:
    if toolset == "pgbouncer_sessions":
        from poolpilot.tools.pgbouncer import sessions

        return sessions.SPECS
    if toolset == "pgbouncer_admin":
        from poolpilot.tools.pgbouncer import config, console, waitclose

        return config.SPECS + console.SPECS + waitclose.SPECS
    from poolpilot.tools.pgbouncer import tools

    return tools.SPECS


async def _open(ctx: OpenContext) -> ProviderClient:
    from poolpilot.tools.pgbouncer.client import open_client

    return await open_client(ctx)


def _own(settings: ProviderSettings) -> _settings.PgBouncerSettings:
    assert isinstance(settings, _settings.PgBouncerSettings)
    return settings


def _unusable(settings: ProviderSettings) -> tuple[str, str] | None:
    if _own(settings).instances:
        return None
    return "pgbouncer has no instance configured", "set POOLPILOT_PGBOUNCER_<NAME>_DSN (see README)"


def _preflight(settings: ProviderSettings) -> None:
    """A DSN that does not parse fails at start-up, naming its variable (consoles connect at the first call)."""
    from poolpilot.tools.pgbouncer.doctor import install_hint

    for instance in _own(settings).instances:
        var = _settings.dsn_var(instance.name)
        try:
            from poolpilot.tools.pgbouncer.admin import AdminConsole

            AdminConsole(instance.dsn)  # parses only
        except ImportError:
            raise ConfigError(var, "needs psycopg", install_hint()) from None
        except ValueError as exc:
            raise ConfigError(var, str(exc), "use e.g. postgresql://admin@host:6432/pgbouncer") from None


async def _probes(settings: Settings, timeout_s: float) -> list[Check]:
    from poolpilot.tools.pgbouncer.doctor import probe

    return await probe(_settings.of(settings), timeout_s)


def _extras(app: MCPServer[AppState], state: AppState, enabled: frozenset[str]) -> None:
    from poolpilot.tools.pgbouncer.resources import register

    register(app, state, enabled)


def _fleet() -> FleetAdapter:
    from dataclasses import replace

    from poolpilot.tools.pgbouncer.code import CODE
    from poolpilot.tools.pgbouncer.fleet import ADAPTER

    return replace(ADAPTER, code=CODE)


def _thresholds(settings: ProviderSettings) -> Mapping[str, float]:
    own = _own(settings)
    return {"waiting_clients": own.max_waiting_clients, "max_wait_s": own.max_wait_s}


def _missing() -> list[str]:
    from poolpilot.tools.pgbouncer.local import missing_binaries

    return missing_binaries()


def _start() -> tuple[dict[str, str], Callable[[], None]]:
    from poolpilot.tools.pgbouncer.local import start_local_pair

    pair = start_local_pair()
    env = {"POOLPILOT_PGBOUNCER_LOCAL_DSN": pair.admin_dsn, "POOLPILOT_PGBOUNCER_LOCAL_INI": str(pair.ini_path)}
    return env, pair.stop


FACE = Provider(
    name="pgbouncer",
    description="Self-hosted PgBouncer: live pools and stats, guarded pgbouncer.ini edits, pause/resume/reload.",
    settings=_settings.read,
    index={
        "pgbouncer_list_pools": "read",
        "pgbouncer_get_stats": "read",
        "pgbouncer_create_pool": "write",
        "pgbouncer_update_pool": "destructive",
        "pgbouncer_delete_pool": "destructive",
        "pgbouncer_pause_database": "destructive",
        "pgbouncer_resume_database": "write",
        "pgbouncer_reconnect_database": "destructive",
        "pgbouncer_reload": "destructive",
        "pgbouncer_list_clients": "read",
        "pgbouncer_list_servers": "read",
        "pgbouncer_get_config": "read",
        "pgbouncer_set_config": "destructive",
        "pgbouncer_disable_database": "destructive",
        "pgbouncer_enable_database": "write",
        "pgbouncer_kill_database": "destructive",
        "pgbouncer_wait_close": "destructive",
    },
    load=_load,
    open=_open,
    backend_rule="live",
    default_on=lambda settings: bool(_own(settings).instances),
    unusable=_unusable,
    preflight=_preflight,
    probes=_probes,
    extras=_extras,
    fleet=_fleet,
    thresholds=_thresholds,
    toolsets=(
        Toolset(
            "pgbouncer_sessions",
            "PgBouncer: who is connected and who waits (SHOW CLIENTS, SHOW SERVERS).",
            ("pgbouncer_list_clients", "pgbouncer_list_servers"),
        ),
        Toolset(
            "pgbouncer_admin",
            "PgBouncer: runtime settings (SHOW CONFIG, SET, persisted on request); DISABLE, ENABLE, KILL, WAIT_CLOSE.",
            (
                "pgbouncer_get_config",
                "pgbouncer_set_config",
                "pgbouncer_disable_database",
                "pgbouncer_enable_database",
                "pgbouncer_kill_database",
                "pgbouncer_wait_close",
            ),
        ),
    ),
    env=(
        EnvVar("POOLPILOT_PGBOUNCER_<NAME>_DSN", secret=True, description="PgBouncer admin console DSN"),
        EnvVar("POOLPILOT_PGBOUNCER_<NAME>_INI", secret=False, description="path of pgbouncer.ini (for edits)"),
    ),
    companion=LocalCompanion(help="also start a local PostgreSQL + PgBouncer", missing=_missing, start=_start),
)
