"""Rebuild loaded units' generalised bands after the zoom bands change (geo_core.zoom).

A load writes one row per unit and band. When a release changes the bands, its migration
drops the rows that no longer fit, and `geo_service.migrate` calls `rebuild_missing_bands`
in the same transaction: every collection with a unit lacking a band gets its simplified
bands made again from its stored clean coverage (the finest band), exactly as a load makes
them, so neighbours keep sharing edges at every zoom. The triggers record the change, so
every tile cache drops the tiles drawn from the old bands.
"""

from __future__ import annotations

import logging
import time

import psycopg
import shapely

from boundaries import sql
from boundaries.generalise import clean_coverage, simplified_bands
from geo_core.zoom import FINEST_BAND

logger = logging.getLogger(__name__)


def rebuild_missing_bands(conn: psycopg.Connection) -> list[str]:
    """Rebuild the bands of every collection a unit of which lacks one; what was rebuilt
    ("commune-2025: 3321 units, 4.1 s")."""
    done = []
    for vintage, level in sql.collections_missing_bands(conn):
        started = time.perf_counter()
        count = rebuild_bands(conn, vintage, level)
        done.append(f"{level}-{vintage}: {count} units, {time.perf_counter() - started:.1f} s")
        logger.warning("zoom bands rebuilt for %s", done[-1])
    return done


def rebuild_bands(conn: psycopg.Connection, vintage: str, level: str) -> int:
    """Make a collection's simplified bands again from its clean coverage; how many units."""
    units = sql.unit_geometries(conn, vintage, level)
    coverage: dict[str, bytes] = {
        str(code): bytes(wkb) for code, wkb in sql.coverage_geometries(conn, vintage, level)
    }
    codes = [str(code) for code, _ in units]
    if all(code in coverage for code in codes):
        cleaned = shapely.from_wkb([coverage[code] for code in codes])
    else:
        # (units added with plain SQL before their finest band existed: clean them as a load
        # would; the finest band is written again too)
        geoms = shapely.from_wkb([bytes(wkb) for _, wkb in units])
        cleaned = clean_coverage(geoms)
        coverage = {}
    bands = simplified_bands(cleaned)
    if not coverage:
        bands[FINEST_BAND] = cleaned
    sql.delete_bands(conn, vintage, level, sorted(bands))
    rows = []
    for band, geoms in bands.items():
        wkb = shapely.to_wkb(shapely.set_srid(geoms, 4326), include_srid=True)
        rows += [(vintage, level, code, band, geom) for code, geom in zip(codes, wkb, strict=True)]
    sql.copy_bands(conn, rows)
    return len(codes)
