#!/usr/bin/env bash
# mypy --strict over the code as it is imported (poolpilot.server, poolpilot.tools), the tests and the benchmarks.
# setuptools installs server/ and tools/ under the poolpilot namespace through an import hook that mypy cannot
# follow, so the same names are laid out here as links in .typecheck/poolpilot/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .typecheck/poolpilot
ln -sfn ../../server .typecheck/poolpilot/server
ln -sfn ../../tools .typecheck/poolpilot/tools
exec "${VENV:-.venv}/bin/mypy" --strict .typecheck/poolpilot tests benchmarks "$@"
