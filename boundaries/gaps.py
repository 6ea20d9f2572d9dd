"""Close the narrow gaps between the units of an edge-matched coverage.

The rule of GEOS `coverage_clean(gap_width=...)`, whose gap merging took about 25 s on the
3,321 communes against under 2 s here: a gap is an area enclosed by units but covered by
none, it is narrow when its largest inscribed circle is narrower than the gap width, and it
goes to the unit sharing the longest stretch of its edge. Everything works on the units'
own edge segments, so each merge keeps every shared edge identical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

# start points, end points (complex numbers x + iy) and the index of each segment's geometry
Segments = tuple[np.ndarray, np.ndarray, np.ndarray]


def close_gaps(coverage: np.ndarray, gap_width: float) -> np.ndarray:
    """Merge each gap of the coverage narrower than `gap_width` into the unit that shares the
    longest stretch of its edge."""
    # the units' segments, oriented so that units lie left of their edges (used twice)
    segments = _segments(shapely.orient_polygons(coverage))
    gaps = _gaps(coverage, segments)
    if len(gaps) == 0:
        return coverage
    radius = shapely.length(shapely.maximum_inscribed_circle(gaps, tolerance=gap_width / 50))
    gaps = gaps[2 * radius < gap_width]
    if len(gaps) == 0:
        return coverage
    taken, taker = _longest_shared_edge(gaps, segments, len(coverage))
    out = coverage.copy()
    by_taker = np.argsort(taker, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(taker[by_taker]) != 0])
    for group in np.split(by_taker, starts[1:]):
        unit = taker[group[0]]
        parts = np.concatenate([[coverage[unit]], gaps[taken[group]]])
        out[unit] = shapely.coverage_union_all(parts)
    return out


def _gaps(coverage: np.ndarray, segments: Segments) -> np.ndarray:
    """Every area enclosed by units but covered by none, as polygons (the islands inside one
    are cut out of it)."""
    gaps = _enclosed_areas(segments)
    if len(gaps) == 0:
        return gaps
    # An island is a unit's part, filled: a part in the gap may belong to a unit with other
    # parts elsewhere, and an island's own holes are gaps of their own (or other units).
    parts = shapely.get_parts(coverage)
    islands = np.asarray(shapely.polygons(shapely.get_exterior_ring(parts)), dtype=object)
    gap_idx, island_idx = shapely.STRtree(islands).query(gaps, predicate="contains")
    for gap in np.unique(gap_idx):
        inside = islands[island_idx[gap_idx == gap]]
        gaps[gap] = shapely.difference(gaps[gap], shapely.union_all(inside))
    return gaps


def _enclosed_areas(segments: Segments) -> np.ndarray:
    """The outer rings of the bounded areas outside every unit, as polygons.

    The coverage's outline is made of the segments that only one unit has. Oriented so that
    units lie left of their edges, those segments chain into rings that run clockwise around
    each enclosed area (and anticlockwise around the land). Tracing them takes a quarter of
    the time of `coverage_union_all`, which spends most of its time placing 30,000 holes.
    """
    start, end, _ = segments
    if len(start) == 0:
        return np.empty(0, dtype=object)
    vertex = _vertex_ids(start, end)
    keys = _segment_keys(vertex[: len(start)], vertex[len(start) :], len(vertex))
    _, key_of, key_count = np.unique(keys, return_inverse=True, return_counts=True)
    outline = key_count[key_of] == 1
    start, end = start[outline], end[outline]
    start_id, end_id = vertex[: len(outline)][outline], vertex[len(outline) :][outline]
    order, ring_of = _trace_rings(_following(start, end, start_id, end_id))
    points = start[order]
    ring_start = np.flatnonzero(np.r_[True, np.diff(ring_of) != 0])
    ring_next = np.roll(points, -1)
    ring_next[np.r_[ring_start[1:], len(points)] - 1] = points[ring_start]
    # shoelace: twice each ring's signed area, negative when it runs clockwise
    area = np.add.reduceat((np.conj(points) * ring_next).imag, ring_start)
    rings = shapely.linearrings(points.real, points.imag, indices=ring_of)
    return np.asarray(shapely.polygons(rings[area < 0]), dtype=object)


def _following(
    start: np.ndarray, end: np.ndarray, start_id: np.ndarray, end_id: np.ndarray
) -> list[int]:
    """For each outline segment, the outline segment that continues its ring.

    Where two enclosed areas (or an area and the outside) touch at one vertex, the vertex
    starts two segments: the sharpest right turn keeps to the area on the segment's right.
    """
    by_start = np.argsort(start_id, kind="stable")
    first = np.searchsorted(start_id, end_id, sorter=by_start)
    following = by_start[first.clip(max=len(by_start) - 1)]
    starting_here = np.bincount(start_id, minlength=int(end_id.max(initial=0)) + 1)
    if (start_id[following] != end_id).any():  # every outline vertex starts a segment
        raise ValueError("the outline does not close: not an edge-matched coverage")
    for i in np.flatnonzero(starting_here[end_id] > 1):
        candidates = by_start[first[i] : first[i] + starting_here[end_id[i]]]
        turn = np.angle((end[candidates] - start[candidates]) / (end[i] - start[i]))
        following[i] = candidates[np.argmin(turn)]
    return [int(i) for i in following]


def _trace_rings(following: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Segment indices ring by ring, and the ring of each."""
    seen = bytearray(len(following))
    order: list[int] = []
    ring_of: list[int] = []
    rings = 0
    for first in range(len(following)):
        if seen[first]:
            continue
        segment = first
        while not seen[segment]:
            seen[segment] = 1
            order.append(segment)
            ring_of.append(rings)
            segment = following[segment]
        rings += 1
    return np.asarray(order, dtype=np.int64), np.asarray(ring_of, dtype=np.int64)


def _longest_shared_edge(
    gaps: np.ndarray, unit_segments: Segments, units: int
) -> tuple[np.ndarray, np.ndarray]:
    """(gap, unit) index pairs: for each gap, the unit sharing the longest stretch of its edge.

    A gap's edges are segments of the units' edges, vertex for vertex, so matching segments
    by their end points finds the neighbours without any geometric intersection. Ties go to
    the first unit.
    """
    gap_start, gap_end, gap_of = _segments(gaps)
    unit_start, unit_end, unit_of = unit_segments
    vertex = _vertex_ids(gap_start, gap_end, unit_start, unit_end)
    gaps_n, units_n = len(gap_of), len(unit_of)
    gap_keys = _segment_keys(vertex[:gaps_n], vertex[gaps_n : 2 * gaps_n], len(vertex))
    unit_keys = _segment_keys(
        vertex[2 * gaps_n : 2 * gaps_n + units_n], vertex[2 * gaps_n + units_n :], len(vertex)
    )
    # a gap's segment lies on the edge of exactly one unit
    order = np.argsort(unit_keys, kind="stable")
    found = np.searchsorted(unit_keys, gap_keys, sorter=order).clip(max=len(order) - 1)
    matched = unit_keys[order[found]] == gap_keys
    gap, unit = gap_of[matched], unit_of[order[found[matched]]]
    # total shared length per (gap, unit), then per gap the longest
    pair, pair_of = np.unique(gap * units + unit, return_inverse=True)
    length = np.bincount(pair_of, weights=np.abs(gap_end - gap_start)[matched])
    pair_gap, pair_unit = pair // units, pair % units
    best = np.lexsort((pair_unit, -length, pair_gap))
    first = np.unique(pair_gap[best], return_index=True)[1]
    return pair_gap[best][first], pair_unit[best][first]


def _segments(geoms: np.ndarray) -> Segments:
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


def _vertex_ids(*points: np.ndarray) -> np.ndarray:
    """One number per distinct point, for all the given points concatenated."""
    return np.asarray(pd.factorize(np.concatenate(points))[0], dtype=np.int64)


def _segment_keys(start: np.ndarray, end: np.ndarray, vertices: int) -> np.ndarray:
    """One integer per undirected segment between numbered vertices: both sides of a shared
    edge give the same key."""
    low, high = np.minimum(start, end), np.maximum(start, end)
    return low * vertices + high
