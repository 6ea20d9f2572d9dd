"""`/maps/…`: what a map client needs besides tiles — class breaks and colours, every unit's
value as one compact table, the units with their label points, a unit's profile over time,
and `/search` across levels."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from geo_core.text import CODE, NUMBERS
from geo_service.features.query import parse_bbox
from geo_service.features.search import search
from geo_service.http.deps import Catalogue, Conn, Language, UnitTablesDep
from geo_service.http.documents import Choropleth, SearchHits, UnitProfile
from geo_service.http.rechecking import rechecking_headers
from geo_service.viewer.data import MapQuery, choropleth_body, map_values, value_table
from geo_service.viewer.profile import unit_profile

router = APIRouter(tags=["maps"])

Collection = Annotated[str, Query(pattern=CODE, description="e.g. commune-2025")]
Indicator = Annotated[str, Query(pattern=CODE)]
Period = Annotated[str | None, Query(max_length=10, pattern=CODE)]
Compare = Annotated[
    str | None,
    Query(max_length=10, pattern=CODE, description="an earlier period: map the change since"),
]
CompareVintage = Annotated[
    str | None,
    Query(
        pattern=CODE,
        description="the earlier period's boundary vintage (carried through the crosswalk)",
    ),
]
Change = Annotated[str, Query(pattern=CODE, description="absolute or percent")]
Within = Annotated[
    str | None, Query(pattern=CODE, description="classify within this province (its code)")
]
Bbox = Annotated[
    str | None,
    Query(max_length=200, pattern=NUMBERS, description="classify within this view: W,S,E,N"),
]
Method = Annotated[
    str,
    Query(
        max_length=20,
        pattern=CODE,
        description="quantiles, equal_interval, natural_breaks, std_mean or manual",
    ),
]
Classes = Annotated[int, Query(ge=3, le=7, description="number of classes")]
Palette = Annotated[
    str | None, Query(max_length=20, pattern=CODE, description="ColorBrewer scheme")
]
Breaks = Annotated[str | None, Query(max_length=500, pattern=NUMBERS, description="manual breaks")]


def _query(
    collection: str,
    indicator: str,
    period: str | None,
    compare: str | None = None,
    compare_vintage: str | None = None,
    change: str = "absolute",
    within: str | None = None,
    bbox: str | None = None,
) -> MapQuery:
    box = parse_bbox(bbox) if bbox else None
    return MapQuery(collection, indicator, period, compare, compare_vintage, change, within, box)


@router.get(
    "/maps/choropleth",
    summary="Class breaks and colours for a choropleth",
    response_model_exclude_unset=True,
)
async def choropleth(
    conn: Conn,
    lang: Language,
    response: Response,
    collection: Collection,
    indicator: Indicator,
    period: Period = None,
    method: Method = "quantiles",
    k: Classes = 5,
    palette: Palette = None,
    breaks: Breaks = None,
    units: Annotated[bool, Query(description="include every unit's value and class")] = False,
    compare: Compare = None,
    compare_vintage: CompareVintage = None,
    change: Change = "absolute",
    within: Within = None,
    bbox: Bbox = None,
) -> Choropleth:
    """Breaks by mapclassify, ColorBrewer colours, counts per class and units without value;
    of a change since `compare` (centred on zero), within a province or a view when asked."""
    q = _query(collection, indicator, period, compare, compare_vintage, change, within, bbox)
    body = await choropleth_body(conn, q, method, k, palette, breaks, units, lang)
    rechecking_headers(response, body["rechecking"])
    return Choropleth(**body)


@router.get("/maps/values", summary="Every unit's value, as one compact table")
async def values(
    conn: Conn,
    lang: Language,
    response: Response,
    collection: Collection,
    indicator: Indicator,
    period: Period = None,
    compare: Compare = None,
    compare_vintage: CompareVintage = None,
    change: Change = "absolute",
) -> dict[str, Any]:
    """Codes and values as two arrays (null: no published value), the codes of each
    status other than ok, for a client to colour geometry-only tiles by code, and
    `incomplete`: the units whose figure is a sum with parts lacking a figure (code → how
    many parts), never a silent total."""
    q = _query(collection, indicator, period, compare, compare_vintage, change)
    table = value_table(await map_values(conn, q), lang)
    rechecking_headers(response, table["rechecking"])
    return table


@router.get("/maps/units", summary="The units of a collection with their label points")
async def units(
    conn: Conn, catalogue: Catalogue, tables: UnitTablesDep, collection: Collection
) -> Response:
    """Codes, names, types, parents and a label point (the centre of the largest circle
    inside the unit, with its radius in metres) as parallel arrays."""
    found = await catalogue.get(conn, collection)
    return Response(orjson.dumps(await tables.get(conn, found)), media_type="application/json")


@router.get(
    "/maps/profile",
    summary="A unit's values over time with its parent's and the country's",
    response_model_exclude_unset=True,
)
async def profile(
    conn: Conn,
    collection: Collection,
    indicator: Indicator,
    unit: Annotated[str, Query(pattern=CODE, description="the unit's code")],
) -> UnitProfile:
    """Published values of every period; the national value sums counts, recomputes
    quotients and averages an index over the top level's units, and is hidden whenever a
    unit's value is."""
    return UnitProfile(**await unit_profile(conn, collection, unit, indicator))


@router.get(
    "/search", summary="Find units by name across levels", response_model_exclude_unset=True
)
async def find(
    conn: Conn,
    q: Annotated[
        str,
        Query(
            min_length=1, max_length=100, description="a name, with or without accents; HCM, HN…"
        ),
    ],
    vintage: Annotated[str, Query(pattern=CODE)],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SearchHits:
    """Units of every level, best first (exact name, prefix, word, anywhere), each with its
    type, parent and the extent of its main part."""
    return SearchHits.model_validate({"hits": await search(conn, q, vintage, limit)})
