"""The vendor parameters `indicator`, `period` and `compare`, accepted on every OGC API
resource.

GDAL's OAPIF driver and QGIS pass vendor parameters by appending them to *every* request
(`OAPIF:https://host/?indicator=density` asks `/collections?indicator=density`, the API
document, the queryables …). A resource that refused them would make indicators unreachable
from those clients, so each OGC resource takes them and uses them where they mean something:
the landing page and the collections carry them into their links, `/collections` lists the
collections that carry the indicator, the tilesets put them into their tile URLs. `compare`
(an earlier period: the tiles then carry the change since it) is carried towards the tiles
only, the one place it means something.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Query

from geo_core.errors import InvalidParameter
from geo_core.text import CODE, CODE_LIST


@dataclass(frozen=True)
class VendorParams:
    """`indicator` (codes, comma-separated), `period` and `compare` as the client sent them."""

    indicator: str | None = None
    period: str | None = None
    compare: str | None = None

    @property
    def codes(self) -> list[str]:
        """The indicator codes asked for."""
        return [c.strip() for c in (self.indicator or "").split(",") if c.strip()]

    def query(self, with_compare: bool = True) -> str:
        """`?indicator=…&period=…&compare=…` to carry them into links (empty without them);
        links to what has no change (items, downloads) leave `compare` out."""
        pairs = [("indicator", self.indicator), ("period", self.period)]
        if with_compare:
            pairs.append(("compare", self.compare))
        params = {k: v for k, v in pairs if v}
        return "?" + urlencode(params, safe=",") if params else ""


async def vendor_params(
    indicator: Annotated[
        str | None,
        Query(
            max_length=300,
            pattern=CODE_LIST,
            description="indicator codes (comma-separated) for the items and tiles; clients "
            "such as GDAL and QGIS append it to every request",
        ),
    ] = None,
    period: Annotated[
        str | None,
        Query(max_length=10, pattern=CODE, description="the indicators' period (default: latest)"),
    ] = None,
    compare: Annotated[
        str | None,
        Query(
            max_length=10,
            pattern=CODE,
            description="an earlier period of the indicators: the tile links (and the fields "
            "their metadata lists) carry their change since it",
        ),
    ] = None,
) -> VendorParams:
    """The vendor parameters of a request (period and compare need indicator, as on the
    tiles)."""
    if period and not indicator:
        raise InvalidParameter("period needs indicator=", parameter="period")
    if compare and not indicator:
        raise InvalidParameter("compare needs indicator=", parameter="compare")
    return VendorParams(indicator, period, compare)


Vendor = Annotated[VendorParams, Depends(vendor_params)]
