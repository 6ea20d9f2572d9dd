"""Read boundary files: anything GDAL reads, plus the custom JSON of the demo data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo_service.errors import LoaderError

# GeoJSON (RFC 7946) and TopoJSON are longitude/latitude unless they say otherwise.
_LONLAT_DRIVERS = {"GeoJSON", "TopoJSON", "GeoJSONSeq"}
FEATURE_INDEX = "_feature_index"
SOURCE_FILE = "_source_file"


def parse_crs(text: str, option: str = "--src-crs") -> CRS:
    """Turn 'EPSG:32648', '32648' or an OGC URI into a CRS, or say it is unknown."""
    value = text.strip()
    if value.isdigit():
        value = f"EPSG:{value}"
    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise LoaderError(f"unknown CRS {text!r} ({option})", parameter=option) from exc


def _multipolygons(path: Path, parts_per_item: list[Any]) -> np.ndarray:
    """One MultiPolygon per item from its parts; vietnam-3d-map stores each part as one
    exterior ring, with no holes. Items without a usable ring get no geometry."""
    rings, owners = [], []
    for i, parts in enumerate(parts_per_item):
        for ring in parts or []:
            if len(ring) < 3:
                continue
            try:
                coords = np.asarray(ring, dtype=float)
            except (TypeError, ValueError):
                coords = np.empty((0, 0))
            if coords.ndim != 2 or coords.shape[1] not in (2, 3):
                raise LoaderError(f"{path}: feature {i}: a ring is not a list of [x, y] "
                                  "number pairs")
            rings.append(coords[:, :2])  # (a height, if any, is not used)
            owners.append(i)
    out = np.empty(len(parts_per_item), dtype=object)
    if not rings:
        return out
    # built in one go: constructing the 12,000 polygons one by one took half a second
    ring_of = np.repeat(np.arange(len(rings)), [len(r) for r in rings])
    polygons = np.asarray(shapely.polygons(shapely.linearrings(np.concatenate(rings),
                                                               indices=ring_of)))
    return np.asarray(shapely.multipolygons(polygons, indices=owners, out=out))


def _read_vietnam_3d_map(path: Path, doc: dict[str, Any]
                         ) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rows and geometries of a vietnam-3d-map `provinces.json` or `wards/NN.json`."""
    if "wards" in doc:
        items, extra = doc["wards"], {"provinceId": doc.get("provinceId")}
    else:
        items, extra = doc["provinces"], {}
    rows = [{**{k: v for k, v in item.items() if k not in ("polygons", "center")}, **extra}
            for item in items]
    return rows, _multipolygons(path, [item.get("polygons") for item in items])


def _custom_json_reader(path: Path) -> gpd.GeoDataFrame | None:
    """Read the file if it is one of the custom JSON formats we know, else None."""
    if path.suffix.lower() != ".json" or path.stat().st_size == 0:
        return None
    raw = path.read_bytes()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:  # also raised for text that is not UTF-8
        try:  # NaN and Infinity, which orjson refuses, are for the checks to report
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
    if not isinstance(doc, dict):
        return None
    is_3d_map = isinstance(doc.get("wards"), list) or (
        isinstance(doc.get("provinces"), list) and "bounds" in doc
    )
    if not is_3d_map:
        return None
    rows, geoms = _read_vietnam_3d_map(path, doc)
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs="EPSG:4326")


def _read_one(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    if not path.exists():
        raise LoaderError(f"{path}: no such file")
    frame = _custom_json_reader(path)
    if frame is not None:
        return frame
    try:
        frame = pyogrio.read_dataframe(path, layer=layer)
    except pyogrio.errors.DataSourceError as exc:
        raise LoaderError(f"{path}: not a vector file GDAL can read ({exc})") from exc
    except pyogrio.errors.DataLayerError as exc:
        layers = [name for name, _ in pyogrio.list_layers(path)]
        raise LoaderError(f"{path}: {exc}; layers in the file: {', '.join(layers)}",
                          parameter="--layer") from exc
    if not isinstance(frame, gpd.GeoDataFrame):
        raise LoaderError(f"{path}: the layer has no geometry column")
    # read_info reads a GeoJSON file a second time, so only when the answer matters
    if frame.crs is None and pyogrio.read_info(path, layer=layer).get("driver") in _LONLAT_DRIVERS:
        frame = frame.set_crs("EPSG:4326")
    return frame


def read_boundaries(paths: Sequence[Path], layer: str | None = None,
                    src_crs: str | None = None) -> gpd.GeoDataFrame:
    """Read one or more files into a frame in EPSG:4326, remembering each feature's origin."""
    frames = []
    override = parse_crs(src_crs) if src_crs else None
    for path in paths:
        frame = _read_one(Path(path), layer)
        if override is not None:
            frame = frame.set_crs(override, allow_override=True)
        elif frame.crs is None:
            raise LoaderError(f"{path}: the file declares no CRS; pass --src-crs (e.g. EPSG:32648)",
                              parameter="--src-crs")
        frame[SOURCE_FILE] = str(path)
        frame[FEATURE_INDEX] = range(len(frame))
        frames.append(_to_wgs84(frame, Path(path)))
    if not frames:
        raise LoaderError("no input files given")
    combined = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(combined, geometry="geometry", crs="EPSG:4326")


def _to_wgs84(frame: gpd.GeoDataFrame, path: Path) -> gpd.GeoDataFrame:
    if frame.geometry.name != "geometry":
        frame = frame.rename_geometry("geometry")
    out = frame.to_crs("EPSG:4326")
    if len(out) and not out.geometry.is_empty.all():
        minx, miny, maxx, maxy = out.total_bounds
        if not (-180.5 <= minx <= maxx <= 180.5 and -90.5 <= miny <= maxy <= 90.5):
            raise LoaderError(
                f"{path}: coordinates fall outside longitude/latitude after reprojection "
                f"from {frame.crs.to_string() if frame.crs else '?'}; is --src-crs right?",
                parameter="--src-crs",
            )
    return out
