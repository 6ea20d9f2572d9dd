"""Zoom levels: the deepest zoom served, and the generalisation band drawn at each zoom.

This is the one definition; `geo_service.migrate` writes it into the `zoom_band` table,
which the database's triggers and views use.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ZOOM = 22  # the deepest tile matrix of WebMercatorQuad that is served


@dataclass(frozen=True)
class ZoomBand:
    """Zooms min_zoom..max_zoom use geometries simplified with `tolerance` degrees."""

    band: int
    min_zoom: int
    max_zoom: int
    tolerance: float


# Tolerance ≈ half a screen pixel at the band's highest zoom (a 256-pixel tile's pixel is
# 1.40625 / 2**z degrees), so a tile carries no vertex it cannot show; 0 = cleaned, not
# simplified. One band per zoom from z4 to z11 (a zoom drawn from geometry made for a zoom
# above it carried twice to eight times the vertices it can show: z9 drew z11's until
# migration 0024); z0–z3 share one (all of Vietnam in one or two tiles; every unit is a few
# pixels or less).
# Changing a band: a migration moves or drops its rows, and `geo_service.migrate` rebuilds
# the loaded units' bands from the finest (see `boundaries.rebuild`).
ZOOM_BANDS = (
    ZoomBand(0, 0, 3, 0.088),
    ZoomBand(1, 4, 4, 0.044),
    ZoomBand(2, 5, 5, 0.022),
    ZoomBand(3, 6, 6, 0.011),
    ZoomBand(4, 7, 7, 0.0055),
    ZoomBand(5, 8, 8, 0.00275),
    ZoomBand(6, 9, 9, 0.001375),
    ZoomBand(7, 10, 10, 0.0006875),
    ZoomBand(8, 11, 11, 0.00034375),
    ZoomBand(9, 12, MAX_ZOOM, 0.0),
)
FINEST_BAND = ZOOM_BANDS[-1].band  # the cleaned coverage: areas and EA nesting use it


def band_for_zoom(z: int) -> int:
    """The generalisation band drawn at zoom z (0..MAX_ZOOM)."""
    return next(b.band for b in ZOOM_BANDS if b.min_zoom <= z <= b.max_zoom)


def band_for_offset(offset: float) -> int | None:
    """The most generalised band whose tolerance (degrees) does not exceed `offset`."""
    fitting = [b for b in ZOOM_BANDS if b.tolerance <= offset]
    return max(fitting, key=lambda b: b.tolerance).band if fitting else None


# The heaviest tile (gzip) a zoom may have: a phone on a slow network (≈ 1 Mbit/s) gets a
# z0–z8 tile, where a whole province or more is drawn, within about a second. Deeper tiles
# hold few units each and have no budget. bench/tile_weight.py measures the demo against it.
TILE_BUDGET_BYTES = 100 * 1024
TILE_BUDGET_MAX_ZOOM = 8


def tile_budget(z: int) -> int | None:
    """The largest a gzipped tile at zoom z may be (bytes); None: no budget at that zoom."""
    return TILE_BUDGET_BYTES if z <= TILE_BUDGET_MAX_ZOOM else None
