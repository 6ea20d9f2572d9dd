"""Make the demo's line layer for EA delineation (data/vn/lines/) from the national transport
network in the shared data (CTU-SematX LegoCity, opendata/giaothong, CC BY-SA 4.0).

Usage: .venv/bin/python scripts/prepare_lines.py --shared ../shared/data

Each line keeps its name and kind (road or railway, as `geo-service load lines --kind-field
kind` reads it) and its full geometry, with coordinates rounded to 5 decimals (about 1 m):
EA boundaries are cut along these lines, so they are not simplified. The output is
deterministic and keeps the source's licence (share-alike), copied beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "vn" / "lines"
SOURCE = "vn/transport/giaothong.geojson"
KINDS = {"Đường chính": "road", "Đường thứ cấp": "road", "Đường sắt": "railway"}

README = """\
# data/vn/lines — national roads and railways for EA delineation

`transport.geojson` is the line layer the demo loads (`geo-service load lines
data/vn/lines/transport.geojson --kind-field kind`): generated EAs follow these roads and
railways where they cross a commune. It was made by `scripts/prepare_lines.py` from the
shared data's `vn/transport/giaothong.geojson` (sha256 `{sha}`).

* **Source:** GitHub `CTU-SematX/LegoCity`, commit `a1aabc7dc5faca80b31c413e782ee93188140ebf`,
  path `opendata/giaothong/`. The upstream origin of the geometry is not stated.
* **Licence: CC BY-SA 4.0** (`LICENSE`, copied from the source folder; its README says
  CC BY 4.0, the stricter licence is kept). Attribution: "CTU-SematX LegoCity,
  opendata/giaothong". This derived file is shared under the same licence.
* **What was changed:** properties reduced to `name` (`ten`), `kind` (`road` for
  `Đường chính` and `Đường thứ cấp`, `railway` for `Đường sắt`) and `gid`; coordinates
  rounded to 5 decimals (about 1 m), not simplified; features sorted by `gid`.
* **Counts:** {features} features ({road} roads, {railway} railways), {vertices:,} vertices.
  CRS: lon/lat WGS 84 (CRS84).
* **Quirks (upstream):** national and provincial roads only (no streets inside towns: an
  operator loads a street layer of their own for EAs at street scale); segments split at
  arbitrary points; mainland only.
"""


def _round(coords: list) -> list:
    if coords and isinstance(coords[0], int | float):
        return [round(coords[0], 5), round(coords[1], 5)]
    return [_round(c) for c in coords]


def _vertices(coords: list) -> int:
    if coords and isinstance(coords[0], int | float):
        return 1
    return sum(_vertices(c) for c in coords)


def build(shared: Path) -> None:
    """Write the layer, its licence and its README."""
    source = shared / SOURCE
    data = json.loads(source.read_text(encoding="utf-8"))
    features, counts, vertices = [], {"road": 0, "railway": 0}, 0
    for feature in sorted(data["features"], key=lambda f: f["properties"]["gid"]):
        props = feature["properties"]
        kind = KINDS[props["loai_duong"]]
        counts[kind] += 1
        geometry = feature["geometry"]
        vertices += _vertices(geometry["coordinates"])
        features.append(
            {
                "type": "Feature",
                "properties": {"gid": props["gid"], "name": props["ten"], "kind": kind},
                "geometry": {
                    "type": geometry["type"],
                    "coordinates": _round(geometry["coordinates"]),
                },
            }
        )
    OUT.mkdir(parents=True, exist_ok=True)
    layer = {"type": "FeatureCollection", "features": features}
    text = json.dumps(layer, ensure_ascii=False, separators=(",", ":"))
    (OUT / "transport.geojson").write_text(text + "\n", encoding="utf-8")
    shutil.copyfile(source.parent / "LICENSE", OUT / "LICENSE")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    (OUT / "README.md").write_text(
        README.format(sha=sha, features=len(features), vertices=vertices, **counts),
        encoding="utf-8",
    )


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    build(parser.parse_args().shared)
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
