#!/usr/bin/env bash
# The whole test run: lint, then the suite on PostgreSQL + Redis, then the registry protocol tests
# and one real push/pull on SQLite with the embedded defaults (what `make run` users get).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

.venv/bin/ruff check .
.venv/bin/lint-imports  # one-way layers: pyproject.toml [tool.importlinter], docs/layers.md

run_suites() {
  local status=0
  echo "== Suite on PostgreSQL and Redis"
  DATABASE_URL="$HUB_TEST_POSTGRES_URL" $PY -m pytest -p no:cacheprovider "$@" || status=$?
  echo "== Embedded defaults: SQLite, database cache, filesystem broker"
  env -u REDIS_URL DATABASE_URL= $PY -m pytest -p no:cacheprovider -m sqlite "$@" || status=$?
  return $status
}
export -f run_suites
export PY
bash tests/services.sh bash -c 'run_suites "$@"' _ "$@"
