"""The overlay of two coverages: every piece where a unit of one meets a unit of the other,
with its area on an equal-area projection (shapely's vectorised operations and an STRtree).

Nothing here touches the database: `boundaries.sql` reads the coverages and the crosswalk
builder turns the pieces into links and quality figures.
"""

from __future__ import annotations

import os
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


def to_equal_area(geometries: np.ndarray) -> np.ndarray:
    """Lon/lat geometries on the equal-area projection (vectorised over all coordinates)."""
    out = np.asarray(shapely.transform(np.asarray(geometries, dtype=object), _forward))
    # (a valid polygon can come out of the projection with a self-touching ring)
    invalid = ~shapely.is_valid(out)
    if invalid.any():
        out[invalid] = shapely.make_valid(out[invalid])
    return out


def overlay(old: np.ndarray, new: np.ndarray) -> Overlay:
    """Every intersection with an area of an old unit with a new unit (lon/lat in; areas in
    m² on the equal-area projection)."""
    old, new = _valid(old), _valid(new)
    tree = shapely.STRtree(new)
    old_i, new_i = tree.query(old, predicate="intersects")
    # cut in the units' own coordinates (a raster in lon/lat then sees the exact pieces),
    # measured on the equal-area projection
    pieces = _intersections(old[old_i], new[new_i])
    area = shapely.area(to_equal_area(pieces))
    # (units that only touch along an edge or at a corner meet in a line or a point: no area)
    keep = area > 0
    return Overlay(
        old_i[keep],
        new_i[keep],
        pieces[keep],
        area[keep],
        shapely.area(to_equal_area(old)),
        shapely.area(to_equal_area(new)),
    )


def _intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersections, in as many threads as there are cores (GEOS works without
    the GIL, so the chunks run side by side)."""
    workers = max(1, min(os.cpu_count() or 1, len(a) // 1000))
    if workers == 1:
        return np.asarray(shapely.intersection(a, b))
    bounds = np.linspace(0, len(a), workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="overlay") as pool:
        parts = pool.map(
            lambda k: shapely.intersection(
                a[bounds[k] : bounds[k + 1]], b[bounds[k] : bounds[k + 1]]
            ),
            range(workers),
        )
        return np.concatenate(list(parts))


def _valid(geometries: np.ndarray) -> np.ndarray:
    """The geometries, the invalid ones repaired (GEOS refuses to cut those)."""
    out = np.asarray(geometries, dtype=object).copy()
    invalid = ~shapely.is_valid(out)
    if invalid.any():
        out[invalid] = shapely.make_valid(out[invalid])
    return out
