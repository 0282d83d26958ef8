#!/bin/sh
# Install PgBouncer and the PostgreSQL 15 server binaries for tests/pgbouncer, when missing.
# Idempotent and quiet. It never fails the build: when it cannot install, it prints a loud warning and
# the PgBouncer tests then skip with a reason (or fail, when CI=true, so a broken runner is noticed).
set -u

have_pg_server() {
    for dir in "$(pg_config --bindir 2>/dev/null)" /usr/lib/postgresql/*/bin; do
        if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] && [ -x "$dir/psql" ]; then
            return 0
        fi
    done
    return 1
}

have_pgbouncer() {
    command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]
}

warn() {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!! WARNING: $1" >&2
    echo "!! The PgBouncer tests cannot run against a real PgBouncer here." >&2
    echo "!! Install by hand: apt-get install -y pgbouncer postgresql-15" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}

if have_pgbouncer && have_pg_server; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    warn "pgbouncer or the PostgreSQL server binaries are missing and this is not root"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    warn "pgbouncer or the PostgreSQL server binaries are missing and apt-get is not available"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
install() {
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}
# postgresql-15 is Debian 12's server; elsewhere fall back to the distribution's default version.
if apt-get update -qq >/dev/null 2>&1 \
    && { install pgbouncer postgresql-15 || install pgbouncer postgresql; } \
    && have_pgbouncer && have_pg_server; then
    # The packaged services may start on install; the tests run their own pair on free ports.
    exit 0
fi
warn "apt-get could not install pgbouncer postgresql-15"
exit 0
