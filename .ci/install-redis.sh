#!/bin/sh
# Install redis-server (Debian's package, Redis 7) for the shared-store tests, when missing.
# Idempotent and quiet. It never fails the build: when it cannot install, it prints a loud warning and the
# store tests then skip with a reason (or fail, when CI=true, so a broken runner is noticed).
set -u

have_redis() {
    command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]
}

warn() {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!! WARNING: $1" >&2
    echo "!! The shared-store tests cannot run against a real Redis here." >&2
    echo "!! Install by hand: apt-get install -y redis-server" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}

if have_redis; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    warn "redis-server is missing and this is not root"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    warn "redis-server is missing and apt-get is not available"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# The packaged service may start on install (port 6379); the tests run their own on free ports.
if { apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1; }; } \
    && have_redis; then
    exit 0
fi
warn "apt-get could not install redis-server"
exit 0
