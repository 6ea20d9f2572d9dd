"""The demo data set shipped in `data/vn/`, loaded once (re-runs skip what is there)."""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import psycopg
import shapely

from boundaries import sql as units
from boundaries.checks import FieldMap
from boundaries.crosswalk import load_crosswalk
from boundaries.dissolve import dissolve_coverage
from boundaries.generalise import DEMO_GAP_WIDTH
from boundaries.lines import load_lines
from boundaries.load import LoadOptions, load_boundaries, read_recode_file
from boundaries.readers import read_boundaries
from boundaries.vintages import Vintage, add_vintage
from geo_core.errors import LoaderError
from indicators import protect
from indicators.catalogue import load_catalogue
from indicators.crosswalk_build import build_crosswalk
from indicators.sql import (
    Selection,
    count_values,
    delete_values,
    published_values_sync,
    save_series,
    series_derivation,
    series_exists,
)
from indicators.store import carry_over, store_values
from indicators.values import ValueFormat, parse_values, read_table
from indicators.zonal_store import store_zonal

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "vn"

VINTAGES = (
    Vintage(
        "2019",
        date(2008, 8, 1),
        date(2025, 7, 1),
        "63 provinces before the 1 July 2025 reform (codes of Decision 124/2004; province "
        "outlines of the 2009 census)",
        "censusVN2009 (Choisy & Contamin) with GSO codes from dvhcvn/20250701",
        "MIT",
    ),
    Vintage(
        "2025",
        date(2025, 7, 1),
        None,
        "34 provinces and 3,321 communes after the 1 July 2025 reform (Decision 19/2025)",
        "lamngockhuong/vietnam-3d-map (geometry from gis.vn, simplified upstream)",
        "MIT",
    ),
)


# The history (`geo-service demo --history`): the communes of the 2009 census.
HISTORY_VINTAGE = Vintage(
    "2009",
    date(2009, 4, 1),
    date(2010, 1, 1),
    "11,163 communes of the 2009 Population and Housing Census (reference date 1 April "
    "2009; 2009-census codes, not GSO codes; communes changed gradually afterwards)",
    "censusVN2009 (Choisy & Contamin), low-resolution communes",
    "MIT",
)
COMMUNES_2009 = "communes-2009.geojson.gz"
RASTER = Path("raster") / "vn_ppp_2020_1km_Aggregated.tif"
# The 2009 census population carried onto the 2025 communes, as the history computes it
# (shipped so that the default demo has two periods of a commune indicator at once; the
# history takes minutes, this file a second): values and how they were made.
CARRIED_2009 = "population-2009-communes-2025.csv"
CARRIED_2009_RECORD = "population-2009-communes-2025.json"


def _boundary_loads(data: Path) -> list[tuple[list[Path], LoadOptions]]:
    wards = _ward_files(data)
    return [
        (
            [data / "provinces-2019.geojson"],
            LoadOptions(
                "2019", "province", FieldMap("code", "name", None, "type"), gap_width=DEMO_GAP_WIDTH
            ),
        ),
        (
            [data / "vietnam-3d-map-2025" / "provinces.json"],
            LoadOptions(
                "2025", "province", FieldMap("id", "name", None, "type"), gap_width=DEMO_GAP_WIDTH
            ),
        ),
        # Two ward codes in the source differ from the official list; see the CSV. The wards
        # were simplified one by one upstream, so slivers between neighbours are closed.
        (
            wards,
            LoadOptions(
                "2025",
                "commune",
                FieldMap("id", "name", "provinceId", "type"),
                recode=read_recode_file(data / "code-corrections-2025.csv"),
                gap_width=DEMO_GAP_WIDTH,
            ),
        ),
    ]


def _ward_files(data: Path) -> list[Path]:
    return sorted(
        p for p in (data / "vietnam-3d-map-2025" / "wards").glob("*.json") if p.name != "index.json"
    )


def load_demo(conn: psycopg.Connection, data: Path = DATA_DIR) -> Iterator[str]:
    """Load whatever part of the demo is missing; yield one line per step."""
    for vintage in VINTAGES:
        if add_vintage(conn, vintage):
            yield f"vintage {vintage.id} created"
    for paths, options in _boundary_loads(data):
        existing = units.count_units(conn, options.vintage, options.level)
        if existing:
            yield f"{options.level} {options.vintage}: {existing} units already loaded"
            continue
        summary = load_boundaries(conn, paths, options)
        yield (
            f"{options.level} {options.vintage}: {summary.loaded} units loaded, "
            f"{len(summary.report.repaired)} repaired, {len(summary.report.warnings)} "
            f"warnings, {summary.seconds:.1f} s"
        )
    lines = data / "lines" / "transport.geojson"
    if units.lines_loaded(conn, lines.name):
        yield f"lines: {lines.name} already loaded"
    else:
        # (as `geo-service load lines data/vn/lines/transport.geojson --kind-field kind`)
        loaded = load_lines(conn, lines, "road", kind_field="kind")
        yield f"lines: {loaded.loaded} roads and railways loaded ({loaded.outside} off-shore)"
    crosswalk_rows = units.count_crosswalk(conn, "2019", "2025")
    if crosswalk_rows:
        yield f"crosswalk 2019 → 2025: {crosswalk_rows} rows already loaded"
    else:
        result = load_crosswalk(conn, data / "crosswalk-2019-2025.csv", "2019", "2025")
        yield f"crosswalk 2019 → 2025: {result.loaded} rows loaded"
    yield from load_demo_indicators(conn, data)


def _census_2025_frame(data: Path, level: str) -> pd.DataFrame:
    """Population, area and density of the 2025 units as the demo's JSON gives them."""
    if level == "province":
        frame = read_boundaries([data / "vietnam-3d-map-2025" / "provinces.json"])
    else:
        frame = read_boundaries(_ward_files(data))
    recode = read_recode_file(data / "code-corrections-2025.csv")
    codes = [recode.get(str(c), (str(c), ""))[0] for c in frame["id"]]
    return pd.DataFrame(
        {
            "code": codes,
            "population": frame["population"].astype("string"),
            "area_km2": frame["area"].astype("string"),
            "density": frame["density"].astype("string"),
        }
    ).fillna("")


def _papi_frame(data: Path) -> pd.DataFrame:
    """All PAPI years in long format: code, period, one column per sub-criterion."""
    codes = dict(
        read_table(data / "papi" / "province_codes.csv")[["papi_code", "code"]].itertuples(
            index=False, name=None
        )
    )
    years = []
    for path in sorted((data / "papi").glob("[0-9][0-9][0-9][0-9].csv")):
        year = read_table(path)
        year.insert(0, "period", path.stem)
        year.insert(0, "code", year.pop("Province").map(codes))
        years.append(year)
    return pd.concat(years, ignore_index=True)


def load_demo_indicators(conn: psycopg.Connection, data: Path = DATA_DIR) -> Iterator[str]:
    """The demo's indicator catalogue and values (skipping series already loaded)."""
    count = load_catalogue(conn, data / "indicators.csv")
    yield f"indicator catalogue: {count} indicators"
    for level in ("province", "commune"):
        frame = _census_2025_frame(data, level)
        for column in ("population", "area_km2", "density"):
            yield _load_series(
                conn,
                frame,
                column,
                "2025",
                level,
                ValueFormat("code", period="2025", value_column=column),
            )
    yield _load_carried_2009(conn, data)
    papi = _papi_frame(data)
    for column in [c for c in papi.columns if c.startswith("SC")]:
        yield _load_series(
            conn,
            papi,
            f"papi_{column.lower()}",
            "2019",
            "province",
            ValueFormat("code", period_column="period", value_column=column),
        )
    for level in ("province", "commune"):
        if series_exists(conn, "pop_worldpop", "2025", level):
            continue
        result = store_zonal(
            conn,
            data / RASTER,
            "pop_worldpop",
            "2025",
            level,
            "sum",
            period="2020",
        )
        yield f"pop_worldpop 2025 {level}: {result.loaded} values (zonal sum)"


def _load_series(
    conn: psycopg.Connection,
    frame: pd.DataFrame,
    indicator: str,
    vintage: str,
    level: str,
    fmt: ValueFormat,
) -> str:
    if series_exists(conn, indicator, vintage, level):
        return f"{indicator} {vintage} {level}: already loaded"
    rows, problems = parse_values(frame, fmt, f"demo {indicator}")
    if problems:
        raise LoaderError("\n".join(problems))
    result = store_values(conn, indicator, vintage, level, rows)
    return (
        f"{indicator} {vintage} {level}: {result.loaded} values "
        f"({result.not_available} not available)"
    )


def _load_carried_2009(conn: psycopg.Connection, data: Path) -> str:
    """The shipped 2009 population of the 2025 communes, stored with the derivation record
    of the carry-over that made it (the page shows it as carried, as with the history)."""
    vintage = HISTORY_VINTAGE.id
    if count_values(conn, "population", "2025", "commune", [vintage]):
        return f"population {vintage} on the 2025 communes: already loaded"
    frame = read_table(data / CARRIED_2009)
    rows, problems = parse_values(
        frame, ValueFormat("code", period=vintage, value_column="population"), CARRIED_2009
    )
    if problems:
        raise LoaderError("\n".join(problems))
    record = json.loads((data / CARRIED_2009_RECORD).read_text(encoding="utf-8"))
    derivation = {**record["derivation"], "shipped_as": f"data/vn/{CARRIED_2009}"}
    result = store_values(conn, "population", "2025", "commune", rows, derivation=derivation)
    return (
        f"population {vintage} on the 2025 communes (carried over, {CARRIED_2009}): "
        f"{result.loaded} values ({result.not_available} not available)"
    )


def _drop_shipped_2009(conn: psycopg.Connection) -> bool:
    """Remove the shipped carried-over 2009 period before the history makes it again (its
    derivation would otherwise be re-derived as soon as the 2009 values are stored, before
    the crosswalk it names exists); whether it was there."""
    derivation = series_derivation(conn, "population", "2025", "commune")
    if not derivation or "shipped_as" not in derivation:
        return False
    if units.count_crosswalk_level(conn, HISTORY_VINTAGE.id, "2025", "commune"):
        return False
    with conn.transaction():
        delete_values(conn, "population", "2025", "commune", [HISTORY_VINTAGE.id])
        save_series(conn, "population", "2025", "commune", None)  # 2025 itself is observed
    protect.refresh(conn)
    return True


def export_carried_2009(conn: psycopg.Connection, data: Path = DATA_DIR) -> int:
    """Write the 2009 population carried onto the 2025 communes (a database with the history
    loaded) and its derivation record into `data`; the number of units written."""
    rows = published_values_sync(conn, Selection("population", "2025", "commune", "2009"))
    derivation = series_derivation(conn, "population", "2025", "commune")
    if not rows or not derivation or derivation.get("from_vintage") != HISTORY_VINTAGE.id:
        raise LoaderError("load the history first (geo-service demo --history)")
    with (data / CARRIED_2009).open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["code", "population"])
        for row in rows:
            # not available stays an empty cell; values keep their full precision
            value = row["value"] if row["status"] in ("ok", "provisional") else None
            writer.writerow([row["code"], "" if value is None else repr(float(value))])
    # (when the crosswalk was built is not part of how: the file stays the same on a rerun)
    made = {k: v for k, v in derivation.items() if k not in ("crosswalk_built_at", "periods")}
    record = {"derivation": made}
    (data / CARRIED_2009_RECORD).write_text(
        json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return len(rows)


def load_history(conn: psycopg.Connection, data: Path = DATA_DIR) -> Iterator[str]:
    """The 2009 communes with their census population, the crosswalk 2009 → 2025 computed
    from geometry and the 2009 population carried onto the 2025 communes (skipping what is
    there)."""
    vintage = HISTORY_VINTAGE.id
    if add_vintage(conn, HISTORY_VINTAGE):
        yield f"vintage {vintage} created"
    if _drop_shipped_2009(conn):
        yield f"population {vintage} on the 2025 communes: the shipped copy is made again here"
    existing = units.count_units(conn, vintage, "commune")
    if existing:
        yield f"commune {vintage}: {existing} units already loaded"
    else:
        summary = load_boundaries(
            conn,
            [data / COMMUNES_2009],
            # 2009-census codes: 7 digits, no parent level loaded
            LoadOptions(
                vintage, "commune", FieldMap("code", "name", None, "type"), code_pattern=r"\d{7}"
            ),
        )
        yield (
            f"commune {vintage}: {summary.loaded} units loaded, "
            f"{len(summary.report.repaired)} repaired, {summary.seconds:.1f} s"
        )
    frame = read_boundaries([data / COMMUNES_2009])
    # the source's 78 zeros are not known to be true zeros: not available (an empty cell;
    # data/vn/README.md)
    population = [f"{v:.15g}" if v else "" for v in frame["population"]]
    values = pd.DataFrame({"code": frame["code"].astype("string"), "population": population})
    yield _load_series(
        conn,
        values,
        "population",
        vintage,
        "commune",
        ValueFormat("code", period=vintage, value_column="population"),
    )
    yield from _carry_population_to_2025(conn, vintage, "commune", data)
    yield from load_history_levels(conn, frame, data)


@dataclass(frozen=True)
class DissolvedLevel:
    """A level of the 2009 census built from its communes: which property holds its code."""

    level: str
    code: str  # the communes' property holding the unit's 2009-census code
    name: str
    pattern: str
    parent: str | None = None  # the property holding the parent's code


HISTORY_LEVELS = (
    DissolvedLevel("province", "province_code", "province_name", r"\d{3}"),
    DissolvedLevel("district", "district_code", "district_name", r"\d{5}", "province_code"),
)
# The five centrally-run cities of 2009 (the others were provinces, Tỉnh).
CITIES_2009 = frozenset({"Hà Nội", "Hải Phòng", "Đà Nẵng", "Hồ Chí Minh", "Cần Thơ"})
DISTRICT_TYPES = ("Thành phố", "Thị xã", "Quận", "Huyện")


def load_history_levels(
    conn: psycopg.Connection, communes: gpd.GeoDataFrame, data: Path = DATA_DIR
) -> Iterator[str]:
    """The 2009 provinces and districts, merged from the loaded 2009 communes' clean
    coverage by the codes the communes carry, with their population summed; the crosswalk
    2009 → 2025 at province level from geometry and the population carried over."""
    vintage = HISTORY_VINTAGE.id
    coverage: dict[str, bytes] | None = None
    for spec in HISTORY_LEVELS:
        existing = units.count_units(conn, vintage, spec.level)
        if existing:
            yield f"{spec.level} {vintage}: {existing} units already loaded"
        else:
            if coverage is None:
                coverage = dict(units.coverage_geometries(conn, vintage, "commune"))
            yield _load_dissolved(conn, communes, coverage, spec)
        yield _load_summed_population(conn, communes, spec)
    yield from _carry_population_to_2025(conn, vintage, "province", data)


def _carry_population_to_2025(
    conn: psycopg.Connection, vintage: str, level: str, data: Path
) -> Iterator[str]:
    """Build the crosswalk `vintage` → 2025 at `level` and carry the population over, once."""
    if units.count_crosswalk_level(conn, vintage, "2025", level):
        yield f"crosswalk {vintage} → 2025 ({level}): already built"
    else:
        build = build_crosswalk(
            conn, vintage, "2025", level, weights=("area", "population"), raster=data / RASTER
        )
        yield (
            f"crosswalk {vintage} → 2025 ({level}): {len(build.links)} links computed, "
            f"{len(build.slivers)} slivers dropped, {build.seconds:.1f} s"
        )
    if count_values(conn, "population", "2025", level, [vintage]):
        yield f"population {vintage} on the 2025 {level}s: already carried over"
    else:
        result = carry_over(conn, "population", vintage, "2025", level, "population")
        yield (
            f"population {vintage} carried onto the 2025 {level}s: {result.loaded} values "
            f"({result.not_available} not available)"
        )


def dissolved_units(
    communes: gpd.GeoDataFrame, coverage: dict[str, bytes], spec: DissolvedLevel
) -> gpd.GeoDataFrame:
    """The units of one level: the communes' clean coverage merged by the level's code, each
    named as most of its communes name it (one commune of 2009 has no district name)."""
    missing = sorted(set(communes["code"]) - coverage.keys())
    if missing:
        raise LoaderError(
            f"{len(missing)} communes of {HISTORY_VINTAGE.id} are not loaded (e.g. {missing[0]})"
        )
    geoms = shapely.from_wkb([coverage[c] for c in communes["code"]])
    codes, merged = dissolve_coverage(
        geoms, communes[spec.code].tolist(), f"the {spec.level}s of {HISTORY_VINTAGE.id}"
    )
    named = communes[communes[spec.name].fillna("").str.strip() != ""]
    names = named.groupby(spec.code)[spec.name].agg(lambda s: s.value_counts().index[0])
    frame = gpd.GeoDataFrame(
        {"code": codes, "name": [names.get(c, f"{spec.level} {c}") for c in codes]},
        geometry=merged,
        crs="EPSG:4326",
    )
    frame["type"] = [_unit_type(spec.level, n) for n in frame["name"]]
    if spec.parent:
        parents = communes.groupby(spec.code)[spec.parent].agg(lambda s: sorted(set(s)))
        split = [c for c in codes if len(parents[c]) != 1]
        if split:
            raise LoaderError(f"{spec.level}s of {HISTORY_VINTAGE.id} in two parents: {split}")
        frame["parent"] = [parents[c][0] for c in codes]
    return frame


def _unit_type(level: str, name: str) -> str | None:
    if level == "province":
        return "Thành phố Trung ương" if name in CITIES_2009 else "Tỉnh"
    return next((t for t in DISTRICT_TYPES if name.startswith(t + " ")), None)


def _load_dissolved(
    conn: psycopg.Connection,
    communes: gpd.GeoDataFrame,
    coverage: dict[str, bytes],
    spec: DissolvedLevel,
) -> str:
    frame = dissolved_units(communes, coverage, spec)
    with tempfile.TemporaryDirectory(prefix="geo-service-2009-") as folder:
        path = Path(folder) / f"{spec.level}-2009.geojson"
        frame.to_file(path, driver="GeoJSON")
        summary = load_boundaries(
            conn,
            [path],
            LoadOptions(
                HISTORY_VINTAGE.id,
                spec.level,
                FieldMap("code", "name", "parent" if spec.parent else None, "type"),
                code_pattern=spec.pattern,
                parent_level="province" if spec.parent else None,
                # the 2009 communes leave gaps between them (holes in the merged units):
                # closed below 50 m, as for the other demo boundaries
                gap_width=DEMO_GAP_WIDTH,
            ),
        )
    return (
        f"{spec.level} {HISTORY_VINTAGE.id}: {summary.loaded} units merged from the "
        f"communes and loaded, {summary.seconds:.1f} s"
    )


def summed_population(
    communes: gpd.GeoDataFrame, spec: DissolvedLevel
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Each unit's 2009 population as the sum of its communes' that are available (the
    source's zeros are not available), with the derivation record naming every unit that
    has communes without a figure and how many."""
    key = communes[spec.code]
    available = communes["population"] > 0
    totals = communes["population"].where(available).groupby(key).sum(min_count=1)
    lacking = (~available).groupby(key).sum()
    lacking = lacking[lacking > 0]
    values = pd.DataFrame(
        {
            "code": totals.index.astype("string"),
            "population": [f"{v:.15g}" if pd.notna(v) else "" for v in totals],
        }
    )
    derivation: dict[str, object] = {
        "method": "sum",
        "from_vintage": HISTORY_VINTAGE.id,
        "from_level": "commune",
        "parts": int(len(communes)),
        "parts_vintage": HISTORY_VINTAGE.id,
        "parts_level": "commune",
        "parts_not_available": int((~available).sum()),
        "units_with_parts_not_available": {str(k): int(v) for k, v in lacking.items()},
        "note": (
            "sum of the communes' 2009 census population that is available; the source has "
            "78 communes without a figure (population 0) and sums to 77.5 M of the census's "
            "85.8 M (data/vn/README.md)"
        ),
    }
    return values, derivation


def _load_summed_population(
    conn: psycopg.Connection, communes: gpd.GeoDataFrame, spec: DissolvedLevel
) -> str:
    vintage = HISTORY_VINTAGE.id
    if series_exists(conn, "population", vintage, spec.level):
        return f"population {vintage} {spec.level}: already loaded"
    values, derivation = summed_population(communes, spec)
    rows, problems = parse_values(
        values, ValueFormat("code", period=vintage, value_column="population"), spec.level
    )
    if problems:
        raise LoaderError("\n".join(problems))
    result = store_values(conn, "population", vintage, spec.level, rows, derivation=derivation)
    return (
        f"population {vintage} {spec.level}: {result.loaded} sums of the communes "
        f"({derivation['parts_not_available']} communes not available, in "
        f"{len(derivation['units_with_parts_not_available'])} units)"  # type: ignore[arg-type]
    )
