#!/usr/bin/env bash
# Install everything the suite needs (venv, dev extras, PgBouncer + PostgreSQL when root), then lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${POOLPILOT_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
bash .ci/install-pgbouncer.sh || true
echo "== ruff check"; "$VENV/bin/ruff" check .
echo "== ruff format --check"; "$VENV/bin/ruff" format --check .
echo "== mypy --strict"; VENV="$VENV" ./scripts/typecheck.sh
echo "== pytest"; "$VENV/bin/pytest" "$@"
