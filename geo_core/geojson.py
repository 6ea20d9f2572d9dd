"""GeoJSON polygons sent by clients, checked and brought to lon/lat (EPSG:4326)."""

from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import shapely
from shapely.geometry import LineString, shape
from shapely.geometry.base import BaseGeometry

from geo_core.crs import OutputCrs
from geo_core.errors import InvalidParameter, PayloadTooLarge


def _position(value: Any, where: str, parameter: str) -> None:
    if (
        not isinstance(value, list)
        or not 2 <= len(value) <= 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidParameter(f"{where} must be a position [x, y] of numbers", parameter=parameter)
    try:
        finite = all(math.isfinite(float(v)) for v in value)
    except OverflowError:
        finite = False
    if not finite:
        raise InvalidParameter(
            f"{where} has a NaN, infinite or too large coordinate", parameter=parameter
        )


def _positions(value: Any, where: str, parameter: str, least: int) -> int:
    if not isinstance(value, list):
        raise InvalidParameter(f"{where} must be an array of positions", parameter=parameter)
    for i, position in enumerate(value):
        _position(position, f"{where}[{i}]", parameter)
    if len(value) < least:
        raise InvalidParameter(
            f"{where} needs at least {least} positions, has {len(value)}", parameter=parameter
        )
    return len(value)


def _rings(value: Any, where: str, max_vertices: int | None) -> int:
    """Check a polygon's rings (closed, 4+ positions); return the vertex count."""
    if not isinstance(value, list) or not value:
        raise InvalidParameter(
            f"{where} is empty" if value == [] else f"{where} must be an array of rings",
            parameter="geometry",
        )
    count = 0
    for i, ring in enumerate(value):
        count += _positions(ring, f"{where}[{i}]", "geometry", 4)
        if max_vertices is not None and count > max_vertices:
            raise PayloadTooLarge(
                f"geometry has more than {max_vertices} vertices",
                parameter="geometry",
                limit=max_vertices,
            )
        if ring[0][:2] != ring[-1][:2]:
            raise InvalidParameter(
                f"{where}[{i}] is not closed: its first and last positions differ",
                parameter="geometry",
            )
    return count


def polygon_from_geojson(geojson: Any, max_vertices: int | None = None) -> BaseGeometry:
    """A non-empty Polygon/MultiPolygon with closed rings and finite coordinates (any CRS)."""
    if not isinstance(geojson, dict) or geojson.get("type") not in ("Polygon", "MultiPolygon"):
        kind = geojson.get("type") if isinstance(geojson, dict) else type(geojson).__name__
        raise InvalidParameter(
            f"geometry must be a Polygon or MultiPolygon, not {kind!r}", parameter="geometry"
        )
    coordinates = geojson.get("coordinates")
    if geojson["type"] == "Polygon":
        _rings(coordinates, "coordinates", max_vertices)
    else:
        if not isinstance(coordinates, list) or not coordinates:
            raise InvalidParameter(
                "coordinates of a MultiPolygon must be a non-empty array of polygons",
                parameter="geometry",
            )
        budget = max_vertices
        for i, polygon in enumerate(coordinates):
            used = _rings(polygon, f"coordinates[{i}]", budget)
            budget = None if budget is None else budget - used
    try:
        geom = shape(geojson)
    except (
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        shapely.errors.ShapelyError,
    ) as exc:
        raise InvalidParameter(
            f"geometry is not valid GeoJSON: {exc}", parameter="geometry"
        ) from exc
    if geom.is_empty:
        raise InvalidParameter("geometry is empty", parameter="geometry")
    return geom


def line_from_geojson(geojson: Any, parameter: str, max_vertices: int = 10_000) -> LineString:
    """A LineString in lon/lat with 2 to max_vertices finite positions inside the world's
    bounds."""
    if not isinstance(geojson, dict) or geojson.get("type") != "LineString":
        raise InvalidParameter(f"{parameter} must be a GeoJSON LineString", parameter=parameter)
    coordinates = geojson.get("coordinates")
    if isinstance(coordinates, list) and len(coordinates) > max_vertices:
        raise PayloadTooLarge(
            f"{parameter} has more than {max_vertices} positions",
            parameter=parameter,
            limit=max_vertices,
        )
    _positions(coordinates, f"{parameter}.coordinates", parameter, 2)
    line = LineString([p[:2] for p in coordinates or []])
    lonlat = shapely.get_coordinates(line)
    if not ((abs(lonlat[:, 0]) <= 180).all() and (abs(lonlat[:, 1]) <= 90).all()):
        raise InvalidParameter(
            f"{parameter} has coordinates outside longitude ±180, latitude ±90", parameter=parameter
        )
    if line.length == 0:
        raise InvalidParameter(f"{parameter} has no length", parameter=parameter)
    return line


def to_lonlat(geom: BaseGeometry, crs: OutputCrs) -> BaseGeometry:
    """The geometry in lon/lat; coordinates outside the CRS's area are refused."""
    if crs.lat_first:
        geom = shapely.transform(geom, lambda xy: xy[:, ::-1])
    if crs.srid != 4326:
        geom = gpd.GeoSeries([geom], crs=f"EPSG:{crs.srid}").to_crs("EPSG:4326").iloc[0]
    lonlat = shapely.get_coordinates(geom)
    if not ((abs(lonlat[:, 0]) <= 180).all() and (abs(lonlat[:, 1]) <= 90).all()):
        raise InvalidParameter(
            "coordinates fall outside the declared CRS's area", parameter="geometry"
        )
    return geom
