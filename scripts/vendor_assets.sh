#!/usr/bin/env bash
# Vendor the map viewer's front-end assets (Leaflet, Leaflet.draw, Leaflet.VectorGrid) from npm
# into geo_service/static/vendor/, so the viewer works with no internet; and the two web map
# libraries the interoperability tests drive (MapLibre GL JS, OpenLayers) into tests/vendor/,
# which the service never serves (they name internet hosts the pages must not reach).
#
# Idempotent: the vendor folder is rebuilt from scratch in a temp dir and swapped in.
# Each tarball is checked against the sha512 pinned below (and against `npm view`).
# Needs: npm (and node), tar.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/geo_service/static/vendor"
TEST_DEST="$ROOT/tests/vendor"

# name, exact version, npm dist.integrity (pinned: a changed tarball fails the script)
PACKAGES=(
  "leaflet 1.9.4 sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA=="
  "leaflet-draw 1.0.4 sha512-rsQ6saQO5ST5Aj6XRFylr5zvarWgzWnrg46zQ1MEOEIHsppdC/8hnN8qMoFvACsPvTioAuysya/TVtog15tyAQ=="
  "leaflet.vectorgrid 1.3.0 sha512-kWmj1pKM+MVdo/7Mg5zsB3YrGZvo/uIuiANV9MvWUFOG+Y2xAJzrteDhoIcCgTjHSSRJ36xdeGdIQVhuWjnCZw=="
  "maplibre-gl 4.7.1 sha512-lgL7XpIwsgICiL82ITplfS7IGwrB1OJIw/pCvprDp2dhmSSEBgmPzYRvwYYYvJGJD7fxUv1Tvpih4nZ6VrLuaA=="
  "ol 10.11.0 sha512-OJ+lrx7kx/1O7Xx18Ff9QkVnwZIEL0OuhJQSy2sYgzzDvyZ2qHvuZEGAajbSstUyBwaS1OtQ4RWnY84tRMDdqg=="
)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
OUT="$WORK/vendor"
TEST_OUT="$WORK/test-vendor"
mkdir -p "$OUT" "$TEST_OUT"

npm_q() { npm --loglevel=error "$@" 2>/dev/null; }

sha512_of() {
  node -e 'const c=require("crypto"),f=require("fs");
    process.stdout.write("sha512-"+c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$1"
}

declare -A LICENSE_OF INTEGRITY_OF
for entry in "${PACKAGES[@]}"; do
  read -r name version pinned <<<"$entry"
  registry="$(npm_q view "$name@$version" dist.integrity)"
  if [[ "$registry" != "$pinned" ]]; then
    echo "error: $name@$version: registry integrity $registry != pinned $pinned" >&2
    exit 1
  fi
  (cd "$WORK" && npm_q pack "$name@$version" >/dev/null)
  tarball="$WORK/$name-$version.tgz"
  actual="$(sha512_of "$tarball")"
  if [[ "$actual" != "$pinned" ]]; then
    echo "error: $tarball: sha512 $actual != pinned $pinned" >&2
    exit 1
  fi
  mkdir -p "$WORK/src/$name"
  tar -xzf "$tarball" -C "$WORK/src/$name"
  LICENSE_OF[$name]="$(npm_q view "$name@$version" license)"
  INTEGRITY_OF[$name]="$pinned"
done

# --- Leaflet: JS, CSS, the images its CSS and JS refer to (images/ relative to the CSS), licence
src="$WORK/src/leaflet/package"
mkdir -p "$OUT/leaflet/images"
cp "$src/dist/leaflet.js" "$src/dist/leaflet.css" "$src/LICENSE" "$OUT/leaflet/"
cp "$src/dist/images/"{layers.png,layers-2x.png,marker-icon.png,marker-icon-2x.png,marker-shadow.png} \
  "$OUT/leaflet/images/"

# --- Leaflet.draw: JS, CSS, the spritesheets its CSS refers to.
# The npm tarball ships no licence file: package.json says "MIT" and the JS banner carries the
# copyright line, so LICENSE is that line plus the standard MIT text.
src="$WORK/src/leaflet-draw/package"
mkdir -p "$OUT/leaflet-draw/images"
cp "$src/dist/leaflet.draw.js" "$src/dist/leaflet.draw.css" "$OUT/leaflet-draw/"
cp "$src/dist/images/"{spritesheet.png,spritesheet-2x.png,spritesheet.svg} "$OUT/leaflet-draw/images/"
copyright="$(grep -m1 -o '(c) 2012-[0-9]*, .*' "$src/dist/leaflet.draw.js")"
cat >"$OUT/leaflet-draw/LICENSE" <<EOF
Leaflet.draw 1.0.4 -- MIT License ("license": "MIT" in the npm package.json).
The npm tarball ships no licence file; the copyright line below is the one in the
banner of dist/leaflet.draw.js, followed by the standard MIT licence text.

Copyright $copyright

Permission is hereby granted, free of charge, to any person obtaining
a copy of this software and associated documentation files (the
"Software"), to deal in the Software without restriction, including
without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to
permit persons to whom the Software is furnished to do so, subject to
the following conditions:

The above copyright notice and this permission notice shall be
included in all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE
LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION
OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
EOF

# --- Leaflet.VectorGrid: the bundled minified build (includes pbf / vector-tile decoders).
# The npm tarball ships no licence file; the licence is the "Legalese" section of its README.md,
# copied verbatim.
src="$WORK/src/leaflet.vectorgrid/package"
mkdir -p "$OUT/leaflet.vectorgrid"
cp "$src/dist/Leaflet.VectorGrid.bundled.min.js" "$OUT/leaflet.vectorgrid/"
awk 'found {print} /^## Legalese/ {found=1}' "$src/README.md" >"$OUT/leaflet.vectorgrid/LICENSE"
grep -q 'BEER-WARE' "$OUT/leaflet.vectorgrid/LICENSE" || { echo "error: no VectorGrid licence" >&2; exit 1; }

# --- MapLibre GL JS: the production build, its CSS and licence (test-only: the interoperability
# test's cross-origin page uses it, as web developers point MapLibre at the TileJSON)
src="$WORK/src/maplibre-gl/package"
mkdir -p "$TEST_OUT/maplibre-gl"
cp "$src/dist/maplibre-gl.js" "$src/dist/maplibre-gl.css" "$src/LICENSE.txt" "$TEST_OUT/maplibre-gl/"

# --- OpenLayers: the full build and its CSS (likewise test-only)
src="$WORK/src/ol/package"
mkdir -p "$TEST_OUT/ol"
cp "$src/dist/ol.js" "$src/ol.css" "$src/LICENSE.md" "$TEST_OUT/ol/"

# --- No stylesheet may load anything from another host.
if grep -EHno 'url\(\s*["'\'']?\s*(https?:)?//' "$OUT"/*/*.css; then
  echo "error: a vendored stylesheet refers to another host" >&2
  exit 1
fi

# --- README
files_of() { (cd "$2/$1" && find . -type f ! -name README.md | sed 's|^\./||' | sort |
  while read -r f; do printf '`%s/%s` (%s B)<br>' "$1" "$f" "$(wc -c <"$f")"; done) | sed 's|<br>$||'; }
# One table row per package vendored into folder $1.
table_rows() {
  for entry in "${PACKAGES[@]}"; do
    read -r name version _ <<<"$entry"
    [[ -d "$1/$name" ]] || continue
    echo "| $name | $version | \`${INTEGRITY_OF[$name]}\` | ${LICENSE_OF[$name]} | $(files_of "$name" "$1") |"
  done
}
{
  echo "# Vendored front-end assets"
  echo
  echo "Written by \`scripts/vendor_assets.sh\` (do not edit by hand; re-run the script)."
  echo "Served by the service at \`/static/vendor/\`, so the map viewer needs no internet."
  echo "Every file was taken unmodified from the npm tarball, whose sha512 the script checks."
  echo
  echo "| package | version | npm tarball integrity | licence | files |"
  echo "| --- | --- | --- | --- | --- |"
  table_rows "$OUT"
  echo
  echo "Notes"
  echo
  echo "- leaflet-draw: the tarball ships no licence file; \`leaflet-draw/LICENSE\` is the"
  echo "  copyright line of the \`leaflet.draw.js\` banner plus the standard MIT text."
  echo "- leaflet.vectorgrid: the tarball ships no licence file; \`leaflet.vectorgrid/LICENSE\` is"
  echo "  the \"Legalese\" section of the package's README.md, verbatim."
  echo "- \`Leaflet.VectorGrid.bundled.min.js\` also contains third-party code whose licence"
  echo "  texts are not in the VectorGrid tarball: pbf (BSD-3-Clause), vector-tile (BSD-3-Clause),"
  echo "  point-geometry (ISC), ieee754 (BSD-3-Clause), whatwg-fetch (MIT), and, in the slicer's"
  echo "  web worker, geojson-vt (ISC) and topojson-client (BSD-3-Clause)."
  echo "- Leaflet.VectorGrid 1.3.0 with Leaflet 1.9: use \`rendererFactory: L.svg.tile\`; the"
  echo "  canvas renderer calls \`L.DomEvent.fakeStop\`, which Leaflet 1.9 no longer has."
} >"$OUT/README.md"
{
  echo "# Web map libraries for the interoperability tests"
  echo
  echo "Written by \`scripts/vendor_assets.sh\` (do not edit by hand; re-run the script)."
  echo "Never served by the service: tests/test_clients.py serves them from another origin to check"
  echo "that MapLibre GL JS and OpenLayers read the TileJSON / OGC API tilesets and draw the tiles"
  echo "cross-origin. Every file was taken unmodified from the npm tarball, whose sha512 the script checks."
  echo
  echo "| package | version | npm tarball integrity | licence | files |"
  echo "| --- | --- | --- | --- | --- |"
  table_rows "$TEST_OUT"
} >"$TEST_OUT/README.md"

for pair in "$OUT:$DEST" "$TEST_OUT:$TEST_DEST"; do
  from="${pair%%:*}" to="${pair#*:}"
  rm -rf "$to"
  mkdir -p "$(dirname "$to")"
  mv "$from" "$to"
  echo "vendored into ${to#"$ROOT"/}: $(du -sb "$to" | cut -f1) bytes in $(find "$to" -type f | wc -l) files"
done
