"""Build the small Vietnam demo data shipped in ``data/vn/`` from the shared third-party data.

Run from the repository root::

    .venv/bin/pip install -e ".[prepare]"      # rdata, to read the R .rda files
    .venv/bin/python scripts/prepare_demo_data.py [--shared ../shared/data] [--out data/vn]

Only MIT / CC BY sources are read. The GPL-3.0 ``vn/dvhcvn/`` folder and the unlicensed
``vn/census2019/`` folder are deliberately never opened. The script is deterministic: running
it twice on the same inputs writes byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import re
import shutil
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rdata
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "data" / "vn"
SCRIPT_NAME = "scripts/prepare_demo_data.py"

EQUAL_AREA_CRS = "EPSG:6933"
COMMUNES_2009_FILE = "communes-2009.geojson.gz"
COORD_DECIMALS = 6
N_OLD_PROVINCES = 63
N_NEW_PROVINCES = 34
N_NEW_COMMUNES = 3321

# Folded 2009-census province name -> GSO code, for names that do not fold to the GSO name.
CENSUS2009_OVERRIDES: dict[str, str] = {
    "thua thien hue": "46",  # GSO list (as of 2025) says "Thành phố Huế" (city since 2025-01-01)
}

# Folded PAPI codebook name -> GSO code, for names that do not fold to the GSO name.
PAPI_OVERRIDES: dict[str, str] = {
    "hanoi": "01",  # GSO: "Thành phố Hà Nội"
    "ho chi minh city": "79",  # GSO: "Thành phố Hồ Chí Minh"
    "thua thien hue": "46",  # GSO: "Thành phố Huế"
}

RELATIONS: dict[str, str] = {"full": "whole", "partial": "partial"}
CROSSWALK_COLUMNS = [
    "from_level",
    "from_code",
    "to_level",
    "to_code",
    "relation",
    "area_share",
    "population_share",
]
# (short name, repository and paths, commit, licence) as documented in shared/data/README.md
SOURCES: list[tuple[str, str, str, str]] = [
    (
        "censusVN2009",
        "`LucieContamin/censusVN2009` (`data/provinces.rda`, `data/communes.rda`)",
        "d9a36767d5bdeb53d76d4497805cc07a4dbbe50c",
        "MIT (`LICENSE-censusVN2009`)",
    ),
    (
        "dvhcvn/20250701",
        "`dvhcvn/20250701` (`mapping/merges.json`, `mapping/splits.json`)",
        "dd94887ce32324380bc5bb0a76fe39867dafc73b",
        "MIT (`LICENSE-dvhcvn-20250701`)",
    ),
    (
        "vietnam-3d-map",
        "`lamngockhuong/vietnam-3d-map` (`public/provinces.json`, `public/wards/`)",
        "dc6095c45a49279d6c24f4de6cf00f4b2b04a90d",
        "MIT (`vietnam-3d-map-2025/LICENSE`)",
    ),
    (
        "PAPI",
        "`hnks-gh/ml-mcdm` (`data/csv/`, `data/codebook/`)",
        "d165721ef5b79e96a1f9daa013612eef57d31734",
        "MIT (`papi/LICENSE`)",
    ),
    (
        "WorldPop",
        "`fa3me/towerintel-viet` (`public/data/vn_ppp_2020_1km_Aggregated.tif`)",
        "58613fa5d040a24258528c7e046ce095fc672092",
        "CC BY 4.0 (WorldPop; the hosting repository states no licence)",
    ),
]

# (output path, source, licence, how it was made)
OVERVIEW: list[tuple[str, str, str, str]] = [
    (
        "`provinces-2019.geojson`",
        "censusVN2009 + dvhcvn/20250701 (`splits.json`)",
        "MIT + MIT",
        "derived",
    ),
    (
        "`crosswalk-2019-2025.csv`",
        "dvhcvn/20250701 (`merges.json`); area shares with vietnam-3d-map",
        "MIT",
        "derived",
    ),
    (
        "`communes-2009.geojson.gz`",
        "censusVN2009 (`communes.rda`)",
        "MIT",
        "converted (names decoded, coordinates snapped to 1e-5°)",
    ),
    ("`papi/*.csv`, `papi/LICENSE`", "PAPI", "MIT (PAPI terms not verified)", "byte-for-byte"),
    ("`papi/province_codes.csv`", "PAPI codebook + `provinces-2019.geojson`", "MIT", "derived"),
    ("`raster/vn_ppp_2020_1km_Aggregated.tif`", "WorldPop", "CC BY 4.0", "byte-for-byte"),
    (
        "`vietnam-3d-map-2025/`",
        "vietnam-3d-map",
        "MIT (upstream geometry: not stated)",
        "byte-for-byte",
    ),
    (
        "`LICENSE-censusVN2009`, `LICENSE-dvhcvn-20250701`",
        "licence files of the two sources derived from",
        "—",
        "byte-for-byte",
    ),
]

LEVEL_ORDER = {"province": 0, "district": 1, "commune": 2}
CODE_WIDTH = {"province": 2, "district": 3, "commune": 5}


@dataclass
class Stats:
    """Counts and findings collected while building the outputs, used for the README."""

    values: dict[str, Any] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- text helpers


def decode_u_escapes(text: str) -> str:
    """Turn literal ``\\uXXXX`` escape text into the characters it stands for."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)


def fold(name: str) -> str:
    """Accent-fold a Vietnamese name for matching: lower case, no diacritics, đ→d, no hyphens."""
    text = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    text = text.lower().replace("-", " ")
    return " ".join(text.split())


def strip_unit_prefix(name: str) -> str:
    """Remove the leading "Tỉnh " / "Thành phố " from an official province name."""
    for prefix in ("Thành phố ", "Tỉnh "):
        if name.startswith(prefix):
            return name[len(prefix) :]
    raise ValueError(f"unexpected province name prefix: {name!r}")


def province_type(name: str) -> str:
    """Return the unit type implied by an official province name."""
    return "Thành phố Trung ương" if name.startswith("Thành phố ") else "Tỉnh"


def scalar(value: Any) -> Any:
    """Unwrap a length-1 R vector (numpy / xarray) into a Python scalar."""
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"expected a length-1 R vector, got shape {arr.shape}")
    item = arr.reshape(-1)[0]
    return item.item() if isinstance(item, np.generic) else item


def sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- matching


def match_names(
    source: dict[str, str], targets: dict[str, str], overrides: dict[str, str], label: str
) -> dict[str, str]:
    """Match source keys (name by key) to target codes by folded name; assert one-to-one."""
    by_fold: dict[str, str] = {}
    for code, name in targets.items():
        key = fold(strip_unit_prefix(name))
        if key in by_fold:
            raise AssertionError(f"{label}: two target names fold to {key!r}")
        by_fold[key] = code
    matched: dict[str, str] = {}
    unmatched: list[str] = []
    used_overrides: set[str] = set()
    for src_key, name in source.items():
        folded = fold(name)
        if folded in overrides:
            matched[src_key] = overrides[folded]
            used_overrides.add(folded)
        elif folded in by_fold:
            matched[src_key] = by_fold[folded]
        else:
            unmatched.append(f"{src_key}={name!r} (folded {folded!r})")
    stale = sorted(set(overrides) - used_overrides)
    codes = Counter(matched.values())
    dupes = sorted(code for code, n in codes.items() if n > 1)
    missing = sorted(set(targets) - set(codes))
    problems = []
    if unmatched:
        problems.append(f"unmatched: {unmatched}")
    if stale:
        problems.append(f"unused overrides: {stale}")
    if dupes:
        problems.append(f"target codes matched more than once: {dupes}")
    if missing:
        problems.append(f"target codes never matched: {missing}")
    if len(matched) != N_OLD_PROVINCES or problems:
        raise AssertionError(f"{label}: {len(matched)} matches; " + "; ".join(problems))
    return matched


# --------------------------------------------------------------------------- census 2009 (sp)


def read_rda_object(path: Path, name: str) -> Any:
    """Read one object from an .rda file with rdata, silencing its missing-S4-class warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing constructor for R class")
        converted = rdata.conversion.convert(rdata.parser.parse_file(path))
    return converted[name]


def ring_coords(sp_polygon: Any) -> list[tuple[float, float]]:
    """Return the coordinates of one sp ``Polygon`` ring as (lon, lat) tuples."""
    coords = np.asarray(sp_polygon.coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"unexpected sp coords shape {coords.shape}")
    return [(float(x), float(y)) for x, y in coords]


def hole_owners(sp_polygons: Any, n_rings: int) -> list[int]:
    """Return, for each ring, 0 if exterior or the 1-based index of its exterior (sp comment)."""
    comment = getattr(sp_polygons, "comment", None)
    if comment is None:
        raise ValueError("sp Polygons object has holes but no comment attribute")
    owners = [int(v) for v in str(scalar(comment)).split()]
    if len(owners) != n_rings:
        raise ValueError(f"sp comment has {len(owners)} entries for {n_rings} rings")
    return owners


def sp_polygons_to_shapely(sp_polygons: Any) -> BaseGeometry:
    """Rebuild a shapely (Multi)Polygon from one sp ``Polygons`` object, keeping every vertex."""
    rings = list(sp_polygons.Polygons)
    holes = [bool(scalar(r.hole)) for r in rings]
    owners = hole_owners(sp_polygons, len(rings)) if any(holes) else [0] * len(rings)
    parts: list[Polygon] = []
    for idx, ring in enumerate(rings):
        if holes[idx]:
            continue
        interiors = [
            ring_coords(rings[j]) for j in range(len(rings)) if holes[j] and owners[j] == idx + 1
        ]
        parts.append(Polygon(ring_coords(ring), interiors))
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def load_census2009_provinces(path: Path) -> gpd.GeoDataFrame:
    """Load the 63 censusVN2009 provinces as a GeoDataFrame (code, decoded name, geometry)."""
    spdf = read_rda_object(path, "provinces")
    data = spdf.data
    ids = [str(scalar(p.ID)) for p in spdf.polygons]
    if [str(i) for i in data.index] != ids:
        raise AssertionError("sp polygon IDs do not match the data.frame row names")
    proj = str(scalar(spdf.proj4string.projargs))
    if "+proj=longlat" not in proj or "WGS84" not in proj:
        raise AssertionError(f"unexpected CRS {proj!r}")
    frame = gpd.GeoDataFrame(
        {
            "census2009_code": [str(int(v)) for v in data["province_id"]],
            "name_2009": [decode_u_escapes(str(v)) for v in data["province_vn"]],
            "n_rings": [len(p.Polygons) for p in spdf.polygons],
        },
        geometry=[sp_polygons_to_shapely(p) for p in spdf.polygons],
        crs="EPSG:4326",
    )
    if len(frame) != N_OLD_PROVINCES or frame["census2009_code"].nunique() != N_OLD_PROVINCES:
        raise AssertionError(f"expected {N_OLD_PROVINCES} unique provinces, got {len(frame)}")
    return frame


def load_gso_old_provinces(splits_path: Path) -> dict[str, str]:
    """Return the 63 pre-reform provinces {GSO code: official name} from splits.json."""
    data = json.loads(splits_path.read_text(encoding="utf-8"))["data"]
    provinces = {row["level1_id"]: row["name"] for row in data}
    if len(provinces) != N_OLD_PROVINCES or len(data) != N_OLD_PROVINCES:
        raise AssertionError(f"splits.json: expected {N_OLD_PROVINCES} provinces")
    return provinces


def round_coords(coords: Iterable[Sequence[float]]) -> list[list[float]]:
    """Round a coordinate sequence to COORD_DECIMALS decimals."""
    return [[round(x, COORD_DECIMALS), round(y, COORD_DECIMALS)] for x, y, *_ in coords]


def polygon_rings(poly: Polygon) -> list[list[list[float]]]:
    """Return the rounded GeoJSON rings of one polygon."""
    rings = [round_coords(poly.exterior.coords)]
    rings.extend(round_coords(r.coords) for r in poly.interiors)
    return rings


def geojson_geometry(geom: BaseGeometry) -> dict[str, Any]:
    """Return an RFC 7946 geometry dict (CCW exteriors, rounded coordinates)."""
    geom = shapely.orient_polygons(geom, exterior_cw=False)
    if isinstance(geom, Polygon):
        return {"type": "Polygon", "coordinates": polygon_rings(geom)}
    if isinstance(geom, MultiPolygon):
        return {"type": "MultiPolygon", "coordinates": [polygon_rings(p) for p in geom.geoms]}
    raise TypeError(f"unexpected geometry type {geom.geom_type}")


def invalid_report(geoms: Sequence[BaseGeometry], names: Sequence[str]) -> list[str]:
    """Return 'name: reason' for every invalid geometry."""
    return [
        f"{name}: {shapely.is_valid_reason(g)}"
        for g, name in zip(geoms, names, strict=True)
        if not shapely.is_valid(g)
    ]


def build_provinces(shared: Path, stats: Stats) -> gpd.GeoDataFrame:
    """Match the 2009 provinces to GSO codes and return them with code/name/type columns."""
    census = load_census2009_provinces(shared / "vn/censusVN2009/provinces.rda")
    gso = load_gso_old_provinces(shared / "vn/dvhcvn-20250701/splits.json")
    source = dict(zip(census["census2009_code"], census["name_2009"], strict=True))
    matched = match_names(source, gso, CENSUS2009_OVERRIDES, "censusVN2009 -> GSO")
    census["code"] = census["census2009_code"].map(matched)
    census["name"] = census["code"].map(gso)
    census["type"] = census["name"].map(province_type)
    census = census.sort_values("code").reset_index(drop=True)
    stats.values["prov_count"] = len(census)
    stats.values["prov_rings"] = int(census["n_rings"].sum())
    stats.values["prov_vertices"] = int(shapely.get_num_coordinates(census.geometry.values).sum())
    stats.values["prov_types"] = dict(Counter(census["type"]))
    stats.values["prov_invalid_source"] = invalid_report(census.geometry.values, census["name"])
    stats.values["prov_bounds"] = ", ".join(f"{v:.4f}" for v in census.total_bounds)
    return census


def write_provinces_geojson(provinces: gpd.GeoDataFrame, path: Path, stats: Stats) -> None:
    """Write the provinces as an RFC 7946 FeatureCollection, one feature per line."""
    features = []
    written: list[BaseGeometry] = []
    for row in provinces.itertuples(index=False):
        geometry = geojson_geometry(row.geometry)
        written.append(shape(geometry))
        props = {
            "code": row.code,
            "name": row.name,
            "type": row.type,
            "census2009_code": row.census2009_code,
        }
        features.append({"type": "Feature", "properties": props, "geometry": geometry})
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features]
    text = '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"
    path.write_text(text, encoding="utf-8")
    stats.values["prov_invalid_written"] = invalid_report(written, list(provinces["name"]))


# --------------------------------------------------------------------------- communes 2009

N_COMMUNES_2009 = 11_163
# 1e-5° (about 1 m): ample for commune maps; snapped with GEOS so shared edges stay shared
COMMUNES_2009_GRID = 1e-5
COMMUNE_TYPES_2009 = ("Phường", "Thị trấn", "Xã")
UNNAMED_2009 = "Chưa có tên"  # "no name yet"


def commune_type_2009(name: str) -> str:
    """The unit type a 2009 commune name starts with ("Xã", "Phường", "Thị trấn"), or ""."""
    return next((t for t in COMMUNE_TYPES_2009 if name.startswith(t + " ")), "")


def load_census2009_communes(path: Path) -> gpd.GeoDataFrame:
    """Load the 11,163 censusVN2009 communes: 2009-census codes, decoded names, population."""
    spdf = read_rda_object(path, "communes")
    data = spdf.data
    if [str(i) for i in data.index] != [str(scalar(p.ID)) for p in spdf.polygons]:
        raise AssertionError("sp polygon IDs do not match the data.frame row names")
    proj = str(scalar(spdf.proj4string.projargs))
    if "+proj=longlat" not in proj or "WGS84" not in proj:
        raise AssertionError(f"unexpected CRS {proj!r}")

    def codes(column: str) -> list[str]:
        return [str(int(v)) for v in data[column]]

    # two polygons have no name at all (population 0, area 0); they keep a placeholder
    names = [
        decode_u_escapes(str(v)) if isinstance(v, str) else f"{UNNAMED_2009} {int(c)}"
        for v, c in zip(data["commune_vn"], data["commune_id"], strict=True)
    ]
    frame = gpd.GeoDataFrame(
        {
            "code": codes("commune_id"),
            "name": names,
            "type": [commune_type_2009(n) for n in names],
            "district_code": codes("district_id"),
            "district_name": [
                decode_u_escapes(v) if isinstance(v, str) else "" for v in data["district_vn"]
            ],
            "province_code": codes("province_id"),
            "province_name": [decode_u_escapes(str(v)) for v in data["province_vn"]],
            "population": [float(v) for v in data["population"]],
            "area_km2": [float(v) / 100 for v in data["area"]],
        },
        geometry=[sp_polygons_to_shapely(p) for p in spdf.polygons],
        crs="EPSG:4326",
    )
    if len(frame) != N_COMMUNES_2009 or frame["code"].nunique() != N_COMMUNES_2009:
        raise AssertionError(f"expected {N_COMMUNES_2009} unique communes, got {len(frame)}")
    return frame.sort_values("code").reset_index(drop=True)


def write_communes_2009(shared: Path, out: Path, stats: Stats) -> None:
    """Convert communes.rda to gzip-compressed GeoJSON (one feature per line), with counts."""
    communes = load_census2009_communes(shared / "vn/censusVN2009/communes.rda")
    source_vertices = int(shapely.get_num_coordinates(communes.geometry.values).sum())
    snapped = shapely.set_precision(communes.geometry.values, COMMUNES_2009_GRID)
    lines = []
    for row, geom in zip(communes.itertuples(index=False), snapped, strict=True):
        props = {
            "code": row.code,
            "name": row.name,
            "type": row.type,
            "district_code": row.district_code,
            "district_name": row.district_name,
            "province_code": row.province_code,
            "province_name": row.province_name,
            "population": int(row.population)
            if float(row.population).is_integer()
            else row.population,
            "area_km2": round(row.area_km2, 2),
        }
        feature = {"type": "Feature", "properties": props, "geometry": geojson_geometry(geom)}
        lines.append(json.dumps(feature, ensure_ascii=False, separators=(",", ":")))
    text = '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"
    # mtime 0 and no file name in the header: the same input gives the same bytes
    with (
        (out / COMMUNES_2009_FILE).open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as handle,
    ):
        handle.write(text.encode("utf-8"))
    pop = communes["population"]
    stats.values["c2009"] = {
        "count": len(communes),
        "districts": communes["district_code"].nunique(),
        "provinces": communes["province_code"].nunique(),
        "types": dict(Counter(communes["type"])),
        "untyped": [
            f"{c} {n}"
            for c, n, t in zip(communes["code"], communes["name"], communes["type"], strict=True)
            if not t
        ],
        "source_vertices": source_vertices,
        "vertices": int(shapely.get_num_coordinates(snapped).sum()),
        "invalid": int((~shapely.is_valid(snapped)).sum()),
        "empty": int(shapely.is_empty(snapped).sum()),
        "pop_total": float(pop.sum()),
        "pop_zero": int((pop == 0).sum()),
        "pop_fraction": [
            f"{c} {n}: {v}"
            for c, n, v in zip(communes["code"], communes["name"], pop, strict=True)
            if not float(v).is_integer()
        ],
        "bounds": ", ".join(f"{v:.4f}" for v in communes.total_bounds),
    }


# --------------------------------------------------------------------------- crosswalk


def crosswalk_rows(merges: dict[str, Any]) -> list[dict[str, str]]:
    """Flatten merges.json into province and commune crosswalk rows (duplicates kept)."""
    rows: list[dict[str, str]] = []
    for prov in merges["data"]:
        for m in prov["merges"]:
            rows.append(crosswalk_row("province", m["old_id"], "province", prov["level1_id"], m))
        for ward in prov["level2s"]:
            for m in ward["merges"]:
                level = old_commune_level(m["old_id"])
                rows.append(crosswalk_row(level, m["old_id"], "commune", ward["level2_id"], m))
    return rows


def old_commune_level(old_id: str) -> str:
    """Return the level of an old unit under a new commune (3-digit = commune-less district)."""
    for level in ("commune", "district"):
        if len(old_id) == CODE_WIDTH[level]:
            return level
    raise AssertionError(f"unexpected old code {old_id!r} under a new commune")


def crosswalk_row(
    from_level: str, old: str, to_level: str, new: str, merge: dict[str, str]
) -> dict[str, str]:
    """Build one crosswalk row, mapping merges.json types to whole/partial."""
    if merge["type"] not in RELATIONS:
        raise AssertionError(f"unknown merge type {merge['type']!r} for {old}->{new}")
    valid = len(old) == CODE_WIDTH[from_level] and len(new) == CODE_WIDTH[to_level]
    if not valid or not (old + new).isdigit():
        raise AssertionError(f"bad codes {from_level} {old!r} -> {to_level} {new!r}")
    return {
        "from_level": from_level,
        "from_code": old,
        "to_level": to_level,
        "to_code": new,
        "relation": RELATIONS[merge["type"]],
        "area_share": "",
        "population_share": "",
    }


def dedupe_rows(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[str]]:
    """Drop exact duplicate rows, returning kept rows and a description of each dropped one."""
    seen: set[tuple[str, ...]] = set()
    kept: list[dict[str, str]] = []
    dropped: list[str] = []
    for row in rows:
        key = tuple(row[c] for c in CROSSWALK_COLUMNS)
        if key in seen:
            dropped.append(f"{row['from_level']} {row['from_code']}->{row['to_code']}")
            continue
        seen.add(key)
        kept.append(row)
    return kept, dropped


def commune_anomalies(rows: list[dict[str, str]]) -> dict[str, list[str]]:
    """Find old communes that are whole in >1 new unit, or both whole and partial."""
    whole: dict[str, set[str]] = defaultdict(set)
    partial: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row["from_level"] != "commune":
            continue
        target = whole if row["relation"] == "whole" else partial
        target[row["from_code"]].add(row["to_code"])
    multi_whole = [
        f"{old}: whole in {', '.join(sorted(new))}"
        for old, new in sorted(whole.items())
        if len(new) > 1
    ]
    mixed = [
        f"{old}: whole in {', '.join(sorted(whole[old]))}; partial in "
        f"{', '.join(sorted(partial[old]))}"
        for old in sorted(set(whole) & set(partial))
    ]
    lone_partial = [
        f"{old}: partial only in {next(iter(new))}"
        for old, new in sorted(partial.items())
        if old not in whole and len(new) == 1
    ]
    return {"multi_whole": multi_whole, "mixed": mixed, "lone_partial": lone_partial}


def district_as_level3(level2s: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Present splits.json's commune-less districts in the shape of its level3s entries."""
    return [{"level3_id": d["level2_id"], "splits": d["splits"]} for d in level2s]


def check_against_splits(rows: list[dict[str, str]], splits: dict[str, Any]) -> dict[str, Any]:
    """Cross-check commune pairs and province consistency of merges.json against splits.json."""
    old_prov_of: dict[str, str] = {}
    split_pairs: set[tuple[str, str]] = set()
    for prov in splits["data"]:
        for commune in prov["level3s"] + district_as_level3(prov.get("level2s", [])):
            old_prov_of[commune["level3_id"]] = prov["level1_id"]
            split_pairs.update((commune["level3_id"], s["new_id"]) for s in commune["splits"])
    prov_map = {r["from_code"]: r["to_code"] for r in rows if r["from_level"] == "province"}
    commune_rows = [r for r in rows if r["from_level"] != "province"]
    merge_pairs = {(r["from_code"], r["to_code"]) for r in commune_rows}
    return {
        "old_communes_in_splits": len(old_prov_of),
        "old_communes_in_merges": len({r["from_code"] for r in commune_rows}),
        "not_in_splits": sorted({old for old, _ in merge_pairs} - set(old_prov_of)),
        "never_merged": sorted(set(old_prov_of) - {old for old, _ in merge_pairs}),
        "pairs_only_in_merges": len(merge_pairs - split_pairs),
        "pairs_only_in_splits": len(split_pairs - merge_pairs),
        "prov_map": prov_map,
        "old_prov_of": old_prov_of,
    }


def cross_province_rows(
    rows: list[dict[str, str]], merges: dict[str, Any], check: dict[str, Any]
) -> list[str]:
    """List commune rows whose old commune's province does not merge into the new province."""
    new_prov_of = {w["level2_id"]: p["level1_id"] for p in merges["data"] for w in p["level2s"]}
    new_name = {w["level2_id"]: w["name"] for p in merges["data"] for w in p["level2s"]}
    old_name = {
        m["old_id"]: m["name"] for p in merges["data"] for w in p["level2s"] for m in w["merges"]
    }
    out = []
    for r in rows:
        if r["from_level"] == "province" or r["from_code"] not in check["old_prov_of"]:
            continue
        old_prov = check["old_prov_of"][r["from_code"]]
        if check["prov_map"].get(old_prov) != new_prov_of[r["to_code"]]:
            out.append(
                f"{r['from_code']} {old_name[r['from_code']]} (old province {old_prov}) -> "
                f"{r['to_code']} {new_name[r['to_code']]} (new province "
                f"{new_prov_of[r['to_code']]}), {r['relation']}"
            )
    return out


def load_new_provinces(path: Path) -> gpd.GeoDataFrame:
    """Load the 34 post-reform provinces from vietnam-3d-map provinces.json (rings = parts)."""
    data = json.loads(path.read_text(encoding="utf-8"))["provinces"]
    geoms = []
    for prov in data:
        parts = [polygonal(Polygon(r)) for r in prov["polygons"] if len(r) >= 3]
        geoms.append(shapely.union_all(parts))
    frame = gpd.GeoDataFrame(
        {"code": [p["id"] for p in data], "name": [p["name"] for p in data]},
        geometry=geoms,
        crs="EPSG:4326",
    )
    if frame["code"].nunique() != N_NEW_PROVINCES:
        raise AssertionError(f"provinces.json: expected {N_NEW_PROVINCES} provinces")
    return frame


def polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Repair a geometry for area computations only, keeping its polygonal parts."""
    fixed = shapely.make_valid(geom)
    parts = [p for p in shapely.get_parts(fixed) if isinstance(p, Polygon | MultiPolygon)]
    return shapely.union_all(parts)


def province_overlaps(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> dict[tuple[str, str], float]:
    """Return {(old code, new code): share of the old province's area} in an equal-area CRS."""
    old_ea = old[["code", "geometry"]].to_crs(EQUAL_AREA_CRS)
    old_ea["geometry"] = [polygonal(g) for g in old_ea.geometry]
    new_ea = new[["code", "geometry"]].to_crs(EQUAL_AREA_CRS)
    new_ea["geometry"] = [polygonal(g) for g in new_ea.geometry]
    old_area = dict(zip(old_ea["code"], old_ea.geometry.area, strict=True))
    pieces = gpd.overlay(old_ea, new_ea, how="intersection", keep_geom_type=True)
    shares: dict[tuple[str, str], float] = defaultdict(float)
    for row in pieces.itertuples(index=False):
        shares[(row.code_1, row.code_2)] += row.geometry.area / old_area[row.code_1]
    return dict(shares)


def add_area_shares(
    rows: list[dict[str, str]], shares: dict[tuple[str, str], float], stats: Stats
) -> None:
    """Fill area_share on province rows (renormalised per old province) and record diagnostics."""
    prov_rows = [r for r in rows if r["from_level"] == "province"]
    raw = {
        (r["from_code"], r["to_code"]): shares.get((r["from_code"], r["to_code"]), 0.0)
        for r in prov_rows
    }
    totals: dict[str, float] = defaultdict(float)
    for (old, _), share in raw.items():
        totals[old] += share
    for r in prov_rows:
        total = totals[r["from_code"]]
        if total <= 0:
            raise AssertionError(f"old province {r['from_code']} does not overlap its target")
        r["area_share"] = f"{raw[(r['from_code'], r['to_code'])] / total:.6f}"
    stats.values["share_raw"] = raw
    stats.values["share_all"] = shares


def share_diagnostics(stats: Stats, names: dict[str, str]) -> None:
    """Summarise how well the 2009 and 2025 province geometries agree."""
    raw: dict[tuple[str, str], float] = stats.values["share_raw"]
    shares: dict[tuple[str, str], float] = stats.values["share_all"]
    assigned = {old: share for (old, _), share in raw.items()}
    covered: dict[str, float] = defaultdict(float)
    best_other: dict[str, tuple[float, str]] = {}
    for (old, new), share in shares.items():
        covered[old] += share
        if (old, new) not in raw and share > best_other.get(old, (0.0, ""))[0]:
            best_other[old] = (share, new)
    values = sorted(assigned.values())
    stats.values["share_min"] = values[0]
    stats.values["share_median"] = values[len(values) // 2]
    stats.values["share_low"] = [
        f"{old} {names[old]}: {assigned[old]:.3f} in its target; "
        f"largest other {best_other.get(old, (0.0, '-'))[0]:.3f} in "
        f"{best_other.get(old, (0.0, '-'))[1]}; "
        f"{1 - covered[old]:.3f} outside every 2025 province"
        for old in sorted(assigned)
        if assigned[old] < 0.95
    ]
    stats.values["share_contradicted"] = sorted(
        old for old, (share, _) in best_other.items() if share > assigned[old]
    )


def build_crosswalk(
    shared: Path, provinces: gpd.GeoDataFrame, stats: Stats
) -> list[dict[str, str]]:
    """Build, check and sort the 2019→2025 crosswalk rows."""
    base = shared / "vn/dvhcvn-20250701"
    merges = json.loads((base / "merges.json").read_text(encoding="utf-8"))
    splits = json.loads((base / "splits.json").read_text(encoding="utf-8"))
    raw_rows = crosswalk_rows(merges)
    rows, dropped = dedupe_rows(raw_rows)
    prov_rows = [r for r in rows if r["from_level"] == "province"]
    commune_rows = [r for r in rows if r["from_level"] != "province"]
    new_communes = {w["level2_id"] for p in merges["data"] for w in p["level2s"]}
    stats.values.update(
        xw_old_prov=len({r["from_code"] for r in prov_rows}),
        xw_new_prov=len({r["to_code"] for r in prov_rows}),
        xw_new_prov_entries=len(merges["data"]),
        xw_new_commune=len(new_communes),
        xw_new_commune_entries=sum(len(p["level2s"]) for p in merges["data"]),
        xw_prov_rows=len(prov_rows),
        xw_commune_rows=len(commune_rows),
        xw_relations=dict(Counter(r["relation"] for r in commune_rows)),
        xw_district_rows=[
            f"district {r['from_code']} -> commune {r['to_code']} ({r['relation']})"
            for r in commune_rows
            if r["from_level"] == "district"
        ],
        xw_dropped=dropped,
        xw_upstream_stats=merges.get("stats"),
    )
    expect_counts(stats)
    stats.values.update(commune_anomalies(rows))
    check = check_against_splits(rows, splits)
    stats.values["xw_cross_province"] = cross_province_rows(rows, merges, check)
    internal = ("prov_map", "old_prov_of")
    stats.values["xw_splits"] = {k: v for k, v in check.items() if k not in internal}
    new_provinces = load_new_provinces(shared / "vn/vietnam-3d-map-2025/provinces.json")
    add_area_shares(rows, province_overlaps(provinces, new_provinces), stats)
    share_diagnostics(stats, dict(zip(provinces["code"], provinces["name"], strict=True)))
    rows.sort(key=row_sort_key)
    return rows


def row_sort_key(row: dict[str, str]) -> tuple[int, str, str, str]:
    """Sort crosswalk rows by level, old code, new code and relation."""
    return LEVEL_ORDER[row["from_level"]], row["from_code"], row["to_code"], row["relation"]


def expect_counts(stats: Stats) -> None:
    """Assert the headline counts of the crosswalk."""
    v = stats.values
    checks = {
        "distinct old provinces": (v["xw_old_prov"], N_OLD_PROVINCES),
        "distinct new provinces": (v["xw_new_prov"], N_NEW_PROVINCES),
        "new provinces in merges.json": (v["xw_new_prov_entries"], N_NEW_PROVINCES),
        "distinct new communes": (v["xw_new_commune"], N_NEW_COMMUNES),
        "new commune entries": (v["xw_new_commune_entries"], N_NEW_COMMUNES),
        "province rows": (v["xw_prov_rows"], N_OLD_PROVINCES),
    }
    bad = {k: got for k, (got, want) in checks.items() if got != want}
    if bad:
        raise AssertionError(f"crosswalk counts off: {bad}")


def write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, str]]) -> None:
    """Write rows as a UTF-8 CSV with LF line endings."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------- PAPI


def build_papi_codes(
    shared: Path, provinces: gpd.GeoDataFrame, stats: Stats
) -> list[dict[str, str]]:
    """Map PAPI's P01…P63 to GSO codes by folded name; assert 63 one-to-one."""
    path = shared / "vn/papi/codebook/codebook_provinces.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        source = {r["Variable_Code"]: r["Variable_Name"] for r in csv.DictReader(fh)}
    gso = dict(zip(provinces["code"], provinces["name"], strict=True))
    matched = match_names(source, gso, PAPI_OVERRIDES, "PAPI -> GSO")
    rows = [{"papi_code": p, "code": matched[p], "name": gso[matched[p]]} for p in sorted(matched)]
    stats.values["papi_gso_order"] = [r["code"] for r in rows] == sorted(gso)
    stats.values["papi_missing"] = papi_missing(shared / "vn/papi/csv")
    return rows


def papi_missing(folder: Path) -> dict[str, Any]:
    """Count empty cells in the PAPI yearly CSVs."""
    total = empty = 0
    years: list[str] = []
    for path in sorted(folder.glob("*.csv")):
        years.append(path.stem)
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                cells = [v for k, v in row.items() if k != "Province"]
                total += len(cells)
                empty += sum(1 for v in cells if v.strip() == "")
    return {"years": f"{years[0]}–{years[-1]}", "files": len(years), "cells": total, "empty": empty}


# --------------------------------------------------------------------------- copies


def copy_exact(src: Path, dst: Path) -> None:
    """Copy one file byte-for-byte and verify the copy's checksum."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    if sha256(src) != sha256(dst):
        raise AssertionError(f"copy of {src} differs")


def copy_sources(shared: Path, out: Path) -> None:
    """Copy the byte-for-byte files (PAPI, WorldPop raster, 3d-map, licences)."""
    vn = shared / "vn"
    pairs: list[tuple[Path, Path]] = []
    for sub in ("csv", "codebook"):
        pairs += [(p, out / "papi" / p.name) for p in sorted((vn / "papi" / sub).glob("*.csv"))]
    pairs.append((vn / "papi/LICENSE", out / "papi/LICENSE"))
    raster = "vn_ppp_2020_1km_Aggregated.tif"
    pairs.append((shared / "raster" / raster, out / "raster" / raster))
    map3d = vn / "vietnam-3d-map-2025"
    pairs.append((map3d / "provinces.json", out / "vietnam-3d-map-2025/provinces.json"))
    wards = sorted(map3d.glob("wards/*.json"))
    pairs += [(p, out / "vietnam-3d-map-2025/wards" / p.name) for p in wards]
    pairs.append((map3d / "LICENSE", out / "vietnam-3d-map-2025/LICENSE"))
    pairs.append((vn / "censusVN2009/LICENSE", out / "LICENSE-censusVN2009"))
    pairs.append((vn / "dvhcvn-20250701/LICENSE", out / "LICENSE-dvhcvn-20250701"))
    for src, dst in pairs:
        copy_exact(src, dst)


def ward_counts(folder: Path) -> dict[str, Any]:
    """Count wards, types and unique codes in the copied 3d-map ward files."""
    codes: list[str] = []
    types: Counter[str] = Counter()
    files = sorted(p for p in folder.glob("*.json") if p.name != "index.json")
    for path in files:
        for ward in json.loads(path.read_text(encoding="utf-8"))["wards"]:
            codes.append(ward["id"])
            types[ward["type"]] += 1
    return {
        "files": len(files),
        "wards": len(codes),
        "unique": len(set(codes)),
        "types": dict(types),
    }


# --------------------------------------------------------------------------- README


def bullet_list(items: Sequence[str], empty: str = "none") -> str:
    """Render a Markdown bullet list (or a placeholder when empty)."""
    return "\n".join(f"  * {i}" for i in items) if items else f"  * {empty}"


def human_size(n: int) -> str:
    """Format a byte count."""
    return f"{n / 1_048_576:.2f} MiB" if n >= 1_048_576 else f"{n / 1024:.1f} KiB"


def file_sizes(out: Path) -> dict[str, int]:
    """Return {relative path: size} of every file under out except README.md."""
    return {
        str(p.relative_to(out)): p.stat().st_size
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "README.md"
    }


README_TEMPLATE = """\
# data/vn — small Vietnam demo data

Everything here was produced by `{script}` from third-party data (see each section).
Re-run with `.venv/bin/python {script} --shared ../shared/data`; the output is deterministic.
Only sources published under MIT (repositories) or CC BY 4.0 (WorldPop) were used; see the
per-source notes for upstream terms that could not be verified. The GPL-3.0
`daohoangson/dvhcvn` data (including its code list) and the unlicensed
`hgscarlette/vn-demographic` census extracts were **not** used.
The `transport/` folder (national roads and railways, CC BY-SA 4.0) is made by
`scripts/prepare_transport_layer.py`; its own README gives its source and licence.

Total size: {total_size} in {n_files} files (plus this README).

{overview_table}

## Sources

{sources_table}

---

## provinces-2019.geojson

The {prov_count} pre-reform provinces (boundaries as of 2008–2009, after Hà Tây merged into Hà Nội;
unchanged at province level until 2025-06-30).

* **Geometry:** `provinces.rda` of censusVN2009 (Marc Choisy & Lucie Contamin), the package's
  *low-resolution* `sp::SpatialPolygonsDataFrame`. Polygons were rebuilt ring by ring from the sp
  structure, **not simplified or repaired**; only exterior rings were re-oriented counter-clockwise
  (RFC 7946) and coordinates rounded to {decimals} decimals. {prov_rings} rings, {prov_vertices}
  vertices, no holes. Extent {prov_bounds} (min lon, min lat, max lon, max lat), including
  Hoàng Sa (Paracels, in Đà Nẵng) and Trường Sa (Spratlys, in Khánh Hòa) drawn as coarse atoll
  outlines (lagoons included).
* **Format:** RFC 7946 GeoJSON FeatureCollection, EPSG:4326 (no `crs` member), one feature per
  line, sorted by `code`.
* **Properties:** `code` (GSO 2-digit code, Decision 124/2004), `name` (official name with
  diacritics), `type` (`Tỉnh` ×{n_tinh} / `Thành phố Trung ương` ×{n_tp}), `census2009_code` (the
  original 2009-census code, e.g. `101` = Hà Nội).
* **Codes and names:** taken from dvhcvn/20250701 `splits.json` (`data[].level1_id`, `name`), i.e.
  the GSO list as of 2025-06-30. Matched to the 2009 names (`province_vn`, whose literal `\\uXXXX`
  escapes were decoded) by accent-folded name (NFD, combining marks removed, đ→d, hyphens →
  spaces, "Tỉnh "/"Thành phố " prefix removed). Overrides used:
{census_overrides}
  All {prov_count} matched one-to-one (asserted).
* **Invalid geometries** (GEOS `is_valid`, not repaired — the loader repairs and reports):
  {n_invalid_written} of {prov_count} as written ({n_invalid_source} in the unrounded source):
{invalid_written}
* **Quirks:**
  * `name`/`type` are the *2025* GSO forms. Thừa Thiên Huế (code 46) became a centrally-run
    city on 2025-01-01, so it appears as "Thành phố Huế", type `Thành phố Trung ương`, although
    in 2019 it was "Tỉnh Thừa Thiên Huế". The GSO list spells "Tỉnh Hoà Bình" (old-style accent
    placement), kept as is.
  * Low-resolution boundaries: fine for choropleths, not for precise overlay; the edges do not
    match the 2025 provinces exactly (see the crosswalk diagnostics).
  * 2009 attributes (population, area) were deliberately not carried over; in the source the
    population sums to 77.5 M (short of the 85.8 M census total) and `area/100` = km².

## crosswalk-2019-2025.csv

Old (pre-2025-07-01) → new unit mapping of the 2025 reform, from dvhcvn/20250701 `merges.json`.

* **Columns:** `from_level,from_code,to_level,to_code,relation,area_share,population_share`.
  Levels are `province` (2-digit GSO) or `commune` (5-digit GSO); `relation` is `whole`
  (merges.json `full`) or `partial`. Rows sorted by level (province, district, commune),
  `from_code`, `to_code`.
* **Third level `district` (deviation, on purpose):** {n_district} old island districts had no
  commune level, so merges.json lists their 3-digit GSO district code as the old unit of a new
  special zone (`Đặc khu`). They are kept as `from_level=district` rows (3-digit `from_code`,
  `to_level=commune`) rather than dropped or mislabelled as communes:
{district_rows}
* **Rows:** {xw_prov_rows} province rows (from `data[].merges`) and {xw_commune_rows} rows under
  new communes (from `data[].level2s[].merges`; {rel_whole} whole, {rel_partial} partial).
* **Checks (asserted):** {xw_old_prov} distinct old provinces, {xw_new_prov} new provinces,
  {xw_new_commune} new communes. {xw_old_communes} distinct old communes appear.
* **Exact duplicate rows dropped:** {n_dropped}
{dropped}
* **Anomalies (kept as they are, not fixed):**
  * old communes `whole` in more than one new unit: {n_multi_whole}
{multi_whole}
  * old communes both `whole` and `partial`: {n_mixed}
{mixed}
  * old communes that are only `partial`, and in a single new unit (the rest of the old
    commune is not accounted for): {n_lone_partial}
{lone_partial}
  * commune rows whose old commune's province (per `splits.json`) does not merge into the new
    commune's province: {n_cross_province}
{cross_province}
    Old province 89 (An Giang) merged whole into new province 91, so this row is very likely
    an upstream error: Đồng Tháp's own "Xã Tân Phú" (30274) is already listed in the same new
    commune, and An Giang's namesake seems to have been attached by name. Kept as is.
  * cross-check with `splits.json` (old → new): {splits_communes} old communes listed there,
    {merges_communes} appear in `merges.json`; old communes never merged: {n_never_merged};
    old codes unknown to `splits.json`: {n_not_in_splits}; pairs only in merges.json:
    {pairs_only_merges}; pairs only in splits.json: {pairs_only_splits}. (Both files come from
    the same upstream pipeline, so this is a consistency check, not an independent one.)
* **`area_share`** (province rows only): area(old province from `provinces-2019.geojson` ∩ new
  province from vietnam-3d-map `provinces.json`) / area(old province), in {ea_crs}, then
  renormalised over each old province's rows. Every old province has exactly one row (it merged
  whole), so every share is 1.000000. Before renormalisation the share of an old province lying
  inside its target was min {share_min:.3f}, median {share_median:.3f}; old provinces with less
  than 0.95:
{share_low}
  Both are the offshore archipelagos: the 2009 layer draws the Hoàng Sa / Trường Sa atolls as
  large outlines (lagoons included), the 2025 layer only as small islets, so a quarter to a
  third of the 2009 area has no 2025 counterpart. Elsewhere the differences are boundary
  mismatches between the 2009 low-resolution and the 2025 simplified geometries.
  Old provinces whose largest overlap is a *different* new province: {share_contradicted}.
  Geometry slivers in other provinces were **not** turned into extra rows.
* **`area_share` / `population_share` empty** for commune rows (no pre-reform commune geometry
  with GSO codes is available), and `population_share` empty for all rows.
* **Caveat:** upstream extracted the mapping from the 34 National Assembly Standing Committee
  resolutions with an LLM, then checked it by script and by hand (~80 fixes). Good, not
  authoritative.

{communes_2009_section}

## papi/

PAPI (Provincial Governance and Public Administration Performance Index, UNDP / CECODES,
papi.org.vn), as prepared by `hnks-gh/ml-mcdm`. Copied byte-for-byte: `{papi_years}` yearly CSVs
({papi_files} files, 63 rows each: `Province` P01…P63 and 29 sub-criteria SC11…SC83, scores
0–3.33), `codebook_provinces.csv`, `codebook_criteria.csv`, `codebook_subcriteria.csv`, `LICENSE`.

* **Missing values are real:** {papi_empty} of {papi_cells} score cells ({papi_pct:.1f} %) are
  empty. Whole columns are missing in some years (SC24/SC7x/SC8x before 2018, SC52 from 2021)
  and some province-years are blank.
* **`province_codes.csv`** (derived): `papi_code,code,name` — PAPI code, GSO 2-digit code and
  official GSO name from `provinces-2019.geojson`. Matched by accent-folded name; overrides:
{papi_overrides}
  63 one-to-one (asserted). PAPI order equals GSO code order: {papi_gso_order}.
* PAPI's own terms of use were not verified; the hosting repository is MIT.

## raster/vn_ppp_2020_1km_Aggregated.tif

WorldPop 2020 population count for Vietnam, 1 km (unconstrained, not UN-adjusted), product
`Global_2000_2020_1km/2020/VNM/vnm_ppp_2020_1km_Aggregated.tif`, copied byte-for-byte from the
copy in `fa3me/towerintel-viet` (which states no licence of its own). GeoTIFF 879 × 1781 px,
Float32, LZW, NoData −99999, EPSG:4326, 30″ pixels, mainland Vietnam only (no Hoàng Sa /
Trường Sa); sum ≈ 99.49 M persons.

**Required attribution (CC BY 4.0):** WorldPop (www.worldpop.org – School of Geography and
Environmental Science, University of Southampton; Department of Geography and Geosciences,
University of Louisville; Departement de Geographie, Universite de Namur) and Center for
International Earth Science Information Network (CIESIN), Columbia University (2018). Global
High Resolution Population Denominators Project – Funded by The Bill and Melinda Gates
Foundation (OPP1134076). Dataset: "Unconstrained individual countries 2000-2020 (1km
resolution)", https://www.worldpop.org/geodata/listing?id=74 (cite the DOI shown on that page).
Licence: https://creativecommons.org/licenses/by/4.0/

## vietnam-3d-map-2025/

The 34 post-reform provinces and 3,321 communes/wards, copied byte-for-byte: `provinces.json`,
`wards/NN.json` ({ward_files} files, NN = new GSO province code), `wards/index.json`, `LICENSE`.

* **Format:** custom JSON, not GeoJSON: `provinces[].id` (GSO 2-digit), `name`, `type`, `area`
  (km²), `population`, `density`, `center`, `polygons` (list of exterior rings `[[lon,lat],…]`,
  one per part, no holes, some rings not closed). Wards: `{{provinceId, provinceName,
  wards:[{{id (GSO 5-digit), name, type, area, population, density, center, polygons}}]}}`.
* **Counts:** {ward_count} wards, {ward_unique} unique codes; types {ward_types}.
* **Quirks:** geometry simplified upstream (Douglas–Peucker 0.008° provinces / 0.0005° wards,
  5 decimals); wards were simplified one by one, so **they are not a clean coverage** (3,301 of
  3,321 wards have mismatched shared edges; overlaps ≈ 0.04 % of the area). Province
  populations sum to 113.7 M (more than Vietnam's real population); one ward, Đặc khu Hoàng
  Sa (20333, Đà Nẵng), has no population.
* **Licence:** the repository is MIT; upstream geometry is from gis.vn and the area/population
  figures from sapnhap.bando.com.vn, whose licences are not stated.

## Licence files

* `LICENSE-censusVN2009` is the R-package licence stub (`YEAR: 2017`, `COPYRIGHT HOLDER: Marc
  Choisy`); the package's DESCRIPTION says `License: MIT + file LICENSE`, i.e. the standard MIT
  licence text with that copyright line:

  > Copyright (c) 2017 Marc Choisy. Permission is hereby granted, free of charge, to any person
  > obtaining a copy of this software and associated documentation files (the "Software"), to
  > deal in the Software without restriction, including without limitation the rights to use,
  > copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and
  > to permit persons to whom the Software is furnished to do so, subject to the following
  > conditions: The above copyright notice and this permission notice shall be included in all
  > copies or substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT
  > WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
  > MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
  > AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN
  > AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
  > SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

* `LICENSE-dvhcvn-20250701`, `papi/LICENSE`, `vietnam-3d-map-2025/LICENSE`: MIT, copied as is.

## File sizes

{size_table}

## code-corrections-2025.csv

Two ward codes in `vietnam-3d-map-2025/wards/` differ from GSO letter 1027/CTK-CSCL (the official
list of the 3,321 new units, transcribed in dvhcvn/20250701 `1027_CTK-CSCL.md`). Every other
code and name was checked against that list (only spelling variants such as Thủy/Thuỷ differ).
The demo load applies these corrections with `--recode` and reports each one:

* `5665` → `05665` (Xã Văn Lăng, Thái Nguyên): the leading zero was lost.
* `23938` → `23737` (Xã Ia Mơ, Gia Lai): the source gives the old commune's code.
"""


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Render a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def override_lines(overrides: dict[str, str], names: dict[str, str]) -> str:
    """Render an override table as Markdown bullets."""
    return bullet_list([f"`{k}` → `{v}` ({names[v]})" for k, v in sorted(overrides.items())])


def communes_2009_section(c: dict[str, Any]) -> str:
    """The README section on the converted 2009 communes."""
    types = ", ".join(f"{k or '(none)'} {n:,}" for k, n in sorted(c["types"].items()))
    return f"""## {COMMUNES_2009_FILE}

The {c["count"]:,} communes of the 2009 Population and Housing Census (reference date
1 April 2009; boundaries of 2008–2009, after Hà Tây merged into Hà Nội) with their 2009 census
population: vintage `2009` of the demo (`geo-service demo --history`).

* **Source:** `communes.rda` of censusVN2009 (Marc Choisy & Lucie Contamin, MIT), the package's
  *low-resolution* `sp::SpatialPolygonsDataFrame`, read with the `rdata` package (PyPI, pure
  Python; only at preparation time). Polygons rebuilt ring by ring from the sp structure (holes
  from the sp `comment`), then snapped to a {COMMUNES_2009_GRID:g}° grid with GEOS
  (`shapely.set_precision`, which keeps them valid and shared edges shared); no other
  simplification: the source is already generalised ({c["source_vertices"]:,} vertices,
  {c["vertices"]:,} after snapping, about 25 per commune). {c["invalid"]} invalid and {c["empty"]}
  empty geometries as written. Extent {c["bounds"]}.
* **Format:** RFC 7946 GeoJSON FeatureCollection (one feature per line, sorted by `code`),
  gzip-compressed (the loader reads `.gz` files through GDAL's `/vsigzip/`).
* **Properties:** `code` (2009-census 7-digit commune code, e.g. `1010101` = Phường Phúc Xá),
  `name` (with diacritics), `type` ({types}, from the name's first word), `district_code` (5
  digits) and `district_name`, `province_code` (3 digits, e.g. `101` = Hà Nội) and
  `province_name`, `population` (2009 census, as in the source), `area_km2` (the source's
  `area` / 100).
* **Codes:** the **2009-census code scheme**, not GSO codes: kept as they are, as the code scheme
  of vintage `2009` (loaded with `--code-pattern '\\d{{7}}'`). {c["districts"]} districts and
  {c["provinces"]} provinces appear in the codes.
* **Quirks:**
  * The `*_vn` names in the source are literal `\\uXXXX` escape text; they were decoded.
    `district_name`/`province_name` are copied as decoded; the source's `districts$province_vn`
    is wrong for some rows (Hà Nội districts show "Hòa Bình"), the communes' own fields are not.
  * Population sums to {c["pop_total"]:,.3f}, short of the 85.8 M census total: some communes
    are missing or undercounted in the package.
  * {c["pop_zero"]} communes have population 0. The source does not say they are true zeros
    (no commune of Vietnam is uninhabited at this size), so the demo loads them as **not
    available**, never as 0.
  * {len(c["pop_fraction"])} populations are not whole numbers (kept as they are):
    {"; ".join(c["pop_fraction"]) or "none"}.
  * Two polygons have no name, no district name (the second) and population and area 0 in the
    source: they are named "{UNNAMED_2009} CODE" ("no name yet") so that they load; their type is
    empty. Units without a type word: {"; ".join(c["untyped"]) or "none"}."""


def render_readme(stats: Stats, names: dict[str, str]) -> str:
    """Fill the README template from the collected stats."""
    v = stats.values
    sizes = stats.files
    pm = v["papi_missing"]
    sp = v["xw_splits"]
    wc = v["ward_counts"]
    return README_TEMPLATE.format(
        script=SCRIPT_NAME,
        total_size=human_size(sum(sizes.values())),
        n_files=len(sizes),
        prov_count=v["prov_count"],
        decimals=COORD_DECIMALS,
        prov_rings=f"{v['prov_rings']:,}",
        prov_vertices=f"{v['prov_vertices']:,}",
        prov_bounds=v["prov_bounds"],
        n_tinh=v["prov_types"].get("Tỉnh", 0),
        n_tp=v["prov_types"].get("Thành phố Trung ương", 0),
        census_overrides=override_lines(CENSUS2009_OVERRIDES, names),
        n_invalid_written=len(v["prov_invalid_written"]),
        n_invalid_source=len(v["prov_invalid_source"]),
        invalid_written=bullet_list(v["prov_invalid_written"]),
        xw_prov_rows=v["xw_prov_rows"],
        n_district=len(v["xw_district_rows"]),
        district_rows=bullet_list(v["xw_district_rows"]),
        xw_commune_rows=f"{v['xw_commune_rows']:,}",
        rel_whole=f"{v['xw_relations'].get('whole', 0):,}",
        rel_partial=f"{v['xw_relations'].get('partial', 0):,}",
        xw_old_prov=v["xw_old_prov"],
        xw_new_prov=v["xw_new_prov"],
        xw_new_commune=f"{v['xw_new_commune']:,}",
        xw_old_communes=f"{sp['old_communes_in_merges']:,}",
        n_dropped=len(v["xw_dropped"]),
        dropped=bullet_list(v["xw_dropped"]),
        n_multi_whole=len(v["multi_whole"]),
        multi_whole=bullet_list(v["multi_whole"]),
        n_mixed=len(v["mixed"]),
        mixed=bullet_list(v["mixed"]),
        n_lone_partial=len(v["lone_partial"]),
        lone_partial=bullet_list(v["lone_partial"]),
        n_cross_province=len(v["xw_cross_province"]),
        cross_province=bullet_list(v["xw_cross_province"]),
        splits_communes=f"{sp['old_communes_in_splits']:,}",
        merges_communes=f"{sp['old_communes_in_merges']:,}",
        n_never_merged=len(sp["never_merged"]),
        n_not_in_splits=len(sp["not_in_splits"]),
        pairs_only_merges=sp["pairs_only_in_merges"],
        pairs_only_splits=sp["pairs_only_in_splits"],
        ea_crs=EQUAL_AREA_CRS,
        share_min=v["share_min"],
        share_median=v["share_median"],
        share_low=bullet_list(v["share_low"]),
        share_contradicted=", ".join(v["share_contradicted"]) or "none",
        papi_years=pm["years"],
        papi_files=pm["files"],
        papi_empty=f"{pm['empty']:,}",
        papi_cells=f"{pm['cells']:,}",
        papi_pct=100 * pm["empty"] / pm["cells"],
        papi_overrides=override_lines(PAPI_OVERRIDES, names),
        papi_gso_order="yes" if v["papi_gso_order"] else "**no**",
        ward_files=wc["files"],
        ward_count=f"{wc['wards']:,}",
        ward_unique=f"{wc['unique']:,}",
        ward_types=", ".join(f"{k} {n:,}" for k, n in sorted(wc["types"].items())),
        size_table=markdown_table(
            ["File", "Bytes"], [(f"`{k}`", f"{n:,}") for k, n in sizes.items()]
        ),
        communes_2009_section=communes_2009_section(v["c2009"]),
        overview_table=markdown_table(["Path", "Source", "Licence", "How"], OVERVIEW),
        sources_table=markdown_table(
            ["Short name", "Repository", "Commit", "Licence"],
            [(name, repo, f"`{commit}`", lic) for name, repo, commit, lic in SOURCES],
        ),
    )


# --------------------------------------------------------------------------- main


def print_summary(stats: Stats) -> None:
    """Print the key counts and findings to stdout."""
    v = stats.values
    print(f"provinces: {v['prov_count']} ({v['prov_types']}), vertices {v['prov_vertices']}")
    print(
        f"invalid provinces: source {len(v['prov_invalid_source'])}, "
        f"written {len(v['prov_invalid_written'])}"
    )
    for line in v["prov_invalid_written"]:
        print(f"  {line}")
    print(
        f"crosswalk: old provinces {v['xw_old_prov']}, new provinces {v['xw_new_prov']}, "
        f"new communes {v['xw_new_commune']}, rows {v['xw_prov_rows']}+{v['xw_commune_rows']}"
    )
    print(f"  duplicates dropped {len(v['xw_dropped'])}: {v['xw_dropped']}")
    for key in ("multi_whole", "mixed", "lone_partial", "xw_cross_province"):
        print(f"  {key}: {len(v[key])}")
        for line in v[key]:
            print(f"    {line}")
    sp = v["xw_splits"]
    counts = {k: (len(x) if isinstance(x, list) else x) for k, x in sp.items()}
    print(f"  splits cross-check: {counts}")
    print(f"  area share in target: min {v['share_min']:.4f}, median {v['share_median']:.4f}")
    for line in v["share_low"]:
        print(f"    {line}")
    print(f"  contradicted by geometry: {v['share_contradicted']}")
    print(f"papi: GSO order {v['papi_gso_order']}, missing {v['papi_missing']}")
    print(f"wards: {v['ward_counts']}")
    total = sum(stats.files.values())
    print(f"files: {len(stats.files)}, total {human_size(total)}")


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="shared data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    return parser.parse_args()


def main() -> None:
    """Build every demo file under the output folder."""
    args = parse_args()
    shared: Path = args.shared.resolve()
    out: Path = args.out.resolve()
    if not (shared / "vn").is_dir():
        raise SystemExit(f"shared data folder not found: {shared}")
    out.mkdir(parents=True, exist_ok=True)
    stats = Stats()
    provinces = build_provinces(shared, stats)
    write_provinces_geojson(provinces, out / "provinces-2019.geojson", stats)
    rows = build_crosswalk(shared, provinces, stats)
    write_csv(out / "crosswalk-2019-2025.csv", CROSSWALK_COLUMNS, rows)
    write_communes_2009(shared, out, stats)
    copy_sources(shared, out)
    papi_rows = build_papi_codes(shared, provinces, stats)
    write_csv(out / "papi/province_codes.csv", ["papi_code", "code", "name"], papi_rows)
    stats.values["ward_counts"] = ward_counts(out / "vietnam-3d-map-2025/wards")
    stats.files = file_sizes(out)
    names = dict(zip(provinces["code"], provinces["name"], strict=True))
    (out / "README.md").write_text(render_readme(stats, names), encoding="utf-8")
    print_summary(stats)


if __name__ == "__main__":
    main()
