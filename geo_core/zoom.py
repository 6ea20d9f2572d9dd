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


# Tolerance ≈ half a screen pixel at the band's highest zoom; 0 = cleaned, not simplified.
ZOOM_BANDS = (
    ZoomBand(0, 0, 5, 0.02),
    ZoomBand(1, 6, 8, 0.0025),
    ZoomBand(2, 9, 11, 0.0003),
    ZoomBand(3, 12, MAX_ZOOM, 0.0),
)
FINEST_BAND = ZOOM_BANDS[-1].band  # the cleaned coverage: areas and EA nesting use it


def band_for_zoom(z: int) -> int:
    """The generalisation band drawn at zoom z (0..MAX_ZOOM)."""
    return next(b.band for b in ZOOM_BANDS if b.min_zoom <= z <= b.max_zoom)


def band_for_offset(offset: float) -> int | None:
    """The most generalised band whose tolerance (degrees) does not exceed `offset`."""
    fitting = [b for b in ZOOM_BANDS if b.tolerance <= offset]
    return max(fitting, key=lambda b: b.tolerance).band if fitting else None
