"""Where a field map writes its EAs' codes: the map's own furniture (north arrow, scale bar)
stays readable, whatever lies under it. Drawn from a made-up commune (a grid of square EAs
around Hà Nội), no database needed."""

from __future__ import annotations

from typing import Any

import shapely
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from geo_service.outputs import field_maps

SIDE = 0.001  # degrees: small EAs of ~100 m ...
GRID = 31  # ... a grid of them ...
BIG = range(11, 20)  # ... but for a big one of 9 × 9 in the middle, whose frame they fill


def _ea(code: str, x: float, y: float) -> dict[str, Any]:
    return {
        "code": code,
        "geom": shapely.box(x, y, x + SIDE, y + SIDE),
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
        "area_km2": 0.04,
        "boundary_description": None,
        "landmarks": None,
    }


def _sheet() -> field_maps.CommuneSheet:
    eas = [
        _ea(f"00004-{i:02d}{j:02d}", 105.80 + i * SIDE, 21.00 + j * SIDE)
        for i in range(GRID)
        for j in range(GRID)
        if not (i in BIG and j in BIG)
    ]
    big = _ea("00004-BIG", 105.80 + BIG[0] * SIDE, 21.00 + BIG[0] * SIDE)
    big["geom"] = shapely.box(
        *big["geom"].bounds[:2], *(v + 8 * SIDE for v in big["geom"].bounds[2:])
    )
    commune = {"vintage": "2025", "code": "00004", "name": "Ba Đình", "province": "01"}
    outline = shapely.union_all([e["geom"] for e in [*eas, big]])
    return field_maps.CommuneSheet(commune, "2029", [*eas, big], outline, [], "Cục Thống kê", "vi")


def test_codes_leave_the_north_arrow_and_the_scale_bar_readable() -> None:
    sheet = _sheet()
    page = field_maps.FieldMapPage(sheet)
    for ea in sheet.eas[-1:]:  # the big EA
        page.draw(ea)
        renderer = page.figure.canvas.get_renderer()  # type: ignore[attr-defined]
        texts = [a for a in page.drawn if isinstance(a, Text)]
        codes = [t for t in texts if t.get_text().startswith("00004-")]
        assert len(codes) > 10, ea["code"]  # (a full frame: the rule is tested, not luck)
        bar = [a for a in page.drawn if a.get_zorder() >= 9]  # (the scale bar's parts)
        assert len(bar) >= 5
        # the north arrow: its arrow from 0.875 to 0.955 of the frame's height, at 0.95 of
        # its width, and its letter above (cartography.north_arrow)
        arrow = Bbox(page.ax.transAxes.transform([(0.94, 0.875), (0.96, 0.99)]))
        furniture = [arrow] + [a.get_window_extent(renderer) for a in bar]
        over = [
            t.get_text()
            for t in codes
            for box in furniture
            if t.get_window_extent(renderer).overlaps(box)
        ]
        assert not over, (ea["code"], over)
