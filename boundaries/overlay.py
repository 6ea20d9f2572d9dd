"""The overlay of two coverages: every piece where a unit of one meets a unit of the other,
with its area on an equal-area projection (shapely's vectorised operations and an STRtree).

Nothing here touches the database: `boundaries.sql` reads the coverages and the crosswalk
builder turns the pieces into links and quality figures.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import shapely

# Equal-area for the whole globe (EASE-Grid 2.0): areas in m², exact up to the straight edges
# between vertices, whatever the latitude.
EQUAL_AREA_CRS = "EPSG:6933"

# EPSG:6933 is the cylindrical equal-area projection of the WGS 84 ellipsoid: x = a·k0·λ and
# y = a·q(φ)/(2·k0), so an area there is a²/2 times the area in (λ, q(φ)); q is the authalic
# function, computed here for all vertices at once (PROJ, point by point, took half again).
_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
_E = float(np.sqrt(_E2))
# GEOS and PROJ work without the GIL: the overlay runs in one thread per core, each taking
# chunks of this many units or more, a few chunks per thread
_CHUNKS_PER_WORKER = 4
_MIN_CHUNK = 250
# How far beyond the rectangle where two units can meet a unit is clipped before the cut, in
# the units' degrees (about a centimetre): the clip's straight edges stay clear of the pieces.
_CLIP_MARGIN = 1e-7


@dataclass
class Overlay:
    """The pieces of an overlay: which old and new unit each comes from and its area."""

    old_index: np.ndarray  # index into the old units, per piece
    new_index: np.ndarray  # index into the new units, per piece
    pieces: np.ndarray  # geometries in longitude/latitude, as the units were given
    piece_area: np.ndarray  # m²
    old_area: np.ndarray  # m², per old unit
    new_area: np.ndarray  # m², per new unit
    measured: np.ndarray | None = None  # per piece, from `overlay`'s `then`


def _authalic(coords: np.ndarray) -> np.ndarray:
    """Longitude in radians and the authalic q(latitude) of lon/lat vertices."""
    sine = np.sin(np.radians(coords[:, 1]))
    e_sine = _E * sine
    q = (1 - _E2) * (sine / (1 - e_sine * e_sine) - np.log((1 - e_sine) / (1 + e_sine)) / (2 * _E))
    return np.column_stack((np.radians(coords[:, 0]), q))


def equal_area(geometries: np.ndarray) -> np.ndarray:
    """Areas in m² on the equal-area projection (no repair: a self-touching ring that the
    projection may make has the same area)."""
    mapped = shapely.transform(np.asarray(geometries, dtype=object), _authalic)
    return (_A * _A / 2) * np.asarray(shapely.area(mapped), dtype=float)


def overlay(
    old: np.ndarray, new: np.ndarray, *, then: Callable[[Overlay], np.ndarray] | None = None
) -> Overlay:
    """Every intersection with an area of an old unit with a new unit (lon/lat in; areas in
    m² on the equal-area projection). `then`, if given, is applied to each run of old units
    as soon as its pieces are cut, in a thread of its own beside the cutting; its per-piece
    values come back as `measured`."""
    with (
        ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="overlay") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="overlay-then") as after,
    ):
        old, new = _valid(pool, old), _valid(pool, new)
        new_area = [pool.submit(equal_area, new[part]) for part in _chunks(len(new))]
        old_i, new_i = _pairs(old, new)
        new_m2 = np.concatenate([f.result() for f in new_area])
        # cut in the units' own coordinates (a raster in lon/lat then sees the exact
        # pieces), measured on the equal-area projection; each run of old units is cut with
        # its own units' areas, so it is an overlay of its own for `then`
        cut = [
            pool.submit(_cut_run, old, new, old_i[pairs], new_i[pairs], lo, hi, new_m2)
            for pairs, lo, hi in _runs(old_i, len(old))
        ]
        runs = [f.result() for f in cut] if then is None else _then(cut, then, after)
    return _joined(runs, new_m2)


def _then(
    cut: list[Future[Overlay]], then: Callable[[Overlay], np.ndarray], after: ThreadPoolExecutor
) -> list[Overlay]:
    """The runs with `then` applied to each as soon as it is cut (in order of completion)."""
    measured = {}
    for future in as_completed(cut):
        measured[future] = after.submit(then, future.result())
    runs = []
    for future in cut:
        run = future.result()
        run.measured = np.asarray(measured[future].result(), dtype=float)
        runs.append(run)
    return runs


def _cut_run(
    old: np.ndarray,
    new: np.ndarray,
    old_i: np.ndarray,
    new_i: np.ndarray,
    lo: int,
    hi: int,
    new_area: np.ndarray,
) -> Overlay:
    """The overlay of the old units lo..hi-1 (their pairs given) with the new units; the old
    indices count from lo."""
    pieces, area = _cut(old[old_i], new[new_i])
    # (units that only touch along an edge or at a corner meet in a line or a point: no area)
    keep = area > 0
    return Overlay(
        old_i[keep] - lo, new_i[keep], pieces[keep], area[keep], equal_area(old[lo:hi]), new_area
    )


def _joined(runs: list[Overlay], new_area: np.ndarray) -> Overlay:
    """The runs of old units (in order) as one overlay."""
    starts = np.cumsum([0] + [len(run.old_area) for run in runs[:-1]])
    measured = None
    if runs and all(run.measured is not None for run in runs):
        measured = np.concatenate([run.measured for run in runs if run.measured is not None])
    return Overlay(
        np.concatenate([run.old_index + start for run, start in zip(runs, starts, strict=True)]),
        np.concatenate([run.new_index for run in runs]),
        np.concatenate([run.pieces for run in runs]),
        np.concatenate([run.piece_area for run in runs]),
        np.concatenate([run.old_area for run in runs]),
        new_area,
        measured,
    )


def _pairs(old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (old, new) pair of units whose bounding boxes meet, by old unit then new unit.
    (No `intersects` test: 14,290 of the 53,010 pairs of the 2009 → 2025 communes do not
    meet, but clipping and cutting those costs 0.10 s of CPU where the prepared test of all
    pairs cost 0.16 s; a pair that does not meet gives an empty piece, dropped as any piece
    without an area.)"""
    new_i, old_i = shapely.STRtree(old).query(new)
    order = np.lexsort((new_i, old_i))
    return old_i[order], new_i[order]


def _cut(old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairwise intersections of two arrays of units, and their areas."""
    try:
        pieces = np.asarray(shapely.intersection(old, _clipped(new, old)))
    except shapely.errors.GEOSException:
        # (a rectangle clip does not promise a valid polygon: cut those pairs whole)
        pieces = np.asarray(shapely.intersection(old, new))
    return pieces, equal_area(pieces)


def _clipped(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Each new unit clipped to the rectangle where it can meet its old unit. The pieces are
    the same (what is cut off lies outside the old unit), but GEOS then nodes only the edges
    that can take part: a fifth less time on the 2009 → 2025 communes."""
    new_box, old_box = shapely.bounds(new), shapely.bounds(old)
    low = np.maximum(new_box[:, :2], old_box[:, :2]) - _CLIP_MARGIN
    high = np.minimum(new_box[:, 2:], old_box[:, 2:]) + _CLIP_MARGIN
    beyond = ((new_box[:, :2] < low) | (new_box[:, 2:] > high)).any(axis=1)
    out = new.copy()
    # (shapely's ufunc takes a rectangle per unit, where `shapely.clip_by_rect` takes one
    # for all: half the time of a loop, and without the GIL the other threads need)
    out[beyond] = shapely.lib.clip_by_rect(
        new[beyond], low[beyond, 0], low[beyond, 1], high[beyond, 0], high[beyond, 1]
    )
    return out


def _workers() -> int:
    return max(1, os.cpu_count() or 1)


def _chunks(count: int) -> list[np.ndarray]:
    """Indices 0..count-1 in chunks: a few per thread, as GEOS's cost per unit varies by
    place (a dense city beside a mountain district) and the threads should end together."""
    chunks = max(1, min(_workers() * _CHUNKS_PER_WORKER, count // _MIN_CHUNK))
    return np.array_split(np.arange(count), chunks)


def _shrinking(count: int) -> list[int]:
    """Where chunks of 0..count-1 start, each smaller than the one before (shares n, n-1, …,
    1): the threads take the large ones first and end together on small ones, and the last
    chunk's population, summed after all the cutting, is small."""
    chunks = max(1, min(_workers() * _CHUNKS_PER_WORKER, count // _MIN_CHUNK))
    shares = np.arange(chunks, 0, -1)
    before = np.concatenate(([0], np.cumsum(shares)[:-1]))
    return [int(x) for x in count * before // shares.sum()]


def _runs(old_i: np.ndarray, count: int) -> list[tuple[np.ndarray, int, int]]:
    """The pairs (sorted by old unit) in chunks that never split an old unit's pairs, each
    with the old units lo..hi-1 it answers for (every old unit in one, with pairs or not)."""
    if len(old_i) == 0:
        return [(np.arange(0), 0, count)]
    # (each chunk moved back to the first pair of the old unit it would start in)
    starts = np.unique(np.searchsorted(old_i, old_i[_shrinking(len(old_i))], side="left"))
    starts = starts.tolist()
    ends = [*starts[1:], len(old_i)]
    lows = [0, *(int(old_i[start]) for start in starts[1:])]
    highs = [*lows[1:], count]
    return [
        (np.arange(start, end), lo, hi)
        for start, end, lo, hi in zip(starts, ends, lows, highs, strict=True)
    ]


def _valid(pool: ThreadPoolExecutor, geometries: np.ndarray) -> np.ndarray:
    """The geometries, the invalid ones repaired (GEOS refuses to cut those)."""
    out = np.asarray(geometries, dtype=object).copy()
    parts = _chunks(len(out))
    invalid = np.concatenate(list(pool.map(lambda p: ~shapely.is_valid(out[p]), parts)))
    if invalid.any():
        out[invalid] = shapely.make_valid(out[invalid])
    return out
