"""Generalised geometries per zoom band, simplified as a coverage so neighbours stay aligned."""

from __future__ import annotations

from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPolygon

from boundaries.gaps import close_gaps


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
    # A source that is already a clean coverage (as official files often are) is left as it
    # is: checking takes a tenth of the time cleaning does, and cleaning would rewrite it.
    if _is_clean_coverage(geoms):
        cleaned = geoms
    else:  # types-shapely does not know coverage_clean (shapely 2.2) yet
        cleaned = shapely.coverage_clean(geoms, gap_width=0.0)  # type: ignore[attr-defined]
    if gap_width > 0:
        cleaned = close_gaps(cleaned, gap_width)
    return _as_multipolygons(cleaned)


def _is_clean_coverage(geoms: np.ndarray, sample: int = 300) -> bool:
    """Whether the polygons form a valid coverage, answered early for most that do not: any
    subset of a valid coverage is one too, and sources list neighbours near each other."""
    if len(geoms) > 2 * sample and not shapely.coverage_is_valid(geoms[:sample]):
        return False
    return bool(shapely.coverage_is_valid(geoms))


def generalise_async(pool: Executor, geoms: np.ndarray, gap_width: float
                     ) -> dict[int, Future[np.ndarray]]:
    """Clean the coverage and simplify it for every zoom band in `pool`: a future per band.

    Each band is simplified from the more detailed one before it (the same shapes in a third
    less time than from the full detail), so a one-thread pool finishes them finest first.
    (Two threads, simplifying two bands at a time, gained 0.3 s on the demo's communes and
    lost as much on a clean source: on two cores the loader's main thread needs the other.)
    """
    previous = cleaned = pool.submit(clean_coverage, geoms, gap_width)
    bands = {}
    for band in sorted(ZOOM_BANDS, key=lambda b: b.tolerance):
        if band.tolerance == 0:
            bands[band.band] = cleaned
        else:
            previous = bands[band.band] = pool.submit(_simplified, previous, band.tolerance)
    return bands


def _simplified(detailed: Future[np.ndarray], tolerance: float) -> np.ndarray:
    simplified = shapely.coverage_simplify(detailed.result(), tolerance, simplify_boundary=True)
    return _as_multipolygons(shapely.make_valid(simplified))


def coverage_problems(geoms: np.ndarray, gap_width: float = 0.0) -> int:
    """Number of units whose edges do not match their neighbours' (0 = a clean coverage)."""
    edges = shapely.coverage_invalid_edges(geoms, gap_width=gap_width)
    return int(np.count_nonzero(~shapely.is_empty(edges)))
