#!/bin/sh
# Install PgBouncer (Debian 12's 1.18) and the PostgreSQL 15 server binaries for tests/pgbouncer, when missing.
# Idempotent. It never fails the build: it says what happened (nothing when everything is there, one line after
# an install, the tail of apt's log when apt failed), and the PgBouncer tests then skip with a reason (or fail,
# when CI=true, so a broken runner is noticed).
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

missing() {
    out=""
    have_pgbouncer || out="pgbouncer"
    have_pg_server || out="$out${out:+ }postgresql-15"
    echo "$out"
}

warn() {
    echo "!! install-pgbouncer: $1" >&2
    echo "!! The PgBouncer tests cannot run against a real PgBouncer here. Install by hand: apt-get install -y $(missing)" >&2
}

[ -z "$(missing)" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    warn "missing $(missing) and this is not root"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    warn "missing $(missing) and apt-get is not available"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
LOG="${TMPDIR:-/tmp}/poolpilot-install-pgbouncer.log"
: >"$LOG"
install() {
    echo "== apt-get install $*" >>"$LOG"
    apt-get install -y --no-install-recommends "$@" >>"$LOG" 2>&1
}
try_install() {
    # postgresql-15 is Debian 12's server; elsewhere fall back to the distribution's default version.
    install pgbouncer postgresql-15 || install pgbouncer postgresql
}
# The package lists may already be there: try before updating. An update that reports an error (a broken
# third-party source) does not stop the install from Debian's own archive, so its status is only logged.
if ! try_install; then
    echo "== apt-get update" >>"$LOG"
    apt-get update >>"$LOG" 2>&1 || echo "== apt-get update exited $?" >>"$LOG"
    try_install
fi
still="$(missing)"
if [ -z "$still" ]; then
    # The packaged services may start on install; the tests run their own pair on free ports.
    echo "install-pgbouncer: installed pgbouncer and the PostgreSQL server (apt log: $LOG)"
    exit 0
fi
warn "still missing after apt-get: $still; last lines of $LOG:"
tail -n 20 "$LOG" | sed 's/^/!!   /' >&2
exit 0
