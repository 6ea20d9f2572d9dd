"""Tile sources of base maps: MBTiles and PMTiles archives (raster or vector tiles, read
as stored) and GeoTIFF / Cloud-Optimised GeoTIFF imagery rendered to PNG tiles through
rasterio (warped to Web Mercator, overviews used when zoomed out)."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
from branca.utilities import color_brewer
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import Compression, TileType
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from geo_core.grid import is_valid

TILE = 256
_MERCATOR_HALF = 20037508.342789244
MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "pbf": "application/vnd.mapbox-vector-tile",
}


@dataclass
class Tile:
    """A tile's bytes, media type and content encoding (gzip for stored vector tiles)."""

    data: bytes
    media_type: str
    encoding: str | None = None


@dataclass
class SourceInfo:
    """What a layer switcher needs to know of a source."""

    format: str  # png, jpg, webp or pbf
    min_zoom: int = 0
    max_zoom: int = 22
    bounds: tuple[float, float, float, float] | None = None
    attribution: str = ""
    layers: list[str] = field(default_factory=list)  # vector tiles: the layer names


class TileSource(Protocol):
    """Something that answers z/x/y tiles."""

    info: SourceInfo

    def tile(self, z: int, x: int, y: int) -> Tile | None:
        """The tile, or None where the source has none."""
        ...


def _mercator_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    size = 2 * _MERCATOR_HALF / (1 << z)
    x0 = -_MERCATOR_HALF + x * size
    y1 = _MERCATOR_HALF - y * size
    return x0, y1 - size, x0 + size, y1


def _is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


class MBTilesSource:
    """An MBTiles file (SQLite; rows in TMS order, y counted from the south)."""

    def __init__(self, path: Path):
        self.path = path
        # read-only, and refused at once if it is not an SQLite file with a tiles table
        self._local = threading.local()
        metadata = dict(self._conn().execute("SELECT name, value FROM metadata").fetchall())
        self._conn().execute("SELECT 1 FROM tiles LIMIT 1").fetchall()
        fmt = str(metadata.get("format", "png")).lower()
        fmt = {"jpeg": "jpg", "mvt": "pbf"}.get(fmt, fmt)
        if fmt not in MEDIA_TYPES:
            raise ValueError(f"unknown tile format {fmt!r} in the metadata")
        layers: list[str] = []
        if metadata.get("json"):
            layers = [v["id"] for v in json.loads(metadata["json"]).get("vector_layers", [])]
        bounds = None
        if metadata.get("bounds"):
            w, s, e, n = (float(v) for v in str(metadata["bounds"]).split(","))
            bounds = (w, s, e, n)
        self.info = SourceInfo(
            fmt,
            int(metadata.get("minzoom", 0)),
            int(metadata.get("maxzoom", 22)),
            bounds,
            str(metadata.get("attribution", "")),
            layers,
        )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    def tile(self, z: int, x: int, y: int) -> Tile | None:
        """The stored tile (vector tiles keep their gzip encoding)."""
        row = (
            self._conn()
            .execute(
                "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ?"
                " AND tile_row = ?",
                (z, x, (1 << z) - 1 - y),
            )
            .fetchone()
        )
        if row is None:
            return None
        data = bytes(row[0])
        encoding = "gzip" if self.info.format == "pbf" and _is_gzip(data) else None
        return Tile(data, MEDIA_TYPES[self.info.format], encoding)


_PMTILES_FORMATS = {
    TileType.MVT: "pbf",
    TileType.PNG: "png",
    TileType.JPEG: "jpg",
    TileType.WEBP: "webp",
}


class PMTilesSource:
    """A PMTiles v3 archive (read through a memory map)."""

    def __init__(self, path: Path):
        self.path = path
        self._file = path.open("rb")
        self._reader = Reader(MmapSource(self._file))
        header = self._reader.header()
        fmt = _PMTILES_FORMATS.get(header["tile_type"])
        if fmt is None:
            raise ValueError(f"unsupported PMTiles tile type {header['tile_type']}")
        self._compression = header["tile_compression"]
        metadata = self._reader.metadata()
        layers = [v["id"] for v in metadata.get("vector_layers", []) if "id" in v]
        self.info = SourceInfo(
            fmt,
            int(header["min_zoom"]),
            int(header["max_zoom"]),
            (
                header["min_lon_e7"] / 1e7,
                header["min_lat_e7"] / 1e7,
                header["max_lon_e7"] / 1e7,
                header["max_lat_e7"] / 1e7,
            ),
            str(metadata.get("attribution", "")),
            layers,
        )
        self._lock = threading.Lock()

    def tile(self, z: int, x: int, y: int) -> Tile | None:
        """The stored tile (gzip-compressed tiles are sent with that encoding)."""
        with self._lock:  # (the reader's directory cache is not thread-safe)
            data = self._reader.get(z, x, y)
        if data is None:
            return None
        encoding = None
        if self._compression == Compression.GZIP:
            if self.info.format == "pbf":
                encoding = "gzip"
            else:
                data = gzip.decompress(data)
        return Tile(data, MEDIA_TYPES[self.info.format], encoding)


def _ramp(name: str, steps: int = 256) -> np.ndarray:
    """A ColorBrewer scheme stretched to `steps` RGB colours."""
    stops = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in color_brewer(name, 9)]
    positions = np.linspace(0, 1, len(stops))
    grid = np.linspace(0, 1, steps)
    return np.stack([np.interp(grid, positions, [s[i] for s in stops]) for i in range(3)], axis=1)


class RasterSource:
    """A GeoTIFF or Cloud-Optimised GeoTIFF drawn as PNG tiles: RGB(A) imagery as it is,
    one band of numbers through a colour ramp (log scale for counts such as population)."""

    def __init__(
        self,
        path: Path,
        colormap: str = "YlOrRd",
        scale: str = "log",
        value_range: tuple[float, float] | None = None,
    ):
        self.path = path
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ValueError("the raster has no CRS")
            self._bands = src.count
            self._dtype = src.dtypes[0]
            bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
            if value_range is None and src.count == 1:
                value_range = self._range(src)
        self._rgb = self._bands >= 3 and self._dtype == "uint8"
        self._colours = _ramp(colormap)
        self._scale = scale
        self._range_of_values = value_range or (0.0, 255.0)
        self.info = SourceInfo("png", 0, 18, (bounds[0], bounds[1], bounds[2], bounds[3]))

    @staticmethod
    def _range(src: Any) -> tuple[float, float]:
        """The 2nd–99.5th percentile of the values, from the smallest overview (cheap)."""
        factor = max(1, max(src.width, src.height) // 512)
        data = src.read(
            1, out_shape=(max(1, src.height // factor), max(1, src.width // factor)), masked=True
        )
        values = data.compressed()
        values = values[np.isfinite(values) & (values > 0)]
        if values.size == 0:
            return (0.0, 1.0)
        return (float(np.quantile(values, 0.02)), float(np.quantile(values, 0.995)))

    def tile(self, z: int, x: int, y: int) -> Tile | None:
        """The tile as a PNG (transparent where the raster has no data)."""
        if not is_valid(z, x, y):
            return None
        transform = from_bounds(*_mercator_bounds(z, x, y), TILE, TILE)
        with rasterio.open(self.path) as src:
            with WarpedVRT(
                src,
                crs="EPSG:3857",
                transform=transform,
                width=TILE,
                height=TILE,
                resampling=Resampling.bilinear if self._rgb else Resampling.nearest,
            ) as vrt:
                if self._rgb:
                    data = vrt.read(indexes=[1, 2, 3], masked=True)
                    rgba = self._rgba_from_rgb(data, vrt.read_masks(1))
                else:
                    rgba = self._rgba_from_values(vrt.read(1, masked=True))
        return Tile(_png(rgba), MEDIA_TYPES["png"])

    @staticmethod
    def _rgba_from_rgb(data: np.ma.MaskedArray, mask: np.ndarray) -> np.ndarray:
        alpha = (mask > 0).astype("uint8") * 255
        return np.concatenate([np.asarray(data.filled(0), dtype="uint8"), alpha[None]], axis=0)

    def _rgba_from_values(self, data: np.ma.MaskedArray) -> np.ndarray:
        low, high = self._range_of_values
        values = np.asarray(data.filled(np.nan), dtype="float64")
        valid = np.isfinite(values) & ~np.ma.getmaskarray(data) & (values > 0)
        if self._scale == "log":
            low, high = max(low, 1e-9), max(high, low * 10)
            with np.errstate(divide="ignore", invalid="ignore"):
                position = (np.log(values) - np.log(low)) / (np.log(high) - np.log(low))
        else:
            position = (values - low) / ((high - low) or 1)
        index = np.clip(np.nan_to_num(position * 255), 0, 255).astype(int)
        rgb = self._colours[index].transpose(2, 0, 1).astype("uint8")
        alpha = np.where(valid, 210, 0).astype("uint8")
        return np.concatenate([rgb, alpha[None]], axis=0)


def _png(rgba: np.ndarray) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as memory:
            with memory.open(driver="PNG", width=TILE, height=TILE, count=4, dtype="uint8") as dst:
                dst.write(rgba)
            return bytes(memory.read())


def open_source(path: Path, colormap: str = "YlOrRd", scale: str = "log") -> TileSource:
    """The source for a file by its kind (.mbtiles, .pmtiles, .tif/.tiff); a missing or
    unreadable file raises OSError or ValueError naming why."""
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    suffix = path.suffix.lower()
    if suffix == ".mbtiles":
        try:
            return MBTilesSource(path)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"not a readable MBTiles file ({exc})") from exc
    if suffix == ".pmtiles":
        try:
            return PMTilesSource(path)
        except Exception as exc:  # the reader raises plain exceptions on a bad archive
            raise ValueError(f"not a readable PMTiles archive ({exc})") from exc
    if suffix in (".tif", ".tiff"):
        try:
            return RasterSource(path, colormap, scale)
        except rasterio.errors.RasterioError as exc:
            raise ValueError(f"not a readable GeoTIFF ({exc})") from exc
    raise ValueError(f"unknown kind of file {path.name!r} (.mbtiles, .pmtiles, .tif)")
