#!/usr/bin/env bash
# Install what the service and its tests need: system packages, a virtualenv, Python deps.
# Safe to re-run; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# wrk: the benchmark harness's self-test (tests/test_bench_harness.py) drives stub servers with it;
# nginx (+ its brotli_static module): the tests of the directory tile cache served by nginx
SYSTEM_PACKAGES=(postgresql-postgis postgresql-contrib redis-server chromium python3-venv wrk
                 nginx libnginx-mod-http-brotli-static gdal-bin fonts-dejavu-core pgbouncer)
# more, e.g. for the benchmarks: EXTRA_SYSTEM_PACKAGES="gdal-bin" scripts/setup.sh
# shellcheck disable=SC2206
SYSTEM_PACKAGES+=(${EXTRA_SYSTEM_PACKAGES:-})

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# Reinstall only when the dependency list changed.
stamp=.venv/.deps-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]"
    rm -f .venv/.deps-*
    touch "$stamp"
fi
