"""CPU seconds per field-map page, without a database: the pages of made-up communes drawn on
one `FieldMapPage` as a map book draws them (strips: 40 EAs of ~25 m × 1 km, whose codes
need leader lines; blocks: a grid of 15 × 15 EAs of ~100 m), then written to PDF.

    python -m bench.field_map_pages [--repeat 3]

CPU time (`time.process_time`) is reported, not wall time: it is what a page costs, and it
moves far less than wall time on a loaded machine."""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from typing import Any

import shapely
from matplotlib.backends.backend_pdf import PdfPages

from bench.common import loadavg
from geo_service.outputs import field_maps


def made_up_ea(code: str, geom: shapely.Geometry) -> dict[str, Any]:
    """A made-up EA of Ba Đình as the field map reads it from the database."""
    return {
        "code": code,
        "geom": geom,
        "households": 120,
        "listed_households": None,
        "enumerator_code": None,
        "enumerator_name": None,
        "supervisor_code": None,
        "supervisor_name": None,
        "commune_code": "00004",
        "commune_name": "Ba Đình",
        "province_code": "01",
        "province_name": "Hà Nội",
        "status": "draft",
        "urban_rural": "urban",
        "area_km2": 0.03,
        "boundary_description": None,
        "landmarks": None,
    }


def made_up_sheet(eas: list[dict[str, Any]]) -> field_maps.CommuneSheet:
    """A commune sheet of made-up EAs, outlined by their union."""
    commune = {"vintage": "2025", "code": "00004", "name": "Ba Đình", "province": "01"}
    outline = shapely.union_all([e["geom"] for e in eas])
    return field_maps.CommuneSheet(commune, "2029", eas, outline, [], "Cục Thống kê", "vi")


def strips() -> field_maps.CommuneSheet:
    """40 strips of ~25 m × 1 km side by side."""
    w, h = 0.00025, 0.009
    return made_up_sheet(
        [
            made_up_ea(
                f"00004-{i + 1:03d}",
                shapely.box(105.83 + i * w, 21.03, 105.83 + (i + 1) * w, 21.03 + h),
            )
            for i in range(40)
        ]
    )


def blocks() -> field_maps.CommuneSheet:
    """A grid of 15 × 15 blocks of ~100 m."""
    s = 0.001
    return made_up_sheet(
        [
            made_up_ea(
                f"00004-{i * 15 + j + 1:03d}",
                shapely.box(
                    105.83 + i * s, 21.03 + j * s, 105.83 + (i + 1) * s, 21.03 + (j + 1) * s
                ),
            )
            for i in range(15)
            for j in range(15)
        ]
    )


def _cpu_per_page(sheet: field_maps.CommuneSheet, pages: int) -> float:
    """CPU seconds per page of the first `pages` EAs, drawn and written to a PDF."""
    page = field_maps.FieldMapPage(sheet)
    start = time.process_time()
    with PdfPages(io.BytesIO()) as pdf:
        for ea in sheet.eas[:pages]:
            pdf.savefig(page.draw(ea))
    return (time.process_time() - start) / pages


def main() -> None:
    """Print CPU seconds per page (median of the repeats) for strips and blocks, as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pages", type=int, default=40)
    args = parser.parse_args()
    before = loadavg()
    result: dict[str, Any] = {}
    for name, make in (("strips", strips), ("blocks", blocks)):
        sheet = make()
        _cpu_per_page(sheet, 2)  # (warm-up: fonts, caches)
        runs = [_cpu_per_page(sheet, args.pages) for _ in range(args.repeat)]
        result[name] = {
            "median": round(statistics.median(runs), 4),
            "runs": [round(r, 4) for r in runs],
        }
    result["load"] = [before, loadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
