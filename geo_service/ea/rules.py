"""Check a proposed EA geometry against the rules, all at once, in PostGIS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
import shapely
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from geo_service.errors import InvalidParameter
from geo_service.features.crs import OutputCrs
from geo_service.features.geometry import polygon_from_geojson, to_lonlat

_METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class EaRules:
    """Tolerances and limits (from settings)."""

    tolerance_m: float = 1.0
    snap_m: float = 2.0
    min_area_m2: float = 100.0
    max_area_km2: float = 1000.0
    households_min: float = 60.0
    households_max: float = 240.0
    household_size: float = 3.5
    max_vertices: int = 100_000


@dataclass
class Findings:
    """Blocking problems and warnings, each with a location where there is one."""

    problems: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)


def parse_geometry(geojson: Any, crs: OutputCrs, repair: bool, max_vertices: int = 100_000
                   ) -> tuple[MultiPolygon, str | None]:
    """A MultiPolygon in lon/lat; invalid ones are refused with their location unless repaired."""
    geom = to_lonlat(polygon_from_geojson(geojson, max_vertices), crs)
    note = None
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        if not repair:
            raise InvalidParameter(f"geometry is invalid: {reason} (send ?repair=true to "
                                   "repair it)", parameter="geometry", location=reason)
        geom = shapely.make_valid(geom)
        note = f"repaired: {reason}"
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and not p.is_empty]
    if not parts:
        raise InvalidParameter("nothing polygonal is left after repair", parameter="geometry")
    return MultiPolygon(parts), note


_SNAP = """
SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Snap(
    ST_GeomFromWKB(%(wkb)s, 4326),
    ST_Collect(ARRAY(SELECT geom FROM enumeration_area WHERE census_round = %(round)s
                     AND commune_code = %(commune)s AND id <> %(self)s
                     AND geom && ST_Expand(ST_GeomFromWKB(%(wkb)s, 4326), %(snap)s))
               || ARRAY[ST_Boundary((SELECT geom FROM commune_coverage
                                     WHERE vintage = %(vintage)s AND code = %(commune)s))]),
    %(snap)s)), 3)))
"""

_CHECKS = """
WITH g AS (SELECT ST_GeomFromWKB(%(wkb)s, 4326) AS g),
c AS (SELECT geom FROM commune_coverage WHERE vintage = %(vintage)s AND code = %(commune)s),
outside AS (SELECT ST_Difference(g.g, c.geom) AS d FROM g, c)
SELECT ST_Area(g.g::geography),
       ST_Area(outside.d::geography),
       ST_AsText(ST_PointOnSurface(outside.d)),
       -- slivers outside that are no wider than twice the tolerance vanish when shrunk
       CASE WHEN ST_IsEmpty(outside.d) THEN false
            ELSE NOT ST_IsEmpty(ST_Buffer(outside.d::geography, -%(tolerance)s)::geometry) END
FROM g, outside
"""

_OVERLAPS = """
WITH g AS (SELECT ST_GeomFromWKB(%(wkb)s, 4326) AS g),
o AS (SELECT e.id, e.code, ST_CollectionExtract(ST_Intersection(e.geom, g.g), 3) AS o
      FROM enumeration_area e, g
      WHERE e.census_round = %(round)s AND e.id <> %(self)s AND e.geom && g.g
        AND ST_Intersects(e.geom, g.g))
SELECT id, code, ST_Area(o::geography), ST_AsText(ST_PointOnSurface(o)),
       -- as outside the commune: slivers no wider than twice the tolerance are allowed
       NOT ST_IsEmpty(ST_Buffer(o::geography, -%(tolerance)s)::geometry)
FROM o WHERE NOT ST_IsEmpty(o)
"""


def _point(wkt: str | None) -> list[float] | None:
    if not wkt or wkt.endswith("EMPTY"):
        return None
    x, y = shapely.get_coordinates(shapely.from_wkt(wkt))[0]
    return [round(float(x), 7), round(float(y), 7)]


async def snap(conn: psycopg.AsyncConnection, geom: BaseGeometry, context: dict[str, Any],
               rules: EaRules) -> BaseGeometry:
    """Snap vertices to the commune boundary and neighbouring EAs within the snap distance."""
    params = {**context, "wkb": shapely.to_wkb(geom),
              "snap": rules.snap_m / _METRES_PER_DEGREE}
    row = await (await conn.execute(_SNAP, params)).fetchone()
    snapped = shapely.from_wkb(row[0]) if row and row[0] else None
    if snapped is None or snapped.is_empty or not snapped.is_valid:
        return geom
    return snapped


async def check(conn: psycopg.AsyncConnection, geom: BaseGeometry, context: dict[str, Any],
                rules: EaRules) -> Findings:
    """Every rule the geometry breaks (problems) or bends (warnings)."""
    findings = Findings()
    params = {**context, "wkb": shapely.to_wkb(geom), "tolerance": rules.tolerance_m}
    row = await (await conn.execute(_CHECKS, params)).fetchone()
    assert row is not None
    area_m2, outside_m2, outside_at, beyond_tolerance = row
    if beyond_tolerance:
        findings.problems.append({"problem": "outside its commune",
                                  "area_m2": round(outside_m2, 1), "location": _point(outside_at)})
    if area_m2 < rules.min_area_m2:
        findings.problems.append({"problem": f"area {area_m2:.0f} m² is below the minimum "
                                             f"{rules.min_area_m2:.0f} m²"})
    if area_m2 > rules.max_area_km2 * 1e6:
        findings.problems.append({"problem": f"area {area_m2 / 1e6:.1f} km² is above the "
                                             f"maximum {rules.max_area_km2:.0f} km²"})
    overlaps = await (await conn.execute(_OVERLAPS, params)).fetchall()
    for other_id, other_code, m2, at, beyond in overlaps:
        if beyond:
            findings.problems.append({"problem": f"overlaps EA {other_code}", "ea": other_id,
                                      "area_m2": round(m2, 1), "location": _point(at)})
    return findings


def workload_warning(households: float | None, rules: EaRules) -> dict[str, Any] | None:
    """A warning when estimated households fall outside the workload band."""
    if households is None or rules.households_min <= households <= rules.households_max:
        return None
    return {"warning": f"estimated {households:.0f} households, outside the band "
                       f"{rules.households_min:.0f}–{rules.households_max:.0f}"}
