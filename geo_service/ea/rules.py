"""The rules an EA geometry must keep, checked all at once in PostGIS: inside its commune,
no overlaps, size limits; snapping to neighbours; the workload band."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
import shapely
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from geo_core.crs import OutputCrs
from geo_core.errors import InvalidParameter
from geo_core.geojson import polygon_from_geojson, to_lonlat
from geo_service.ea import sql
from geo_service.messages import said

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
    max_split_parts: int = 20
    max_merged: int = 100
    max_generated: int = 2_000


@dataclass
class Findings:
    """Blocking problems and warnings, each with a location where there is one."""

    problems: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)


def parse_geometry(
    geojson: Any, crs: OutputCrs, repair: bool, max_vertices: int = 100_000
) -> tuple[MultiPolygon, str | None]:
    """A MultiPolygon in lon/lat; invalid ones are refused with their location unless repaired."""
    geom = to_lonlat(polygon_from_geojson(geojson, max_vertices), crs)
    note = None
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        if not repair:
            raise InvalidParameter(
                f"geometry is invalid: {reason} (send ?repair=true to repair it)",
                parameter="geometry",
                location=reason,
            )
        geom = shapely.make_valid(geom)
        note = said("repaired", reason=reason)
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and not p.is_empty]
    if not parts:
        raise InvalidParameter("nothing polygonal is left after repair", parameter="geometry")
    return MultiPolygon(parts), note


def _point(wkt: str | None) -> list[float] | None:
    if not wkt or wkt.endswith("EMPTY"):
        return None
    x, y = shapely.get_coordinates(shapely.from_wkt(wkt))[0]
    return [round(float(x), 7), round(float(y), 7)]


async def snap(
    conn: psycopg.AsyncConnection, geom: BaseGeometry, context: dict[str, Any], rules: EaRules
) -> BaseGeometry:
    """Snap vertices to the commune boundary and neighbouring EAs within the snap distance."""
    params = {**context, "wkb": shapely.to_wkb(geom), "snap": rules.snap_m / _METRES_PER_DEGREE}
    wkb = await sql.snapped_wkb(conn, params)
    snapped = shapely.from_wkb(wkb) if wkb else None
    if snapped is None or snapped.is_empty or not snapped.is_valid:
        return geom
    return snapped


async def check(
    conn: psycopg.AsyncConnection, geom: BaseGeometry, context: dict[str, Any], rules: EaRules
) -> Findings:
    """Every rule the geometry breaks (problems) or bends (warnings)."""
    findings = Findings()
    params = {**context, "wkb": shapely.to_wkb(geom), "tolerance": rules.tolerance_m}
    area_m2, outside_m2, outside_at, beyond_tolerance = await sql.outside(conn, params)
    inside_m2 = area_m2 - outside_m2
    if beyond_tolerance:
        findings.problems.append(
            {
                "problem": said("outside_commune"),
                "area_m2": round(outside_m2, 1),
                "location": _point(outside_at),
            }
        )
    elif inside_m2 < area_m2 / 2:
        # (slivers outside within the tolerance: but an EA must still lie in its commune)
        findings.problems.append(
            {
                "problem": said("mostly_outside", inside=f"{inside_m2:.0f}", area=f"{area_m2:.0f}"),
                "area_m2": round(outside_m2, 1),
                "location": _point(outside_at),
            }
        )
    if area_m2 < rules.min_area_m2:
        findings.problems.append(
            {
                "problem": said(
                    "area_too_small", area=f"{area_m2:.0f}", minimum=f"{rules.min_area_m2:.0f}"
                )
            }
        )
    if area_m2 > rules.max_area_km2 * 1e6:
        findings.problems.append(
            {
                "problem": said(
                    "area_too_large",
                    area=f"{area_m2 / 1e6:.1f}",
                    maximum=f"{rules.max_area_km2:.0f}",
                )
            }
        )
    for other_id, other_code, m2, at, beyond in await sql.overlaps(conn, params):
        if beyond:
            findings.problems.append(
                {
                    "problem": said("overlaps_ea", code=other_code),
                    "ea": other_code,
                    "ea_id": other_id,
                    "area_m2": round(m2, 1),
                    "location": _point(at),
                }
            )
    return findings


def workload_warning(
    households: float | None, rules: EaRules, code: str = "?"
) -> dict[str, Any] | None:
    """A warning when estimated households fall outside the workload band."""
    if households is None or rules.households_min <= households <= rules.households_max:
        return None
    band = f"{rules.households_min:.0f}–{rules.households_max:.0f}"
    return {
        "warning": said("workload", code=code, households=f"{households:.0f}", band=band),
        "ea": code,
    }
