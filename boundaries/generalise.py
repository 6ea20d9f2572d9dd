"""Generalised geometries per zoom band, simplified as a coverage so neighbours stay aligned."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon


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
    if shapely.coverage_is_valid(geoms):
        cleaned = geoms
    else:  # types-shapely does not know coverage_clean (shapely 2.2) yet
        cleaned = shapely.coverage_clean(geoms, gap_width=0.0)  # type: ignore[attr-defined]
    if gap_width > 0:
        cleaned = close_gaps(cleaned, gap_width)
    return _as_multipolygons(cleaned)


def close_gaps(coverage: np.ndarray, gap_width: float) -> np.ndarray:
    """Merge each hole of an edge-matched coverage narrower than `gap_width` into the unit
    that shares the longest stretch of its edge.

    The rule of `coverage_clean(gap_width=...)`, whose gap merging took about 25 s on the
    3,321 communes against about 4 s here: a gap is a hole in the coverage's union, and it
    is narrow when its largest inscribed circle is narrower than `gap_width`. The gaps'
    edges are the units' own edges, so each merge keeps every shared edge identical.
    """
    union = shapely.coverage_union_all(coverage)
    gaps = _holes(union, coverage)
    if len(gaps) == 0:
        return coverage
    radius = shapely.length(shapely.maximum_inscribed_circle(gaps, tolerance=gap_width / 50))
    gaps = gaps[2 * radius < gap_width]
    if len(gaps) == 0:
        return coverage
    gap_idx, unit_idx = shapely.STRtree(coverage).query(gaps, predicate="intersects")
    shared = shapely.length(shapely.intersection(shapely.boundary(gaps[gap_idx]),
                                                 shapely.boundary(coverage[unit_idx])))
    # per gap, the unit with the longest shared edge (ties: the first unit)
    order = np.lexsort((unit_idx, -shared, gap_idx))
    first = np.unique(gap_idx[order], return_index=True)[1]
    taker, taken = unit_idx[order][first], gap_idx[order][first]
    out = coverage.copy()
    by_taker = np.argsort(taker, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(taker[by_taker]) != 0])
    for group in np.split(by_taker, starts[1:]):
        unit = taker[group[0]]
        parts = np.concatenate([[coverage[unit]], gaps[taken[group]]])
        out[unit] = shapely.coverage_union_all(parts)
    return out


def _holes(union: shapely.Geometry, coverage: np.ndarray) -> np.ndarray:
    """The holes of the coverage's union as polygons, minus any units lying inside them."""
    holes = np.array([Polygon(ring) for part in shapely.get_parts(union)
                      for ring in part.interiors], dtype=object)
    if len(holes) == 0:
        return holes
    # an island unit inside a hole is not part of the gap
    hole_idx, island_idx = shapely.STRtree(coverage).query(holes, predicate="contains")
    for hole in np.unique(hole_idx):
        islands = coverage[island_idx[hole_idx == hole]]
        holes[hole] = shapely.difference(holes[hole], shapely.union_all(islands))
    return holes


def generalise(cleaned: np.ndarray) -> dict[int, np.ndarray]:
    """Geometries of every zoom band, from an already cleaned coverage."""
    bands: dict[int, np.ndarray] = {}
    previous = cleaned
    # from detailed to coarse, each band simplified from the one before: the same shapes,
    # in a third less time than simplifying the full detail each time
    for band in sorted(ZOOM_BANDS, key=lambda b: b.tolerance):
        if band.tolerance == 0:
            bands[band.band] = cleaned
            continue
        simplified = shapely.coverage_simplify(previous, band.tolerance, simplify_boundary=True)
        bands[band.band] = previous = _as_multipolygons(shapely.make_valid(simplified))
    return dict(sorted(bands.items()))


def coverage_problems(geoms: np.ndarray, gap_width: float = 0.0) -> int:
    """Number of units whose edges do not match their neighbours' (0 = a clean coverage)."""
    edges = shapely.coverage_invalid_edges(geoms, gap_width=gap_width)
    return int(np.count_nonzero(~shapely.is_empty(edges)))
