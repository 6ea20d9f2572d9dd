"""Indicators: catalogue, loading, disclosure control, carry-over and the API."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import box

from boundaries.checks import FieldMap
from boundaries.load import LoadOptions, load_boundaries
from boundaries.vintages import Vintage, add_vintage
from geo_core.errors import LoaderError
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from indicators import protect
from indicators.catalogue import Indicator, load_catalogue, save_indicator
from indicators.store import carry_over, store_values
from indicators.values import ValueFormat, parse_values, read_table
from tests.conftest import DEMO_DATA
from tests.helpers import fingerprint

INDICATOR_TABLES = ("indicator", "indicator_series", "indicator_value")


def _load_csv(
    conn: psycopg.Connection,
    path: Path,
    indicator: str,
    vintage: str,
    level: str,
    fmt: ValueFormat,
    **kwargs: object,
):  # type: ignore[no-untyped-def]
    rows, problems = parse_values(read_table(path), fmt, str(path))
    if problems:
        raise LoaderError("\n".join(problems), errors=problems)
    return store_values(conn, indicator, vintage, level, rows, **kwargs)  # type: ignore[arg-type]


# --- demo data -------------------------------------------------------------------------------


def test_demo_indicators_round_trip(demo_ro: str) -> None:
    provinces = json.loads((DEMO_DATA / "vietnam-3d-map-2025" / "provinces.json").read_text())
    hanoi = next(p for p in provinces["provinces"] if p["id"] == "01")
    with psycopg.connect(demo_ro) as conn:
        value = conn.execute(
            "SELECT value, status FROM indicator_value WHERE indicator ="
            " 'population' AND vintage = '2025' AND level = 'province' AND"
            " code = '01' AND period = '2025'"
        ).fetchone()
        assert value == (hanoi["population"], "ok")
        counts = dict(
            conn.execute(
                "SELECT indicator || ' ' || level, count(*) FROM indicator_value WHERE vintage ="
                " '2025' AND period = '2025' GROUP BY 1"
            ).fetchall()
        )
        assert counts["population province"] == 34 and counts["population commune"] == 3321
        # Hoàng Sa's population is a published zero: a true zero, not "not available"
        hoang_sa = conn.execute(
            "SELECT value, status FROM indicator_value WHERE indicator ="
            " 'population' AND level = 'commune' AND code = '20333' AND period = '2025'"
        ).fetchone()
        assert hoang_sa == (0.0, "ok")


def test_demo_papi_keeps_its_missing_values(demo_ro: str) -> None:
    raw = pd.read_csv(DEMO_DATA / "papi" / "2011.csv", dtype=str, keep_default_na=False)
    empty_sc24 = int((raw["SC24"] == "").sum())
    with psycopg.connect(demo_ro) as conn:
        row = conn.execute(
            "SELECT value FROM indicator_value WHERE indicator = 'papi_sc11'"
            " AND vintage = '2019' AND code = '01' AND period = '2011'"
        ).fetchone()
        assert row == (1.26411,)
        total = conn.execute(
            "SELECT count(*) FROM indicator_value WHERE indicator = 'papi_sc11'"
        ).fetchone()
        assert total == (63 * 14,)
        na = conn.execute(
            "SELECT count(*) FROM indicator_value WHERE indicator = 'papi_sc24'"
            " AND period = '2011' AND status = 'not_available'"
        ).fetchone()
        assert na == (empty_sc24,) and empty_sc24 == 63


def test_worldpop_commune_sum_equals_raster_total_inside(demo_ro: str) -> None:
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    from indicators.zonal import raster_total, zonal_statistics

    raster = DEMO_DATA / "raster" / "vn_ppp_2020_1km_Aggregated.tif"
    with psycopg.connect(demo_ro) as conn:
        row = conn.execute(
            "SELECT sum(value) FROM indicator_value WHERE indicator ="
            " 'pop_worldpop' AND level = 'commune'"
        ).fetchone()
        union = conn.execute(
            "SELECT ST_AsBinary(ST_Union(geom)) FROM commune_coverage WHERE vintage = '2025'"
        ).fetchone()
    assert row and union
    with rasterio.open(raster) as src:
        extent = box(*src.bounds)
    outside = extent.difference(shapely.from_wkb(union[0]))
    frame = gpd.GeoDataFrame({"code": ["outside"]}, geometry=[outside], crs="EPSG:4326")
    outside_sum = zonal_statistics(raster, frame, "sum")[0].value or 0.0
    assert row[0] == pytest.approx(raster_total(raster) - outside_sum, rel=0.005)


def test_worldpop_zonal_sum_matches_between_levels(demo_ro: str) -> None:
    with psycopg.connect(demo_ro) as conn:
        sums = dict(
            conn.execute(
                "SELECT level, sum(value) FROM indicator_value WHERE"
                " indicator = 'pop_worldpop' GROUP BY level"
            ).fetchall()
        )
    assert sums["commune"] == pytest.approx(sums["province"], rel=0.005)
    assert 95e6 < sums["commune"] < 100e6  # raster total ≈ 99.49 M, minus sea and borders


# --- loading ---------------------------------------------------------------------------------


@pytest.fixture
def db(demo_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(demo_db, autocommit=True) as connection:
        save_indicator(connection, Indicator("test_count", "Thử", "Test", "count"))
        yield connection


def test_unknown_code_is_reported_and_nothing_is_written(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "values.csv"
    path.write_text("ma,value\n01,10\n99,20\n79,30\n")
    before = fingerprint(db, INDICATOR_TABLES)
    with pytest.raises(LoaderError) as failure:
        _load_csv(
            db,
            path,
            "test_count",
            "2025",
            "province",
            ValueFormat("ma", period="2024", value_column="value"),
        )
    assert "row 3: province 99 is not a unit of vintage 2025" in failure.value.message
    assert fingerprint(db, INDICATOR_TABLES) == before


def test_code_of_another_vintage_is_named(db: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "values.csv"
    path.write_text("ma,value\n10,5\n")  # old Lào Cai: a 2019 code that 2025 does not have
    with pytest.raises(LoaderError, match="province 10 exists only in vintage 2019, not in 2025"):
        _load_csv(
            db,
            path,
            "test_count",
            "2025",
            "province",
            ValueFormat("ma", period="2024", value_column="value"),
        )


def test_skip_unknown_reports_what_it_skipped(db: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "values.csv"
    path.write_text("ma,value\n01,10\n99,20\n")
    result = _load_csv(
        db,
        path,
        "test_count",
        "2025",
        "province",
        ValueFormat("ma", period="2024", value_column="value"),
        skip_unknown=True,
    )
    assert result.loaded == 1 and len(result.skipped) == 1 and "row 3" in result.skipped[0]


def test_bad_cells_and_duplicates_are_reported_with_rows(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "values.csv"
    path.write_text("ma,nam,value\n01,2024,abc\n01,2024,3\n01,2024,4\n79,24,5\n")
    rows, problems = parse_values(
        read_table(path), ValueFormat("ma", period_column="nam", value_column="value"), "values.csv"
    )
    assert "values.csv: row 2, column 'value': 'abc' is not a number" in problems
    assert any("row 5: period '24'" in p for p in problems)
    with pytest.raises(LoaderError, match="row 4: duplicate of values.csv: row 3"):
        store_values(db, "test_count", "2025", "province", rows)


def test_wide_and_excel_formats(db: psycopg.Connection, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"code": ["01", "79"], "name": ["Hà Nội", "Hồ Chí Minh"], "2023": [1, ""], "2024": [2, 4]}
    )
    path = tmp_path / "wide.xlsx"
    frame.to_excel(path, index=False)
    result = _load_csv(db, path, "test_count", "2025", "province", ValueFormat("code", wide=True))
    assert result.loaded == 4 and result.not_available == 1
    rows = db.execute(
        "SELECT code, period, value, status FROM indicator_value WHERE indicator"
        " = 'test_count' ORDER BY 1, 2"
    ).fetchall()
    assert rows == [
        ("01", "2023", 1.0, "ok"),
        ("01", "2024", 2.0, "ok"),
        ("79", "2023", None, "not_available"),
        ("79", "2024", 4.0, "ok"),
    ]


def test_excel_year_headers_are_periods_and_a_second_sheet_needs_naming(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "years.xlsx"
    with pd.ExcelWriter(path) as writer:
        # year headers as numbers, as Excel keeps them
        for sheet, frame in (
            ("Nu", pd.DataFrame({"code": ["01"], 2023: [5], 2024: [6]})),
            ("Nam", pd.DataFrame({"code": ["01"], 2023: [7]})),
        ):
            frame.to_excel(writer, sheet_name=sheet, index=False)
    with pytest.raises(LoaderError, match="2 sheets: Nu, Nam; say which with --sheet"):
        read_table(path)
    rows, problems = parse_values(read_table(path, "Nu"), ValueFormat("code", wide=True), "x")
    assert not problems and [(r.period, r.value) for r in rows] == [("2023", 5.0), ("2024", 6.0)]


def test_text_encodings(tmp_path: Path) -> None:
    text = "ma,ten,value\n01,Hà Nam,5\n"
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text(text, encoding="utf-16")  # with its byte-order mark: recognised
    assert read_table(utf16)["ten"].tolist() == ["Hà Nam"]
    legacy = tmp_path / "cp1258.csv"
    legacy.write_bytes(text.encode("cp1258"))
    with pytest.raises(LoaderError, match="pass --encoding"):
        read_table(legacy)
    assert read_table(legacy, encoding="cp1258")["ten"].tolist() == ["Hà Nam"]


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ("01,2019,1_000", "'1_000' is not a number"),
        ("01,2019,１２", "is not a number"),
        ("01,2019,8.053.663", "if '.' separates thousands"),
        ("01,2019-13,5", "period '2019-13'"),
    ],
)
def test_cells_that_only_look_like_numbers_or_periods(
    tmp_path: Path, cells: str, message: str
) -> None:
    path = tmp_path / "values.csv"
    path.write_text(f"ma,nam,value\n{cells}\n", encoding="utf-8")
    _, problems = parse_values(
        read_table(path), ValueFormat("ma", period_column="nam", value_column="value"), "values.csv"
    )
    assert any(message in p for p in problems), problems


def test_negative_counts_and_margins_are_refused(db: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "values.csv"
    path.write_text("ma,value,moe\n01,-50,1\n79,5,-2\n")
    rows, problems = parse_values(
        read_table(path),
        ValueFormat("ma", period="2024", value_column="value", moe_column="moe"),
        "values.csv",
    )
    assert any("margin of error cannot be negative" in p for p in problems)
    with pytest.raises(LoaderError, match="a count cannot be negative"):
        store_values(db, "test_count", "2025", "province", rows)


def test_a_period_column_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "values.csv"
    path.write_text("ma,2019,2019\n01,1,2\n")
    with pytest.raises(LoaderError, match="2019 appear more than once"):
        parse_values(read_table(path), ValueFormat("ma", wide=True), "values.csv")


def test_reload_needs_replace(db: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "values.csv"
    path.write_text("ma,value\n01,10\n")
    fmt = ValueFormat("ma", period="2024", value_column="value")
    _load_csv(db, path, "test_count", "2025", "province", fmt)
    with pytest.raises(LoaderError, match="pass --replace"):
        _load_csv(db, path, "test_count", "2025", "province", fmt)
    _load_csv(db, path, "test_count", "2025", "province", fmt, replace=True)


def test_boundary_reload_cannot_orphan_values(db: psycopg.Connection, tmp_path: Path) -> None:
    import geopandas as gpd

    path = tmp_path / "values.csv"
    path.write_text("ma,value\n00004,10\n")
    _load_csv(
        db,
        path,
        "test_count",
        "2025",
        "commune",
        ValueFormat("ma", period="2024", value_column="value"),
    )
    # communes (no level below them) without 00004, which the values refer to
    only_00008 = tmp_path / "c.geojson"
    gpd.GeoDataFrame(
        {"code": ["00008"], "name": ["X"], "p": ["01"]},
        geometry=[box(105.8, 21.0, 105.81, 21.01)],
        crs="EPSG:4326",
    ).to_file(only_00008)
    before = fingerprint(db)
    with pytest.raises(LoaderError, match="indicator values refer to"):
        load_boundaries(
            db,
            [only_00008],
            LoadOptions("2025", "commune", FieldMap("code", "name", "p"), replace=True),
        )
    assert fingerprint(db) == before


# --- the catalogue -----------------------------------------------------------------------------

CATALOGUE_HEAD = "code,name_vi,name_en,kind"


def _catalogue(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.csv"
    path.write_text(text)
    return path


def test_a_catalogue_without_rule_columns_keeps_the_rules(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    before = db.execute(
        "SELECT suppress_below, numerator, denominator FROM indicator WHERE code = 'density'"
    ).fetchone()
    db.execute("UPDATE indicator SET suppress_below = 50 WHERE code = 'population'")
    load_catalogue(
        db,
        _catalogue(
            tmp_path,
            f"{CATALOGUE_HEAD}\npopulation,Dân số,Population,"
            "count\ndensity,Mật độ,Density,density\n",
        ),
    )
    assert db.execute(
        "SELECT suppress_below FROM indicator WHERE code = 'population'"
    ).fetchone() == (50,)
    assert (
        db.execute(
            "SELECT suppress_below, numerator, denominator FROM indicator WHERE code = 'density'"
        ).fetchone()
        == before
    )


def test_references_within_one_catalogue_load_in_any_order(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    head = f"{CATALOGUE_HEAD},numerator,denominator,disclosure_basis"
    count = load_catalogue(
        db,
        _catalogue(
            tmp_path,
            f"{head}\n"
            "t_rate,R,R,rate,t_two,t_three,\n"
            "t_two,T,T,count,,,t_three\n"
            "t_three,D,D,count,,,\n",
        ),
    )
    assert count == 3


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("t_a,A,A,count,t_b\nt_b,B,B,count,t_a\n", "loop: t_a → t_b → t_a"),
        ("t_a,A,A,count,t_a\n", "refers to itself"),
        ("t_a,A,A,count,\nt_a,A,A,count,\n", "listed twice"),
    ],
)
def test_catalogue_mistakes_are_refused(
    db: psycopg.Connection, tmp_path: Path, rows: str, message: str
) -> None:
    before = fingerprint(db, ("indicator",))
    with pytest.raises(LoaderError, match=message):
        load_catalogue(db, _catalogue(tmp_path, f"{CATALOGUE_HEAD},disclosure_basis\n{rows}"))
    assert fingerprint(db, ("indicator",)) == before


def test_a_loop_across_two_catalogues_is_refused(db: psycopg.Connection, tmp_path: Path) -> None:
    head = f"{CATALOGUE_HEAD},disclosure_basis"
    load_catalogue(db, _catalogue(tmp_path, f"{head}\nt_a,A,A,count,\nt_b,B,B,count,t_a\n"))
    with pytest.raises(LoaderError, match="loop"):
        load_catalogue(db, _catalogue(tmp_path, f"{head}\nt_a,A,A,count,t_b\n"))


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_catalogue_numbers_must_be_finite(
    db: psycopg.Connection, tmp_path: Path, value: str
) -> None:
    with pytest.raises(LoaderError, match="not a finite number"):
        load_catalogue(
            db, _catalogue(tmp_path, f"{CATALOGUE_HEAD},multiplier\nt_x,X,X,rate,{value}\n")
        )


def test_cell_key_noise_below_the_protection_range_is_refused(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    # threshold 50: a hidden count keeps at least ±25 (half the threshold), so D = 2 would
    # publish it to within about ±2
    head = f"{CATALOGUE_HEAD},suppress_below,cell_key_noise"
    before = fingerprint(db, ("indicator",))
    with pytest.raises(LoaderError, match=r"cell_key_noise 2 is below .* at least 25") as refused:
        load_catalogue(db, _catalogue(tmp_path, f"{head}\nt_c,C,C,count,50,2\n"))
    assert refused.value.parameter == "cell_key_noise"
    assert fingerprint(db, ("indicator",)) == before
    load_catalogue(db, _catalogue(tmp_path, f"{head}\nt_c,C,C,count,50,25\n"))
    # nor may a later catalogue raise the threshold over the noise already set
    with pytest.raises(LoaderError, match="cell_key_noise 25 is below"):
        load_catalogue(
            db, _catalogue(tmp_path, f"{CATALOGUE_HEAD},suppress_below\nt_c,C,C,count,500\n")
        )
    saved = db.execute("SELECT suppress_below FROM indicator WHERE code = 't_c'").fetchone()
    assert saved == (50,)


def test_no_plain_sql_stores_a_cell_key_noise_that_cannot_protect(db: psycopg.Connection) -> None:
    """The database itself refuses the setting the catalogue loader refuses, whatever
    writes it: an UPDATE of the noise, of the threshold under it, or an INSERT."""
    db.execute("UPDATE indicator SET suppress_below = 3000 WHERE code = 'test_count'")
    before = fingerprint(db, ("indicator",))
    refusals = (
        ("UPDATE indicator SET cell_key_noise = 50 WHERE code = 'test_count'", "at least 1500"),
        (
            "UPDATE indicator SET cell_key_noise = 1500, protection_absolute = 2000"
            " WHERE code = 'test_count'",
            "at least 2000",
        ),
        (
            "INSERT INTO indicator (code, name_vi, name_en, kind, suppress_below,"
            " cell_key_noise) VALUES ('t_sql', 'X', 'X', 'count', 50, 2)",
            "cell_key_noise 2 is below .* at least 25",
        ),
    )
    for statement, message in refusals:
        with pytest.raises(psycopg.errors.CheckViolation, match=message) as refused:
            db.execute(statement)
        assert refused.value.diag.column_name == "cell_key_noise"
    assert fingerprint(db, ("indicator",)) == before
    db.execute("UPDATE indicator SET cell_key_noise = 1500 WHERE code = 'test_count'")
    with pytest.raises(psycopg.errors.CheckViolation, match="cell_key_noise 1500 is below"):
        db.execute("UPDATE indicator SET suppress_below = 5000 WHERE code = 'test_count'")
    # a share set to protect less lets a smaller noise through, as the loader computes it
    db.execute(
        "UPDATE indicator SET protection_absolute = 50, protection_lower = 0.01,"
        " protection_upper = 0.01, cell_key_noise = 50 WHERE code = 'test_count'"
    )


def test_the_kind_of_an_indicator_with_values_stays(db: psycopg.Connection, tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="has values as a count"):
        load_catalogue(
            db, _catalogue(tmp_path, f"{CATALOGUE_HEAD}\npopulation,Dân số,Population,index\n")
        )


# --- carry-over ------------------------------------------------------------------------------


@pytest.fixture
def two_units(conn: psycopg.Connection, tmp_path: Path) -> psycopg.Connection:
    """Old units A (01) and B (02); new unit 11 = A + half of B, new unit 12 = other half."""
    import geopandas as gpd

    add_vintage(conn, Vintage("old", date(2000, 1, 1), date(2025, 7, 1)))
    add_vintage(conn, Vintage("new", date(2025, 7, 1)))
    old = tmp_path / "old.geojson"
    gpd.GeoDataFrame(
        {"code": ["01", "02"], "name": ["A", "B"]},
        geometry=[box(0, 0, 1, 1), box(1, 0, 3, 1)],
        crs="EPSG:4326",
    ).to_file(old)
    new = tmp_path / "new.geojson"
    gpd.GeoDataFrame(
        {"code": ["11", "12"], "name": ["C", "D"]},
        geometry=[box(0, 0, 2, 1), box(2, 0, 3, 1)],
        crs="EPSG:4326",
    ).to_file(new)
    load_boundaries(conn, [old], LoadOptions("old", "province", FieldMap("code", "name")))
    load_boundaries(conn, [new], LoadOptions("new", "province", FieldMap("code", "name")))
    conn.execute(
        "INSERT INTO crosswalk VALUES ('old','province','01','new','province','11',"
        "'whole',1,1), ('old','province','02','new','province','11','partial',0.5,0.25),"
        "('old','province','02','new','province','12','partial',0.5,0.75)"
    )
    save_indicator(conn, Indicator("pop", "Dân số", "Population", "count"))
    save_indicator(conn, Indicator("area", "Diện tích", "Area", "count"))
    save_indicator(
        conn, Indicator("dens", "Mật độ", "Density", "density", numerator="pop", denominator="area")
    )
    save_indicator(conn, Indicator("idx", "Chỉ số", "Index", "index"))
    for code, rows in (
        ("pop", [("01", 100.0), ("02", 200.0)]),
        ("area", [("01", 10.0), ("02", 40.0)]),
        ("dens", [("01", 10.0), ("02", 5.0)]),
        ("idx", [("01", 1.0), ("02", 2.0)]),
    ):
        from indicators.values import ValueRow

        store_values(
            conn, code, "old", "province", [ValueRow("t", c, "2019", v, "ok") for c, v in rows]
        )
    return conn


def _new_values(conn: psycopg.Connection, code: str) -> dict[str, float | None]:
    return dict(
        conn.execute(
            "SELECT code, value FROM indicator_value WHERE indicator = %s"
            " AND vintage = 'new' ORDER BY code",
            (code,),
        ).fetchall()
    )


def test_carry_over_apportions_counts_and_conserves_totals(two_units: psycopg.Connection) -> None:
    carry_over(two_units, "pop", "old", "new", "province", "area")
    assert _new_values(two_units, "pop") == {"11": 200.0, "12": 100.0}
    carry_over(two_units, "pop", "old", "new", "province", "population", replace=True)
    assert _new_values(two_units, "pop") == {"11": 150.0, "12": 150.0}
    assert sum(v for v in _new_values(two_units, "pop").values() if v) == 300.0
    derivation = two_units.execute(
        "SELECT derivation FROM indicator_series WHERE indicator = 'pop' AND vintage = 'new'"
    ).fetchone()
    assert derivation and derivation[0]["method"] == "carry-over"
    assert derivation[0]["weight"] == "population"


def test_carry_over_recomputes_rates_never_averages(two_units: psycopg.Connection) -> None:
    carry_over(two_units, "dens", "old", "new", "province", "area")
    values = _new_values(two_units, "dens")
    # C = (100 + 0.5·200) / (10 + 0.5·40) = 200 / 30; an average of 10 and 5 would be wrong
    assert values["11"] == pytest.approx(200 / 30)
    assert values["12"] == pytest.approx(100 / 20)


def test_carry_over_refuses_an_index(two_units: psycopg.Connection) -> None:
    with pytest.raises(LoaderError, match="index cannot be apportioned"):
        carry_over(two_units, "idx", "old", "new", "province", "area")


def test_carry_over_propagates_suppression(two_units: psycopg.Connection) -> None:
    two_units.execute(
        "UPDATE indicator_value SET status = 'suppressed' WHERE indicator = 'pop' AND code = '02'"
    )
    carry_over(two_units, "pop", "old", "new", "province", "area")
    rows = dict(
        two_units.execute(
            "SELECT code, status FROM indicator_value WHERE indicator = 'pop' AND vintage = 'new'"
        ).fetchall()
    )
    assert rows == {"11": "suppressed", "12": "suppressed"}


def test_observed_values_keep_the_derivation_of_the_carried_periods(
    two_units: psycopg.Connection,
) -> None:
    from indicators.values import ValueRow

    carry_over(two_units, "pop", "old", "new", "province", "area")
    store_values(
        two_units,
        "pop",
        "new",
        "province",
        [ValueRow("t", c, "2024", 100.0, "ok") for c in ("11", "12")],
    )
    row = two_units.execute(
        "SELECT derivation FROM indicator_series WHERE indicator = 'pop' AND vintage = 'new'"
    ).fetchone()
    assert row and row[0]["method"] == "carry-over" and row[0]["periods"] == ["2019"]
    store_values(
        two_units,
        "pop",
        "new",
        "province",
        [ValueRow("t", c, "2019", 1.0, "ok") for c in ("11", "12")],
        replace=True,
    )
    row = two_units.execute(
        "SELECT derivation FROM indicator_series WHERE indicator = 'pop' AND vintage = 'new'"
    ).fetchone()
    assert row == (None,)  # every period observed now


def test_carry_over_says_what_the_crosswalk_leaves_out(two_units: psycopg.Connection) -> None:
    two_units.execute("DELETE FROM crosswalk WHERE from_code = '02' AND to_code = '12'")
    result = carry_over(two_units, "pop", "old", "new", "province", "area")
    notes = " | ".join(result.notes)
    assert "shares do not add up to 1: 02 (0.500)" in notes
    assert "1 new unit(s) no crosswalk link reaches are not available: 12" in notes
    assert "2019: total 300.0 before, 200.0 after (-100.0)" in notes
    rows = dict(
        two_units.execute(
            "SELECT code, status FROM indicator_value WHERE indicator = 'pop' AND vintage = 'new'"
        ).fetchall()
    )
    assert rows == {"11": "ok", "12": "not_available"}  # present, never silently absent


def test_carry_over_propagates_suppression_by_rule(two_units: psycopg.Connection) -> None:
    # 01's 100 is below the threshold: it may not come back as 11 minus its other share
    two_units.execute("UPDATE indicator SET suppress_below = 150 WHERE code = 'pop'")
    carry_over(two_units, "pop", "old", "new", "province", "area")
    rows = dict(
        two_units.execute(
            "SELECT code, status FROM published_value WHERE indicator = 'pop' AND vintage = 'new'"
        ).fetchall()
    )
    assert rows["11"] == "suppressed"


def test_demo_carry_over_of_population_to_2025_provinces(demo_db: str) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        save_indicator(conn, Indicator("pop19", "Dân số", "Population", "count"))
        from indicators.values import ValueRow

        codes = [
            r[0]
            for r in conn.execute(
                "SELECT code FROM admin_unit WHERE vintage = '2019' AND level = 'province'"
            )
        ]
        store_values(
            conn,
            "pop19",
            "2019",
            "province",
            [ValueRow("t", c, "2019", 1000.0 + i, "ok") for i, c in enumerate(codes)],
        )
        carry_over(conn, "pop19", "2019", "2025", "province", "area")
        before = conn.execute(
            "SELECT sum(value) FROM indicator_value WHERE indicator = 'pop19' AND vintage = '2019'"
        ).fetchone()
        after = conn.execute(
            "SELECT sum(value), count(*) FROM indicator_value WHERE indicator"
            " = 'pop19' AND vintage = '2025'"
        ).fetchone()
        assert before and after and after[0] == pytest.approx(before[0]) and after[1] == 34


# --- API -------------------------------------------------------------------------------------


def test_catalogue_lists_demo_indicators(client: TestClient) -> None:
    body = client.get("/indicators").json()
    codes = {i["code"] for i in body["indicators"]}
    assert {"population", "area_km2", "density", "pop_worldpop", "papi_sc11"} <= codes
    indexes = client.get("/indicators", params={"kind": "index"}).json()["indicators"]
    assert indexes and all(i["kind"] == "index" for i in indexes)
    assert client.get("/indicators", params={"kind": "bogus"}).status_code == 400


def test_indicator_metadata_lists_series(client: TestClient) -> None:
    meta = client.get("/indicators/population").json()
    series = {(s["vintage"], s["level"]): s["periods"] for s in meta["series"]}
    # (the communes' 2009 period: the 2009 census carried over, shipped with the demo)
    assert series == {("2025", "commune"): ["2009", "2025"], ("2025", "province"): ["2025"]}
    worldpop = client.get("/indicators/pop_worldpop").json()
    assert worldpop["series"][0]["derivation"]["method"] == "zonal statistics"


def test_unknown_indicator_is_404_naming_it(client: TestClient) -> None:
    response = client.get("/indicators/nope/values")
    assert response.status_code == 404 and "'nope'" in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"vintage": "1999", "level": "province"}, "vintage"),
        ({"vintage": "2025", "level": "district"}, "level"),
        ({"vintage": "2025", "level": "province", "period": "1990"}, "period"),
        ({"vintage": "2025"}, "level"),
        ({"vintage": "2025", "level": "commune", "parent": "zz"}, "parent"),
    ],
)
def test_bad_selection_is_400_listing_valid_values(
    client: TestClient, params: dict[str, str], parameter: str
) -> None:
    response = client.get("/indicators/population/values", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["parameter"] == parameter
    if parameter in ("vintage", "level", "period"):
        assert body["valid"]


def test_values_json_and_csv(client: TestClient) -> None:
    params = {"vintage": "2025", "level": "commune", "parent": "01", "period": "2025"}
    body = client.get("/indicators/population/values", params=params).json()
    assert body["numberReturned"] == 126
    response = client.get("/indicators/population/values", params={**params, "f": "csv"})
    assert response.content.startswith("\ufeff".encode())
    frame = pd.read_csv(io.BytesIO(response.content), dtype={"code": str}, encoding="utf-8-sig")
    assert len(frame) == 126 and "Ba Đình" in set(frame["name"])
    by_accept = client.get(
        "/indicators/population/values", params=params, headers={"Accept": "text/csv"}
    )
    assert by_accept.content == response.content
    assert "Accept" in by_accept.headers["Vary"].split(", ")


def _published(conn: psycopg.Connection, indicator: str, level: str) -> dict[str, float | None]:
    return dict(
        conn.execute(
            "SELECT code, value FROM published_value WHERE indicator = %s"
            " AND vintage = '2025' AND level = %s AND period = '2025'",
            (indicator, level),
        ).fetchall()
    )


def test_a_parent_total_never_gives_back_a_suppressed_child(demo_db: str) -> None:
    threshold = 3000
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE indicator SET suppress_below = %s WHERE code = 'population'", (threshold,)
        )
        protect.refresh(conn)  # (what a running service does after a plain SQL change)
        provinces = _published(conn, "population", "province")
        communes = _published(conn, "population", "commune")
        parents = dict(
            conn.execute(
                "SELECT code, parent_code FROM admin_unit WHERE vintage ="
                " '2025' AND level = 'commune'"
            ).fetchall()
        )
        raw = dict(
            conn.execute(
                "SELECT code, value FROM indicator_value WHERE indicator ="
                " 'population' AND level = 'commune' AND period = '2025'"
            ).fetchall()
        )
        density = _published(conn, "density", "commune")
    small = {code for code, value in raw.items() if value is not None and value < threshold}
    assert small and all(communes[code] is None for code in small)
    for province, total in provinces.items():
        children = [code for code, parent in parents.items() if parent == province]
        hidden = [code for code in children if communes[code] is None]
        if total is None or not hidden:
            continue
        # what differencing tells: the sum of the hidden ones, never one of them alone
        assert len(hidden) >= 2, (province, hidden)
        assert sum(raw[code] for code in hidden) >= threshold
    # a density × area would give a hidden population back: it is hidden too
    assert all(density[code] is None for code, value in communes.items() if value is None)


# --- differencing: three levels ----------------------------------------------------------------

# province 01 = districts 001 + 002 + 003; 001 = commune 00001, 002 = 00002 + 00003, 003 =
# 00004 + 00005 (unit boxes side by side, so children lie inside their parents)
HIERARCHY = {
    "01": None,
    "001": "01",
    "002": "01",
    "003": "01",
    "00001": "001",
    "00002": "002",
    "00003": "002",
    "00004": "003",
    "00005": "003",
}
SPANS = {
    "01": (0, 5),
    "001": (0, 1),
    "002": (1, 3),
    "003": (3, 5),
    "00001": (0, 1),
    "00002": (1, 2),
    "00003": (2, 3),
    "00004": (3, 4),
    "00005": (4, 5),
}
LEVELS = {2: "province", 3: "district", 5: "commune"}


@pytest.fixture
def three_levels(conn: psycopg.Connection, tmp_path: Path) -> psycopg.Connection:
    import geopandas as gpd

    add_vintage(conn, Vintage("h", date(2000, 1, 1)))
    for width, level in LEVELS.items():
        codes = [c for c in HIERARCHY if len(c) == width]
        path = tmp_path / f"{level}.geojson"
        gpd.GeoDataFrame(
            {"code": codes, "name": codes, "parent": [HIERARCHY[c] or "" for c in codes]},
            geometry=[box(SPANS[c][0], 0, SPANS[c][1], 1) for c in codes],
            crs="EPSG:4326",
        ).to_file(path)
        load_boundaries(
            conn,
            [path],
            LoadOptions(
                "h", level, FieldMap("code", "name", "parent" if level != "province" else None)
            ),
        )
    save_indicator(conn, Indicator("n", "Số", "Count", "count", suppress_below=10))
    return conn


def _store(conn: psycopg.Connection, values: dict[str, float | None], status: str = "ok") -> None:
    from indicators.values import ValueRow

    for width, level in LEVELS.items():
        rows = [
            ValueRow("t", c, "2020", v, status if v is not None else "suppressed")
            for c, v in values.items()
            if len(c) == width
        ]
        if rows:
            store_values(conn, "n", "h", level, rows, replace=True)


def _parts(total: str, published: dict[str, float | None]) -> list[str]:
    """The units whose values add up to the total: its children, or where they have no
    values, their children."""
    parts = []
    for child in (c for c, parent in HIERARCHY.items() if parent == total):
        parts += [child] if child in published else _parts(child, published)
    return parts


def _revealed(conn: psycopg.Connection) -> dict[str, float]:
    """What differencing finds: every hidden value that some published total minus its
    published parts gives back, repeated until nothing more comes out."""
    published = dict(
        conn.execute("SELECT code, value FROM published_value WHERE indicator = 'n'").fetchall()
    )
    known = {c: v for c, v in published.items() if v is not None}
    found: dict[str, float] = {}
    while True:
        progress = False
        for total in published:
            parts = _parts(total, published)
            unknown = [c for c in [total, *parts] if c not in known]
            if len(unknown) != 1 or not parts:
                continue
            [cell] = unknown
            parts_sum = sum(known[c] for c in parts if c != cell)
            known[cell] = parts_sum if cell == total else known[total] - parts_sum
            found[cell] = known[cell]
            progress = True
        if not progress:
            return found


@pytest.mark.parametrize(
    "values",
    [
        # the review's case: 00001 (5) below the threshold, district 001 alone above it
        {
            "01": 100,
            "001": 5,
            "002": 45,
            "003": 50,
            "00001": 5,
            "00002": 20,
            "00003": 25,
            "00004": 20,
            "00005": 30,
        },
        # no district values: the province total is the communes' equation
        {"01": 100, "00001": 5, "00002": 20, "00003": 25, "00004": 20, "00005": 30},
        # two small ones summing below the threshold
        {
            "01": 100,
            "001": 30,
            "002": 8,
            "003": 62,
            "00001": 30,
            "00002": 4,
            "00003": 4,
            "00004": 20,
            "00005": 42,
        },
    ],
)
def test_differencing_gives_back_no_hidden_count(
    three_levels: psycopg.Connection, values: dict[str, float]
) -> None:
    _store(three_levels, values)
    hidden = {
        c
        for (c,) in three_levels.execute(
            "SELECT code FROM published_value WHERE indicator = 'n' AND value IS NULL"
        )
    }
    small = {c for c, v in values.items() if v < 10}
    assert small <= hidden
    assert not set(_revealed(three_levels)) & small


def test_a_value_loaded_as_suppressed_gets_a_complement_without_a_threshold(
    three_levels: psycopg.Connection,
) -> None:
    three_levels.execute("UPDATE indicator SET suppress_below = NULL WHERE code = 'n'")
    _store(three_levels, {"01": 100, "001": 5, "002": 45, "003": 50})
    three_levels.execute("UPDATE indicator_value SET status = 'suppressed' WHERE code = '001'")
    protect.refresh(three_levels)
    assert "001" not in _revealed(three_levels)


def test_suppression_follows_a_chain_of_quotients(demo_db: str) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute("UPDATE indicator SET suppress_below = 3000 WHERE code = 'population'")
        protect.refresh(conn)
        # a quotient of a quotient: density per km² again
        save_indicator(
            conn,
            Indicator(
                "density2",
                "Mật độ 2",
                "Density 2",
                "density",
                numerator="density",
                denominator="area_km2",
            ),
        )
        conn.execute(
            "INSERT INTO indicator_series (indicator, vintage, level) VALUES"
            " ('density2', '2025', 'commune')"
        )
        conn.execute(
            "INSERT INTO indicator_value SELECT 'density2', vintage, level, code,"
            " period, value, status, moe FROM indicator_value WHERE indicator ="
            " 'density' AND level = 'commune'"
        )
        protect.refresh(conn)
        hidden_population = {
            c
            for (c,) in conn.execute(
                "SELECT code FROM published_value WHERE indicator = 'population' AND level ="
                " 'commune' AND period = '2025' AND value IS NULL"
            )
        }
        hidden_density2 = {
            c
            for (c,) in conn.execute(
                "SELECT code FROM published_value WHERE indicator = 'density2' AND value IS NULL"
            )
        }
    assert hidden_population and hidden_population <= hidden_density2


def test_a_hidden_rate_hides_its_numerator(three_levels: psycopg.Connection) -> None:
    from indicators.values import ValueRow

    conn = three_levels
    conn.execute("UPDATE indicator SET suppress_below = NULL WHERE code = 'n'")
    save_indicator(conn, Indicator("poor", "Nghèo", "Poor", "count"))
    save_indicator(
        conn,
        Indicator(
            "poverty",
            "Tỷ lệ nghèo",
            "Poverty",
            "rate",
            numerator="poor",
            denominator="n",
            multiplier=100,
            suppress_below=50,
            disclosure_basis="n",
        ),
    )
    for code, rows in (
        ("n", {"00002": 30.0, "00003": 60.0}),
        ("poor", {"00002": 12.0, "00003": 6.0}),
        ("poverty", {"00002": 40.0, "00003": 10.0}),
    ):
        store_values(
            conn, code, "h", "commune", [ValueRow("t", c, "2020", v, "ok") for c, v in rows.items()]
        )
    published = {
        (i, c): v
        for i, c, v in conn.execute(
            "SELECT indicator, code, value FROM published_value WHERE level = 'commune'"
        )
    }
    # 00002 has fewer than 50 people: its rate is hidden, and so is the count it came from
    assert published[("poverty", "00002")] is None and published[("poor", "00002")] is None
    assert published[("poverty", "00003")] == 10.0 and published[("poor", "00003")] == 6.0


def test_a_change_on_one_level_refreshes_the_tiles_of_another(
    three_levels: psycopg.Connection,
) -> None:
    _store(three_levels, {"00002": 5, "00003": 25, "00004": 20, "00005": 30})
    epoch = three_levels.execute("SELECT epoch FROM tile_epoch").fetchone()
    _store(three_levels, {"002": 30})  # now 00003 = 30 − 5 would be exposed: hidden too
    changed = {
        layer
        for (layer,) in three_levels.execute(
            "SELECT layer FROM tile_change WHERE epoch > %s", epoch
        )
    }
    assert "commune-h" in changed


def test_a_rate_whose_basis_is_missing_is_suppressed(demo_db: str) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE indicator SET suppress_below = 10, disclosure_basis = 'population'"
            " WHERE code = 'papi_sc11'"
        )
        protect.refresh(conn)
        rows = conn.execute(
            "SELECT DISTINCT status FROM published_value WHERE indicator = 'papi_sc11'"
        ).fetchall()
    # PAPI is published for the 2019 provinces, for which no population is loaded
    assert rows == [("suppressed",)]


def test_suppressed_values_are_null_in_json_and_csv(demo_db: str, tmp_path: Path) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        # communes with fewer than 10,000 inhabitants may not be published
        conn.execute("UPDATE indicator SET suppress_below = 10000 WHERE code = 'population'")
        conn.execute(
            "UPDATE indicator SET suppress_below = 10000, disclosure_basis ="
            " 'population' WHERE code = 'density'"
        )
        protect.refresh(conn)
        small = conn.execute(
            "SELECT code, value FROM indicator_value WHERE indicator ="
            " 'population' AND level = 'commune' AND period = '2025'"
            " AND value BETWEEN 1 AND 9999 ORDER BY value LIMIT 1"
        ).fetchone()
        assert small is not None
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=demo_db)) as client:
        for indicator in ("population", "density"):
            body = client.get(
                f"/indicators/{indicator}/values",
                params={"vintage": "2025", "level": "commune", "period": "2025"},
            ).json()
            row = next(v for v in body["values"] if v["code"] == small[0])
            assert row["value"] is None and row["status"] == "suppressed"
            csv_text = client.get(
                f"/indicators/{indicator}/values",
                params={"vintage": "2025", "level": "commune", "period": "2025", "f": "csv"},
            ).text
            line = next(ln for ln in csv_text.splitlines() if ln.startswith(small[0]))
            fields = next(csv.reader([line]))
            assert fields[4:6] == ["", "suppressed"] and str(int(small[1])) not in line
