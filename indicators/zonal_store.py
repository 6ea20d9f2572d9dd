"""Store a raster's zonal statistic over every unit of a (vintage, level) as an indicator."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import psycopg
import shapely

from boundaries import sql as units
from geo_core.errors import LoaderError
from geo_core.text import first_of
from indicators.store import store_values
from indicators.values import LoadResult, ValueRow
from indicators.zonal import ZonalResult, zonal_statistics


def unit_coverage(conn: psycopg.Connection, vintage: str, level: str) -> gpd.GeoDataFrame:
    """The units as a clean coverage (the cleaned, unsimplified band), so nothing counts twice."""
    rows = units.coverage_geometries(conn, vintage, level)
    if not rows:
        raise LoaderError(f"no {level} units in vintage {vintage}", parameter="--level")
    return gpd.GeoDataFrame(
        {"code": [r[0] for r in rows]},
        geometry=shapely.from_wkb([r[1] for r in rows]),
        crs="EPSG:4326",
    )


def store_zonal(
    conn: psycopg.Connection,
    raster: Path,
    indicator: str,
    vintage: str,
    level: str,
    stat: str,
    period: str,
    replace: bool = False,
) -> LoadResult:
    """Compute `stat` of the raster over each unit and store it (no valid pixel → not available)."""
    units = unit_coverage(conn, vintage, level)
    results = zonal_statistics(raster, units, stat)
    rows = [ValueRow(f"zonal {r.code}", r.code, period, r.value, _status(r)) for r in results]
    derivation = {
        "method": "zonal statistics",
        "raster": raster.name,
        "stat": stat,
        "coverage": "fractional pixel coverage",
        "geometry": "cleaned coverage",
    }
    result = store_values(
        conn,
        indicator,
        vintage,
        level,
        rows,
        replace=replace,
        derivation=derivation,
        what=f"zonal {stat} of {raster.name}",
    )
    result.notes = _coverage_notes(results)
    return result


# Below this share of a unit within the raster, its statistic misses part of the unit.
_COMPLETE = 0.999


def _status(result: ZonalResult) -> str:
    """A unit reaching beyond the raster gets a statistic of only part of it: provisional."""
    if result.value is None:
        return "not_available"
    return "provisional" if result.outside_share > 1 - _COMPLETE else "ok"


def _coverage_notes(results: list[ZonalResult], shown: int = 10) -> list[str]:
    """Units partly outside the raster (stored as provisional) or on nodata pixels (sea,
    clouds, gaps: the operator knows which)."""
    notes = []
    for what, share in (
        ("reach beyond the raster (stored as provisional)", "outside_share"),
        ("lie partly on nodata pixels", "nodata_share"),
    ):
        partial = sorted(
            (
                (getattr(r, share), r.code)
                for r in results
                if r.value is not None and getattr(r, share) > 1 - _COMPLETE
            ),
            reverse=True,
        )
        if partial:
            listed = first_of([f"{code} ({part:.0%})" for part, code in partial], shown)
            notes.append(f"{len(partial)} unit(s) {what}: {listed}")
    return notes
