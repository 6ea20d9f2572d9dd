"""Every statement on the boundary tables: vintages, levels, units, generalised bands and
crosswalks. Values are always bound parameters; the loaders call these functions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from geo_core.zoom import FINEST_BAND

Row = tuple[Any, ...]

# Binary COPY sends a geometry as its (E)WKB bytes, which PostGIS's binary input reads as
# they are: three times faster than hex text, which both sides must encode and decode.
WKB_BINARY = "bytea"


def _scalar(conn: psycopg.Connection, statement: str, params: tuple[Any, ...]) -> Any:
    row = conn.execute(statement, params).fetchone()
    return row[0] if row else None


# ---- vintages and levels ----


def add_vintage(conn: psycopg.Connection, values: tuple[Any, ...], update: bool) -> bool:
    """Insert a vintage (or with `update`, overwrite it); True when a row changed."""
    statement = (
        "INSERT INTO vintage (id, valid_from, valid_to, description, source, licence)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) "
        + (
            "DO UPDATE SET valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to,"
            " description = EXCLUDED.description, source = EXCLUDED.source,"
            " licence = EXCLUDED.licence"
            if update
            else "DO NOTHING"
        )
    )
    return conn.execute(statement, values).rowcount > 0


def vintage_rows(conn: psycopg.Connection) -> list[Row]:
    """(id, valid_from, valid_to, description, source, licence) of every vintage, oldest first."""
    return conn.execute(
        "SELECT id, valid_from, valid_to, description, source, licence"
        " FROM vintage ORDER BY valid_from, id"
    ).fetchall()


def vintage_ids(conn: psycopg.Connection) -> list[str]:
    """Every vintage id, in id order."""
    return [r[0] for r in conn.execute("SELECT id FROM vintage ORDER BY id")]


def level_ids(conn: psycopg.Connection) -> list[str]:
    """Every level, from the top down."""
    return [r[0] for r in conn.execute("SELECT id FROM admin_level ORDER BY rank")]


def nearest_level_above(conn: psycopg.Connection, level: str, vintage: str) -> str | None:
    """The nearest level above `level` that has units in the vintage."""
    return _scalar(
        conn,
        "SELECT l.id FROM admin_level l"
        " WHERE l.rank < (SELECT rank FROM admin_level WHERE id = %s)"
        "   AND EXISTS (SELECT 1 FROM admin_unit u WHERE u.vintage = %s"
        "               AND u.level = l.id)"
        " ORDER BY l.rank DESC LIMIT 1",
        (level, vintage),
    )


# ---- units ----


def count_units(conn: psycopg.Connection, vintage: str, level: str) -> int:
    """How many units of the level the vintage has."""
    return int(
        _scalar(
            conn,
            "SELECT count(*) FROM admin_unit WHERE vintage = %s AND level = %s",
            (vintage, level),
        )
        or 0
    )


def unit_codes(conn: psycopg.Connection, vintage: str, level: str) -> list[str]:
    """The codes of the level's units, in order."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT code FROM admin_unit WHERE vintage = %s AND level = %s ORDER BY code",
            (vintage, level),
        )
    ]


def known_codes(conn: psycopg.Connection, vintage: str, level: str, codes: list[str]) -> set[str]:
    """Which of the codes are units of (vintage, level)."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT code FROM admin_unit WHERE vintage = %s AND level = %s AND code = ANY(%s)",
            (vintage, level, codes),
        )
    }


def vintages_of_codes(
    conn: psycopg.Connection, level: str, codes: list[str], besides: str
) -> list[tuple[str, str]]:
    """(code, vintage) for the codes that are units of the level in other vintages."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT code, vintage FROM admin_unit WHERE level = %s AND code = ANY(%s)"
            " AND vintage <> %s ORDER BY vintage",
            (level, codes, besides),
        )
    ]


def unit_geometries(conn: psycopg.Connection, vintage: str, level: str) -> list[Row]:
    """(code, WKB) of every unit of the level, as loaded."""
    return conn.execute(
        "SELECT code, ST_AsBinary(geom) FROM admin_unit WHERE vintage = %s AND level = %s",
        (vintage, level),
    ).fetchall()


def coverage_geometries(conn: psycopg.Connection, vintage: str, level: str) -> list[Row]:
    """(code, WKB) of the units as a clean coverage (the cleaned, unsimplified band)."""
    return conn.execute(
        "SELECT code, ST_AsBinary(geom) FROM admin_unit_generalised"
        " WHERE vintage = %s AND level = %s AND band = %s ORDER BY code",
        (vintage, level, FINEST_BAND),
    ).fetchall()


def lock_level_for_loading(conn: psycopg.Connection, vintage: str, level: str) -> None:
    """One load of a vintage and level at a time; the loader writes the bands itself."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('geo_service.load'), hashtext(%s))",
        (f"{vintage}/{level}",),
    )
    # (migration 0003: with this set, the triggers leave the generalised bands alone)
    conn.execute("SET LOCAL geo_service.loading = 'on'")


def delete_units(conn: psycopg.Connection, vintage: str, level: str) -> int:
    """Delete the level's units (their bands go with them); how many."""
    return conn.execute(
        "DELETE FROM admin_unit WHERE vintage = %s AND level = %s", (vintage, level)
    ).rowcount


def copy_units(conn: psycopg.Connection, vintage: str, level: str, rows: Iterable[Row]) -> None:
    """Write units from (code, parent_code, name, search_name, unit_type, WKB) rows; their
    area is computed on the ellipsoid."""
    conn.execute(
        "CREATE TEMP TABLE load_unit (code text, parent_code text, name text,"
        " search_name text, unit_type text, geom geometry) ON COMMIT DROP"
    )
    with conn.cursor().copy(
        "COPY load_unit (code, parent_code, name, search_name, unit_type,"
        " geom) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["text"] * 5 + [WKB_BINARY])
        for row in rows:
            copy.write_row(row)
    conn.execute(
        "INSERT INTO admin_unit (vintage, level, code, parent_code, name, search_name,"
        " unit_type, area_km2, geom)"
        " SELECT %s, %s, code, parent_code, name, search_name, unit_type,"
        "  ST_Area(ST_SetSRID(geom, 4326)::geography) / 1e6, ST_Multi(ST_SetSRID(geom, 4326))"
        " FROM load_unit",
        (vintage, level),
    )


def copy_bands(conn: psycopg.Connection, rows: Iterable[Row]) -> None:
    """Write generalised geometries from (vintage, level, code, band, EWKB) rows."""
    with conn.cursor().copy(
        "COPY admin_unit_generalised (vintage, level, code, band, geom) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["text", "text", "text", "int2", WKB_BINARY])
        for row in rows:
            copy.write_row(row)


def orphaned_parents(conn: psycopg.Connection, vintage: str, level: str) -> list[Row]:
    """(level, parent code, units) of units below `level` whose parent is missing."""
    return conn.execute(
        "SELECT c.level, c.parent_code, count(*) FROM admin_unit c"
        " JOIN admin_level l ON l.id = c.level"
        " WHERE c.vintage = %s AND c.parent_code IS NOT NULL"
        "   AND l.rank > (SELECT rank FROM admin_level WHERE id = %s)"
        "   AND NOT EXISTS (SELECT 1 FROM admin_unit p WHERE p.vintage = c.vintage"
        "                   AND p.code = c.parent_code AND p.level <> c.level)"
        " GROUP BY c.level, c.parent_code ORDER BY c.level, c.parent_code",
        (vintage, level),
    ).fetchall()


def analyze_units(conn: psycopg.Connection, bands: bool = True) -> None:
    """Fresh planner statistics (the first queries after a load pick poor plans without)."""
    conn.execute("ANALYZE admin_unit, admin_unit_generalised" if bands else "ANALYZE admin_unit")


# ---- crosswalks ----


def vintage_exists(conn: psycopg.Connection, vintage: str) -> bool:
    """Whether the vintage is known."""
    return conn.execute("SELECT 1 FROM vintage WHERE id = %s", (vintage,)).fetchone() is not None


def count_crosswalk(conn: psycopg.Connection, from_vintage: str, to_vintage: str) -> int:
    """Rows of the crosswalk between two vintages."""
    return int(
        _scalar(
            conn,
            "SELECT count(*) FROM crosswalk WHERE from_vintage = %s AND to_vintage = %s",
            (from_vintage, to_vintage),
        )
        or 0
    )


def replace_crosswalk(
    conn: psycopg.Connection, from_vintage: str, to_vintage: str, rows: Iterable[Row]
) -> None:
    """Replace the crosswalk between two vintages with (from_level, from_code, to_level,
    to_code, relation, area_share, population_share) rows (call inside a transaction)."""
    conn.execute(
        "DELETE FROM crosswalk WHERE from_vintage = %s AND to_vintage = %s",
        (from_vintage, to_vintage),
    )
    _copy_crosswalk(conn, from_vintage, to_vintage, rows)


def _copy_crosswalk(
    conn: psycopg.Connection, from_vintage: str, to_vintage: str, rows: Iterable[Row]
) -> None:
    """COPY crosswalk rows (from_level, from_code, to_level, to_code, relation, area_share,
    population_share) between two vintages."""
    with conn.cursor().copy(
        "COPY crosswalk (from_vintage, from_level, from_code, to_vintage,"
        " to_level, to_code, relation, area_share, population_share)"
        " FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row((from_vintage, row[0], row[1], to_vintage, *row[2:]))


def count_crosswalk_level(
    conn: psycopg.Connection, from_vintage: str, to_vintage: str, level: str
) -> int:
    """Rows of the crosswalk between two vintages from one level."""
    return int(
        _scalar(
            conn,
            "SELECT count(*) FROM crosswalk WHERE from_vintage = %s AND to_vintage = %s"
            " AND from_level = %s",
            (from_vintage, to_vintage, level),
        )
        or 0
    )


def replace_crosswalk_level(
    conn: psycopg.Connection, from_vintage: str, to_vintage: str, level: str, rows: Iterable[Row]
) -> None:
    """Replace the links from one level between two vintages with (from_level, from_code,
    to_level, to_code, relation, area_share, population_share) rows (inside a transaction)."""
    conn.execute(
        "DELETE FROM crosswalk WHERE from_vintage = %s AND to_vintage = %s AND from_level = %s",
        (from_vintage, to_vintage, level),
    )
    _copy_crosswalk(conn, from_vintage, to_vintage, rows)


def save_crosswalk_provenance(
    conn: psycopg.Connection,
    from_vintage: str,
    to_vintage: str,
    level: str,
    provenance: dict[str, Any],
    quality: Iterable[Row],
) -> None:
    """Record how a crosswalk level was made and, per (side, code, covered_share,
    sliver_share, area_weighted), the quality of its units (inside a transaction)."""
    conn.execute(
        "DELETE FROM crosswalk_provenance WHERE from_vintage = %s AND to_vintage = %s"
        " AND level = %s",
        (from_vintage, to_vintage, level),
    )
    conn.execute(
        "INSERT INTO crosswalk_provenance (from_vintage, to_vintage, level, method, weights,"
        " raster, sliver_threshold, built_at, figures) VALUES (%s, %s, %s, %s, %s, %s, %s,"
        " COALESCE(%s::timestamptz, now()), %s)",
        (
            from_vintage,
            to_vintage,
            level,
            provenance["method"],
            list(provenance.get("weights", [])),
            provenance.get("raster"),
            provenance.get("sliver_threshold"),
            provenance.get("built_at"),
            Jsonb(provenance.get("figures", {})),
        ),
    )
    with conn.cursor().copy(
        "COPY crosswalk_quality (from_vintage, to_vintage, level, side, code, covered_share,"
        " sliver_share, area_weighted) FROM STDIN"
    ) as copy:
        for row in quality:
            copy.write_row((from_vintage, to_vintage, level, *row))


def crosswalk_provenance(
    conn: psycopg.Connection, from_vintage: str, to_vintage: str, level: str
) -> dict[str, Any] | None:
    """How a crosswalk level was made, or None if nothing was recorded."""
    row = conn.execute(
        "SELECT method, weights, raster, sliver_threshold, built_at, figures"
        " FROM crosswalk_provenance WHERE from_vintage = %s AND to_vintage = %s AND level = %s",
        (from_vintage, to_vintage, level),
    ).fetchone()
    if row is None:
        return None
    keys = ("method", "weights", "raster", "sliver_threshold", "built_at", "figures")
    return dict(zip(keys, row, strict=True))


def crosswalk_link_rows(
    conn: psycopg.Connection, from_vintage: str, to_vintage: str, level: str
) -> list[Row]:
    """(from_code, to_code, relation, area_share, population_share) from one level."""
    return conn.execute(
        "SELECT from_code, to_code, relation, area_share, population_share FROM crosswalk"
        " WHERE from_vintage = %s AND to_vintage = %s AND from_level = %s AND to_level = %s"
        " ORDER BY from_code, to_code",
        (from_vintage, to_vintage, level, level),
    ).fetchall()


async def crosswalk_quality(
    conn: psycopg.AsyncConnection, from_vintage: str, to_vintage: str, level: str
) -> tuple[Row | None, list[Row]]:
    """The provenance row (method, weights, raster, sliver_threshold, built_at, figures) of a
    crosswalk level and its new units' (code, covered_share, sliver_share)."""
    cur = await conn.execute(
        "SELECT method, weights, raster, sliver_threshold, built_at, figures"
        " FROM crosswalk_provenance WHERE from_vintage = %s AND to_vintage = %s AND level = %s",
        (from_vintage, to_vintage, level),
    )
    head = await cur.fetchone()
    cur = await conn.execute(
        "SELECT code, covered_share, sliver_share FROM crosswalk_quality"
        " WHERE from_vintage = %s AND to_vintage = %s AND level = %s AND side = 'to'"
        " ORDER BY code",
        (from_vintage, to_vintage, level),
    )
    return head, await cur.fetchall()


# Crosswalk weights a carry-over may use, and their columns (a whitelist for identifiers).
WEIGHT_COLUMNS = {"area": "area_share", "population": "population_share"}


def crosswalk_links(
    conn: psycopg.Connection, from_vintage: str, to_vintage: str, level: str, weight: str
) -> list[Row]:
    """(from_code, to_code, share, to_level) of the crosswalk from a level, by `weight`."""
    statement = sql.SQL(
        "SELECT from_code, to_code, {}, to_level FROM crosswalk"
        " WHERE from_vintage = %s AND to_vintage = %s AND from_level = %s"
    ).format(sql.Identifier(WEIGHT_COLUMNS[weight]))
    return conn.execute(statement, (from_vintage, to_vintage, level)).fetchall()


# ---- reads for the service (asynchronous connections) ----


async def unit_exists(
    conn: psycopg.AsyncConnection,
    vintage: str,
    code: str,
    *,
    level: str | None = None,
    not_level: str | None = None,
) -> bool:
    """Whether a unit with the code exists in the vintage (at `level`, or not at
    `not_level`)."""
    cur = await conn.execute(
        "SELECT 1 FROM admin_unit WHERE vintage = %s AND code = %s"
        " AND (%s::text IS NULL OR level = %s) AND (%s::text IS NULL OR level <> %s)",
        (vintage, code, level, level, not_level, not_level),
    )
    return await cur.fetchone() is not None


async def crosswalk_shares(
    conn: psycopg.AsyncConnection, from_vintage: str, to_vintage: str, level: str, weight: str
) -> list[Row]:
    """(from_code, to_code, share) of the crosswalk from a level to the same level of a later
    vintage, by `weight` (links without that share are left out)."""
    statement = sql.SQL(
        "SELECT from_code, to_code, {} FROM crosswalk WHERE from_vintage = %s"
        " AND to_vintage = %s AND from_level = %s AND to_level = %s AND {} IS NOT NULL"
    ).format(sql.Identifier(WEIGHT_COLUMNS[weight]), sql.Identifier(WEIGHT_COLUMNS[weight]))
    cur = await conn.execute(statement, (from_vintage, to_vintage, level, level))
    return await cur.fetchall()


async def levels_with_units(conn: psycopg.AsyncConnection, vintage: str) -> list[str]:
    """The levels that have units in the vintage, highest first."""
    cur = await conn.execute(
        "SELECT l.id FROM admin_level l WHERE EXISTS (SELECT 1 FROM admin_unit u"
        " WHERE u.vintage = %s AND u.level = l.id) ORDER BY l.rank",
        (vintage,),
    )
    return [str(row[0]) for row in await cur.fetchall()]


# ---- line layers (roads, rivers, railways) that EA boundaries follow ----


def latest_vintage_with(conn: psycopg.Connection, level: str) -> str | None:
    """The newest vintage that has units of the level."""
    value = _scalar(
        conn,
        "SELECT v.id FROM vintage v WHERE EXISTS (SELECT 1 FROM admin_unit u"
        " WHERE u.vintage = v.id AND u.level = %s) ORDER BY v.valid_from DESC, v.id DESC LIMIT 1",
        (level,),
    )
    return str(value) if value is not None else None


def lines_touching_communes(
    conn: psycopg.Connection, vintage: str, wkbs: list[bytes]
) -> list[bool]:
    """For each line (WKB, lon/lat), whether it touches a commune of the vintage."""
    rows = conn.execute(
        "SELECT EXISTS (SELECT FROM admin_unit u WHERE u.vintage = %s AND u.level = 'commune'"
        " AND u.geom && g.geom AND ST_Intersects(u.geom, g.geom))"
        " FROM unnest(%s::bytea[]) WITH ORDINALITY AS w(wkb, n),"
        " LATERAL (SELECT ST_GeomFromWKB(w.wkb, 4326) AS geom) g ORDER BY w.n",
        (vintage, wkbs),
    ).fetchall()
    return [bool(r[0]) for r in rows]


def lines_loaded(conn: psycopg.Connection, source: str) -> bool:
    """Whether lines from this source file are loaded."""
    return bool(_scalar(conn, "SELECT EXISTS (SELECT FROM ea_line WHERE source = %s)", (source,)))


def delete_lines(conn: psycopg.Connection, source: str) -> int:
    """Remove the lines of a source file; how many."""
    return conn.execute("DELETE FROM ea_line WHERE source = %s", (source,)).rowcount


def copy_lines(conn: psycopg.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Store (kind, name, source, hex WKB) lines."""
    with conn.cursor().copy("COPY ea_line (kind, name, source, geom) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute("ANALYZE ea_line")


def collections_missing_bands(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(vintage, level) of the collections with a unit lacking a band of `zoom_band`."""
    rows = conn.execute(
        "SELECT DISTINCT u.vintage, u.level FROM admin_unit u CROSS JOIN zoom_band z"
        " WHERE NOT EXISTS (SELECT FROM admin_unit_generalised g WHERE g.vintage = u.vintage"
        "  AND g.level = u.level AND g.code = u.code AND g.band = z.band)"
        " ORDER BY 1, 2"
    ).fetchall()
    return [(str(vintage), str(level)) for vintage, level in rows]


def delete_bands(conn: psycopg.Connection, vintage: str, level: str, bands: list[int]) -> None:
    """Delete these bands of a collection's generalised geometries."""
    conn.execute(
        "DELETE FROM admin_unit_generalised WHERE vintage = %s AND level = %s AND band = ANY(%s)",
        (vintage, level, bands),
    )


def delete_band_everywhere(conn: psycopg.Connection, band: int) -> None:
    """Delete one band's generalised geometries of every collection (its definition changed)."""
    conn.execute("DELETE FROM admin_unit_generalised WHERE band = %s", (band,))


def index_bands(conn: psycopg.Connection, bands: list[int]) -> None:
    """A spatial index of each band's tile geometry, and none of a band no longer defined: a
    tile's search reads only its band (the statement names its band, see tiles/sql.py)."""
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'admin_unit_generalised'"
        " AND indexname ~ '^admin_unit_generalised_band[0-9]+_idx$'"
    ).fetchall()
    wanted = {f"admin_unit_generalised_band{band}_idx": band for band in bands}
    for (name,) in rows:
        if name not in wanted:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    existing = {name for (name,) in rows}
    for name, band in wanted.items():
        if name not in existing:
            conn.execute(
                sql.SQL(
                    "CREATE INDEX {} ON admin_unit_generalised USING gist (geom_3857)"
                    " WHERE band = {}"
                ).format(sql.Identifier(name), sql.Literal(band))
            )


def refresh_tile_geometry(conn: psycopg.Connection, band: int) -> None:
    """Make one band's tile geometry again (its zooms changed: a band of one zoom is snapped
    to that zoom's grid, migration 0019); the triggers record the change for the caches."""
    conn.execute("UPDATE admin_unit_generalised SET band = band WHERE band = %s", (band,))
