"""Generalised geometries per zoom band, simplified as a coverage so neighbours stay aligned."""

from __future__ import annotations

from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np
import pandas as pd
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


def close_gaps(coverage: np.ndarray, gap_width: float) -> np.ndarray:
    """Merge each hole of an edge-matched coverage narrower than `gap_width` into the unit
    that shares the longest stretch of its edge.

    The rule of `coverage_clean(gap_width=...)`, whose gap merging took about 25 s on the
    3,321 communes against about 2.5 s here: a gap is a hole in the coverage's union, and it
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
    taken, taker = _longest_shared_edge(gaps, coverage)
    out = coverage.copy()
    by_taker = np.argsort(taker, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(taker[by_taker]) != 0])
    for group in np.split(by_taker, starts[1:]):
        unit = taker[group[0]]
        parts = np.concatenate([[coverage[unit]], gaps[taken[group]]])
        out[unit] = shapely.coverage_union_all(parts)
    return out


def _longest_shared_edge(gaps: np.ndarray, coverage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gap, unit) index pairs: for each gap, the unit sharing the longest stretch of its edge.

    A gap's edges are segments of the units' edges, vertex for vertex, so matching segments
    by their end points finds the neighbours without any geometric intersection (a quarter of
    the time on the communes). Ties go to the first unit.
    """
    gap_start, gap_end, gap_of = _segments(gaps)
    unit_start, unit_end, unit_of = _segments(coverage)
    vertex = pd.factorize(np.concatenate([gap_start, gap_end, unit_start, unit_end]))[0]
    vertices = int(vertex.max(initial=0)) + 1
    gap_ids, unit_ids = vertex[: 2 * len(gap_of)], vertex[2 * len(gap_of):]
    gap_keys = _segment_keys(gap_ids[: len(gap_of)], gap_ids[len(gap_of):], vertices)
    unit_keys = _segment_keys(unit_ids[: len(unit_of)], unit_ids[len(unit_of):], vertices)
    # a gap's segment lies on the edge of exactly one unit
    order = np.argsort(unit_keys, kind="stable")
    found = np.searchsorted(unit_keys, gap_keys, sorter=order).clip(max=len(order) - 1)
    matched = unit_keys[order[found]] == gap_keys
    gap, unit = gap_of[matched], unit_of[order[found[matched]]]
    # total shared length per (gap, unit), then per gap the longest (ties: the first unit)
    pair, pair_of = np.unique(gap * len(coverage) + unit, return_inverse=True)
    length = np.bincount(pair_of, weights=np.abs(gap_end - gap_start)[matched])
    pair_gap, pair_unit = pair // len(coverage), pair % len(coverage)
    best = np.lexsort((pair_unit, -length, pair_gap))
    first = np.unique(pair_gap[best], return_index=True)[1]
    return pair_gap[best][first], pair_unit[best][first]


def _segments(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ring segment of the polygons as start and end points (complex numbers x + iy)
    and the index of the geometry it belongs to. Zero-length segments are left out."""
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, coord_of = shapely.get_coordinates(rings, return_index=True)
    points = coords[:, 0] + 1j * coords[:, 1]
    same_ring = coord_of[1:] == coord_of[:-1]
    start, end = points[:-1][same_ring], points[1:][same_ring]
    owner = part_of[ring_of[coord_of[:-1][same_ring]]]
    proper = start != end
    return start[proper], end[proper], owner[proper]


def _segment_keys(start: np.ndarray, end: np.ndarray, vertices: int) -> np.ndarray:
    """One integer per undirected segment between numbered vertices: both sides of a shared
    edge give the same key."""
    low, high = np.minimum(start, end), np.maximum(start, end)
    return low.astype(np.int64) * vertices + high


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
