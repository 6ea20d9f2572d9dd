"""Read boundary files: anything GDAL reads, plus the custom JSON of the demo data."""

from __future__ import annotations

import json
import re
import warnings
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
from pyproj.exceptions import CRSError, ProjError

from geo_core.errors import LoaderError

# GeoJSON (RFC 7946) and TopoJSON are longitude/latitude unless they say otherwise.
_LONLAT_DRIVERS = {"GeoJSON", "TopoJSON", "GeoJSONSeq"}
# Formats that hold one layer: no need to open them twice to ask (GDAL parses a whole
# GeoJSON file to list its one layer)
_ONE_LAYER = {".geojson", ".geojsonl", ".geojsons", ".shp"}
FEATURE_INDEX = "_feature_index"
SOURCE_FILE = "_source_file"
# What the reader noticed without refusing the input: (file, message) pairs in frame.attrs.
NOTES = "notes"
CUSTOM_FORMATS = "the vietnam-3d-map JSON of the demo data"
# Coordinates this far beyond ±180/±90 are reprojection round-off, not errors.
_ROUND_OFF = 1e-7
_SHOWN = 20
# UTF-8 text read as Latin-1/Windows-1252 (a .dbf without its .cpg): "Hà Nội" → "HÃ  Ná»™i"
_MOJIBAKE = re.compile("Ã[\xa0-\xbf]|á[»º]|Æ°|Ä[\x91‘]")


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
                raise LoaderError(
                    f"{path}: feature {i}: a ring is not a list of [x, y] number pairs"
                )
            rings.append(coords[:, :2])  # (a height, if any, is not used)
            owners.append(i)
    out = np.empty(len(parts_per_item), dtype=object)
    if not rings:
        return out
    # built in one go: constructing the 12,000 polygons one by one took half a second
    ring_of = np.repeat(np.arange(len(rings)), [len(r) for r in rings])
    polygons = np.asarray(
        shapely.polygons(shapely.linearrings(np.concatenate(rings), indices=ring_of))
    )
    return np.asarray(shapely.multipolygons(polygons, indices=owners, out=out))


def _read_vietnam_3d_map(
    path: Path, doc: dict[str, Any]
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rows and geometries of a vietnam-3d-map `provinces.json` or `wards/NN.json`."""
    if "wards" in doc:
        items, extra = doc["wards"], {"provinceId": doc.get("provinceId")}
    else:
        items, extra = doc["provinces"], {}
    rows = [
        {**{k: v for k, v in item.items() if k not in ("polygons", "center")}, **extra}
        for item in items
    ]
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


def _read_one(
    path: Path,
    layer: str | None,
    encoding: str | None,
    code_field: str | None,
    notes: list[tuple[str, str]],
) -> gpd.GeoDataFrame:
    if not path.exists():
        raise LoaderError(f"{path}: no such file")
    frame = _custom_json_reader(path)
    if frame is not None:
        return frame
    source = _gdal_source(path)
    if layer is None and Path(path.name.removesuffix(".gz")).suffix.lower() not in _ONE_LAYER:
        _refuse_several_layers(source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = _read_gdal(source, layer, encoding, code_field)
    notes += [(str(path), str(w.message)) for w in caught]
    if not isinstance(frame, gpd.GeoDataFrame):
        raise LoaderError(f"{path}: the layer has no geometry column")
    if len(frame) == 0:
        raise LoaderError(f"{path}: the layer has no features")
    # read_info reads a GeoJSON file a second time, so only when the answer matters
    if (
        frame.crs is None
        and pyogrio.read_info(source, layer=layer).get("driver") in _LONLAT_DRIVERS
    ):
        frame = frame.set_crs("EPSG:4326")
    return frame


def _gdal_source(path: Path) -> str:
    """The path GDAL opens: a gzip-compressed file (`.geojson.gz`) through /vsigzip/."""
    # (a string: Path would fold the // of /vsigzip//abs/path)
    return f"/vsigzip/{path}" if path.suffix.lower() == ".gz" else str(path)


def _refuse_several_layers(path: str) -> None:
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except pyogrio.errors.DataSourceError as exc:
        raise LoaderError(
            f"{path}: not a vector file GDAL can read, nor {CUSTOM_FORMATS} ({exc})"
        ) from exc
    if len(layers) > 1:
        raise LoaderError(
            f"{path} has {len(layers)} layers: {', '.join(layers)}; say which with --layer",
            parameter="--layer",
        )


def _read_gdal(
    path: str, layer: str | None, encoding: str | None, code_field: str | None
) -> gpd.GeoDataFrame:
    try:
        return pyogrio.read_dataframe(path, layer=layer, encoding=encoding)
    except pyogrio.errors.DataSourceError as exc:
        raise LoaderError(
            f"{path}: not a vector file GDAL can read, nor {CUSTOM_FORMATS} ({exc})"
        ) from exc
    except pyogrio.errors.DataLayerError as exc:
        layers = [name for name, _ in pyogrio.list_layers(path)]
        if layer is not None and layer not in layers:
            raise LoaderError(
                f"{path}: no layer {layer!r}; layers in the file: {', '.join(layers)}",
                parameter="--layer",
            ) from exc
        hint = (
            " (is the .prj beside it broken? remove it and pass --src-crs)"
            if Path(path).with_suffix(".prj").exists()
            else ""
        )
        raise LoaderError(f"{path}: cannot be read: {exc}{hint}") from exc
    except shapely.errors.GEOSException:
        raise _unreadable_geometries(path, layer, encoding, code_field) from None


def _unreadable_geometries(
    path: str, layer: str | None, encoding: str | None, code_field: str | None
) -> LoaderError:
    """The features whose geometry GEOS cannot build (e.g. a ring that is not closed)."""
    frame = pyogrio.read_dataframe(path, layer=layer, encoding=encoding, read_geometry=False)
    _, _, wkbs, _ = pyogrio.raw.read(path, layer=layer, columns=[])
    problems = []
    for index, wkb in enumerate(wkbs):
        try:
            shapely.from_wkb(wkb)
        except shapely.errors.GEOSException as exc:
            code = f" code {frame[code_field].iat[index]}" if code_field in frame.columns else ""
            problems.append(f"{path}: feature {index}{code}: geometry cannot be read: {exc}")
    return LoaderError(listed(problems), errors=problems)


def listed(problems: list[str]) -> str:
    """An error text: how many problems, then the first of them."""
    lines = problems[:_SHOWN]
    if len(problems) > _SHOWN:
        lines.append(f"... and {len(problems) - _SHOWN} more")
    return f"{len(problems)} problem(s), nothing was written:\n" + "\n".join(lines)


def read_boundaries(
    paths: Sequence[Path],
    layer: str | None = None,
    src_crs: str | None = None,
    encoding: str | None = None,
    code_field: str | None = None,
) -> gpd.GeoDataFrame:
    """Read one or more files into a frame in EPSG:4326, remembering each feature's origin.

    `code_field` only serves to name features in errors. What was noticed without refusing
    the input (heights dropped, a CRS overridden, mis-decoded text) is in `frame.attrs["notes"]`.
    """
    frames = []
    notes: list[tuple[str, str]] = []
    override = parse_crs(src_crs) if src_crs else None
    for path in map(Path, paths):
        frame = _read_one(path, layer, encoding, code_field, notes)
        if override is not None:
            if frame.crs is not None and not frame.crs.equals(override):
                notes.append(
                    (
                        str(path),
                        f"--src-crs {src_crs} overrides the CRS the file "
                        f"declares ({_crs_name(frame.crs)})",
                    )
                )
            frame = frame.set_crs(override, allow_override=True)
        elif frame.crs is None:
            raise LoaderError(
                f"{path}: the file declares no CRS; pass --src-crs (e.g. EPSG:32648)",
                parameter="--src-crs",
            )
        frame[SOURCE_FILE] = str(path)
        frame[FEATURE_INDEX] = range(len(frame))
        frame = _to_wgs84(frame, path, code_field, notes)
        notes += _text_notes(frame, path)
        frames.append(frame)
    if not frames:
        raise LoaderError("no input files given")
    combined = gpd.GeoDataFrame(
        pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326"
    )
    combined.attrs[NOTES] = notes
    return combined


def _crs_name(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def _text_notes(frame: gpd.GeoDataFrame, path: Path) -> list[tuple[str, str]]:
    """A warning when text looks like UTF-8 read in another encoding."""
    for column in frame.columns:
        if column in (SOURCE_FILE, "geometry") or not (
            frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column])
        ):
            continue
        garbled = frame[column].map(lambda v: isinstance(v, str) and bool(_MOJIBAKE.search(v)))
        if garbled.any():
            example = frame[column][garbled].iloc[0]
            return [
                (
                    str(path),
                    f"text in field {column!r} looks mis-decoded (e.g. {example!r}); "
                    "if so, pass --encoding UTF-8 (or the file's encoding)",
                )
            ]
    return []


def _to_wgs84(
    frame: gpd.GeoDataFrame, path: Path, code_field: str | None, notes: list[tuple[str, str]]
) -> gpd.GeoDataFrame:
    if frame.geometry.name != "geometry":
        frame = frame.rename_geometry("geometry")
    geoms = np.asarray(frame.geometry.values, dtype=object)
    if shapely.has_z(geoms).any():  # heights say nothing about a boundary
        frame = frame.set_geometry(shapely.force_2d(geoms), crs=frame.crs)
    try:
        out = frame.to_crs("EPSG:4326")
    except (ProjError, CRSError) as exc:
        raise LoaderError(
            f"{path}: cannot convert its CRS ({_crs_name(frame.crs)}) to "
            f"longitude/latitude: {exc}; pass --src-crs",
            parameter="--src-crs",
        ) from exc
    notes += _check_lonlat(out, path, frame.crs, code_field)
    return out


def _check_lonlat(
    frame: gpd.GeoDataFrame, path: Path, crs: CRS | None, code_field: str | None
) -> list[tuple[str, str]]:
    """Refuse features outside longitude/latitude; note polygons wrapped round the globe."""
    geoms = np.asarray(frame.geometry.values, dtype=object)
    bounds = shapely.bounds(geoms)
    with np.errstate(invalid="ignore"):
        outside = (
            (bounds[:, 0] < -180 - _ROUND_OFF)
            | (bounds[:, 2] > 180 + _ROUND_OFF)
            | (bounds[:, 1] < -90 - _ROUND_OFF)
            | (bounds[:, 3] > 90 + _ROUND_OFF)
            | np.isinf(bounds).any(axis=1)
        )  # (NaN is for the checks to report)

    def where(index: int) -> str:
        code = f" code {frame[code_field].iat[index]}" if code_field in frame.columns else ""
        return f"feature {index}{code}"

    problems = [
        f"{path}: {where(int(i))}: coordinates fall outside longitude/latitude after "
        f"reprojection from {_crs_name(crs) if crs else '?'} (is --src-crs right?)"
        for i in np.flatnonzero(outside)
    ]
    if problems:
        raise LoaderError(listed(problems), errors=problems, parameter="--src-crs")
    # A polygon drawn across the antimeridian without being split there goes the long way
    # round; only Antarctica-like polygons span more than half the globe on purpose.
    parts, owners = shapely.get_parts(geoms, return_index=True)
    part_bounds = shapely.bounds(parts)
    with np.errstate(invalid="ignore"):
        wide = np.unique(owners[part_bounds[:, 2] - part_bounds[:, 0] > 180])
    return [
        (
            str(path),
            f"{where(i)}: a polygon spans more than 180° of longitude; if it "
            "crosses the antimeridian, split it at ±180°",
        )
        for i in wide
    ]
