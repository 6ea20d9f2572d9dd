"""GeoJSON polygons sent by clients, checked and brought to lon/lat (EPSG:4326)."""

from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo_service.errors import InvalidParameter
from geo_service.features.crs import OutputCrs


def polygon_from_geojson(geojson: Any) -> BaseGeometry:
    """A non-empty Polygon/MultiPolygon with finite coordinates, as sent (any CRS)."""
    if not isinstance(geojson, dict) or geojson.get("type") not in ("Polygon", "MultiPolygon"):
        kind = geojson.get("type") if isinstance(geojson, dict) else type(geojson).__name__
        raise InvalidParameter(f"geometry must be a Polygon or MultiPolygon, not {kind!r}",
                               parameter="geometry")
    try:
        geom = shape(geojson)
    except (ValueError, TypeError, AttributeError, IndexError,
            shapely.errors.ShapelyError) as exc:
        raise InvalidParameter(f"geometry is not valid GeoJSON: {exc}",
                               parameter="geometry") from exc
    coords = shapely.get_coordinates(geom)
    if geom.is_empty or not len(coords):
        raise InvalidParameter("geometry is empty", parameter="geometry")
    if not all(math.isfinite(v) for v in coords.flat):
        raise InvalidParameter("geometry has NaN or infinite coordinates", parameter="geometry")
    return geom


def to_lonlat(geom: BaseGeometry, crs: OutputCrs) -> BaseGeometry:
    """The geometry in lon/lat; coordinates outside the CRS's area are refused."""
    if crs.lat_first:
        geom = shapely.transform(geom, lambda xy: xy[:, ::-1])
    if crs.srid != 4326:
        geom = gpd.GeoSeries([geom], crs=f"EPSG:{crs.srid}").to_crs("EPSG:4326").iloc[0]
    lonlat = shapely.get_coordinates(geom)
    if not ((abs(lonlat[:, 0]) <= 180).all() and (abs(lonlat[:, 1]) <= 90).all()):
        raise InvalidParameter("coordinates fall outside the declared CRS's area",
                               parameter="geometry")
    return geom
