#!/usr/bin/env bash
# First command of the README: install, create the database, load the demo data, serve.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/geo-service demo "$@"
