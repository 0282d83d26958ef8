"""One real PostgreSQL + PgBouncer pair for the whole session (tools/pgbouncer/local.py), torn down at the end."""

import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator

import pytest

from poolpilot.tools.pgbouncer.admin import AdminConsole
from poolpilot.tools.pgbouncer.local import LocalPair, install_command, missing_binaries, start_local_pair


@pytest.fixture(scope="session")
def local_pgbouncer() -> Iterator[LocalPair]:
    """A running pair; sync, so it needs no session-scoped event loop."""
    missing = missing_binaries()
    if missing:
        reason = (
            f"!!! PgBouncer tests NOT RUN: {', '.join(missing)} missing. Install with "
            f"`{install_command(missing)}` (or run .ci/install-pgbouncer.sh as root) !!!"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)  # in CI a missing binary is a broken runner, not a reason to pass
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    pair = start_local_pair()
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
