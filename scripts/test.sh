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
# (in parallel: one PostGIS cluster per worker, each a copy of one the demo is loaded into once
# per run; four workers even on two cores: the tests mostly wait on browsers, servers and the
# database — a 2-core run with two workers kept the CPU 47 % busy. Not `--dist loadgroup`:
# its scheduler keys tests by node id, and the fuzz tests' 111 share two, so 109 never ran)
exec .venv/bin/pytest -n 4 --durations=25 "$@"
