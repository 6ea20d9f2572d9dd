"""Web Mercator (WebMercatorQuad) tile arithmetic."""

from __future__ import annotations

import math
from collections.abc import Iterator

from geo_core.zoom import MAX_ZOOM

_MAX_LAT = 85.0511287798066


def tile_count(z: int) -> int:
    """Tiles along one axis at zoom z."""
    return 1 << z


def is_valid(z: int, x: int, y: int) -> bool:
    """True when z/x/y names a tile of the grid."""
    return 0 <= z <= MAX_ZOOM and 0 <= x < tile_count(z) and 0 <= y < tile_count(z)


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile's (west, south, east, north) in degrees."""
    n = tile_count(z)

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def _column(lon: float, z: int) -> int:
    return min(tile_count(z) - 1, max(0, int((lon + 180) / 360 * tile_count(z))))


def _row(lat: float, z: int) -> int:
    lat = max(-_MAX_LAT, min(_MAX_LAT, lat))
    rad = math.radians(lat)
    row = (1 - math.log(math.tan(rad) + 1 / math.cos(rad)) / math.pi) / 2 * tile_count(z)
    return min(tile_count(z) - 1, max(0, int(row)))


def tile_range(
    bbox: tuple[float, float, float, float], z: int, margin: float = 0.0
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), inclusive, of the tiles at zoom z touching the bbox.

    `margin` widens the bbox by that share of a tile, for features drawn in a tile's buffer.
    """
    west, south, east, north = bbox
    pad = margin * 360 / tile_count(z)
    return (
        _column(west - pad, z),
        _row(north + pad, z),
        _column(east + pad, z),
        _row(south - pad, z),
    )


def tiles_in(bbox: tuple[float, float, float, float], z: int) -> Iterator[tuple[int, int]]:
    """Every (x, y) at zoom z touching the bbox."""
    x0, y0, x1, y1 = tile_range(bbox, z)
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            yield x, y


def intersects(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """True when two (west, south, east, north) boxes overlap or touch."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def tiles_touching(
    bboxes: list[tuple[float, float, float, float]], z: int, margin: float = 0.0
) -> set[tuple[int, int]]:
    """Every (x, y) at zoom z that touches at least one of the boxes (widened by `margin`,
    a share of a tile): the tiles that can hold a feature, without those over open sea."""
    found: set[tuple[int, int]] = set()
    for bbox in bboxes:
        x0, y0, x1, y1 = tile_range(bbox, z, margin)
        found.update((x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1))
    return found
