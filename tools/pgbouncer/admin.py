"""Async client for PgBouncer's admin console, the virtual database `pgbouncer`.

The console speaks only the simple query protocol. psycopg's default cursor turns a query it has run a few
times into a prepared statement, which the console refuses ("extended query protocol not supported by
admin console"), so every connection uses `AsyncClientCursor` and `prepare_threshold=None`.

psycopg is the optional extra `poolpilot[pgbouncer]`: it is imported inside the functions that need it.

Exceptions (every message is safe to show: no DSN, no password)::

    AdminError
    ├── AdminConnectError   could not connect or log in, or the connection broke
    ├── AdminCommandError   the console answered with an error (sqlstate kept)
    ├── AdminColumnError    a SHOW result lacks a column we read, or holds a value of another type
    └── PauseTimedOut       PAUSE did not finish in time; RESUME was sent
    PsycopgMissing (ImportError): the extra is not installed

Rows are read by capability, not by version string: each row model names the columns it needs (and the other
names a column has had), the columns come from the result's description, and anything else is left out.
Checked between 1.18 (Debian 12) and 1.24.1 (Debian 13): the one rename is SHOW DATABASES `reserve_pool` →
`reserve_pool_size` (1.24.0); 1.24 adds columns we do not read (SHOW DATABASES `server_lifetime`,
`load_balance_hosts`, `max_client_connections`, `current_client_connections`; SHOW POOLS `load_balance_hosts`;
SHOW STATS `*_server_assignment_count`, `*_client_parse_count`, `*_server_parse_count`, `*_bind_count`).
"""

from __future__ import annotations

import functools
import time
import unicodedata
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import anyio
from pydantic import SecretStr

from poolpilot.tools.pgbouncer.extra import INSTALL_HINT
from poolpilot.tools.pgbouncer.ini import InvalidSetting
from poolpilot.tools.pgbouncer.rows import (
    AdminColumnError,
    AdminError,
    Row,
    ShowDatabasesRow,
    ShowPoolsRow,
    ShowStatsRow,
)

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg.abc import Buffer
    from psycopg.adapt import Loader
    from psycopg.rows import DictRow

__all__ = [
    "AdminColumnError",
    "AdminCommandError",
    "AdminConnectError",
    "AdminConsole",
    "AdminError",
    "PauseTimedOut",
    "PsycopgMissing",
    "ShowDatabasesRow",
    "ShowPoolsRow",
    "ShowStatsRow",
    "quote_ident",
    "require_psycopg",
]

R = TypeVar("R", bound=Row)

# admin.c copies a command argument, quotes included, into a 64-byte buffer ("bad arguments" beyond).
_CONSOLE_ARG_MAX = 63
_DATABASE_ALLOWED = "1-61 bytes without control characters (the console takes 63 bytes, quotes included)"


class PsycopgMissing(ImportError):
    """The optional PgBouncer dependency is not installed."""

    def __init__(self) -> None:
        super().__init__(f"PgBouncer support needs the optional dependency psycopg: {INSTALL_HINT}")


class AdminConnectError(AdminError):
    """Could not connect or log in to the console, or the connection broke."""


class AdminCommandError(AdminError):
    """The console answered a command with an error."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class PauseTimedOut(AdminError):
    """PAUSE did not finish in time. PgBouncer keeps a timed-out PAUSE in force, so RESUME was sent."""

    def __init__(self, database: str, timeout_s: float, pools: list[ShowPoolsRow], resumed: bool) -> None:
        self.database, self.timeout_s, self.resumed = database, timeout_s, resumed
        self.clients_active = sum(p.cl_active for p in pools)
        self.servers_active = sum(p.sv_active for p in pools)
        waited = f"{self.clients_active} client(s) active on {self.servers_active} server connection(s)"
        outcome = (
            f"RESUME {database} was sent, so the database is not paused"
            if resumed
            else f"RESUME {database} failed too: the database may still be paused, run RESUME {database}"
        )
        super().__init__(f"PAUSE {database} did not finish within {timeout_s:g} s ({waited}); {outcome}")


def quote_ident(name: str) -> str:
    """Return `name` as a console identifier: double quotes, `""` for a quote (admin.c `copy_arg`)."""
    if not name or any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in name):
        raise InvalidSetting("database", "empty or contains a control character", _DATABASE_ALLOWED)
    quoted = '"' + name.replace('"', '""') + '"'
    if len(quoted.encode("utf-8")) > _CONSOLE_ARG_MAX:
        raise InvalidSetting("database", "too long for the admin console", _DATABASE_ALLOWED)
    return quoted


def require_psycopg() -> None:
    """Raise `PsycopgMissing` (with the install command) when the optional extra is not installed."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PsycopgMissing() from None


class AdminConsole:
    """One PgBouncer admin console; a single connection is reused under a lock and reopened after a failure."""

    def __init__(
        self, dsn: str | SecretStr, *, connect_timeout_s: float = 5.0, command_timeout_s: float = 10.0
    ) -> None:
        require_psycopg()
        import psycopg

        raw = dsn.get_secret_value() if isinstance(dsn, SecretStr) else dsn
        try:
            params = psycopg.conninfo.conninfo_to_dict(raw)
        except psycopg.Error:
            # libpq's parse errors quote the string around the fault, which may be the password.
            raise ValueError("the PgBouncer admin DSN is not a valid connection string") from None
        if params.get("dbname") != "pgbouncer":
            raise ValueError("the PgBouncer admin DSN must name the database 'pgbouncer' (the admin console)")
        self._dsn = raw
        self._secrets = [s for s in (raw, str(params.get("password") or "")) if s]
        self._secrets += [quote(s, safe="") for s in self._secrets]
        self.user = str(params.get("user") or "")
        self.address = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
        self._connect_timeout_s = connect_timeout_s
        self._command_timeout_s = command_timeout_s
        self._lock = anyio.Lock()
        self._conn: AsyncConnection[DictRow] | None = None

    def __repr__(self) -> str:
        return f"AdminConsole({self.user}@{self.address})"

    def _safe(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return " ".join(text.split())

    async def _open(self) -> AsyncConnection[DictRow]:
        require_psycopg()
        import psycopg
        from psycopg.rows import dict_row

        try:
            conn: AsyncConnection[DictRow] = await psycopg.AsyncConnection.connect(
                self._dsn,
                autocommit=True,
                prepare_threshold=None,
                cursor_factory=psycopg.AsyncClientCursor,
                row_factory=dict_row,
                connect_timeout=max(2, round(self._connect_timeout_s)),  # libpq: whole seconds, 2 at least
            )
        except psycopg.Error as exc:
            where = f"the PgBouncer admin console at {self.address} as {self.user or 'the default user'}"
            raise AdminConnectError(self._safe(f"cannot connect to {where}: {exc}")) from None
        conn.adapters.register_loader("text", _lenient_text_loader())
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _run(self, command: str, *, retry: bool = True) -> tuple[list[str], list[DictRow]]:
        """Run `command`; the result's column names (from its description) and rows."""
        import psycopg

        async with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None or self._conn.closed
                if self._conn is None or self._conn.closed:
                    self._conn = await self._open()
                conn = self._conn
                try:
                    with anyio.fail_after(self._command_timeout_s):
                        cursor = await conn.execute(command)
                        if not cursor.description:
                            return [], []
                        return [column.name for column in cursor.description], await cursor.fetchall()
                except TimeoutError:  # psycopg first tries to cancel the command, for up to a few seconds
                    await self._drop()
                    raise AdminError(f"{command} got no answer within {self._command_timeout_s:g} s") from None
                except psycopg.Error as exc:
                    # PgBouncer reports console errors as 08P01, an OperationalError to psycopg: tell a refused
                    # command from a broken connection by the connection's state instead.
                    if not (conn.broken or conn.closed):
                        primary = exc.diag.message_primary or str(exc)
                        raise AdminCommandError(self._safe(f"{command} failed: {primary}"), exc.sqlstate) from None
                    await self._drop()
                    if fresh or not retry or attempt == 2:  # a reused connection may just have gone stale
                        raise AdminConnectError(self._safe(f"{command} failed: connection lost: {exc}")) from None
        raise AssertionError("unreachable")

    async def _rows(self, command: str, model: type[R]) -> list[R]:
        columns, rows = await self._run(command)
        return model.from_rows(command, columns, rows)

    async def show(self, command: str, model: type[R]) -> list[R]:
        """A SHOW command's rows as `model` (read by column name); `command` is a constant, never user text."""
        return await self._rows(command, model)

    async def run_command(self, command: str) -> None:
        """A console command whose arguments the caller quoted (`quote_ident`); sent once, never retried."""
        await self._run(command, retry=False)

    async def show_pools(self) -> list[ShowPoolsRow]:
        return await self._rows("SHOW POOLS", ShowPoolsRow)

    async def show_databases(self) -> list[ShowDatabasesRow]:
        return await self._rows("SHOW DATABASES", ShowDatabasesRow)

    async def show_stats(self) -> list[ShowStatsRow]:
        return await self._rows("SHOW STATS", ShowStatsRow)

    async def show_version(self) -> str:
        columns, rows = await self._run("SHOW VERSION")
        if "version" not in columns:
            raise AdminColumnError("SHOW VERSION", "version")
        return str(rows[0]["version"]) if rows else ""

    async def resume(self, db: str) -> None:
        await self._run(f"RESUME {quote_ident(db)}", retry=False)  # a repeated RESUME fails: "not paused"

    async def reconnect(self, db: str) -> None:
        await self._run(f"RECONNECT {quote_ident(db)}")

    async def reload(self) -> None:
        """Send RELOAD. PgBouncer answers OK even when the file failed to load: verify with SHOW DATABASES."""
        await self._run("RELOAD")

    async def pause(self, db: str, timeout_s: float) -> float:
        """PAUSE `db`, waiting at most `timeout_s` for its server connections; return the seconds waited.

        PgBouncer keeps a PAUSE that timed out in force (new clients hang), so on timeout or cancellation
        this sends RESUME before raising `PauseTimedOut` (or re-raising the cancellation).
        """
        import psycopg

        command = f"PAUSE {quote_ident(db)}"
        pauser = await self._open()  # its own connection: the console answers PAUSE only once paused
        started, done = time.monotonic(), False
        try:
            with anyio.move_on_after(timeout_s):
                await _simple_query(pauser, command)
                done = True
        except AdminCommandError:
            await pauser.close()
            raise
        except psycopg.Error as exc:
            with anyio.CancelScope(shield=True):
                await self._undo_pause(pauser, db)
            raise AdminConnectError(self._safe(f"{command} failed: connection lost: {exc}")) from None
        except BaseException:  # cancelled: leave nothing paused behind, then let the cancellation through
            with anyio.CancelScope(shield=True):
                await self._undo_pause(pauser, db)
            raise
        if not done:
            with anyio.CancelScope(shield=True):
                pools, resumed = await self._undo_pause(pauser, db)
            raise PauseTimedOut(db, timeout_s, pools, resumed)
        await pauser.close()
        return time.monotonic() - started

    async def wait_close(self, db: str | None, timeout_s: float) -> bool:
        """WAIT_CLOSE `db` (every database when None) on its own connection: True when it returned within
        `timeout_s`. It waits only for server connections marked `close_needed` (by RECONNECT or a RELOAD that
        changed a database), returning at once when there are none (1.18 and 1.24 alike). On timeout or
        cancellation the connection is dropped, which ends PgBouncer's wait and changes nothing else."""
        import psycopg

        command = "WAIT_CLOSE" if db is None else f"WAIT_CLOSE {quote_ident(db)}"
        waiter = await self._open()
        try:
            with anyio.move_on_after(timeout_s):
                await _simple_query(waiter, command)
                return True
            return False
        except psycopg.Error as exc:
            raise AdminConnectError(self._safe(f"{command} failed: connection lost: {exc}")) from None
        finally:
            waiter.pgconn.finish()  # not psycopg's close: that would first wait for the pending answer

    async def _undo_pause(self, pauser: AsyncConnection[DictRow], db: str) -> tuple[list[ShowPoolsRow], bool]:
        # Drop the waiting connection without psycopg's cancel path: PgBouncer 1.18 answers a cancel of a
        # console PAUSE with nothing, and psycopg would wait for an answer before giving up.
        pauser.pgconn.finish()
        pools: list[ShowPoolsRow] = []
        with anyio.move_on_after(self._command_timeout_s):
            try:
                pools = [p for p in await self.show_pools() if p.database == db]
                await self.resume(db)
                return pools, True
            except AdminCommandError as exc:
                return pools, "is not paused" in str(exc)  # PAUSE never took hold
            except AdminError:
                pass
        return pools, False

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def __aenter__(self) -> AdminConsole:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


@functools.cache
def _lenient_text_loader() -> type[Loader]:
    """A text loader that never raises: PgBouncer passes names from pgbouncer.ini through as bytes, and one line
    in Latin-1 would otherwise make every SHOW DATABASES fail (a raw UnicodeDecodeError, even right after an
    edit). Undecodable bytes show as `\\xe9`."""
    from psycopg.adapt import Loader

    class LenientText(Loader):
        def load(self, data: Buffer) -> str:
            return bytes(data).decode("utf-8", "backslashreplace")

    return LenientText


async def _simple_query(conn: AsyncConnection[DictRow], command: str) -> None:
    """Run `command` with libpq calls we can abandon at any await (psycopg's would cancel, then wait)."""
    from psycopg import pq

    pgconn = conn.pgconn
    pgconn.send_query(command.encode("utf-8"))
    while pgconn.flush():
        await anyio.wait_writable(pgconn.socket)
    error: str | None = None
    while True:
        while pgconn.is_busy():
            await anyio.wait_readable(pgconn.socket)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        if result.status == pq.ExecStatus.FATAL_ERROR:
            message = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"unknown error"
            error = message.decode("utf-8", "replace")
    if error is not None:
        raise AdminCommandError(f"{command} failed: {error}")
