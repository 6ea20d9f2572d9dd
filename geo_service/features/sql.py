"""Every statement of the features domain: collections, items (filters, properties,
indicator values, CRS, generalised geometry), downloads and drawn-area pieces.

Identifiers come only from the whitelists below; every value is a bound parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import shapely
from psycopg import sql
from psycopg.rows import dict_row

from geo_core.crs import WGS84_LONLAT, OutputCrs
from geo_core.text import like_escape
from geo_core.zoom import FINEST_BAND, band_for_zoom
from geo_service.features import filter as flt
from geo_service.features.model import UNIT_PROPERTIES, ItemQuery
from indicators.sql import published_join

# Attribute name → SQL expression over admin_unit `u`.
BASE_PROPERTIES: dict[str, sql.Composable] = {
    "code": sql.SQL("u.code"),
    "name": sql.SQL("u.name"),
    "parent_code": sql.SQL("u.parent_code"),
    "unit_type": sql.SQL("u.unit_type"),
    # (float8: MVT writes a numeric as text)
    "area_km2": sql.SQL("round(u.area_km2::numeric, 3)::float8"),
}
assert tuple(BASE_PROPERTIES) == UNIT_PROPERTIES
# Sort keys that differ from the property: names in Vietnamese order (migration 0005).
SORT_EXPRESSIONS: dict[str, sql.Composable] = {"name": sql.SQL("u.name COLLATE vietnamese")}
MATCHED_CAP = 100_000  # above this numberMatched is left out rather than counted


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
        if ind.compare is not None and name.startswith(f"{ind.code}_change"):
            change = _CHANGE[name.removeprefix(ind.code)]
            return change.format(now=alias, then=sql.Identifier(f"c{n}"))
    raise KeyError(name)


# The change since a compared period, from the two published values only (a hidden or
# missing value on either side leaves it null: nothing hidden can be derived from it), as
# indicators.compare.change computes it for /maps/values.
_BOTH_SHOWN = "{now}.status IN ('ok', 'provisional') AND {then}.status IN ('ok', 'provisional')"
_CHANGE = {
    "_change": sql.SQL(f"CASE WHEN {_BOTH_SHOWN} THEN {{now}}.value - {{then}}.value END"),
    "_change_percent": sql.SQL(
        f"CASE WHEN {_BOTH_SHOWN} AND {{then}}.value <> 0"
        " THEN ({now}.value - {then}.value) / abs({then}.value) * 100 END"
    ),
    # the worse of the two statuses (indicators.apportion.STATUS_RANK)
    "_change_status": sql.SQL(
        "CASE WHEN 'suppressed' IN ({now}.status, {then}.status) THEN 'suppressed'"
        " WHEN {now}.status IS NULL OR {then}.status IS NULL"
        "  OR 'not_available' IN ({now}.status, {then}.status) THEN 'not_available'"
        " WHEN 'provisional' IN ({now}.status, {then}.status) THEN 'provisional'"
        " ELSE 'ok' END"
    ),
}


def _geometry_expr(query: ItemQuery, params: dict[str, Any]) -> sql.Composable:
    geom: sql.Composable = sql.SQL("g.geom") if query.band is not None else sql.SQL("u.geom")
    # (not `registered_srids - {4326}`: that copies the thousands of registered CRSs)
    if query.crs.srid != 4326 and query.crs.srid in query.registered_srids:
        geom = sql.SQL("ST_Transform({}, {})").format(geom, sql.Literal(query.crs.srid))
    elif query.crs.srid != 4326:  # PROJ knows it by its EPSG name
        params["crs_name"] = f"EPSG:{query.crs.srid}"
        geom = sql.SQL("ST_Transform({}, %(crs_name)s::text)").format(geom)
    if query.crs.lat_first:
        geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
    return geom


def default_precision(crs: OutputCrs) -> int:
    """Decimals that keep about 10 cm: 6 for degrees, 1 for metres."""
    return 6 if crs.geographic else 1


def _joins(
    query: ItemQuery, params: dict[str, Any], band: bool = True, for_filter: bool = True
) -> list[sql.Composable]:
    """The generalised geometry (when a band is asked for) and the indicator values (those
    read only by the filter too, unless not `for_filter`)."""
    parts: list[sql.Composable] = []
    if band and query.band is not None:
        params["band"] = query.band
        parts.append(
            sql.SQL(
                "JOIN admin_unit_generalised g ON g.vintage = u.vintage AND "
                "g.level = u.level AND g.code = u.code AND g.band = %(band)s"
            )
        )
    return parts + indicator_joins(query, params, for_filter)


def _from_where(query: ItemQuery, params: dict[str, Any], band: bool = True) -> sql.Composed:
    params.update(vintage=query.collection.vintage, level=query.collection.level)
    parts: list[sql.Composable] = [sql.SQL("FROM admin_unit u"), *_joins(query, params, band)]
    conditions: list[sql.Composable] = [sql.SQL("u.vintage = %(vintage)s AND u.level = %(level)s")]
    if query.code is not None:
        params["code"] = query.code
        conditions.append(sql.SQL("u.code = %(code)s"))
    if query.parent is not None:
        params["parent"] = query.parent
        conditions.append(sql.SQL("u.parent_code = %(parent)s"))
    if query.search:
        params["search"] = [f"%{like_escape(term)}%" for term in query.search]
        params["search_code"] = query.search
        conditions.append(
            sql.SQL("(u.search_name LIKE ANY(%(search)s) OR u.code = ANY(%(search_code)s))")
        )
    if query.bbox is not None:
        conditions.append(_bbox_condition(query, params))
    if not query.in_force:
        conditions.append(sql.SQL("FALSE"))
    if query.filter is not None:
        conditions.append(_Filter(query, params).condition(query.filter.condition))
    parts.append(sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions))
    return sql.SQL(" ").join(parts)


def indicator_joins(
    query: ItemQuery, params: dict[str, Any], for_filter: bool = True
) -> list[sql.Composable]:
    """The published (disclosure-controlled) values of the query's indicators, joined onto
    units `u` as i0, i1, … (a filter compares these published values: a suppressed one is
    null and selects nothing)."""
    joins = [
        published_join(f"i{n}", ind.code, ind.period, params)
        for n, ind in enumerate(query.indicators)
        if ind.shown or for_filter
    ]
    return joins + [
        published_join(f"c{n}", ind.code, ind.compare, params)
        for n, ind in enumerate(query.indicators)
        if ind.compare is not None and ind.shown
    ]


# ---- filters (OGC API - Features Part 3) ----

_CASTS = {
    "string": sql.SQL("::text"),
    "number": sql.SQL("::float8"),
    "boolean": sql.SQL("::boolean"),
    "instant": sql.SQL("::timestamptz"),
}
_SPATIAL_FUNCTIONS = {
    "s_intersects": "ST_Intersects",
    "s_disjoint": "ST_Disjoint",
    "s_contains": "ST_Contains",
    "s_within": "ST_Within",
    "s_touches": "ST_Touches",
    "s_crosses": "ST_Crosses",
    "s_overlaps": "ST_Overlaps",
    "s_equals": "ST_Equals",
}
# CQL2's temporal functions over (start, end) of each side, a and b (the standard's table)
_TEMPORAL_RULES = {
    "t_after": "{aS} > {bE}",
    "t_before": "{aE} < {bS}",
    "t_contains": "{aS} < {bS} AND {aE} > {bE}",
    "t_disjoint": "({aS} > {bE} OR {aE} < {bS})",
    "t_during": "{aS} > {bS} AND {aE} < {bE}",
    "t_equals": "{aS} = {bS} AND {aE} = {bE}",
    "t_finishedby": "{aS} < {bS} AND {aE} = {bE}",
    "t_finishes": "{aS} > {bS} AND {aE} = {bE}",
    "t_intersects": "{aS} <= {bE} AND {aE} >= {bS}",
    "t_meets": "{aE} = {bS}",
    "t_metby": "{aS} = {bE}",
    "t_overlappedby": "{aS} > {bS} AND {aS} < {bE} AND {aE} > {bE}",
    "t_overlaps": "{aS} < {bS} AND {aE} > {bS} AND {aE} < {bE}",
    "t_startedby": "{aS} = {bS} AND {aE} > {bE}",
    "t_starts": "{aS} = {bS} AND {aE} < {bE}",
}


class FilterSql:
    """A checked filter as SQL: operators from fixed tables, properties from a subclass's
    whitelist (`prop`), every literal a bound parameter."""

    def __init__(
        self,
        params: dict[str, Any],
        crs: OutputCrs = WGS84_LONLAT,
        registered_srids: frozenset[int] = frozenset({4326}),
    ) -> None:
        self.params, self.crs, self.registered_srids = params, crs, registered_srids

    def bind(self, value: Any, cast: sql.Composable) -> sql.Composable:
        """A new parameter holding `value`."""
        name = f"flt{len([k for k in self.params if k.startswith('flt')])}"
        self.params[name] = value
        return sql.Placeholder(name) + cast

    def condition(self, node: flt.Condition) -> sql.Composable:
        """A condition (recursion is bounded by the filter's nesting limit)."""
        if isinstance(node, flt.Combine):
            joiner = sql.SQL(" AND " if node.op == "and" else " OR ")
            return sql.SQL("({})").format(joiner.join(self.condition(p) for p in node.parts))
        if isinstance(node, flt.Not):
            return sql.SQL("(NOT {})").format(self.condition(node.condition))
        if isinstance(node, flt.Const):
            return sql.SQL("TRUE" if node.value else "FALSE")
        if isinstance(node, flt.Compare):
            assert node.op in flt.COMPARISONS
            return sql.SQL("({} {} {})").format(
                self.operand(node.left), sql.SQL(node.op), self.operand(node.right)
            )
        if isinstance(node, flt.Like):
            return sql.SQL("({} LIKE {})").format(
                self.operand(node.value), self.operand(node.pattern)
            )
        if isinstance(node, flt.Between):
            return sql.SQL("({} BETWEEN {} AND {})").format(
                self.operand(node.value), self.operand(node.low), self.operand(node.high)
            )
        if isinstance(node, flt.In):
            options = sql.SQL(", ").join(self.operand(o) for o in node.options)
            return sql.SQL("({} IN ({}))").format(self.operand(node.value), options)
        if isinstance(node, flt.IsNull):
            return sql.SQL("({} IS NULL)").format(self.operand(node.operand))
        if isinstance(node, flt.Spatial):
            return sql.SQL("{}({}, {})").format(
                sql.SQL(_SPATIAL_FUNCTIONS[node.op]),
                self.operand(node.left),
                self.operand(node.right),
            )
        assert isinstance(node, flt.Temporal)
        a, b = self.span(node.left), self.span(node.right)
        rule = sql.SQL(_TEMPORAL_RULES[node.op]).format(aS=a[0], aE=a[1], bS=b[0], bE=b[1])
        return sql.SQL("({})").format(rule)

    def span(self, span: flt.Span) -> tuple[sql.Composable, sql.Composable]:
        """(start, end) of a time; open ends (and a null end) are minus and plus infinity."""
        if span.start is span.end and span.start is not None:
            instant = self.operand(span.start)
            return instant, instant
        start = (
            sql.SQL("coalesce({}, '-infinity'::timestamptz)").format(self.operand(span.start))
            if span.start is not None
            else sql.SQL("'-infinity'::timestamptz")
        )
        end = (
            sql.SQL("coalesce({}, 'infinity'::timestamptz)").format(self.operand(span.end))
            if span.end is not None
            else sql.SQL("'infinity'::timestamptz")
        )
        return start, end

    def operand(self, node: flt.Operand) -> sql.Composable:
        """A property (from the whitelist) or a bound literal."""
        if isinstance(node, flt.CaseI):
            return sql.SQL("lower({} COLLATE vietnamese)").format(self.operand(node.operand))
        if isinstance(node, flt.Prop):
            return self.prop(node.name)
        if node.kind == "geometry":
            return self.geometry(node.value)
        return self.bind(node.value, _CASTS[node.kind])

    def prop(self, name: str) -> sql.Composable:
        """A queryable property (the checked filter names only queryables)."""
        raise NotImplementedError

    def geometry(self, wkb: bytes) -> sql.Composable:
        """A geometry literal in filter-crs, as lon/lat (densified first when it comes from
        another CRS, so its edges stay where they are once in degrees)."""
        crs = self.crs
        registered = crs.srid in self.registered_srids
        srid = sql.Literal(crs.srid if registered else 0)
        geom = sql.SQL("ST_GeomFromWKB({}, {})").format(self.bind(wkb, sql.SQL("::bytea")), srid)
        if crs.lat_first:
            geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
        if crs.srid == 4326:
            return geom
        x0, y0, x1, y1 = shapely.from_wkb(wkb).bounds
        step = self.bind(max(x1 - x0, y1 - y0) / 64 or 1.0, _CASTS["number"])
        densified = sql.SQL("ST_Segmentize({}, {})").format(geom, step)
        if registered:
            return sql.SQL("ST_Transform({}, 4326)").format(densified)
        name = self.bind(f"EPSG:{crs.srid}", _CASTS["string"])
        return sql.SQL("ST_Transform({}, {}, 4326)").format(densified, name)


class _Filter(FilterSql):
    """A checked filter as SQL over units `u`."""

    def __init__(self, query: ItemQuery, params: dict[str, Any]) -> None:
        super().__init__(params, query.filter_crs, query.registered_srids)
        self.query = query

    def prop(self, name: str) -> sql.Composable:
        """A queryable: the unit's attributes and indicators as served, its geometry, its
        vintage's validity (the same for every unit of the collection)."""
        c = self.query.collection
        if name == "geometry":
            return sql.SQL("u.geom")
        if name in ("valid_from", "valid_to"):
            day = c.valid_from if name == "valid_from" else c.valid_to
            moment = None if day is None else datetime.fromisoformat(day).replace(tzinfo=UTC)
            return self.bind(moment, _CASTS["instant"])
        return property_expr(self.query, name)


def _bbox_condition(query: ItemQuery, params: dict[str, Any]) -> sql.Composable:
    assert query.bbox is not None
    x0, y0, x1, y1 = query.bbox
    if query.bbox_crs.lat_first:
        x0, y0, x1, y1 = y0, x0, y1, x1
    params.update(bbox_srid=query.bbox_crs.srid)
    if x0 > x1:  # (geographic only, checked before) a box across the antimeridian: two boxes
        boxes = [
            _envelope(query, params, "w", (x0, y0, 180.0, y1)),
            _envelope(query, params, "e", (-180.0, y0, x1, y1)),
        ]
    else:
        boxes = [_envelope(query, params, "b", (x0, y0, x1, y1))]
    return sql.SQL("({})").format(
        sql.SQL(" OR ").join(
            sql.SQL("u.geom && {e} AND ST_Intersects(u.geom, {e})").format(e=e) for e in boxes
        )
    )


def _envelope(
    query: ItemQuery, params: dict[str, Any], name: str, corners: tuple[float, float, float, float]
) -> sql.Composable:
    """A rectangle in the bbox CRS, in degrees."""
    x0, y0, x1, y1 = corners
    keys = [f"{name}{i}" for i in range(5)]
    params.update(zip(keys, (x0, y0, x1, y1, max(x1 - x0, y1 - y0) / 64 or 1), strict=True))
    registered = query.bbox_crs.srid in query.registered_srids
    envelope: sql.Composable = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, {})").format(
        *(sql.Placeholder(k) for k in keys[:4]),
        sql.Placeholder("bbox_srid") if registered else sql.Literal(0),
    )
    if query.bbox_crs.srid != 4326:
        # densify first, so the rectangle's edges stay where they are once in degrees
        densified = sql.SQL("ST_Segmentize({}, {})").format(envelope, sql.Placeholder(keys[4]))
        if registered:
            envelope = sql.SQL("ST_Transform({}, 4326)").format(densified)
        else:  # PROJ knows it by its EPSG name
            params["bbox_crs_name"] = f"EPSG:{query.bbox_crs.srid}"
            envelope = sql.SQL("ST_Transform({}, %(bbox_crs_name)s::text, 4326)").format(densified)
    return envelope


def _order_by(query: ItemQuery) -> sql.Composed:
    terms: list[sql.Composable] = [
        sql.SQL("{} {}").format(
            SORT_EXPRESSIONS.get(name) or property_expr(query, name),
            sql.SQL("DESC NULLS LAST" if desc else "ASC NULLS LAST"),
        )
        for name, desc in query.sortby
    ]
    terms.append(sql.SQL("u.code"))
    return sql.SQL("ORDER BY ") + sql.SQL(", ").join(terms)


# The indicators of `withheld_from` withheld while their protection is re-checked, read by
# the statement that reads their values (one snapshot: a flag read by another statement
# could call values read while pending settled, or the reverse); null when none is.
_WITHHELD = sql.SQL(
    ", (SELECT array_agg(p.indicator ORDER BY p.indicator) FROM disclosure_pending p"
    " WHERE p.indicator = ANY(%(withheld_from)s))"
)


def features_sql(query: ItemQuery, with_count: bool = False) -> tuple[sql.Composed, dict[str, Any]]:
    """One GeoJSON Feature (as text) per row, in page order; `with_count` adds, as a second
    column, how many items the query matches (counted in the same pass as the page is
    picked, so a costly filter is evaluated once rather than again for numberMatched); the
    last column lists the query's indicators withheld for re-protection (see _WITHHELD)."""
    params: dict[str, Any] = {
        "withheld_from": sorted({i.code for i in query.indicators}),
        "limit": query.limit,
        "offset": query.offset,
        "precision": query.precision
        if query.precision is not None
        else default_precision(query.crs),
    }
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(name), property_expr(query, name))
        for name in query.selected()
    )
    select = sql.SQL(
        "SELECT json_build_object('type', 'Feature', 'id', u.code,"
        " 'geometry', ST_AsGeoJSON({geom}, %(precision)s)::json,"
        " 'properties', json_build_object({pairs}))::text{matched}{withheld}"
    ).format(
        geom=_geometry_expr(query, params),
        pairs=pairs,
        matched=sql.SQL(", page.matched" if with_count else ""),
        withheld=_WITHHELD,
    )
    # Pick the page's codes first, then build JSON only for them: with OFFSET, PostgreSQL
    # would otherwise build (and throw away) the JSON of every skipped row.
    page = sql.SQL(" ").join(
        [
            sql.SQL(
                "SELECT u.code, count(*) OVER () AS matched" if with_count else "SELECT u.code"
            ),
            _from_where(query, params, band=False),
            _order_by(query),
            sql.SQL("LIMIT %(limit)s OFFSET %(offset)s"),
        ]
    )
    statement = sql.SQL(" ").join(
        [
            sql.SQL("WITH page AS MATERIALIZED ({})").format(page),
            select,
            sql.SQL(
                "FROM page JOIN admin_unit u ON u.vintage = %(vintage)s AND u.level = %(level)s"
                " AND u.code = page.code"
            ),
            *_joins(query, params, for_filter=False),
            _order_by(query),
        ]
    )
    return statement, params


def rows_sql(
    query: ItemQuery, wkt: bool, withheld: bool = False
) -> tuple[sql.Composed, dict[str, Any]]:
    """Plain attribute rows (for CSV and GeoPackage), then the geometry as WKT/WKB, and
    when `withheld` the query's indicators withheld for re-protection (see _WITHHELD: read
    with the values, so a file is refused on the snapshot its values come from)."""
    params: dict[str, Any] = {
        "limit": query.limit,
        "offset": query.offset,
        "withheld_from": sorted({i.code for i in query.indicators}),
    }
    columns = [
        sql.SQL("{} AS {}").format(property_expr(query, name), sql.Identifier(name))
        for name in query.selected()
    ]
    geom = sql.SQL("ST_AsText({})" if wkt else "ST_AsBinary({})").format(
        _geometry_expr(query, params)
    )
    flag = _WITHHELD if withheld else sql.SQL("")
    columns.append(sql.SQL("{} AS geometry{}").format(geom, flag))
    statement = sql.SQL(" ").join(
        [
            sql.SQL("SELECT ") + sql.SQL(", ").join(columns),
            _from_where(query, params),
            _order_by(query),
            sql.SQL("LIMIT %(limit)s OFFSET %(offset)s"),
        ]
    )
    return statement, params


def count_sql(query: ItemQuery) -> tuple[sql.Composed, dict[str, Any]]:
    """Matched items, counted up to MATCHED_CAP + 1."""
    params: dict[str, Any] = {"cap": MATCHED_CAP + 1}
    inner = sql.SQL("SELECT 1 {} LIMIT %(cap)s").format(_from_where(query, params))
    return sql.SQL("SELECT count(*) FROM ({}) t").format(inner), params


async def count_items(conn: psycopg.AsyncConnection, query: ItemQuery) -> int:
    """How many items the query matches (counted up to MATCHED_CAP + 1)."""
    statement, params = count_sql(query)
    # never prepared: after five runs PostgreSQL may keep a generic plan, and one over the
    # disclosure view ran 60 times slower (1.8 → 107 ms for a filter on density)
    row = await (await conn.execute(statement, params, prepare=False)).fetchone()
    return int(row[0]) if row else 0


async def feature_json(
    conn: psycopg.AsyncConnection, query: ItemQuery
) -> tuple[str | None, list[str] | None]:
    """The query's first item as GeoJSON Feature text (None: no item) and its indicators
    withheld for re-protection, read with its values (None: no item, nothing was read)."""
    statement, params = features_sql(query)
    row = await (await conn.execute(statement, params, prepare=False)).fetchone()
    return (str(row[0]), list(row[-1] or [])) if row else (None, None)


# ---- collections ----

_COLLECTIONS = """
SELECT u.level, u.vintage, count(*), ST_XMin(ST_Extent(u.geom)), ST_YMin(ST_Extent(u.geom)),
       ST_XMax(ST_Extent(u.geom)), ST_YMax(ST_Extent(u.geom)),
       v.valid_from::text, v.valid_to::text, v.description
FROM admin_unit u JOIN vintage v ON v.id = u.vintage
WHERE (%(level)s::text IS NULL OR u.level = %(level)s)
  AND (%(vintage)s::text IS NULL OR u.vintage = %(vintage)s)
GROUP BY u.level, u.vintage, v.valid_from, v.valid_to, v.description
ORDER BY v.valid_from DESC, u.vintage DESC,
         min((SELECT rank FROM admin_level l WHERE l.id = u.level))
"""


async def collection_rows(
    conn: psycopg.AsyncConnection, level: str | None = None, vintage: str | None = None
) -> list[tuple[Any, ...]]:
    """(level, vintage, count, x0, y0, x1, y1, valid_from, valid_to, description) of every
    (level, vintage) with units, or of the one asked for; newest vintage first."""
    cur = await conn.execute(_COLLECTIONS, {"level": level, "vintage": vintage})
    return await cur.fetchall()


async def registered_srids(conn: psycopg.AsyncConnection) -> frozenset[int]:
    """The SRIDs PostGIS lists in spatial_ref_sys."""
    cur = await conn.execute("SELECT srid FROM spatial_ref_sys")
    return frozenset(int(row[0]) for row in await cur.fetchall())


async def parent_rank(
    conn: psycopg.AsyncConnection, vintage: str, code: str, level: str
) -> tuple[str, bool] | None:
    """(level of the unit with the code, whether that level is above `level`), or None."""
    cur = await conn.execute(
        "SELECT u.level, l.rank < (SELECT rank FROM admin_level WHERE id = %s)"
        " FROM admin_unit u JOIN admin_level l ON l.id = u.level"
        " WHERE u.vintage = %s AND u.code = %s ORDER BY l.rank LIMIT 1",
        (level, vintage, code),
    )
    row = await cur.fetchone()
    return (str(row[0]), bool(row[1])) if row else None


async def extent(
    conn: psycopg.AsyncConnection, vintage: str, level: str, code: str | None = None
) -> tuple[float, float, float, float] | None:
    """Bounding box (lon/lat) of the units of a level, or of one of them; None: no units."""
    cur = await conn.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
        " (SELECT ST_Extent(geom) e FROM admin_unit WHERE vintage = %s"
        " AND level = %s AND (%s::text IS NULL OR code = %s)) t",
        (vintage, level, code, code),
    )
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    return (row[0], row[1], row[2], row[3])


# ---- drawn areas ----

_PIECES = """
WITH area AS (SELECT ST_SetSRID(ST_GeomFromWKB(%(wkb)s), 4326) AS g)
SELECT g.code, u.name, ST_Area(g.geom::geography) AS unit_m2,
       ST_Area(ST_Intersection(g.geom, area.g)::geography) AS piece_m2,
       ST_AsBinary(ST_Intersection(g.geom, area.g)) AS piece, ST_AsBinary(g.geom) AS unit
FROM admin_unit_generalised g
JOIN admin_unit u USING (vintage, level, code)
CROSS JOIN area
WHERE g.vintage = %(vintage)s AND g.level = %(level)s AND g.band = %(band)s
  AND g.geom && area.g AND ST_Intersects(g.geom, area.g)
ORDER BY g.code
"""


async def units_in_bbox(
    conn: psycopg.AsyncConnection,
    vintage: str,
    level: str,
    bbox: tuple[float, float, float, float],
) -> int:
    """How many units' boxes meet a lon/lat box (an index-only estimate of an overlay)."""
    cur = await conn.execute(
        "SELECT count(*) FROM admin_unit_generalised WHERE vintage = %s AND level = %s"
        " AND band = %s AND geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)",
        (vintage, level, FINEST_BAND, *bbox),
    )
    return int((await cur.fetchone() or [0])[0])


@asynccontextmanager
async def statement_time_limit(
    conn: psycopg.AsyncConnection, milliseconds: int | None
) -> AsyncIterator[None]:
    """A lower statement timeout for the statements inside (None: as it is), in one
    transaction: a timeout set for the session would stay on a server connection that
    PgBouncer (transaction mode) hands to other clients, and would not reach the next
    statement, which may run on another."""
    if milliseconds is None:
        yield
        return
    async with conn.transaction():
        await local_statement_timeout(conn, milliseconds)
        yield


async def local_statement_timeout(conn: psycopg.AsyncConnection, milliseconds: int) -> None:
    """A lower statement timeout until the end of the current transaction."""
    await conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(milliseconds),))


async def area_km2(conn: psycopg.AsyncConnection, wkb: bytes) -> float:
    """The geodesic area of a lon/lat polygon, in km²."""
    cur = await conn.execute("SELECT ST_Area(ST_GeomFromWKB(%s, 4326)::geography) / 1e6", (wkb,))
    return float((await cur.fetchone() or [0.0])[0])


async def pieces(
    conn: psycopg.AsyncConnection, vintage: str, level: str, wkb: bytes
) -> list[dict[str, Any]]:
    """The units (of the clean coverage) a lon/lat polygon touches: code, name, unit and
    piece areas (m²) and geometries (WKB)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _PIECES, {"wkb": wkb, "vintage": vintage, "level": level, "band": FINEST_BAND}
        )
        return await cur.fetchall()


# ---- the viewer's unit table, search and focus extents ----

# Label point and room of each unit: the centre and radius (metres) of the largest circle
# inside it (pole of inaccessibility), on the z10 band's geometry (close enough for a label).
_UNIT_TABLE = """
SELECT u.code, u.name, u.parent_code, u.unit_type,
       round(ST_X(c.center)::numeric, 5)::float8 AS lon,
       round(ST_Y(c.center)::numeric, 5)::float8 AS lat,
       round((c.radius * 111320 * cos(radians(ST_Y(c.center))))::numeric)::float8 AS radius_m
FROM admin_unit u
JOIN admin_unit_generalised g ON g.vintage = u.vintage AND g.level = u.level
     AND g.code = u.code AND g.band = %(band)s
CROSS JOIN LATERAL ST_MaximumInscribedCircle(g.geom) c
WHERE u.vintage = %(vintage)s AND u.level = %(level)s
ORDER BY u.code
"""


async def unit_table(
    conn: psycopg.AsyncConnection, vintage: str, level: str, band: int | None = None
) -> list[dict[str, Any]]:
    """Every unit of a level: code, name, parent code, type and label point (lon, lat) with
    the radius in metres of the largest circle that fits inside the unit."""
    async with conn.cursor(row_factory=dict_row) as cur:
        band = band_for_zoom(10) if band is None else band
        await cur.execute(_UNIT_TABLE, {"vintage": vintage, "level": level, "band": band})
        return await cur.fetchall()


async def unit_names(
    conn: psycopg.AsyncConnection, vintage: str, codes: list[str]
) -> dict[str, tuple[str, str]]:
    """code → (name, level) of the units of a vintage with these codes (parents)."""
    cur = await conn.execute(
        "SELECT code, name, level FROM admin_unit WHERE vintage = %s AND code = ANY(%s)",
        (vintage, codes),
    )
    return {str(code): (str(name), str(level)) for code, name, level in await cur.fetchall()}


async def codes_in_bbox(
    conn: psycopg.AsyncConnection,
    vintage: str,
    level: str,
    bbox: tuple[float, float, float, float],
) -> list[str]:
    """Codes of the units of a level that a lon/lat rectangle touches."""
    cur = await conn.execute(
        "SELECT code FROM admin_unit WHERE vintage = %s AND level = %s"
        " AND geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)"
        " AND ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326)) ORDER BY code",
        (vintage, level, *bbox, *bbox),
    )
    return [str(row[0]) for row in await cur.fetchall()]


# The extent of a unit's main part and of the parts near it (within ~30 km): a city with
# far islands (Côn Đảo, Hoàng Sa, Trường Sa, Bạch Long Vĩ) is framed on its mainland.
_FOCUS = """
WITH parts AS (
    SELECT g.code, d.geom AS part
    FROM admin_unit_generalised g CROSS JOIN LATERAL ST_Dump(g.geom) d
    WHERE g.vintage = %(vintage)s AND g.level = %(level)s AND g.band = %(band)s
      AND (%(code)s::text IS NULL OR g.code = %(code)s)
), main AS (
    SELECT DISTINCT ON (code) code, part FROM parts ORDER BY code, ST_Area(part) DESC
)
SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (
    SELECT ST_Extent(p.part) AS e FROM parts p JOIN main m USING (code)
    WHERE ST_DWithin(p.part, m.part, 0.3)
) t
"""


async def focus_extent(
    conn: psycopg.AsyncConnection, vintage: str, level: str, code: str | None = None
) -> tuple[float, float, float, float] | None:
    """The extent (lon/lat) of the main parts of a level's units (or of one unit) and the
    parts near them, leaving out far islands; None: no such units."""
    # (on the z8 band: framing needs no finer shape)
    params = {"vintage": vintage, "level": level, "code": code, "band": band_for_zoom(8)}
    cur = await conn.execute(_FOCUS, params)
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


# A search name without its type word ("tp. ho chi minh" → "ho chi minh").
_BARE = (
    r"regexp_replace(u.search_name, '^(tp\.?|thanh pho|tinh|xa|phuong|dac khu|thi xa|"
    r"thi tran|quan|huyen) +', '')"
)
_SEARCH = sql.SQL(
    """
WITH terms AS (
    SELECT * FROM unnest(%(terms)s::text[], %(patterns)s::text[], %(aliases)s::bool[])
        AS t(term, pattern, alias)
), hits AS (
    SELECT u.vintage, u.level, u.code, u.name, u.unit_type, u.parent_code, l.rank AS level_rank,
           min(CASE WHEN b.bare = t.term OR u.code = t.term THEN 0
                    WHEN b.bare LIKE t.pattern || '%%' THEN 1
                    WHEN b.bare LIKE '%% ' || t.pattern || '%%' THEN 2
                    ELSE 3 END * 2 + t.alias::int) AS score
    FROM admin_unit u
    JOIN admin_level l ON l.id = u.level
    CROSS JOIN LATERAL (SELECT {bare} AS bare) b
    JOIN terms t ON u.search_name LIKE '%%' || t.pattern || '%%' OR u.code = t.term
    WHERE u.vintage = %(vintage)s
    GROUP BY u.vintage, u.level, u.code, u.name, u.unit_type, u.parent_code, l.rank
)
SELECT h.code, h.name, h.level, h.unit_type, h.parent_code, p.name AS parent_name,
       p.level AS parent_level, h.score
FROM hits h
LEFT JOIN LATERAL (
    SELECT pu.name, pu.level FROM admin_unit pu JOIN admin_level pl ON pl.id = pu.level
    WHERE pu.vintage = h.vintage AND pu.code = h.parent_code AND pl.rank < h.level_rank
    ORDER BY pl.rank DESC LIMIT 1
) p ON TRUE
ORDER BY h.score, h.level_rank, h.name COLLATE vietnamese, h.code
LIMIT %(limit)s
"""
).format(bare=sql.SQL(_BARE))


async def search_units(
    conn: psycopg.AsyncConnection,
    vintage: str,
    terms: list[tuple[str, bool]],
    limit: int,
) -> list[dict[str, Any]]:
    """Units of every level of a vintage whose folded name (without its type word) or code
    matches one of the (term, from an alias) pairs, best first: exact, then prefix, then a
    word, then anywhere; what was typed before what an alias expanded to; higher levels
    first."""
    params = {
        "vintage": vintage,
        "terms": [t for t, _ in terms],
        "patterns": [like_escape(t) for t, _ in terms],
        "aliases": [a for _, a in terms],
        "limit": limit,
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SEARCH, params)
        return await cur.fetchall()


async def child_codes(
    conn: psycopg.AsyncConnection, vintage: str, level: str, parent: str
) -> list[str]:
    """Codes of the units of a level whose parent is `parent`."""
    cur = await conn.execute(
        "SELECT code FROM admin_unit WHERE vintage = %s AND level = %s AND parent_code = %s"
        " ORDER BY code",
        (vintage, level, parent),
    )
    return [str(row[0]) for row in await cur.fetchall()]


async def level_codes(conn: psycopg.AsyncConnection, vintage: str, level: str) -> list[str]:
    """Codes of every unit of a level."""
    cur = await conn.execute(
        "SELECT code FROM admin_unit WHERE vintage = %s AND level = %s ORDER BY code",
        (vintage, level),
    )
    return [str(row[0]) for row in await cur.fetchall()]


async def unit_header(
    conn: psycopg.AsyncConnection,
    vintage: str,
    level: str | None,
    code: str,
    above: str | None = None,
) -> dict[str, Any] | None:
    """code, name, level, type and parent code of a unit (of `level`, or of the nearest level
    above `above`), or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT u.code, u.name, u.level, u.unit_type, u.parent_code FROM admin_unit u"
            " JOIN admin_level l ON l.id = u.level WHERE u.vintage = %(vintage)s"
            " AND u.code = %(code)s AND (%(level)s::text IS NULL OR u.level = %(level)s)"
            " AND (%(above)s::text IS NULL"
            "      OR l.rank < (SELECT rank FROM admin_level WHERE id = %(above)s))"
            " ORDER BY l.rank DESC LIMIT 1",
            {"vintage": vintage, "code": code, "level": level, "above": above},
        )
        return await cur.fetchone()
