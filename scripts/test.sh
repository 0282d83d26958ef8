#!/usr/bin/env bash
# Install everything the suite needs (venv, dev extras, PgBouncer 1.18 + PostgreSQL and Redis when root, PgBouncer
# 1.24 built into the cache), then lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${POOLPILOT_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
sh .ci/install-pgbouncer.sh
# PgBouncer 1.24 from Debian 13's source package, cached per version (tests/pgbouncer runs on 1.18 and 1.24).
# A failed build does not stop lint and types; the 1.24 tests then fail in CI (skip elsewhere) with the reason.
bash .ci/build-pgbouncer.sh || echo "!! PgBouncer 1.24 is not available: its tests will not run" >&2
sh .ci/install-redis.sh  # redis-server for the shared-store tests (tests/server/test_store.py, test_replicas.py)
echo "== ruff check"; "$VENV/bin/ruff" check .
echo "== ruff format --check"; "$VENV/bin/ruff" format --check .
echo "== mypy --strict"; VENV="$VENV" ./scripts/typecheck.sh
echo "== pytest"; "$VENV/bin/pytest" "$@"
