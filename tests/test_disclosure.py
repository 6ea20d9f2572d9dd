"""Disclosure control across linked tables: the attacks of issue #17, each by an independent
linear-programming attacker that reads only what is published."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import psycopg
import pytest
from scipy.optimize import linprog
from shapely.geometry import box

from boundaries.checks import FieldMap
from boundaries.load import LoadOptions, load_boundaries
from boundaries.vintages import Vintage, add_vintage
from indicators.catalogue import load_catalogue
from indicators.protect import refresh
from indicators.store import carry_over, store_values
from indicators.values import ValueRow

Key = tuple[str, str, str, str, str]  # (indicator, vintage, level, code, period)
Equation = list[tuple[Key, float]]  # Σ coefficient × cell = 0

COMMUNES = {"01": ["00001", "00002", "00003", "00004"], "02": ["00005", "00006", "00007"]}
HEAD = (
    "code,name_vi,name_en,kind,numerator,denominator,multiplier,suppress_below,"
    "disclosure_basis,sum_of,period_aggregation,denominator_period,relation_tolerance"
)


@pytest.fixture
def country(conn: psycopg.Connection, tmp_path: Path) -> psycopg.Connection:
    """Vintage 'a': provinces 01 and 02 with communes; vintage 'b': province 91 = 01 + 02."""
    import geopandas as gpd

    add_vintage(conn, Vintage("a", date(2000, 1, 1), date(2025, 7, 1)))
    add_vintage(conn, Vintage("b", date(2025, 7, 1)))
    spans = {"01": (0, 4), "02": (4, 7)}
    layers = {
        ("a", "province"): [(p, None, box(x0, 0, x1, 1)) for p, (x0, x1) in spans.items()],
        ("a", "commune"): [
            (c, p, box(spans[p][0] + i, 0, spans[p][0] + i + 1, 1))
            for p, codes in COMMUNES.items()
            for i, c in enumerate(codes)
        ],
        ("b", "province"): [("91", None, box(0, 0, 7, 1))],
    }
    for (vintage, level), units in layers.items():
        path = tmp_path / f"{vintage}-{level}.geojson"
        gpd.GeoDataFrame(
            {
                "code": [u[0] for u in units],
                "name": [u[0] for u in units],
                "parent": [u[1] or "" for u in units],
            },
            geometry=[u[2] for u in units],
            crs="EPSG:4326",
        ).to_file(path)
        fields = FieldMap("code", "name", "parent" if level == "commune" else None)
        load_boundaries(conn, [path], LoadOptions(vintage, level, fields))
    conn.execute(
        "INSERT INTO crosswalk VALUES ('a','province','01','b','province','91','whole',1,1),"
        " ('a','province','02','b','province','91','whole',1,1)"
    )
    return conn


def _catalogue(conn: psycopg.Connection, tmp_path: Path, *rows: str) -> None:
    path = tmp_path / "catalogue.csv"
    path.write_text("\n".join([HEAD, *rows]) + "\n", encoding="utf-8")
    load_catalogue(conn, path)


def _store(
    conn: psycopg.Connection,
    indicator: str,
    vintage: str,
    level: str,
    values: dict[tuple[str, str], float],
) -> None:
    store_values(
        conn,
        indicator,
        vintage,
        level,
        [ValueRow("t", code, period, v, "ok") for (code, period), v in values.items()],
        replace=True,
    )


def _communes_with_total(
    per_commune: dict[str, float], period: str
) -> dict[tuple[str, str], float]:
    return {(c, period): v for c, v in per_commune.items()}


def _province_totals(per_commune: dict[str, float], period: str) -> dict[tuple[str, str], float]:
    return {(p, period): sum(per_commune[c] for c in codes) for p, codes in COMMUNES.items()}


def _hierarchy(indicator: str, periods: list[str]) -> list[Equation]:
    return [
        [((indicator, "a", "province", p, t), -1.0)]
        + [((indicator, "a", "commune", c, t), 1.0) for c in codes]
        for p, codes in COMMUNES.items()
        for t in periods
    ]


def _published(conn: psycopg.Connection) -> dict[Key, float | None]:
    return {
        (i, v, lvl, c, p): value
        for i, v, lvl, c, p, value in conn.execute(
            "SELECT indicator, vintage, level, code, period, value FROM published_value"
        )
    }


def _raw(conn: psycopg.Connection) -> dict[Key, float]:
    return {
        (i, v, lvl, c, p): value
        for i, v, lvl, c, p, value in conn.execute(
            "SELECT indicator, vintage, level, code, period, value FROM indicator_value"
        )
    }


def attack(
    published: dict[Key, float | None], equations: list[Equation]
) -> dict[Key, tuple[float, float]]:
    """What the published values and the equations tell of each hidden cell: its interval,
    by linear programming (scipy's HiGHS), independent of the service's own engine."""
    unknown = sorted({k for eq in equations for k, _ in eq if published.get(k) is None})
    if not unknown:
        return {}
    column = {k: i for i, k in enumerate(unknown)}
    rows, rhs = [], []
    for eq in equations:
        row = np.zeros(len(unknown))
        constant = 0.0
        for key, coef in eq:
            if published.get(key) is None:
                row[column[key]] += coef
            else:
                constant -= coef * float(published[key])  # type: ignore[arg-type]
        if row.any():
            rows.append(row)
            rhs.append(constant)
    if not rows:
        return {k: (0.0, float("inf")) for k in unknown}
    result = {}
    for key, i in column.items():
        bounds = []
        for sign in (1, -1):
            c = np.zeros(len(unknown))
            c[i] = sign
            solved = linprog(
                c, A_eq=np.array(rows), b_eq=np.array(rhs), bounds=(0, None), method="highs"
            )
            if solved.status == 3:  # unbounded
                bounds.append(float("inf"))
            else:
                assert solved.status == 0, solved.message
                bounds.append(sign * solved.fun)
        result[key] = (bounds[0], bounds[1])
    return result


def recovered(
    raw: dict[Key, float], intervals: dict[Key, tuple[float, float]]
) -> dict[Key, tuple[float, float]]:
    """Hidden cells pinned exactly or within ±10 % of their value."""
    found = {}
    for key, (low, high) in intervals.items():
        if key not in raw:
            continue
        value = raw[key]
        if high - low < 1e-6 or (low >= 0.9 * value - 1e-9 and high <= 1.1 * value + 1e-9):
            found[key] = (low, high)
    return found


def _assert_safe(conn: psycopg.Connection, equations: list[Equation], small: list[Key]) -> None:
    published = _published(conn)
    assert small and all(published[k] is None for k in small), "small cells are hidden"
    found = recovered(_raw(conn), attack(published, equations))
    assert not found, f"recovered: {found}"


# --- the attack families ------------------------------------------------------------------------

TB_M = {"00001": 20, "00002": 8, "00003": 22, "00004": 31, "00005": 14, "00006": 27, "00007": 40}
TB_F = {"00001": 15, "00002": 17, "00003": 19, "00004": 26, "00005": 12, "00006": 30, "00007": 35}


def test_a_sex_split_gives_back_no_hidden_count(
    country: psycopg.Connection, tmp_path: Path
) -> None:
    _catalogue(
        country,
        tmp_path,
        "tb_m,Lao nam,TB male,count,,,,10,,,,,",
        "tb_f,Lao nữ,TB female,count,,,,10,,,,,",
        "tb,Lao,TB cases,count,,,,10,,tb_m + tb_f,,,",
    )
    total = {c: TB_M[c] + TB_F[c] for c in TB_M}
    for code, per in (("tb_m", TB_M), ("tb_f", TB_F), ("tb", total)):
        _store(country, code, "a", "commune", _communes_with_total(per, "2024"))
        _store(country, code, "a", "province", _province_totals(per, "2024"))
    equations = (
        _hierarchy("tb", ["2024"]) + _hierarchy("tb_m", ["2024"]) + _hierarchy("tb_f", ["2024"])
    )
    for lvl, codes in (("commune", list(TB_M)), ("province", list(COMMUNES))):
        equations += [
            [
                (("tb", "a", lvl, c, "2024"), -1.0),
                (("tb_m", "a", lvl, c, "2024"), 1.0),
                (("tb_f", "a", lvl, c, "2024"), 1.0),
            ]
            for c in codes
        ]
    _assert_safe(country, equations, [("tb_m", "a", "commune", "00002", "2024")])


def test_a_crosswalk_loaded_after_a_protection_is_protected_against(
    country: psycopg.Connection, tmp_path: Path
) -> None:
    # protected first without the crosswalk (the table's structure is kept in the process
    # under a hash of what it is built from: the crosswalk must not reuse it)
    links = country.execute("DELETE FROM crosswalk RETURNING *").fetchall()
    _catalogue(country, tmp_path, "deaths,Tử vong mẹ,Maternal deaths,count,,,,10,,,,,")
    _store(country, "deaths", "a", "province", {("01", "2023"): 6, ("02", "2023"): 31})
    _store(country, "deaths", "b", "province", {("91", "2023"): 37})
    assert _published(country)[("deaths", "a", "province", "02", "2023")] == 31
    with country.cursor() as cur:
        cur.executemany("INSERT INTO crosswalk VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", links)
    refresh(country)  # (what a running service does after the write)
    equations = [
        [
            (("deaths", "b", "province", "91", "2023"), -1.0),
            (("deaths", "a", "province", "01", "2023"), 1.0),
            (("deaths", "a", "province", "02", "2023"), 1.0),
        ]
    ]
    _assert_safe(country, equations, [("deaths", "a", "province", "01", "2023")])


@pytest.mark.parametrize("scheme", ["quarters", "months"])
def test_periods_summing_to_a_year_give_back_no_hidden_count(
    country: psycopg.Connection, tmp_path: Path, scheme: str
) -> None:
    _catalogue(country, tmp_path, "tb,Lao,TB cases,count,,,,10,,,sum,,")
    parts = (
        ["2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]
        if scheme == "quarters"
        else [
            f"2024-{m:02d}"
            for m in (1, 2, 3, 4)  # (a year of four months keeps the test small)
        ]
    )
    rng = np.random.default_rng(7)
    per_part = {p: {c: float(rng.integers(12, 40)) for c in TB_M} for p in parts}
    per_part[parts[1]]["00003"] = 4.0  # the small one
    values: dict[tuple[str, str], float] = {}
    for p, per in per_part.items():
        values |= _communes_with_total(per, p)
    if scheme == "months":  # the other eight months are zero
        for m in range(5, 13):
            values |= _communes_with_total(dict.fromkeys(TB_M, 0.0), f"2024-{m:02d}")
    year = {c: sum(per_part[p][c] for p in parts) for c in TB_M}
    values |= _communes_with_total(year, "2024")
    _store(country, "tb", "a", "commune", values)
    periods = sorted({p for _, p in values})
    equations = [
        [(("tb", "a", "commune", c, "2024"), -1.0)]
        + [(("tb", "a", "commune", c, p), 1.0) for p in periods if p != "2024"]
        for c in TB_M
    ]
    _assert_safe(country, equations, [("tb", "a", "commune", "00003", parts[1])])


def test_a_rate_and_its_numerator_of_another_period_give_back_no_denominator(
    country: psycopg.Connection, tmp_path: Path
) -> None:
    _catalogue(
        country,
        tmp_path,
        "pop,Dân số,Population,count,,,,6000,,,,,",
        "tb,Lao,TB cases,count,,,,,,,,,",
        "tb_rate,Tỷ lệ lao,TB rate,rate,tb,pop,100000,,,,,2025,",
    )
    pop = {
        "00001": 12000,
        "00002": 4000,
        "00003": 9000,
        "00004": 15000,
        "00005": 7000,
        "00006": 8000,
        "00007": 20000,
    }
    _store(country, "pop", "a", "commune", _communes_with_total(pop, "2025"))
    _store(country, "pop", "a", "province", _province_totals(pop, "2025"))
    for year in ("2023", "2024"):
        cases = {c: 20.0 + i for i, c in enumerate(pop)}
        _store(country, "tb", "a", "commune", _communes_with_total(cases, year))
        _store(
            country,
            "tb_rate",
            "a",
            "commune",
            {(c, year): cases[c] / pop[c] * 100000 for c in pop},
        )
    published = _published(country)
    small = ("pop", "a", "commune", "00002", "2025")
    assert published[small] is None
    # rate × numerator → denominator, for any period of the rate
    for year in ("2023", "2024"):
        for c in pop:
            rate = published[("tb_rate", "a", "commune", c, year)]
            cases = published[("tb", "a", "commune", c, year)]
            if rate and cases and published[("pop", "a", "commune", c, "2025")] is None:
                pytest.fail(f"population of {c} = {cases / rate * 100000:g} from the {year} rate")
    _assert_safe(country, _hierarchy("pop", ["2025"]), [small])


def test_the_same_period_on_two_vintages_gives_back_no_hidden_count(
    country: psycopg.Connection, tmp_path: Path
) -> None:
    _catalogue(country, tmp_path, "deaths,Tử vong mẹ,Maternal deaths,count,,,,10,,,,,")
    _store(country, "deaths", "a", "province", {("01", "2023"): 6, ("02", "2023"): 31})
    _store(country, "deaths", "b", "province", {("91", "2023"): 37})
    equations = [
        [
            (("deaths", "b", "province", "91", "2023"), -1.0),
            (("deaths", "a", "province", "01", "2023"), 1.0),
            (("deaths", "a", "province", "02", "2023"), 1.0),
        ]
    ]
    _assert_safe(country, equations, [("deaths", "a", "province", "01", "2023")])


def test_a_carried_over_series_is_protected_again_when_the_threshold_rises(
    country: psycopg.Connection, tmp_path: Path
) -> None:
    _catalogue(country, tmp_path, "hiv,HIV mới,New HIV cases,count,,,,5,,,,,")
    _store(country, "hiv", "a", "province", {("01", "2022"): 8, ("02", "2022"): 45})
    carry_over(country, "hiv", "a", "b", "province", "area")
    assert _published(country)[("hiv", "b", "province", "91", "2022")] == 53
    _catalogue(country, tmp_path, "hiv,HIV mới,New HIV cases,count,,,,10,,,,,")
    equations = [
        [
            (("hiv", "b", "province", "91", "2022"), -1.0),
            (("hiv", "a", "province", "01", "2022"), 1.0),
            (("hiv", "a", "province", "02", "2022"), 1.0),
        ]
    ]
    _assert_safe(country, equations, [("hiv", "a", "province", "01", "2022")])


def test_a_lowered_threshold_publishes_what_it_no_longer_hides(
    country: psycopg.Connection, tmp_path: Path
) -> None:
    """Lowering suppress_below kept the old, wider pattern (the former primary cells and
    their complements) until `disclosure protect --all`: the cells the operator lowered the
    threshold to publish stayed hidden."""
    row = "deaths,Tử vong,Deaths,count,,,,{},,,,,"
    per_commune: dict[str, float] = {"00001": 3, "00002": 7, "00003": 20, "00004": 30, "00005": 2}
    per_commune |= {"00006": 40, "00007": 50}
    _catalogue(country, tmp_path, row.format(5))
    _store(country, "deaths", "a", "commune", _communes_with_total(per_commune, "2023"))
    _store(country, "deaths", "a", "province", _province_totals(per_commune, "2023"))
    small = ("deaths", "a", "commune", "00001", "2023")
    smallest = ("deaths", "a", "commune", "00005", "2023")
    hidden_before = {k for k, v in _published(country).items() if v is None}
    assert {small, smallest} < hidden_before  # (and complements)
    _catalogue(country, tmp_path, row.format(3))  # 3 is no longer below the threshold
    published = _published(country)
    assert published[small] == 3 and published[smallest] is None
    hidden_after = {k for k, v in published.items() if v is None}
    assert hidden_after < hidden_before
    _assert_safe(country, _hierarchy("deaths", ["2023"]), [smallest])
    # exactly what a protection from scratch chooses
    refresh(country, everything=True)
    assert _published(country) == published
