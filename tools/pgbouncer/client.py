"""The PgBouncer provider client: one admin console per configured instance, and the safe edit protocol.

Every failure leaves here as a `PoolpilotError`. An edit is: validate (already done by `DatabaseEntry`),
write `pgbouncer.ini` atomically with a backup, RELOAD, then compare exactly the fields written with
`SHOW DATABASES` — PgBouncer answers RELOAD with OK even when the file failed to load. If the change is not
there, the backup goes back, PgBouncer reloads it, and the call fails with `reload_failed` naming what differed.
Any other failure once the file is written (an error, an unexpected exception, a cancellation) takes the same
restore path, and the error says what is in force afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import anyio

from poolpilot.server.kernel.errors import ErrorCode, ErrorInfo, PoolpilotError, internal_error, validation_error
from poolpilot.server.kernel.state import OpenContext
from poolpilot.tools.pgbouncer import ini
from poolpilot.tools.pgbouncer.admin import (
    AdminColumnError,
    AdminCommandError,
    AdminConnectError,
    AdminConsole,
    AdminError,
    PauseTimedOut,
    PsycopgMissing,
    ShowDatabasesRow,
    ShowPoolsRow,
    ShowStatsRow,
)
from poolpilot.tools.pgbouncer.extra import INSTALL_HINT
from poolpilot.tools.pgbouncer.models import Thresholds
from poolpilot.tools.pgbouncer.settings import PgBouncerInstance, of
from poolpilot.tools.pgbouncer.verify import Difference, describe, entry_of, loaded_differences, masked_line

__all__ = ["Difference", "PgBouncerClient", "describe", "env_key", "loaded_differences", "masked_line", "open_client"]

log = logging.getLogger("poolpilot.pgbouncer")
PROVIDER = "pgbouncer"


def _error(
    code: ErrorCode, message: str, hint: str, *, provider_code: str | None = None, allowed: list[str] | None = None
) -> PoolpilotError:
    return PoolpilotError(
        ErrorInfo(
            code=code, message=message, hint=hint, provider=PROVIDER, provider_code=provider_code, allowed=allowed
        )
    )


def env_key(instance: str) -> str:
    """The `<NAME>` of `POOLPILOT_PGBOUNCER_<NAME>_DSN` for an instance name (config.py lower-cases it)."""
    return instance.upper().replace("-", "_")


@contextlib.contextmanager
def _mapped(instance: str) -> Iterator[None]:
    """Admin console failures as our error model (their messages are already free of DSNs and passwords)."""
    where = f"PgBouncer {instance}"
    try:
        yield
    except PsycopgMissing:
        raise _error(
            "not_supported",
            "the PgBouncer provider needs psycopg, which is not installed",
            f"Ask the operator to run: {INSTALL_HINT}",
        ) from None
    except PauseTimedOut as exc:
        hint = (
            "The database is not paused. Retry later or with a longer timeout_s."
            if exc.resumed
            else f"Call pgbouncer_resume_database for {exc.database} now: clients may hang until it runs."
        )
        raise _error("timeout", f"{where}: {exc}", hint) from None
    except AdminCommandError as exc:
        denied = "admin access needed" in str(exc) or "not allowed" in str(exc)
        raise _error(
            "forbidden" if denied else "upstream_error",
            f"{where}: {exc}",
            "Configure a DSN for a user in admin_users." if denied else "Read the state back with a list tool.",
            provider_code=exc.sqlstate,
        ) from None
    except AdminColumnError as exc:
        raise _error(
            "upstream_error",
            f"{where}: {exc}",
            "This PgBouncer's admin console answers differently from the versions poolpilot reads (1.18 to 1.24); "
            "tell the operator its version (`poolpilot doctor` shows it).",
        ) from None
    except AdminConnectError as exc:
        var = f"POOLPILOT_PGBOUNCER_{instance.upper().replace('-', '_')}_DSN"
        hint = (
            f"Check that PgBouncer runs and that {var} names a user in admin_users or stats_users with the right "
            "password; `poolpilot doctor` checks it."
        )
        raise _error("connection_error", f"{where}: {exc}", hint) from None
    except AdminError as exc:
        raise _error("timeout", f"{where}: {exc}", "Retry; check PgBouncer's load.") from None
    except ini.InvalidSetting as exc:
        field = "database" if exc.field == "name" else exc.field  # the tools call a pool's name `database`
        raise validation_error(field, exc.message, allowed=[exc.allowed], provider=PROVIDER) from None


def _file_error(path: str, exc: OSError, doing: str) -> PoolpilotError:
    code: ErrorCode = "forbidden" if isinstance(exc, PermissionError) else "upstream_error"
    reason = exc.strerror or str(exc)
    return _error(code, f"cannot {doing} {path}: {reason}", "Check the file's path, owner and mode.")


@dataclass
class PgBouncerClient:
    """One lazily connected `AdminConsole` per configured instance; `backend` is always "live"."""

    instances: dict[str, PgBouncerInstance]
    thresholds: Thresholds
    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]
    remember_secret: Callable[[str], None]
    connect_timeout_s: float = 5.0
    command_timeout_s: float = 30.0
    backend: str = "live"
    _consoles: dict[str, AdminConsole] = field(default_factory=dict)
    _edit_locks: dict[str, anyio.Lock] = field(default_factory=dict)

    def instance(self, name: str) -> PgBouncerInstance:
        found = self.instances.get(name)
        if found is None:
            raise validation_error(
                "instance", "not a configured PgBouncer instance", allowed=sorted(self.instances), provider=PROVIDER
            )
        return found

    def console(self, name: str) -> AdminConsole:
        found = self._consoles.get(name)
        if found is None:
            dsn = self.instance(name).dsn
            with _mapped(name):
                try:
                    found = AdminConsole(
                        dsn, connect_timeout_s=self.connect_timeout_s, command_timeout_s=self.command_timeout_s
                    )
                except ValueError as exc:  # AdminConsole's message never quotes the DSN
                    raise _error(
                        "not_supported",
                        f"PgBouncer {name}: {exc}",
                        f"Ask the operator to fix POOLPILOT_PGBOUNCER_{env_key(name)}_DSN.",
                    ) from None
            self._consoles[name] = found
        return found

    async def pools(self, name: str) -> list[ShowPoolsRow]:
        with _mapped(name):
            return await self.console(name).show_pools()

    async def databases(self, name: str) -> dict[str, ShowDatabasesRow]:
        with _mapped(name):
            return {row.name: row for row in await self.console(name).show_databases()}

    async def stats(self, name: str) -> list[ShowStatsRow]:
        with _mapped(name):
            return await self.console(name).show_stats()

    async def database(self, name: str, database: str) -> ShowDatabasesRow:
        rows = await self.databases(name)
        if database not in rows:
            known = [n for n in rows if n != "pgbouncer"]
            raise _error(
                "not_found",
                f"PgBouncer {name} has no database by that name",
                "Use one of the allowed names (pgbouncer_list_pools lists them).",
                allowed=known[:50],
            )
        return rows[database]

    async def pause(self, name: str, database: str, timeout_s: float) -> float:
        with _mapped(name):
            return await self.console(name).pause(database, timeout_s)

    async def resume(self, name: str, database: str) -> None:
        with _mapped(name):
            await self.console(name).resume(database)

    async def reconnect(self, name: str, database: str) -> None:
        with _mapped(name):
            await self.console(name).reconnect(database)

    async def reload(self, name: str) -> None:
        with _mapped(name):
            await self.console(name).reload()

    def ini_path(self, name: str) -> str:
        path = self.instance(name).ini_path
        if not path:
            raise _error(
                "not_supported",
                f"PgBouncer {name} has no config file configured, so its pools are read-only here",
                f"Ask the operator to set POOLPILOT_PGBOUNCER_{env_key(name)}_INI to its pgbouncer.ini.",
            )
        return path

    def read_ini(self, name: str) -> ini.IniFile:
        path = self.ini_path(name)
        try:
            file = ini.load(path)
        except OSError as exc:
            raise _file_error(path, exc, "read") from None
        for secret in re.findall(r"password *= *'((?:[^']|'')*)'|password *= *([^ \r\n]+)", file.text):
            self.remember_secret(secret[0].replace("''", "'") or secret[1])  # errors may quote a line
        return file

    def entry(self, name: str, file: ini.IniFile, database: str) -> ini.DatabaseEntry | None:
        """The pool `database` as the file defines it; a line PgBouncer would misread is an upstream error."""
        try:
            return entry_of(file, database)
        except ini.InvalidSetting as exc:
            raise _error(
                "upstream_error",
                f"the line for that database in {self.ini_path(name)} cannot be read safely ({exc.field}: "
                f"{exc.message})",
                "Ask the operator to fix that line by hand; nothing was changed.",
            ) from None

    def new_entry(self, name: str, database: str, fields: dict[str, object]) -> ini.DatabaseEntry:
        """Validate a pool definition the way PgBouncer reads it (`validation_error` names field and allowed)."""
        with _mapped(name):
            return ini.DatabaseEntry(name=database, **{k: v for k, v in fields.items() if v is not None})

    def merged(self, name: str, entry: ini.DatabaseEntry, changes: dict[str, object]) -> ini.DatabaseEntry:
        with _mapped(name):
            return entry.merged(**{k: v for k, v in changes.items() if v is not None})

    async def apply(
        self,
        name: str,
        before: ini.IniFile,
        text: str,
        check: Callable[[dict[str, ShowDatabasesRow]], list[Difference]],
    ) -> None:
        """Write `text`, RELOAD and verify with `check`; on any failure put the previous file back and reload."""
        path = self.ini_path(name)
        async with self._edit_locks.setdefault(name, anyio.Lock()):
            try:
                ini.write_atomically(path, text, expected=before.text)
            except ini.ConcurrentEdit:
                raise _error(
                    "conflict",
                    f"{path} changed while this call ran; nothing was written",
                    "Call the tool again for a fresh preview.",
                ) from None
            except OSError as exc:
                raise _file_error(path, exc, "write") from None
            try:
                await self.reload(name)
                differences = check(await self.databases(name))
            except PoolpilotError as exc:
                note = await self._roll_back(name, path)
                raise PoolpilotError(exc.info.model_copy(update={"message": f"{exc.info.message}; {note}"})) from None
            except Exception:
                # Not ours to explain, but the change must not stay applied behind an internal_error.
                info = internal_error()
                log.exception("incident %s: PgBouncer %s edit failed after writing %s", info.incident_id, name, path)
                note = await self._roll_back(name, path)
                message = f"poolpilot hit an unexpected error (incident {info.incident_id}) after writing the change"
                raise PoolpilotError(info.model_copy(update={"message": f"{message}; {note}"})) from None
            except BaseException:
                # Cancelled: put the previous file back before the cancellation goes on (no one reads a result).
                with anyio.CancelScope(shield=True), anyio.move_on_after(self.connect_timeout_s):
                    note = "the restore did not finish in time: check the file and PgBouncer"
                    note = await self._roll_back(name, path)
                log.warning("PgBouncer %s edit cancelled after writing the change; %s", name, note)
                raise
            if differences:
                note = await self._roll_back(name, path)
                raise _error(
                    "reload_failed",
                    f"PgBouncer {name} did not apply the change ({describe(differences)}); {note}",
                    "PgBouncer's log names the line it rejected (RELOAD answers OK regardless); fix the file, then "
                    "retry. The message says which configuration is in force.",
                )

    async def _roll_back(self, name: str, path: str) -> str:
        """Put the backup back and RELOAD; say what is in force afterwards."""
        try:
            ini.restore_backup(path)
        except OSError as exc:
            return (
                f"restoring the backup {path}.bak FAILED ({exc.strerror}): {path} still holds the change and PgBouncer "
                "may run it; restore the backup by hand, then call pgbouncer_reload"
            )
        try:
            await self.reload(name)
        except PoolpilotError:
            return (
                f"{path} was restored from its backup but RELOAD failed, so PgBouncer may still run the change until "
                "it reloads: call pgbouncer_reload once it answers"
            )
        return f"{path} was restored from its backup and reloaded; {await self._in_force(name, path)}"

    async def _in_force(self, name: str, path: str) -> str:
        """What PgBouncer runs after a roll-back: the restored file, unless that file did not fully load either
        (it was already broken before this call), in which case PgBouncer keeps its last loaded values."""
        try:
            entries, loaded = self.read_ini(name).databases(), await self.databases(name)
        except ini.InvalidSetting as exc:
            return (
                f"but that file was already broken ({exc.field}: {exc.message}): PgBouncer keeps its last loaded values"
            )
        except PoolpilotError:
            return "whether PgBouncer runs all of it is unknown (reading it back failed): check pgbouncer_list_pools"
        left = [d for entry in entries.values() for d in loaded_differences(entry, loaded.get(entry.name))]
        if not left:
            return "PgBouncer runs the previous configuration"
        return (
            f"that file did not fully load before this call either ({describe(left[:5])}): PgBouncer keeps its "
            "last loaded values for those"
        )

    async def aclose(self) -> None:
        consoles, self._consoles = list(self._consoles.values()), {}
        for console in consoles:
            with contextlib.suppress(AdminError):
                await console.close()


def _dsn_password(dsn: str) -> str | None:
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return None  # Settings.secrets() already covers URI and key=value passwords by pattern
    with contextlib.suppress(Exception):  # a malformed DSN is reported when first used
        return str(conninfo_to_dict(dsn).get("password") or "") or None
    return None


async def open_client(ctx: OpenContext) -> PgBouncerClient:
    """Build the client; consoles connect on first use, so a PgBouncer that is down does not stop the server."""
    settings = ctx.settings
    own = of(settings)
    for instance in own.instances:
        ctx.redactor.add(_dsn_password(instance.dsn))
    return PgBouncerClient(
        instances={i.name: i for i in own.instances},
        thresholds=Thresholds(max_wait_s=own.max_wait_s, max_waiting_clients=own.max_waiting_clients),
        sleep=ctx.sleep,
        clock=ctx.clock,
        remember_secret=ctx.redactor.add,
        connect_timeout_s=settings.connect_timeout_s,
        command_timeout_s=settings.read_timeout_s,
    )
