#!/usr/bin/env bash
# Second command of the README: install what is missing, then lint, type-check and test.
# The tests start their own throwaway PostgreSQL/PostGIS cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check geo_service boundaries tilecache tests scripts bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest "$@"
