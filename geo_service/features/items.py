"""SQL for feature items: filters, properties, indicator joins, CRS and generalised geometry.

Identifiers come only from the whitelists below; every value is a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from geo_service.features.collections import Collection
from geo_service.features.crs import WGS84_LONLAT, OutputCrs
from geo_service.text import like_escape

# Attribute name → SQL expression over admin_unit `u`.
BASE_PROPERTIES: dict[str, sql.Composable] = {
    "code": sql.SQL("u.code"),
    "name": sql.SQL("u.name"),
    "parent_code": sql.SQL("u.parent_code"),
    "unit_type": sql.SQL("u.unit_type"),
    # (float8: MVT writes a numeric as text)
    "area_km2": sql.SQL("round(u.area_km2::numeric, 3)::float8"),
}
# Sort keys that differ from the property: names in Vietnamese order (migration 0005).
SORT_EXPRESSIONS: dict[str, sql.Composable] = {"name": sql.SQL("u.name COLLATE vietnamese")}
MATCHED_CAP = 100_000  # above this numberMatched is left out rather than counted


@dataclass(frozen=True)
class IndicatorJoin:
    """An indicator value joined as the properties `{code}` and `{code}_status`."""

    code: str
    period: str


@dataclass
class ItemQuery:
    """A validated request for items of one collection."""

    collection: Collection
    limit: int | None = 100  # None: no limit
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: OutputCrs = WGS84_LONLAT
    crs: OutputCrs = WGS84_LONLAT
    properties: list[str] | None = None
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (property, descending)
    parent: str | None = None
    search: list[str] = field(default_factory=list)  # accent-folded terms, any may match
    indicators: list[IndicatorJoin] = field(default_factory=list)
    band: int | None = None
    precision: int | None = None
    code: str | None = None
    in_force: bool = True  # False: `datetime` is outside the vintage's validity, no items

    def property_names(self) -> list[str]:
        """Every property this query can return, in output order."""
        names = list(BASE_PROPERTIES)
        for ind in self.indicators:
            names += [ind.code, f"{ind.code}_status"]
        return names

    def selected(self) -> list[str]:
        """The properties to return (all unless `properties=` chose some)."""
        return self.properties if self.properties is not None else self.property_names()


def property_expr(query: ItemQuery, name: str) -> sql.Composable:
    """SQL expression of a property: a unit attribute or a joined indicator's value/status."""
    if name in BASE_PROPERTIES:
        return BASE_PROPERTIES[name]
    for n, ind in enumerate(query.indicators):
        alias = sql.Identifier(f"i{n}")
        if name == ind.code:
            return sql.SQL("{}.value").format(alias)
        if name == f"{ind.code}_status":
            return sql.SQL("coalesce({}.status, 'not_available')").format(alias)
    raise KeyError(name)


def _geometry_expr(query: ItemQuery) -> sql.Composable:
    geom: sql.Composable = sql.SQL("g.geom") if query.band is not None else sql.SQL("u.geom")
    if query.crs.srid != 4326:
        geom = sql.SQL("ST_Transform({}, {})").format(geom, sql.Literal(query.crs.srid))
    if query.crs.lat_first:
        geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
    return geom


def default_precision(crs: OutputCrs) -> int:
    """Decimals that keep about 10 cm: 6 for degrees, 1 for metres."""
    return 6 if crs.geographic else 1


def _joins(query: ItemQuery, params: dict[str, Any], band: bool = True
           ) -> list[sql.Composable]:
    """The generalised geometry (when a band is asked for) and the indicator values."""
    parts: list[sql.Composable] = []
    if band and query.band is not None:
        params["band"] = query.band
        parts.append(sql.SQL("JOIN admin_unit_generalised g ON g.vintage = u.vintage AND "
                             "g.level = u.level AND g.code = u.code AND g.band = %(band)s"))
    return parts + indicator_joins(query.indicators, params)


def _from_where(query: ItemQuery, params: dict[str, Any], band: bool = True) -> sql.Composed:
    params.update(vintage=query.collection.vintage, level=query.collection.level)
    parts: list[sql.Composable] = [sql.SQL("FROM admin_unit u"), *_joins(query, params, band)]
    conditions: list[sql.Composable] = [
        sql.SQL("u.vintage = %(vintage)s AND u.level = %(level)s")]
    if query.code is not None:
        params["code"] = query.code
        conditions.append(sql.SQL("u.code = %(code)s"))
    if query.parent is not None:
        params["parent"] = query.parent
        conditions.append(sql.SQL("u.parent_code = %(parent)s"))
    if query.search:
        params["search"] = [f"%{like_escape(term)}%" for term in query.search]
        params["search_code"] = query.search
        conditions.append(sql.SQL("(u.search_name LIKE ANY(%(search)s)"
                                  " OR u.code = ANY(%(search_code)s))"))
    if query.bbox is not None:
        conditions.append(_bbox_condition(query, params))
    if not query.in_force:
        conditions.append(sql.SQL("FALSE"))
    parts.append(sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions))
    return sql.SQL(" ").join(parts)


def indicator_joins(indicators: list[IndicatorJoin], params: dict[str, Any]
                    ) -> list[sql.Composable]:
    """LEFT JOINs of published (disclosure-controlled) values onto units `u`, aliased i0, i1…"""
    joins: list[sql.Composable] = []
    for n, ind in enumerate(indicators):
        alias = sql.Identifier(f"i{n}")
        params[f"ind{n}"], params[f"period{n}"] = ind.code, ind.period
        joins.append(sql.SQL(
            "LEFT JOIN published_value {a} ON {a}.indicator = {ind} AND {a}.vintage = u.vintage"
            " AND {a}.level = u.level AND {a}.code = u.code AND {a}.period = {period}").format(
                a=alias, ind=sql.Placeholder(f"ind{n}"), period=sql.Placeholder(f"period{n}")))
    return joins


def _bbox_condition(query: ItemQuery, params: dict[str, Any]) -> sql.Composable:
    assert query.bbox is not None
    x0, y0, x1, y1 = query.bbox
    if query.bbox_crs.lat_first:
        x0, y0, x1, y1 = y0, x0, y1, x1
    params.update(bbox_srid=query.bbox_crs.srid)
    if x0 > x1:  # (geographic only, checked before) a box across the antimeridian: two boxes
        boxes = [_envelope(query, params, "w", (x0, y0, 180.0, y1)),
                 _envelope(query, params, "e", (-180.0, y0, x1, y1))]
    else:
        boxes = [_envelope(query, params, "b", (x0, y0, x1, y1))]
    return sql.SQL("({})").format(sql.SQL(" OR ").join(
        sql.SQL("u.geom && {e} AND ST_Intersects(u.geom, {e})").format(e=e) for e in boxes))


def _envelope(query: ItemQuery, params: dict[str, Any], name: str,
              corners: tuple[float, float, float, float]) -> sql.Composable:
    """A rectangle in the bbox CRS, in degrees."""
    x0, y0, x1, y1 = corners
    keys = [f"{name}{i}" for i in range(5)]
    params.update(zip(keys, (x0, y0, x1, y1, max(x1 - x0, y1 - y0) / 64 or 1), strict=True))
    envelope: sql.Composable = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, %(bbox_srid)s)").format(
        *(sql.Placeholder(k) for k in keys[:4]))
    if query.bbox_crs.srid != 4326:
        # densify first, so the rectangle's edges stay where they are once in degrees
        envelope = sql.SQL("ST_Transform(ST_Segmentize({}, {}), 4326)").format(
            envelope, sql.Placeholder(keys[4]))
    return envelope


def _order_by(query: ItemQuery) -> sql.Composed:
    terms: list[sql.Composable] = [
        sql.SQL("{} {}").format(SORT_EXPRESSIONS.get(name) or property_expr(query, name),
                                sql.SQL("DESC NULLS LAST" if desc else "ASC NULLS LAST"))
        for name, desc in query.sortby]
    terms.append(sql.SQL("u.code"))
    return sql.SQL("ORDER BY ") + sql.SQL(", ").join(terms)


def features_sql(query: ItemQuery) -> tuple[sql.Composed, dict[str, Any]]:
    """One GeoJSON Feature (as text) per row, in page order."""
    params: dict[str, Any] = {"limit": query.limit, "offset": query.offset,
                              "precision": query.precision
                              if query.precision is not None else default_precision(query.crs)}
    pairs = sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(name),
                                                        property_expr(query, name))
                               for name in query.selected())
    select = sql.SQL(
        "SELECT json_build_object('type', 'Feature', 'id', u.code,"
        " 'geometry', ST_AsGeoJSON({geom}, %(precision)s)::json,"
        " 'properties', json_build_object({pairs}))::text").format(
            geom=_geometry_expr(query), pairs=pairs)
    # Pick the page's codes first, then build JSON only for them: with OFFSET, PostgreSQL
    # would otherwise build (and throw away) the JSON of every skipped row.
    page = sql.SQL(" ").join([sql.SQL("SELECT u.code"), _from_where(query, params, band=False),
                              _order_by(query), sql.SQL("LIMIT %(limit)s OFFSET %(offset)s")])
    statement = sql.SQL(" ").join([
        sql.SQL("WITH page AS MATERIALIZED ({})").format(page), select,
        sql.SQL("FROM page JOIN admin_unit u ON u.vintage = %(vintage)s AND u.level = %(level)s"
                " AND u.code = page.code"),
        *_joins(query, params), _order_by(query)])
    return statement, params


def rows_sql(query: ItemQuery, wkt: bool) -> tuple[sql.Composed, dict[str, Any]]:
    """Plain attribute rows (for CSV and GeoPackage), geometry last as WKT/WKB when asked."""
    params: dict[str, Any] = {"limit": query.limit, "offset": query.offset}
    columns = [sql.SQL("{} AS {}").format(property_expr(query, name), sql.Identifier(name))
               for name in query.selected()]
    geom = sql.SQL("ST_AsText({})" if wkt else "ST_AsBinary({})").format(_geometry_expr(query))
    columns.append(sql.SQL("{} AS geometry").format(geom))
    statement = sql.SQL(" ").join([sql.SQL("SELECT ") + sql.SQL(", ").join(columns),
                                  _from_where(query, params), _order_by(query),
                                  sql.SQL("LIMIT %(limit)s OFFSET %(offset)s")])
    return statement, params


def count_sql(query: ItemQuery) -> tuple[sql.Composed, dict[str, Any]]:
    """Matched items, counted up to MATCHED_CAP + 1."""
    params: dict[str, Any] = {"cap": MATCHED_CAP + 1}
    inner = sql.SQL("SELECT 1 {} LIMIT %(cap)s").format(_from_where(query, params))
    return sql.SQL("SELECT count(*) FROM ({}) t").format(inner), params
