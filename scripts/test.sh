#!/usr/bin/env bash
# Second command of the README: install what is missing, then lint, type-check and test.
# The tests start their own throwaway PostgreSQL/PostGIS cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
SOURCES=(geo_core boundaries indicators tilecache geo_service tests scripts bench)
echo "== ruff"
.venv/bin/ruff check "${SOURCES[@]}"
.venv/bin/ruff format --check "${SOURCES[@]}"
echo "== import layers"
.venv/bin/lint-imports
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
# (in parallel: one PostGIS cluster per worker; at most 4, the demo load is per worker)
exec .venv/bin/pytest -n auto --maxprocesses 4 --durations=25 "$@"
