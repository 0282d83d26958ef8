"""`poolpilot doctor` for PgBouncer: one SHOW VERSION per configured instance, bounded in time."""

from __future__ import annotations

import anyio

from poolpilot.server.kernel.probe import check
from poolpilot.server.kernel.provider import Check
from poolpilot.tools.pgbouncer.extra import install_hint
from poolpilot.tools.pgbouncer.settings import PgBouncerSettings, dsn_var

__all__ = ["install_hint", "probe"]


async def probe(settings: PgBouncerSettings, timeout_s: float) -> list[Check]:
    checks = []
    for instance in settings.instances:
        name = f"pgbouncer {instance.name}"
        var = dsn_var(instance.name)
        try:
            from poolpilot.tools.pgbouncer.admin import AdminConsole, AdminError

            console = AdminConsole(instance.dsn, connect_timeout_s=timeout_s, command_timeout_s=timeout_s)
            with anyio.fail_after(timeout_s * 2):
                async with console:
                    version = await console.show_version()
            checks.append(check(name, "ok", f"SHOW VERSION: {version}"))
        except ImportError:
            checks.append(check(name, "fail", "psycopg is not installed", install_hint()))
        except ValueError as exc:
            checks.append(check(name, "fail", str(exc), f"fix {var}"))
        except TimeoutError:
            checks.append(check(name, "fail", f"no answer within {timeout_s * 2:g} s", f"check {var} and the network"))
        except AdminError as exc:
            checks.append(check(name, "fail", str(exc), f"check {var} (admin_users, auth)"))
    return checks
