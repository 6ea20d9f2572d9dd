"""The latest vintage is the one with the latest date, whatever its id sorts like as text."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from boundaries import sql as boundary_sql
from geo_service.ea import sql as ea_sql
from geo_service.features import sql as feature_sql
from indicators import sql as indicator_sql
from tests.helpers import run_coroutine

COMMUNE = "00004"  # Ba Đình (Hà Nội) in the demo's vintage 2025


@pytest.fixture
def older_vintage(demo_db: str) -> Iterator[str]:
    """The demo with a vintage 'census2019' (before 2025, but after '2025' as text) holding
    a copy of one commune and its province, and a series and an EA on it."""
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute("INSERT INTO vintage (id, valid_from) VALUES ('census2019', '2019-04-01')")
        conn.execute(
            "INSERT INTO admin_unit (vintage, level, code, parent_code, name, search_name,"
            " unit_type, area_km2, geom) SELECT 'census2019', level, code, parent_code,"
            " 'Old ' || name, search_name, unit_type, area_km2, geom FROM admin_unit"
            " WHERE vintage = '2025' AND ((level = 'commune' AND code = %s)"
            "  OR (level = 'province' AND code = '01'))",
            (COMMUNE,),
        )
        conn.execute(
            "INSERT INTO indicator_series (indicator, vintage, level)"
            " VALUES ('population', 'census2019', 'commune')"
        )
    yield demo_db


async def _ea_lookups(url: str) -> tuple[object, ...]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        commune = await ea_sql.commune_with_province(conn, COMMUNE)
        row = await ea_sql.commune_row(conn, COMMUNE, None)
        latest = await ea_sql.latest_commune_vintage(conn)
        older = await ea_sql.commune_with_province(conn, COMMUNE, "census2019")
        catalogue = await indicator_sql.series_catalogue(conn)
        names = await indicator_sql.series_with_names(conn)
        collections = await feature_sql.collection_rows(conn)
        return commune, row, latest, older, catalogue, names, collections


def test_the_latest_vintage_is_the_latest_by_date_not_by_id(older_vintage: str) -> None:
    commune, row, latest, older, catalogue, names, collections = run_coroutine(
        _ea_lookups(older_vintage)
    )
    assert isinstance(commune, dict) and commune["vintage"] == "2025"
    assert commune["name"] == "Ba Đình" and commune["provinceName"]
    assert row is not None and row[0] == "2025"  # type: ignore[index]
    assert latest == "2025"
    # an explicit vintage is still honoured
    assert isinstance(older, dict) and older["name"] == "Old Ba Đình"
    # newest vintage first: the catalogues list 2025's series and collections before 2019's
    for listed in (
        [s["vintage"] for s in catalogue],  # type: ignore[attr-defined]
        [r[0] for r in names],  # type: ignore[attr-defined]
        [r[1] for r in collections],  # type: ignore[attr-defined]
    ):
        assert listed.index("census2019") > max(i for i, v in enumerate(listed) if v == "2025")
    with psycopg.connect(older_vintage) as conn:
        assert boundary_sql.latest_vintage_with(conn, "commune") == "2025"
        assert boundary_sql.latest_vintage_with(conn, "province") == "2025"


def test_a_rounds_vintage_is_its_latest_by_date(older_vintage: str) -> None:
    # one commune's EAs of a round drawn on two boundary vintages: the newer one is 2025
    with psycopg.connect(older_vintage, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO admin_unit_generalised (vintage, level, code, band, geom)"
            " SELECT vintage, level, code, z.band, geom FROM admin_unit, zoom_band z"
            " WHERE vintage = 'census2019' AND z.tolerance = 0 ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code,"
            " geom, households, updated_by) SELECT '2031', %s || '-0000' || n, v, %s,"
            " ST_Multi(ST_MakeEnvelope(105.8150, 21.0300, 105.8151, 21.0301, 4326)), 1, 'test'"
            " FROM (VALUES (1, '2025'), (2, 'census2019')) AS t (n, v)",
            (COMMUNE, COMMUNE),
        )

    async def lookup() -> str | None:
        async with await psycopg.AsyncConnection.connect(older_vintage) as conn:
            return await ea_sql.round_vintage(conn, COMMUNE, "2031")

    assert run_coroutine(lookup()) == "2025"
