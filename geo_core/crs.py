"""CRS parameters of OGC API – Features Part 2: parse them and check where they may be used."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyproj import CRS
from pyproj.exceptions import CRSError

from geo_core.errors import InvalidParameter

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
_PATTERNS = (
    re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/0/(\d{1,6})$"),
    re.compile(r"^\[?EPSG:(\d{1,6})\]?$", re.IGNORECASE),
    re.compile(r"^(\d{1,6})$"),
)
_CRS84_NAMES = {
    CRS84,
    "OGC:CRS84",
    "[OGC:CRS84]",
    "CRS84",
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84h",
}

# Advertised in collection metadata. Any other 2D geographic or projected EPSG CRS whose
# area of use covers the data is accepted too (a CRS for France is refused).
ADVERTISED = (
    CRS84,
    *(_EPSG_URI.format(c) for c in (4326, 3857, 4756, 3405, 3406, 9210, 32648, 32649)),
)


@dataclass(frozen=True)
class OutputCrs:
    """A CRS for output or for bbox: PostGIS SRID, its URI, and whether axes are lat/lon."""

    srid: int
    uri: str
    lat_first: bool
    geographic: bool
    name: str = "WGS 84"
    # where the CRS may be used, west, south, east, north in degrees (None: anywhere)
    area_of_use: tuple[float, float, float, float] | None = None

    def covers(self, extent: tuple[float, float, float, float]) -> bool:
        """Whether the CRS's area of use meets a lon/lat extent."""
        if self.area_of_use is None:
            return True
        west, south, east, north = self.area_of_use
        x0, y0, x1, y1 = extent
        if south > y1 or north < y0:
            return False
        if west <= east:
            return west <= x1 and east >= x0
        return x1 >= west or x0 <= east  # an area across the antimeridian


WGS84_LONLAT = OutputCrs(4326, CRS84, lat_first=False, geographic=True)


def check_area_of_use(
    target: OutputCrs, extent: tuple[float, float, float, float], parameter: str, what: str
) -> None:
    """Refuse a CRS meant for another part of the world than the data."""
    if not target.covers(extent):
        west, south, east, north = target.area_of_use or (0, 0, 0, 0)
        raise InvalidParameter(
            f"EPSG:{target.srid} ({target.name}) is meant for {west:g},{south:g},{east:g},"
            f"{north:g} (west,south,east,north) and does not cover {what}",
            parameter=parameter,
        )


def parse_crs(text: str | None, parameter: str) -> OutputCrs:
    """Turn a `crs`/`bbox-crs` value into an OutputCrs, or say why it cannot be used."""
    if text is None or text.strip() in _CRS84_NAMES:
        return WGS84_LONLAT
    value = text.strip()
    for pattern in _PATTERNS:
        match = pattern.match(value)
        if match:
            code = int(match.group(1))
            break
    else:
        raise InvalidParameter(
            f"{parameter} {text!r} is not a CRS URI such as {_EPSG_URI.format(3405)} or EPSG:3405",
            parameter=parameter,
        )
    try:
        crs = CRS.from_epsg(code)
    except CRSError as exc:
        raise InvalidParameter(f"unknown CRS EPSG:{code}", parameter=parameter) from exc
    if not (crs.is_geographic or crs.is_projected) or len(crs.axis_info) != 2:
        # heights, earth-centred or compound CRSs would turn the lon/lat into nonsense
        raise InvalidParameter(
            f"EPSG:{code} ({crs.name}) is a {crs.type_name}; {parameter} "
            "must be a 2D geographic or projected CRS",
            parameter=parameter,
        )
    lat_first = crs.axis_info[0].direction in ("north", "south")
    area = crs.area_of_use.bounds if crs.area_of_use else None
    if area == (-180.0, -90.0, 180.0, 90.0):
        area = None
    return OutputCrs(code, _EPSG_URI.format(code), lat_first, crs.is_geographic, crs.name, area)
