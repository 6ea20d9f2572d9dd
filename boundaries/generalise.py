"""Generalised geometries per zoom band, simplified as a coverage so neighbours stay aligned."""

from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor

import numpy as np
import shapely
from shapely.geometry import MultiPolygon

from boundaries.gaps import close_gaps
from geo_core.zoom import ZOOM_BANDS

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
    cleaned = geoms if _is_clean_coverage(geoms) else _clean(geoms)
    if gap_width > 0:
        cleaned = close_gaps(cleaned, gap_width)
    return _as_multipolygons(cleaned)


def _clean(geoms: np.ndarray, halves_from: int = 1000) -> np.ndarray:
    """GEOS coverage cleaning; a large coverage in two halves at once, then along their seam.

    GEOS cleans on one core. Cut in two across its longer spread, each half is cleaned in its
    own thread; then the units where the halves meet (15 of the 3,321 communes) are cleaned
    together. The result is a clean coverage like the whole's, not always the same one: GEOS
    gives an overlap to the neighbour with the longest border, which depends on what else
    it sees (3,292 of the communes come out identical). If the seam's cleaning disturbed an
    edge it shares with the rest, the whole is cleaned the usual way.
    """
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    # GEOS's own default, which depends on the extent: the same for the halves as the whole
    snap = float(np.hypot(maxx - minx, maxy - miny)) / 1e8
    if len(geoms) < halves_from:
        return _geos_clean(geoms, snap)
    centres = shapely.get_coordinates(shapely.centroid(geoms))
    axis = int(np.argmax(centres.std(axis=0)))
    first = centres[:, axis] <= np.median(centres[:, axis])
    halves = np.flatnonzero(first), np.flatnonzero(~first)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="clean") as pool:
        cleaned_halves = list(pool.map(lambda half: _geos_clean(geoms[half], snap), halves))
    out = np.empty(len(geoms), dtype=object)
    for half, cleaned in zip(halves, cleaned_halves, strict=True):
        out[half] = cleaned
    # units of the two halves within snapping distance of each other
    meet_first, meet_second = shapely.STRtree(out[halves[1]]).query(
        out[halves[0]], predicate="dwithin", distance=snap
    )
    seam = np.unique(np.r_[halves[0][meet_first], halves[1][meet_second]])
    if len(seam) == 0:
        return out
    out[seam] = _geos_clean(out[seam], snap)
    around = np.unique(
        np.r_[seam, shapely.STRtree(out).query(out[seam], predicate="intersects")[1]]
    )
    # (the gap width also catches a seam unit pulled away from a neighbour, leaving a sliver)
    if not shapely.coverage_is_valid(out[around], gap_width=2 * snap):
        return _geos_clean(geoms, snap)
    return out


def _geos_clean(geoms: np.ndarray, snapping_distance: float) -> np.ndarray:
    # types-shapely does not know coverage_clean (shapely 2.2) yet
    return np.asarray(
        shapely.coverage_clean(  # type: ignore[attr-defined]
            geoms, gap_width=0.0, snapping_distance=snapping_distance
        ),
        dtype=object,
    )


def _is_clean_coverage(geoms: np.ndarray, sample: int = 300) -> bool:
    """Whether the polygons form a valid coverage, answered early for most that do not: any
    subset of a valid coverage is one too, and sources list neighbours near each other."""
    if len(geoms) > 2 * sample and not shapely.coverage_is_valid(geoms[:sample]):
        return False
    return bool(shapely.coverage_is_valid(geoms))


def generalise_async(
    pool: Executor, geoms: np.ndarray, gap_width: float
) -> dict[int, Future[np.ndarray]]:
    """Clean the coverage and simplify it for every zoom band in `pool`: a future per band.

    Each band is simplified from the more detailed one before it (the same shapes in a third
    less time than from the full detail), so a one-thread pool finishes them finest first.
    (Two threads, simplifying two bands at a time, gained 0.22 s on the demo's communes and
    lost 0.26 s on a clean source: on two cores the loader's main thread needs the other.)
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
    return simplify(detailed.result(), tolerance)


def simplify(coverage: np.ndarray, tolerance: float) -> np.ndarray:
    """A clean coverage simplified as a coverage with a tolerance (degrees)."""
    simplified = shapely.coverage_simplify(coverage, tolerance, simplify_boundary=True)
    return _as_multipolygons(shapely.make_valid(simplified))


def simplified_bands(cleaned: np.ndarray) -> dict[int, np.ndarray]:
    """Every simplified band of a clean coverage, made as a load makes them (each from the
    more detailed one before it), so a rebuild gives what loading again would."""
    previous, bands = cleaned, {}
    for band in sorted(ZOOM_BANDS, key=lambda b: b.tolerance):
        if band.tolerance > 0:
            previous = bands[band.band] = simplify(previous, band.tolerance)
    return bands


def coverage_problems(geoms: np.ndarray, gap_width: float = 0.0) -> int:
    """Number of units whose edges do not match their neighbours' (0 = a clean coverage)."""
    edges = shapely.coverage_invalid_edges(geoms, gap_width=gap_width)
    return int(np.count_nonzero(~shapely.is_empty(edges)))
