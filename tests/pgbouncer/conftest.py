"""One real PostgreSQL + PgBouncer pair per PgBouncer version for the whole session (tools/pgbouncer/local.py).

The matrix: Debian 12's binary (1.18) and 1.24 built from Debian 13's source package by .ci/build-pgbouncer.sh
into `${XDG_CACHE_HOME:-~/.cache}/poolpilot/pgbouncer-<version>`. Every test that uses the pair runs once per
version (ids `pgbouncer-1.18`, `pgbouncer-1.24`); pytest groups them by version, so each pair starts once and
stops before the next one starts. With CI=true a version that cannot run fails its tests; elsewhere they skip.
"""

import os
import re
import subprocess
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from poolpilot.tools.pgbouncer.admin import AdminConsole
from poolpilot.tools.pgbouncer.local import LocalPair, find_pg_bindir, find_pgbouncer, install_command, start_local_pair

PGBOUNCER_VERSIONS = ("1.18", "1.24")
_HOW = {
    "1.18": "install Debian 12's package: `apt-get install -y pgbouncer` (or run .ci/install-pgbouncer.sh as root)",
    "1.24": "build it from Debian 13's source package: `.ci/build-pgbouncer.sh` (cached)",
}


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "poolpilot"


def _version_of(binary: Path) -> str | None:
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    found = re.match(r"PgBouncer (\d+\.\d+)", done.stdout)
    return found.group(1) if found else None


def pgbouncer_binary(version: str) -> tuple[Path | None, list[str]]:
    """The first PgBouncer binary whose major.minor is `version`: the system's, then the cached builds (newest
    first); and what else was found, for the reason when there is none."""
    candidates = [p for p in (find_pgbouncer(), Path("/usr/sbin/pgbouncer")) if p is not None]
    builds = _cache_dir().glob(f"pgbouncer-{version}.*/bin/pgbouncer")
    candidates += sorted(builds, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)], reverse=True)
    seen: list[str] = []
    for binary in dict.fromkeys(candidates):
        found = _version_of(binary) if os.access(binary, os.X_OK) else None
        if found == version:
            return binary, seen
        if found is not None:
            seen.append(f"{binary} is {found}")
    return None, seen


def _not_run(version: str, why: str) -> None:
    reason = f"!!! PgBouncer {version} tests NOT RUN: {why} !!!"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)  # in CI a missing version is a broken runner, not a reason to pass
    warnings.warn(reason, stacklevel=2)
    pytest.skip(reason)


@pytest.fixture(scope="session", params=PGBOUNCER_VERSIONS, ids=[f"pgbouncer-{v}" for v in PGBOUNCER_VERSIONS])
def local_pgbouncer(request: pytest.FixtureRequest) -> Iterator[LocalPair]:
    """A running pair on one PgBouncer version; sync, so it needs no session-scoped event loop."""
    version: str = request.param
    if find_pg_bindir() is None:
        _not_run(version, f"the PostgreSQL server is missing: `{install_command(['postgresql-15'])}`")
    binary, seen = pgbouncer_binary(version)
    if binary is None:
        found = f" (found: {'; '.join(seen)})" if seen else ""
        _not_run(version, f"no PgBouncer {version} binary{found}; {_HOW[version]}")
    assert binary is not None
    pair = start_local_pair(pgbouncer=binary)
    yield pair
    pair.stop()


@pytest.fixture
async def admin(local_pgbouncer: LocalPair) -> AsyncIterator[AdminConsole]:
    async with AdminConsole(local_pgbouncer.admin_dsn) as console:
        yield console


@pytest.fixture
def db_name() -> str:
    """A database name no other test (or earlier run against the same pair) uses."""
    return f"pp_{uuid.uuid4().hex[:10]}"
