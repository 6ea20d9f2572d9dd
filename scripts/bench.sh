#!/usr/bin/env bash
# One command for the benchmarks: install what is missing, then measure ours side by side
# with tipg, nginx and ogr2ogr and print the ratio table (options: see bench/run.py;
# --short for a few minutes, --dry-run to check the harness).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-bench.sh
exec .venv/bin/python -m bench "$@"
