"""Line layers that EA boundaries follow (roads, rivers, railways): read any GDAL format,
check every feature, store all or nothing (`geo-service load lines`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pyogrio
import shapely
from pyproj import CRS

from boundaries import sql
from geo_core.errors import LoaderError

KINDS = ("road", "river", "railway")
_NAME_FIELDS = ("name", "ten", "NAME", "Name")


@dataclass(frozen=True)
class LinesSummary:
    """What a line load did."""

    loaded: int
    replaced: int
    outside: int  # features that touch no commune (not stored)
    seconds: float


def _fail(path: Path, message: str) -> LoaderError:
    return LoaderError(f"{path.name}: {message}; nothing was loaded", parameter="FILE")


def _read(
    path: Path, layer: str | None, src_crs: str | None
) -> tuple[gpd.GeoDataFrame, str | None]:
    try:
        frame = pyogrio.read_dataframe(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise _fail(path, f"cannot be read ({exc})") from exc
    crs = src_crs or (frame.crs.to_string() if frame.crs is not None else None)
    return frame, crs


def read_lines(
    path: Path,
    kind: str,
    layer: str | None = None,
    src_crs: str | None = None,
    name_field: str | None = None,
    kind_field: str | None = None,
) -> tuple[list[str], list[str | None], np.ndarray]:
    """(kinds, names, lon/lat MultiLineStrings) of a file's features; the first feature that
    is not a line, or a CRS that does not give longitude/latitude, refuses the file."""
    if kind not in KINDS and kind_field is None:
        raise LoaderError(f"--kind must be one of {', '.join(KINDS)}", parameter="--kind")
    frame, crs = _read(path, layer, src_crs)
    geometries: np.ndarray = np.array(list(frame.geometry.values), dtype=object)
    if len(geometries) == 0:
        raise _fail(path, "has no features")
    ids = _feature_ids(frame)
    for i, geom in enumerate(geometries):
        if geom is None or geom.is_empty:
            raise _fail(path, f"feature {ids[i]} has no geometry")
        if geom.geom_type not in ("LineString", "MultiLineString"):
            raise _fail(path, f"feature {ids[i]} is a {geom.geom_type}, not a line")
    if crs is None:
        raise _fail(path, "does not say its CRS: give --src-crs (e.g. EPSG:4326, EPSG:32648)")
    geometries = _to_lonlat(geometries, crs, path)
    bad = np.flatnonzero(~_within_lonlat(geometries))
    if len(bad):
        raise _fail(
            path,
            f"feature {ids[bad[0]]} is not in longitude/latitude after reading it as {crs} "
            "(wrong --src-crs?)",
        )
    names = _names(frame, name_field)
    kinds = _kinds(frame, kind, kind_field, ids, path)
    multi = np.asarray([shapely.multilinestrings(shapely.get_parts(g)) for g in geometries])
    return kinds, names, multi


def _feature_ids(frame: gpd.GeoDataFrame) -> list[str]:
    for column in ("id", "gid", "fid"):
        if column in frame.columns:
            return [f"{column}={v}" for v in frame[column]]
    return [f"#{i + 1}" for i in range(len(frame))]


def _to_lonlat(geometries: np.ndarray, crs: str, path: Path) -> np.ndarray:
    try:
        source = CRS.from_user_input(crs)
    except Exception as exc:  # pyproj raises its own CRSError
        raise _fail(path, f"unknown CRS {crs!r}") from exc
    if source.equals(CRS.from_epsg(4326)) or source.equals(CRS("OGC:CRS84")):
        return geometries
    from pyproj import Transformer

    transformer = Transformer.from_crs(source, "EPSG:4326", always_xy=True)
    return np.asarray(
        shapely.transform(geometries, lambda xy: np.column_stack(transformer.transform(*xy.T))),
        dtype=object,
    )


def _within_lonlat(geometries: np.ndarray) -> np.ndarray:
    bounds = shapely.bounds(geometries)
    return (
        (bounds[:, 0] >= -180)
        & (bounds[:, 2] <= 180)
        & (bounds[:, 1] >= -90)
        & (bounds[:, 3] <= 90)
        & np.isfinite(bounds).all(axis=1)
    )


def _names(frame: gpd.GeoDataFrame, name_field: str | None) -> list[str | None]:
    columns = list(frame.columns)
    field = name_field or next((f for f in _NAME_FIELDS if f in columns), None)
    if field is None:
        return [None] * len(frame)
    if field not in columns:
        raise LoaderError(
            f"no field {field!r} (fields: {', '.join(columns)})", parameter="--name-field"
        )
    return [None if v is None or v != v else str(v)[:200] for v in frame[field]]


_KIND_WORDS = {
    "road": "road",
    "main": "road",
    "secondary": "road",
    "river": "river",
    "stream": "river",
    "canal": "river",
    "railway": "railway",
    "rail": "railway",
}


def _kinds(
    frame: gpd.GeoDataFrame, kind: str, kind_field: str | None, ids: list[str], path: Path
) -> list[str]:
    if kind_field is None:
        return [kind] * len(ids)
    if kind_field not in frame.columns:
        raise LoaderError(f"no field {kind_field!r}", parameter="--kind-field")
    kinds = []
    for i, value in enumerate(frame[kind_field]):
        mapped = _KIND_WORDS.get(str(value).strip().lower())
        if mapped is None:
            raise _fail(
                path,
                f"feature {ids[i]} has {kind_field} {value!r}: expected one of "
                f"{', '.join(sorted(_KIND_WORDS))}",
            )
        kinds.append(mapped)
    return kinds


def load_lines(
    conn: psycopg.Connection,
    path: Path,
    kind: str,
    layer: str | None = None,
    src_crs: str | None = None,
    name_field: str | None = None,
    kind_field: str | None = None,
    replace: bool = False,
    vintage: str | None = None,
) -> LinesSummary:
    """Check and store a file's lines in one transaction: features touching no commune are
    left out, and a file none of whose features touches a commune is refused."""
    started = time.perf_counter()
    kinds, names, geoms = read_lines(path, kind, layer, src_crs, name_field, kind_field)
    source = path.name
    with conn.transaction():
        vintage = vintage or sql.latest_vintage_with(conn, "commune")
        if vintage is None:
            raise _fail(path, "there are no communes to lay lines over: load boundaries first")
        touching = sql.lines_touching_communes(conn, vintage, [shapely.to_wkb(g) for g in geoms])
        if not any(touching):
            raise _fail(path, f"no feature overlaps a commune of vintage {vintage} (wrong CRS?)")
        replaced = sql.delete_lines(conn, source) if replace else 0
        if not replace and sql.lines_loaded(conn, source):
            raise _fail(path, "is already loaded: pass --replace to load it again")
        rows = [
            (k, n, source, shapely.to_wkb(g, hex=True))
            for k, n, g, keep in zip(kinds, names, geoms, touching, strict=True)
            if keep
        ]
        sql.copy_lines(conn, rows)
    return LinesSummary(len(rows), replaced, len(geoms) - len(rows), time.perf_counter() - started)
