#!/usr/bin/env bash
# Rewrite round-1 import paths (server.x, tools.x) to the installed namespace (poolpilot.server.kernel.x,
# poolpilot.server.shell.x, poolpilot.tools.x) in the files given (default: every tracked .py file).
# Idempotent: already rewritten paths are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
    set -- $(git ls-files '*.py')
fi
kernel='audit|errors|guard|tokens|redact|http|state|config|sandbox|schema|pipeline|provider|locks|store'
shell='cli|commands|doctor|clientconfig|transports|app|registry'
sed -i -E \
    -e "s/(^|[^.A-Za-z0-9_])server\.($kernel)\b/\1poolpilot.server.kernel.\2/g" \
    -e "s/(^|[^.A-Za-z0-9_])server\.($shell)\b/\1poolpilot.server.shell.\2/g" \
    -e "s/(^|[^.A-Za-z0-9_])tools\.fleet\b/\1tools.pools/g" \
    -e "s/(^|[^.A-Za-z0-9_])tools\.(digitalocean|taurusdb|pgbouncer|pools)\b/\1poolpilot.tools.\2/g" \
    -e "s/^from server import /from poolpilot.server import /" \
    -e "s/^from tools import /from poolpilot.tools import /" \
    -e "s/^import server$/import poolpilot.server/" \
    "$@"
