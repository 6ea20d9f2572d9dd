#!/usr/bin/env bash
# Install what the benchmarks need on top of scripts/setup.sh: nginx (the static-file
# ceiling for cached tiles), ogr2ogr (gdal-bin, the boundary-load peer), wrk (the load
# generator, installed by setup.sh) and tipg in its own virtualenv under
# ~/.cache/geo-service-bench. Safe to re-run; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA_SYSTEM_PACKAGES="nginx gdal-bin ${EXTRA_SYSTEM_PACKAGES:-}" scripts/setup.sh
.venv/bin/python -c "from bench.common import ensure_tipg; ensure_tipg(print)"
