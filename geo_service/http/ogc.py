"""The OGC API vocabulary the routes share: media types, link relations, conformance
classes, the GeoJSON response, and the links that page through items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import Query, Request
from fastapi.responses import JSONResponse

from geo_core.crs import OutputCrs
from geo_service.features.sql import MATCHED_CAP
from geo_service.http.documents import LegacyQueryable, Queryables, QueryableSchema
from geo_service.http.negotiation import best_media_type

GEOJSON = "application/geo+json"
GPKG = "application/geopackage+sqlite3"
MVT = "application/vnd.mapbox-vector-tile"
TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
JSON_SCHEMA = "application/schema+json"
# the `filter-lang` query parameter of every route that takes a CQL2 filter
FilterLang = Annotated[
    Literal["cql2-text", "cql2-json", "cql-text"],
    Query(
        alias="filter-lang",
        description="the filter's encoding (cql-text: the draft's name for cql2-text)",
    ),
]
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
    # Part 3: filtering, with CQL2 in both encodings
    *(
        f"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/{c}"
        for c in ("queryables", "filter", "features-filter")
    ),
    *(
        f"http://www.opengis.net/spec/cql2/1.0/conf/{c}"
        for c in (
            "cql2-text",
            "cql2-json",
            "basic-cql2",
            "advanced-comparison-operators",
            "case-insensitive-comparison",
            "basic-spatial-functions",
            "basic-spatial-functions-plus",
            "spatial-functions",
            "temporal-functions",
            "property-property",
        )
    ),
    *(
        f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{c}"
        for c in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt")
    ),
]


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type."""

    media_type = GEOJSON

    def render(self, content: Any) -> bytes:
        """Serialise with orjson."""
        return orjson.dumps(content)


def crs_member(crs: OutputCrs) -> dict[str, Any]:
    """`{"crs": …}` naming a CRS other than CRS84, as GeoJSON's 2008 specification wrote it:
    RFC 7946 dropped the member, but GDAL (and so geopandas, QGIS) still read it, and
    nothing reads the Content-Crs header. Empty for CRS84, GeoJSON's own."""
    if crs.srid == 4326 and not crs.lat_first:
        return {}
    return {"crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs.srid}"}}}


def _page_link(request: Request, rel: str, offset: int) -> dict[str, str]:
    url = request.url.include_query_params(offset=offset)
    return {"rel": rel, "href": str(url), "type": GEOJSON}


def page_tail(
    request: Request, offset: int, limit: int, matched: int, collection_url: str | None
) -> dict[str, Any]:
    """What follows a page's features: time stamp, links (self, collection, prev, next)
    and the number matched."""
    links = [{"rel": "self", "href": str(request.url), "type": GEOJSON}]
    if collection_url:
        links.append({"rel": "collection", "href": collection_url, "type": "application/json"})
    if offset > 0:
        links.append(_page_link(request, "prev", max(0, offset - limit)))
    if offset + limit < matched:
        links.append(_page_link(request, "next", offset + limit))
    tail: dict[str, Any] = {
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "links": links,
    }
    if matched <= MATCHED_CAP:
        tail["numberMatched"] = matched
    return tail


# A queryable's JSON Schema by the kind the filter checks it as (features.filter.Kind)
KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "number": {"type": "number"},
    "instant": {"type": "string", "format": "date"},
    "geometry": {"format": "geometry-multipolygon", "x-ogc-role": "primary-geometry"},
}
_LEGACY_TYPES = {"instant": "date", "geometry": "geometry"}


def queryables_response(
    request: Request, url: str, title: str, kinds: dict[str, str], properties: dict[str, Any]
) -> JSONResponse:
    """A collection's queryables (`properties`: a QueryableSchema per name in `kinds`) as
    application/schema+json, or as application/json to a client that asks only for that
    (GDAL refuses any other type)."""
    media_type = best_media_type(
        request.headers.get("accept", ""), [JSON_SCHEMA, "application/json"]
    )
    document = Queryables(
        **{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": url},
        type="object",
        title=title,
        properties=properties,
        additionalProperties=False,
        queryables=[
            LegacyQueryable(
                id=name, type=_LEGACY_TYPES.get(kind, kind), title=properties[name].title
            )
            for name, kind in kinds.items()
        ],
    )
    body = document.model_dump(mode="json", by_alias=True, exclude_none=True)
    return JSONResponse(body, media_type=media_type, headers={"Vary": "Accept"})


def queryable_schema(kind: str, title: str, **more: Any) -> QueryableSchema:
    """One queryable's JSON Schema: its kind's type and format, a title and what else."""
    return QueryableSchema(title=title, **(KIND_SCHEMAS[kind] | more))
