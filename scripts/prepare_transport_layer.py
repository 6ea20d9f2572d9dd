"""Make the roads and railways layer of the map (data/vn/transport/) from the national
transport network in the shared data (CTU-SematX LegoCity, opendata/giaothong, CC BY-SA 4.0).

Usage: .venv/bin/python scripts/prepare_transport_layer.py --shared ../shared/data

Only what the map draws is kept: each line's name, kind (main road, secondary road,
railway) and class, with coordinates simplified by 0.0003° (about 30 m, below a pixel up to
zoom 11) and rounded to 5 decimals. The output is deterministic; it keeps the source's
licence (share-alike), which is copied beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import shapely
from shapely.geometry import mapping, shape

OUT = Path(__file__).resolve().parent.parent / "data" / "vn" / "transport"
SOURCE = "vn/transport/giaothong.geojson"
TOLERANCE = 0.0003
KINDS = {"Đường chính": "main", "Đường thứ cấp": "secondary", "Đường sắt": "railway"}

README = """\
# data/vn/transport — national roads and railways (map layer)

`roads-railways.geojson` is drawn by the map viewer as the "National roads and railways"
layer. It was made by `scripts/prepare_transport_layer.py` from the shared data's
`vn/transport/giaothong.geojson` (sha256 `{sha}`).

* **Source:** GitHub `CTU-SematX/LegoCity`, commit `a1aabc7dc5faca80b31c413e782ee93188140ebf`,
  path `opendata/giaothong/`. The upstream origin of the geometry is not stated.
* **Licence: CC BY-SA 4.0** (`LICENSE`, copied from the source folder; its README says
  CC BY 4.0, the stricter licence is kept). Attribution: "CTU-SematX LegoCity,
  opendata/giaothong". This derived file is shared under the same licence; the map shows
  the attribution whenever the layer is on.
* **What was changed:** properties reduced to `name` (`ten`), `kind` (`loai_duong`:
  main / secondary / railway) and `class` (`cap_duong`, as written upstream); lines simplified
  with a tolerance of {tolerance}° (Douglas–Peucker, shapely) and coordinates rounded to 5
  decimals; features sorted by their upstream `gid`.
* **Counts:** {features} features ({main} main roads, {secondary} secondary roads, {railway}
  railways), {vertices:,} vertices (upstream: {upstream_vertices:,}). CRS: lon/lat WGS 84.
* **Quirks (upstream):** segments split at arbitrary points; names repeat; mainland only (no
  islands); no streets inside towns.
"""


def build(shared: Path) -> None:
    """Write the layer, its licence and its README."""
    source = shared / SOURCE
    data = json.loads(source.read_text(encoding="utf-8"))
    features = []
    counts = {"main": 0, "secondary": 0, "railway": 0}
    vertices = upstream = 0
    for feature in sorted(data["features"], key=lambda f: f["properties"]["gid"]):
        props = feature["properties"]
        geom = shape(feature["geometry"])
        upstream += shapely.get_num_coordinates(geom)
        simple = shapely.set_precision(geom.simplify(TOLERANCE), 1e-5)
        if simple.is_empty:
            continue
        vertices += shapely.get_num_coordinates(simple)
        kind = KINDS.get(props.get("loai_duong"), "secondary")
        counts[kind] += 1
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "name": props.get("ten"),
                    "kind": kind,
                    "class": props.get("cap_duong"),
                },
                "geometry": mapping(simple),
            }
        )
    OUT.mkdir(parents=True, exist_ok=True)
    collection = {"type": "FeatureCollection", "features": features}
    text = json.dumps(collection, ensure_ascii=False, separators=(",", ":"))
    (OUT / "roads-railways.geojson").write_text(text + "\n", encoding="utf-8")
    shutil.copyfile(source.parent / "LICENSE", OUT / "LICENSE")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    (OUT / "README.md").write_text(
        README.format(
            sha=sha,
            tolerance=TOLERANCE,
            features=len(features),
            vertices=vertices,
            upstream_vertices=upstream,
            **counts,
        ),
        encoding="utf-8",
    )
    print(f"{len(features)} features, {vertices} vertices (from {upstream}), {len(text):,} bytes")


def main() -> None:
    """Parse the arguments and build."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    build(parser.parse_args().shared.resolve())


if __name__ == "__main__":
    main()
