"""Coarser units from a clean coverage of finer ones: each group of units merged into one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from boundaries.generalise import coverage_problems
from geo_core.errors import LoaderError

# Relative difference allowed between a merged unit's area and the sum of its parts' areas.
AREA_TOLERANCE = 1e-9


def dissolve_coverage(
    geoms: np.ndarray, keys: Sequence[str], what: str = "units"
) -> tuple[list[str], np.ndarray]:
    """(sorted keys, one polygon per key) merging the units of each key; the input must be a
    clean coverage (so the merged units are one too), else a LoaderError naming `what`."""
    geoms = np.asarray(geoms, dtype=object)
    codes = np.asarray(keys, dtype=object)
    if len(geoms) != len(codes):
        raise LoaderError(f"{what}: {len(geoms)} geometries but {len(codes)} keys")
    # coverage union only removes shared edges: overlaps or gaps inside a group would pass
    # silently into the result, so the input is checked first (0.5 s for 11,163 communes)
    if problems := coverage_problems(geoms):
        raise LoaderError(
            f"{what} are not a clean coverage ({problems} units' edges do not match their "
            "neighbours'); load them through the loader, which cleans them, and dissolve that"
        )
    order = np.argsort(codes, kind="stable")
    names, starts = np.unique(codes[order], return_index=True)
    groups = np.split(order, starts[1:])
    merged = np.empty(len(groups), dtype=object)
    merged[:] = [shapely.coverage_union_all(geoms[group]) for group in groups]
    invalid = [str(k) for k, ok in zip(names, shapely.is_valid(merged), strict=True) if not ok]
    if invalid:
        raise LoaderError(f"{what}: merging gave an invalid polygon for {', '.join(invalid)}")
    # nothing lost or doubled: each merged unit has its parts' area (GEOS's coverage
    # validator is not used on the result: it flags edges of 67 of the 703 districts of
    # 2009 where a merged unit's ring touches itself, which union_all draws identically)
    parts = np.array([shapely.area(geoms[group]).sum() for group in groups])
    off = np.abs(shapely.area(merged) - parts) > AREA_TOLERANCE * np.maximum(parts, 1e-12)
    if off.any():
        raise LoaderError(f"{what}: merging changed the area of {', '.join(map(str, names[off]))}")
    return [str(k) for k in names], _fill_enclosed_gaps(merged)


def _fill_enclosed_gaps(units: np.ndarray) -> np.ndarray:
    """The units with every hole that nothing reaches into filled: a gap the finer units
    leave between themselves, enclosed by one merged unit, lies within that unit's outline
    (a hole holding another unit, or another part of the same one, stays a hole)."""
    polygons, owner = shapely.get_parts(units, return_index=True)
    rings = [list(p.interiors) for p in polygons]
    counts = np.array([len(r) for r in rings])
    if counts.sum() == 0:
        return units
    holes = np.asarray(shapely.polygons([r for part in rings for r in part]), dtype=object)
    # In a coverage nothing crosses a hole's edge, so a part reaching into a hole lies
    # wholly inside it: a point inside each part tells (cheap where testing the parts
    # themselves against the holes took 5 s for the provinces' 31,000 holes).
    inside = shapely.point_on_surface(polygons)
    hole_i, _ = shapely.STRtree(inside).query(holes, predicate="contains_properly")
    kept = np.zeros(len(holes), dtype=bool)
    kept[hole_i] = True
    kept_by_part = np.split(kept, np.cumsum(counts)[:-1])
    rebuilt = [
        polygon
        if keep.all()
        else shapely.Polygon(polygon.exterior, [r for r, k in zip(part, keep, strict=True) if k])
        for polygon, part, keep in zip(polygons, rings, kept_by_part, strict=True)
    ]
    # the parts stay apart (a filled hole held no part), so each unit is their collection
    out = np.empty(len(units), dtype=object)
    starts = np.flatnonzero(np.r_[True, np.diff(owner) != 0])
    for unit, group in zip(owner[starts], np.split(np.arange(len(owner)), starts[1:]), strict=True):
        parts = [rebuilt[j] for j in group]
        out[unit] = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return out
