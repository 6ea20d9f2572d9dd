"""The vendor parameters `indicator` and `period`, accepted on every OGC API resource.

GDAL's OAPIF driver and QGIS pass vendor parameters by appending them to *every* request
(`OAPIF:https://host/?indicator=density` asks `/collections?indicator=density`, the API
document, the queryables …). A resource that refused them would make indicators unreachable
from those clients, so each OGC resource takes them and uses them where they mean something:
the landing page and the collections carry them into their links, `/collections` lists the
collections that carry the indicator, the tilesets put them into their tile URLs.
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
    """`indicator` (codes, comma-separated) and `period` as the client sent them."""

    indicator: str | None = None
    period: str | None = None

    @property
    def codes(self) -> list[str]:
        """The indicator codes asked for."""
        return [c.strip() for c in (self.indicator or "").split(",") if c.strip()]

    def query(self) -> str:
        """`?indicator=…&period=…` to carry them into links (empty without them)."""
        params = {k: v for k, v in (("indicator", self.indicator), ("period", self.period)) if v}
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
) -> VendorParams:
    """The vendor parameters of a request (period needs indicator, as on the items)."""
    if period and not indicator:
        raise InvalidParameter("period needs indicator=", parameter="period")
    return VendorParams(indicator, period)


Vendor = Annotated[VendorParams, Depends(vendor_params)]
