"""Generalised geometries per zoom band, simplified as a coverage so neighbours stay aligned."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPolygon


@dataclass(frozen=True)
class ZoomBand:
    """Zooms min_zoom..max_zoom use geometries simplified with `tolerance` degrees."""

    band: int
    min_zoom: int
    max_zoom: int
    tolerance: float


# Mirrors the zoom_band table; tolerance ≈ half a screen pixel at the band's highest zoom.
ZOOM_BANDS = (
    ZoomBand(0, 0, 5, 0.02),
    ZoomBand(1, 6, 8, 0.0025),
    ZoomBand(2, 9, 11, 0.0003),
    ZoomBand(3, 12, 24, 0.0),
)

# Gaps narrower than this (degrees, ≈ 50 m) between neighbours can be closed when cleaning.
DEMO_GAP_WIDTH = 0.0005


def _as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    out = np.empty(len(geoms), dtype=object)
    for i, geom in enumerate(geoms):
        if geom is None or geom.is_empty:
            out[i] = MultiPolygon()
            continue
        parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and not p.is_empty]
        out[i] = MultiPolygon(parts)
    return out


def clean_coverage(geoms: np.ndarray, gap_width: float = 0.0) -> np.ndarray:
    """Remove overlaps and narrow gaps and make shared edges identical."""
    # types-shapely does not know coverage_clean (shapely 2.2) yet.
    cleaned = shapely.coverage_clean(geoms, gap_width=0.0)  # type: ignore[attr-defined]
    if gap_width > 0:
        # Merging gaps is the slow step; on an already edge-matched coverage it is ~2x faster.
        cleaned = shapely.coverage_clean(cleaned, gap_width=gap_width)  # type: ignore[attr-defined]
    return _as_multipolygons(cleaned)


def generalise(cleaned: np.ndarray) -> dict[int, np.ndarray]:
    """Geometries of every zoom band, from an already cleaned coverage."""
    bands: dict[int, np.ndarray] = {}
    for band in ZOOM_BANDS:
        if band.tolerance == 0:
            bands[band.band] = cleaned
        else:
            simplified = shapely.coverage_simplify(cleaned, band.tolerance,
                                                   simplify_boundary=True)
            bands[band.band] = _as_multipolygons(shapely.make_valid(simplified))
    return bands


def coverage_problems(geoms: np.ndarray, gap_width: float = 0.0) -> int:
    """Number of units whose edges do not match their neighbours' (0 = a clean coverage)."""
    edges = shapely.coverage_invalid_edges(geoms, gap_width=gap_width)
    return int(np.count_nonzero(~shapely.is_empty(edges)))
