"""The real PostgreSQL + PgBouncer pair of tests/pgbouncer, for the overview's PgBouncer rows."""

from tests.pgbouncer.conftest import db_name, local_pgbouncer

__all__ = ["db_name", "local_pgbouncer"]
