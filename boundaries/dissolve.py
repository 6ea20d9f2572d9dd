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
    return [str(k) for k in names], merged
