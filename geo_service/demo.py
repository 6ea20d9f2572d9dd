"""The demo data set shipped in `data/vn/`, loaded once (re-runs skip what is there)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg

from boundaries.checks import FieldMap
from boundaries.crosswalk import load_crosswalk
from boundaries.generalise import DEMO_GAP_WIDTH
from boundaries.load import LoadOptions, load_boundaries, read_recode_file
from boundaries.vintages import Vintage, add_vintage

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "vn"

VINTAGES = (
    Vintage(
        "2019", date(2008, 8, 1), date(2025, 7, 1),
        "63 provinces before the 1 July 2025 reform (codes of Decision 124/2004; province "
        "outlines of the 2009 census)",
        "censusVN2009 (Choisy & Contamin) with GSO codes from dvhcvn/20250701", "MIT",
    ),
    Vintage(
        "2025", date(2025, 7, 1), None,
        "34 provinces and 3,321 communes after the 1 July 2025 reform (Decision 19/2025)",
        "lamngockhuong/vietnam-3d-map (geometry from gis.vn, simplified upstream)", "MIT",
    ),
)


def _boundary_loads(data: Path) -> list[tuple[list[Path], LoadOptions]]:
    wards = sorted(p for p in (data / "vietnam-3d-map-2025" / "wards").glob("*.json")
                   if p.name != "index.json")
    return [
        ([data / "provinces-2019.geojson"],
         LoadOptions("2019", "province", FieldMap("code", "name", None, "type"))),
        ([data / "vietnam-3d-map-2025" / "provinces.json"],
         LoadOptions("2025", "province", FieldMap("id", "name", None, "type"))),
        # Two ward codes in the source differ from the official list; see the CSV. The wards
        # were simplified one by one upstream, so slivers between neighbours are closed.
        (wards, LoadOptions("2025", "commune", FieldMap("id", "name", "provinceId", "type"),
                            recode=read_recode_file(data / "code-corrections-2025.csv"),
                            gap_width=DEMO_GAP_WIDTH)),
    ]


def _already_loaded(conn: psycopg.Connection, vintage: str, level: str) -> int:
    row = conn.execute("SELECT count(*) FROM admin_unit WHERE vintage = %s AND level = %s",
                       (vintage, level)).fetchone()
    return int(row[0]) if row else 0


def load_demo(conn: psycopg.Connection, data: Path = DATA_DIR) -> Iterator[str]:
    """Load whatever part of the demo is missing; yield one line per step."""
    for vintage in VINTAGES:
        if add_vintage(conn, vintage):
            yield f"vintage {vintage.id} created"
    for paths, options in _boundary_loads(data):
        existing = _already_loaded(conn, options.vintage, options.level)
        if existing:
            yield f"{options.level} {options.vintage}: {existing} units already loaded"
            continue
        summary = load_boundaries(conn, paths, options)
        yield (f"{options.level} {options.vintage}: {summary.loaded} units loaded, "
               f"{len(summary.report.repaired)} repaired, {len(summary.report.warnings)} "
               f"warnings, {summary.seconds:.1f} s")
    has_crosswalk = conn.execute(
        "SELECT count(*) FROM crosswalk WHERE from_vintage = '2019' AND to_vintage = '2025'"
    ).fetchone()
    if has_crosswalk and has_crosswalk[0]:
        yield f"crosswalk 2019 → 2025: {has_crosswalk[0]} rows already loaded"
    else:
        result = load_crosswalk(conn, data / "crosswalk-2019-2025.csv", "2019", "2025")
        yield f"crosswalk 2019 → 2025: {result.loaded} rows loaded"
