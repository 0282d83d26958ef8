"""A throwaway PostgreSQL + PgBouncer pair on loopback ports, for the test suite and `poolpilot sandbox`.

Everything lives in one temp dir that `LocalPair.stop()` removes. PostgreSQL and PgBouncer both refuse to
run as root, so when we are root every server process runs as the `postgres` system user and the dir is
handed to that user; the generated `pgbouncer.ini` is then owned by `postgres` with mode 0640, the same
shape as a Debian install, so edits made by a root poolpilot exercise the keep-the-owner path.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

PG_PACKAGE = "postgresql-15"
PGBOUNCER_PACKAGE = "pgbouncer"
DEMO_DATABASE = "appdb"
DEMO_USER = "app"
ADMIN_USER = "admin"
STATS_USER = "stats"

_PG_TOOLS = ("initdb", "pg_ctl", "postgres", "psql")
_PGBOUNCER_PLACES = (Path("/usr/sbin/pgbouncer"), Path("/usr/local/sbin/pgbouncer"), Path("/usr/local/bin/pgbouncer"))


class LocalPairError(RuntimeError):
    """The local pair could not be started; the message carries the tail of the server log."""


def find_pg_bindir() -> Path | None:
    """Return a directory holding the PostgreSQL server binaries, newest major version first."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        # pg_config also ships with libpq-dev alone, so its bindir may lack initdb: checked below.
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=10)
        if done.returncode == 0 and done.stdout.strip():
            candidates.append(Path(done.stdout.strip()))
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in _PG_TOOLS):
            return bindir
    return None


def find_pgbouncer() -> Path | None:
    """Return the `pgbouncer` binary: on PATH, or where Debian and source builds put it."""
    found = shutil.which("pgbouncer")
    if found:
        return Path(found)
    return next((p for p in _PGBOUNCER_PLACES if os.access(p, os.X_OK)), None)


def missing_binaries() -> list[str]:
    """Return the Debian packages to install before a local pair can start (empty when ready)."""
    missing = [] if find_pgbouncer() else [PGBOUNCER_PACKAGE]
    return missing + ([] if find_pg_bindir() else [PG_PACKAGE])


def install_command(packages: Sequence[str] = (PGBOUNCER_PACKAGE, PG_PACKAGE)) -> str:
    """Return the command that installs `packages` on Debian or Ubuntu."""
    return "apt-get install -y " + " ".join(packages)


@dataclass(frozen=True)
class _Runner:
    """Runs server binaries as the current user, or as `postgres` when we are root."""

    uid: int | None
    gid: int | None
    cwd: Path

    @classmethod
    def for_current_user(cls, cwd: Path) -> _Runner:
        if os.geteuid() != 0:
            return cls(None, None, cwd)
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise LocalPairError(
                "running as root needs a 'postgres' system user: PostgreSQL and PgBouncer refuse to run as root"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid, cwd)

    def _env(self) -> dict[str, str]:
        # A PGHOST/PGPORT/PGDATA from the caller's shell would point our tools at some other server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def own(self, path: Path, mode: int) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)
        os.chmod(path, mode)

    def reachable(self, binary: Path, root: Path) -> Path:
        """`binary`, or a copy of it in `root` when the server user cannot reach it (a build cached under root's
        home, whose mode is 0700)."""
        if self.uid is None or all(p.stat().st_mode & stat.S_IXOTH for p in (binary, *binary.parents)):
            return binary
        copy = root / binary.name
        shutil.copy2(binary, copy)
        os.chmod(copy, 0o755)
        return copy

    def run(self, args: Sequence[str | Path], timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout_s,
            cwd=self.cwd,  # the caller's cwd (often /root) is unreadable for `postgres`
            env=self._env(),
            user=self.uid,
            group=self.gid,
            extra_groups=[] if self.uid is not None else None,
        )

    def start(self, args: Sequence[str | Path], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as sink:
            return subprocess.Popen(
                [str(a) for a in args],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self._env(),
                user=self.uid,
                group=self.gid,
                extra_groups=[] if self.uid is not None else None,
            )


@dataclass
class LocalPair:
    """A running PostgreSQL + PgBouncer pair; `stop()` kills both and removes `root`."""

    root: Path
    ini_path: Path
    userlist_path: Path
    pg_port: int
    pgbouncer_port: int
    admin_dsn: str = field(repr=False)  # admin console (`admin_users`)
    stats_dsn: str = field(repr=False)  # read-only console (`stats_users`)
    app_dsn: str = field(repr=False)  # the demo database through PgBouncer
    demo_database: str
    pg_bindir: Path
    pgbouncer_binary: Path
    _runner: _Runner = field(repr=False)
    _pgbouncer: subprocess.Popen[bytes] | None = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def dsn(self, database: str, user: str = DEMO_USER) -> str:
        """Return a DSN for `database` through PgBouncer, as the demo user by default."""
        password = _userlist_password(self.userlist_path, user)
        return f"postgresql://{user}:{password}@127.0.0.1:{self.pgbouncer_port}/{database}"

    def pgbouncer_log(self) -> str:
        """Return PgBouncer's log (useful when a RELOAD answered OK but did not load)."""
        return _tail(self.root / "pgbouncer.log", lines=10_000)

    def stop(self) -> None:
        """Stop PgBouncer and PostgreSQL and remove the temp dir; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._pgbouncer is not None:
            _terminate(self._pgbouncer)
        _stop_postgres(self._runner, self.pg_bindir, self.root / "pg")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPair:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_local_pair(*, pgbouncer: Path | None = None, timeout_s: float = 30.0) -> LocalPair:
    """Start PostgreSQL and PgBouncer (`pgbouncer`, or the one `find_pgbouncer` finds) in a new temp dir on free
    loopback ports, or raise `LocalPairError`."""
    pg_bindir, pgbouncer = find_pg_bindir(), pgbouncer or find_pgbouncer()
    if pg_bindir is None or pgbouncer is None:
        missing = missing_binaries()
        raise LocalPairError(f"missing {', '.join(missing)}: run `{install_command(missing)}`")
    root = Path(tempfile.mkdtemp(prefix="poolpilot-pgbouncer-"))
    runner = _Runner.for_current_user(root)
    process: subprocess.Popen[bytes] | None = None
    try:
        runner.own(root, 0o700)
        passwords = {user: secrets.token_hex(16) for user in (DEMO_USER, ADMIN_USER, STATS_USER)}
        pg_port = _start_postgres(runner, pg_bindir, root, passwords[DEMO_USER], timeout_s)
        userlist = root / "userlist.txt"
        _write(runner, userlist, "".join(f'"{u}" "{p}"\n' for u, p in passwords.items()), 0o600)
        ini = root / "pgbouncer.ini"
        binary = runner.reachable(pgbouncer, root)
        process, port = _start_pgbouncer(runner, binary, root, ini, pg_port, timeout_s)
    except BaseException:
        if process is not None:
            _terminate(process)
        _stop_postgres(runner, pg_bindir, root / "pg")
        shutil.rmtree(root, ignore_errors=True)
        raise

    def url(user: str, database: str) -> str:
        return f"postgresql://{user}:{passwords[user]}@127.0.0.1:{port}/{database}"

    return LocalPair(
        root=root,
        ini_path=ini,
        userlist_path=userlist,
        pg_port=pg_port,
        pgbouncer_port=port,
        admin_dsn=url(ADMIN_USER, "pgbouncer"),
        stats_dsn=url(STATS_USER, "pgbouncer"),
        app_dsn=url(DEMO_USER, DEMO_DATABASE),
        demo_database=DEMO_DATABASE,
        pg_bindir=pg_bindir,
        pgbouncer_binary=pgbouncer,
        _runner=runner,
        _pgbouncer=process,
    )


def _start_postgres(runner: _Runner, bindir: Path, root: Path, app_password: str, timeout_s: float) -> int:
    data = root / "pg"
    initdb: list[str | Path] = [bindir / "initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C"]
    initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"]
    done = runner.run(initdb, timeout_s)
    _check(done, "initdb")
    # A throwaway cluster: durability settings off make start-up and the tests fast.
    settings = f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\nfsync = off\n"
    settings += "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(settings)
    for _attempt in range(3):  # the free port may be taken between probing and binding
        port = _free_port()
        pg_ctl: list[str | Path] = [bindir / "pg_ctl", "-D", data, "-l", root / "postgres.log", "-o", f"-p {port}"]
        started = runner.run([*pg_ctl, "-w", "-t", str(int(timeout_s)), "start"], timeout_s + 5)
        if started.returncode == 0:
            break
    else:
        raise LocalPairError("pg_ctl start failed: " + _tail(root / "postgres.log"))
    psql: list[str | Path] = [
        bindir / "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        root,
        "-p",
        str(port),
        "-U",
        "postgres",
    ]
    # The password is hex from `secrets`, so it needs no escaping inside the SQL literal.
    sql = [
        f"CREATE ROLE {DEMO_USER} LOGIN PASSWORD '{app_password}'",
        f"CREATE DATABASE {DEMO_DATABASE} OWNER {DEMO_USER}",
    ]
    created = runner.run([*psql, "-d", "postgres", "-c", sql[0], "-c", sql[1]], timeout_s)
    _check(created, "creating the demo role and database")
    return port


def _start_pgbouncer(
    runner: _Runner, binary: Path, root: Path, ini: Path, pg_port: int, timeout_s: float
) -> tuple[subprocess.Popen[bytes], int]:
    log = root / "pgbouncer.log"
    for _attempt in range(3):
        port = _free_port()
        _write(runner, ini, _ini_text(root, port, pg_port), 0o640)
        process = runner.start([binary, ini], root / "pgbouncer.out")
        if _wait_for_port(process, port, timeout_s):
            return process, port
        _terminate(process)
    raise LocalPairError("PgBouncer did not start: " + _tail(log) + _tail(root / "pgbouncer.out"))


def _ini_text(root: Path, port: int, pg_port: int) -> str:
    return f"""\
;; Generated by poolpilot for a local PostgreSQL + PgBouncer pair.
[databases]
{DEMO_DATABASE} = host=127.0.0.1 port={pg_port} dbname={DEMO_DATABASE}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {root}
auth_type = scram-sha-256
auth_file = {root}/userlist.txt
admin_users = {ADMIN_USER}
stats_users = {STATS_USER}
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
pool_mode = session
default_pool_size = 5
max_client_conn = 200
server_login_retry = 1
ignore_startup_parameters = extra_float_digits
"""


def _write(runner: _Runner, path: Path, text: str, mode: int) -> None:
    path.write_text(text, encoding="utf-8")
    runner.own(path, mode)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(process: subprocess.Popen[bytes], port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: PgBouncer's immediate shutdown
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _stop_postgres(runner: _Runner, bindir: Path, data: Path) -> None:
    if (data / "postmaster.pid").exists():
        runner.run([bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "10", "stop"], 15)


def _check(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        raise LocalPairError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout)[-2000:]}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _userlist_password(userlist: Path, user: str) -> str:
    for line in userlist.read_text(encoding="utf-8").splitlines():
        name, _, password = line.partition(" ")
        if name.strip('"') == user:
            return password.strip('"')
    raise KeyError(user)
