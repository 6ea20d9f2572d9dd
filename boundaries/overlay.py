"""The overlay of two coverages: every piece where a unit of one meets a unit of the other,
with its area on an equal-area projection (shapely's vectorised operations and an STRtree).

Nothing here touches the database: `boundaries.sql` reads the coverages and the crosswalk
builder turns the pieces into links and quality figures.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer

# Equal-area for the whole globe (EASE-Grid 2.0): areas in m², exact up to the straight edges
# between vertices, whatever the latitude.
EQUAL_AREA_CRS = "EPSG:6933"

_TO_EQUAL_AREA = Transformer.from_crs("EPSG:4326", EQUAL_AREA_CRS, always_xy=True)


@dataclass
class Overlay:
    """The pieces of an overlay: which old and new unit each comes from and its area."""

    old_index: np.ndarray  # index into the old units, per piece
    new_index: np.ndarray  # index into the new units, per piece
    pieces: np.ndarray  # geometries in longitude/latitude, as the units were given
    piece_area: np.ndarray  # m²
    old_area: np.ndarray  # m², per old unit
    new_area: np.ndarray  # m², per new unit


def _forward(coords: np.ndarray) -> np.ndarray:
    return np.column_stack(_TO_EQUAL_AREA.transform(coords[:, 0], coords[:, 1]))


def equal_area(geometries: np.ndarray) -> np.ndarray:
    """Areas in m² on the equal-area projection (no repair: a self-touching ring that the
    projection may make has the same area)."""
    projected = shapely.transform(np.asarray(geometries, dtype=object), _forward)
    return np.asarray(shapely.area(projected), dtype=float)


def overlay(old: np.ndarray, new: np.ndarray) -> Overlay:
    """Every intersection with an area of an old unit with a new unit (lon/lat in; areas in
    m² on the equal-area projection)."""
    old, new = _valid(old), _valid(new)
    tree = shapely.STRtree(new)
    # cut in the units' own coordinates (a raster in lon/lat then sees the exact pieces),
    # measured on the equal-area projection
    old_i, new_i, pieces, area = _in_threads(
        lambda part: _cut(tree, old, new, part), np.arange(len(old))
    )
    # (units that only touch along an edge or at a corner meet in a line or a point: no area)
    keep = area > 0
    return Overlay(
        old_i[keep], new_i[keep], pieces[keep], area[keep], equal_area(old), equal_area(new)
    )


def _cut(
    tree: shapely.STRtree, old: np.ndarray, new: np.ndarray, part: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The pieces of some old units: the new units each meets, the pairwise intersections
    and their areas."""
    found, new_i = tree.query(old[part], predicate="intersects")
    old_i = part[found]
    pieces = np.asarray(shapely.intersection(old[old_i], new[new_i]))
    return old_i, new_i, pieces, equal_area(pieces)


def _in_threads(
    work: Callable[[np.ndarray], tuple[np.ndarray, ...]], items: np.ndarray
) -> tuple[np.ndarray, ...]:
    """`work` over the items split into one chunk per core, the results concatenated (GEOS
    and PROJ work without the GIL, so the chunks run side by side)."""
    workers = max(1, min(os.cpu_count() or 1, len(items) // 1000))
    chunks = np.array_split(items, workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="overlay") as pool:
        parts = list(pool.map(work, chunks))
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def _valid(geometries: np.ndarray) -> np.ndarray:
    """The geometries, the invalid ones repaired (GEOS refuses to cut those)."""
    out = np.asarray(geometries, dtype=object).copy()
    invalid = ~shapely.is_valid(out)
    if invalid.any():
        out[invalid] = shapely.make_valid(out[invalid])
    return out
