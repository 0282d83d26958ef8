#!/usr/bin/env bash
# Build PgBouncer from Debian 13 (trixie)'s source package into the user's cache, once per version:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/poolpilot/pgbouncer-<version>/bin/pgbouncer
# The suite runs its PgBouncer tests against this build beside the Debian 12 binary (1.18).
#
# The system's apt state is left alone: the trixie deb-src entry lives in a private sources file with its own
# lists, cache and status dirs under the cache dir. Only the build dependencies are installed system-wide, and
# only when missing (which needs root). Quiet on success; on failure it prints the tail of its log and exits 1.
#
# Usage: .ci/build-pgbouncer.sh [--print-prefix]   (POOLPILOT_PGBOUNCER_SOURCE_VERSION pins the version; by
# default the version trixie's index names, so a cached build is reused without touching the network only when
# the version is pinned or the previous index is still there.)
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/poolpilot"
SUITE="${POOLPILOT_PGBOUNCER_SUITE:-trixie}"
WORK="$CACHE/pgbouncer-src"
LOG="$CACHE/build-pgbouncer.log"
mkdir -p "$CACHE"
: >"$LOG"

fail() {
    echo "build-pgbouncer: $1 (log: $LOG)" >&2
    tail -n 30 "$LOG" | sed 's/^/    /' >&2
    exit 1
}

run() {  # a step's output goes to the log; a failing step shows its tail
    local what="$1"
    shift
    echo "== $what: $*" >>"$LOG"
    "$@" >>"$LOG" 2>&1 || fail "$what failed"
}

# The machine's own Debian archive URIs (deb822 .sources or one-line .list), not the security/updates ones.
debian_uris() {
    {
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] && sed -n 's/^URIs:[[:space:]]*//p' "$f" | tr ' ' '\n'
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] && awk '$1 == "deb" || $1 == "deb-src" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
        done
    } | grep -E '/debian/?$' | sort -u
}

APT_DIR="$WORK/apt"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/sources.list.d"
uris="$(debian_uris || true)"
[ -n "$uris" ] || uris="http://deb.debian.org/debian"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
{
    echo "Types: deb-src"
    echo "URIs: $(echo "$uris" | tr '\n' ' ')"
    echo "Suites: $SUITE"
    echo "Components: main"
    [ -f "$keyring" ] && echo "Signed-By: $keyring"
} >"$APT_DIR/sources.list.d/trixie-src.sources"
APT_OPTS=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$APT_DIR/sources.list.d"
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache=$APT_DIR/cache"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
)

# The version: pinned, or what trixie's source index says (fetched at most once a day).
version="${POOLPILOT_PGBOUNCER_SOURCE_VERSION:-}"
if [ -z "$version" ]; then
    stamp="$APT_DIR/lists/.updated"
    if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
        run "apt-get update ($SUITE deb-src)" apt-get "${APT_OPTS[@]}" update
        touch "$stamp"
    fi
    full="$(apt-cache "${APT_OPTS[@]}" showsrc pgbouncer 2>>"$LOG" | sed -n 's/^Version: //p' | sort -V | tail -n 1)"
    [ -n "$full" ] || fail "no pgbouncer source package in $SUITE"
    version="${full#*:}"
    version="${version%%-*}"  # upstream version: 1.24.1-1 -> 1.24.1
fi
PREFIX="$CACHE/pgbouncer-$version"
if [ "${1:-}" = "--print-prefix" ]; then
    echo "$PREFIX"
    exit 0
fi
if [ -x "$PREFIX/bin/pgbouncer" ] && "$PREFIX/bin/pgbouncer" --version >/dev/null 2>&1; then
    echo "build-pgbouncer: PgBouncer $version cached at $PREFIX"
    exit 0
fi

started=$(date +%s)
# Build dependencies, when missing (a fresh runner is root; elsewhere say what to install).
need=()
for pkg in libevent-dev libc-ares-dev libssl-dev pkgconf make gcc dpkg-dev; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "build-pgbouncer: missing ${need[*]}; run as root: apt-get install -y ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${need[@]}" >>"$LOG" 2>&1; then
        run "apt-get update (system)" apt-get update
        run "apt-get install ${need[*]}" apt-get install -y --no-install-recommends "${need[@]}"
    fi
fi

[ -f "$APT_DIR/lists/.updated" ] || { run "apt-get update ($SUITE deb-src)" apt-get "${APT_OPTS[@]}" update; touch "$APT_DIR/lists/.updated"; }
SRC="$WORK/build-$version"
rm -rf "$SRC"
mkdir -p "$SRC"
(cd "$SRC" && run "apt-get source pgbouncer=$version" apt-get "${APT_OPTS[@]}" source --download-only "pgbouncer") \
    || exit 1
dsc="$(ls "$SRC"/pgbouncer_"$version"-*.dsc 2>/dev/null | head -n 1 || true)"
[ -n "$dsc" ] || fail "the source package in $SUITE is not version $version"
run "dpkg-source -x" dpkg-source -x "$dsc" "$SRC/tree"
cd "$SRC/tree"
run "configure" ./configure --prefix="$PREFIX" --without-pam --without-systemd
run "make" make -j2
run "make install" make install
"$PREFIX/bin/pgbouncer" --version >>"$LOG" 2>&1 || fail "the built pgbouncer does not run"
cd "$CACHE"
rm -rf "$SRC"
echo "build-pgbouncer: PgBouncer $version built in $(($(date +%s) - started)) s at $PREFIX"
