"""The EA band columns (migrations 0023, 0027: z5–z8, z10–z12): written by a trigger when
an EA is inserted or its geometry changes, and by nothing else, so an update of its status
or attributes computes nothing; every way of writing an EA still gets them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

BANDS = tuple(f"geom_z{z}" for z in (5, 6, 7, 8, 10, 11, 12))
# a 1 km square in Ba Đình (about 2 pixels at z8: drawn there, a cell at z5) and a 5 m one
_INSERT = (
    "INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code, geom,"
    " households, updated_by) VALUES"
    " ('2031', '00004-00001', '2025', '00004',"
    "  ST_Multi(ST_MakeEnvelope(105.8150, 21.0300, 105.8250, 21.0400, 4326)), 10, 'test'),"
    " ('2031', '00004-00002', '2025', '00004',"
    "  ST_Multi(ST_MakeEnvelope(105.8300, 21.0300, 105.83005, 21.03005, 4326)), 1, 'test')"
)
_MATCH = (
    "SELECT bool_and("
    + " AND ".join(f"ST_Equals({b}, ea_band_geometry(geom, {b[6:]}))" for b in BANDS)
    + ") FROM enumeration_area"
)


@pytest.fixture
def conn(pg: Any, demo_template: str) -> Iterator[psycopg.Connection]:
    """A connection to a fresh demo database holding two EAs of round 2031."""
    url = pg.create_database(demo_template)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DELETE FROM enumeration_area")
        connection.execute(_INSERT)
        yield connection
    pg.drop_database(url)


def _bands(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """The band columns of every EA as WKB hex (None where empty), by code."""
    return conn.execute(
        "SELECT code, "
        + ", ".join(f"encode(ST_AsBinary({b}), 'hex')" for b in BANDS)
        + " FROM enumeration_area ORDER BY code"
    ).fetchall()


def _blank_bands_behind_the_trigger(conn: psycopg.Connection) -> None:
    """Set every band column to NULL without the trigger seeing it."""
    conn.execute("ALTER TABLE enumeration_area DISABLE TRIGGER enumeration_area_bands")
    conn.execute("UPDATE enumeration_area SET " + ", ".join(f"{b} = NULL" for b in BANDS))
    conn.execute("ALTER TABLE enumeration_area ENABLE ALWAYS TRIGGER enumeration_area_bands")


def test_an_insert_writes_every_band(conn: psycopg.Connection) -> None:
    """Inserted EAs carry every band, equal to the rule's; the tiny one is its cell (at z12
    too), the big one drawn at z10–z12 with vertices on each zoom's half-pixel grid."""
    assert conn.execute(_MATCH).fetchone() == (True,)
    rows = conn.execute(
        "SELECT code, ST_NPoints(geom_z8), ST_Area(geom_z5) FROM enumeration_area ORDER BY code"
    ).fetchall()
    cell_z5 = (40075016.68557849 / 2**5 / 4096) ** 2
    assert rows[0][1] >= 5 and rows[0][2] == pytest.approx(cell_z5)  # (z5: a cell too)
    assert rows[1][2] == pytest.approx(cell_z5)
    for z in (10, 11, 12):
        grid = 40075016.68557849 / 2**z / 4096 * 8
        row = conn.execute(
            f"SELECT ST_Area(geom_z{z}), ST_NPoints(geom_z{z}),"
            f" ST_Equals(geom_z{z}, ST_SnapToGrid(geom_z{z}, -20037508.342789244,"
            f" -20037508.342789244, %s, %s)) FROM enumeration_area ORDER BY code",
            (grid, grid),
        ).fetchall()
        assert row[0][0] > 100 * grid * grid and row[0][1] >= 5 and row[0][2], z
        assert row[1][0] == pytest.approx((grid / 8) ** 2), z  # (a cell of the tile grid)


def test_a_status_or_attribute_update_computes_nothing(conn: psycopg.Connection) -> None:
    """Bands blanked behind the trigger's back stay blank through updates of status,
    households, version and attributes: such an update does not compute them."""
    _blank_bands_behind_the_trigger(conn)
    conn.execute(
        "UPDATE enumeration_area SET status = 'submitted', households = households + 1,"
        " version = version + 1, landmarks = 'chợ', updated_by = 'other'"
    )
    assert all(row[1:] == (None,) * len(BANDS) for row in _bands(conn))
    # (declared so: the trigger fires on INSERT and on UPDATE OF geom or a band only)
    columns = conn.execute(
        "SELECT array_agg(a.attname ORDER BY a.attname) FROM pg_trigger t"
        " JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = ANY(t.tgattr)"
        " WHERE t.tgname = 'enumeration_area_bands'"
    ).fetchone()
    assert columns == (sorted(["geom", *BANDS]),)


def test_a_geometry_edit_recomputes_the_bands(conn: psycopg.Connection) -> None:
    """Moving an EA (or naming its geometry in an update at all) writes its bands anew."""
    before = _bands(conn)
    conn.execute(
        "UPDATE enumeration_area SET geom = ST_Multi(ST_Translate(geom, 0.01, 0))"
        " WHERE code = '00004-00001'"
    )
    after = _bands(conn)
    assert after[0] != before[0] and after[1] == before[1]
    assert conn.execute(_MATCH).fetchone() == (True,)
    _blank_bands_behind_the_trigger(conn)
    conn.execute("UPDATE enumeration_area SET geom = geom")
    assert _bands(conn) == after


def test_no_writer_can_store_bands_of_its_own(conn: psycopg.Connection) -> None:
    """A band written by hand is replaced by the computed one, and a session in replica
    mode (as logical replication applies rows) gets the bands computed too."""
    before = _bands(conn)
    conn.execute(
        "UPDATE enumeration_area SET geom_z7 = ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 3857))"
    )
    assert _bands(conn) == before
    conn.execute("SET session_replication_role = replica")
    try:
        conn.execute(
            "INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code,"
            " geom, updated_by) SELECT '2032', code, commune_vintage, commune_code, geom, 'r'"
            " FROM enumeration_area"
        )
    finally:
        conn.execute("SET session_replication_role = origin")
    assert conn.execute(_MATCH).fetchone() == (True,)
    rows = conn.execute("SELECT count(*) FROM enumeration_area WHERE geom_z8 IS NULL").fetchone()
    assert rows == (0,)


def test_a_copy_writes_every_band(conn: psycopg.Connection) -> None:
    """The generator's bulk path (COPY) gets the bands row by row."""
    rows = conn.execute(
        "SELECT '2033', code, commune_vintage, commune_code, ST_AsEWKT(geom), 'gen'"
        " FROM enumeration_area"
    ).fetchall()
    with conn.cursor().copy(
        "COPY enumeration_area (census_round, code, commune_vintage, commune_code, geom,"
        " updated_by) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)
    assert conn.execute(_MATCH).fetchone() == (True,)
    counted = conn.execute(
        "SELECT count(*) FROM enumeration_area WHERE census_round = '2033'"
        f" AND num_nonnulls({', '.join(BANDS)}) = {len(BANDS)}"
    ).fetchone()
    assert counted == (2,)
