"""The attack of issue #17 through the HTTP API of a live service, on a small linked table:
no hidden cell may be recovered exactly or within ±10 % (bench/disclosure_attack.py runs it
on the issue's scenario)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg

from bench.disclosure_attack import attack, check_items, read_published, score
from indicators.protect import refresh
from indicators.store import carry_over
from tests.conftest import serve
from tests.test_disclosure import (
    COMMUNES,
    TB_F,
    TB_M,
    _catalogue,
    _communes_with_total,
    _province_totals,
    _store,
    country,  # noqa: F401 (a fixture)
)

PERIODS = ["2024", "2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]
POP: dict[str, float] = {
    "00001": 12000,
    "00002": 4000,
    "00003": 9000,
    "00004": 15000,
    "00005": 7000,
    "00006": 8000,
    "00007": 20000,
}
# the published crosswalk of the fixture: provinces 01 and 02 of vintage a make 91 of b
CROSSWALK = [
    {
        "from_vintage": "a",
        "to_vintage": "b",
        "from_level": "province",
        "from_code": p,
        "to_level": "province",
        "to_code": "91",
        "relation": "whole",
        "area_share": "1",
        "population_share": "1",
    }
    for p in COMMUNES
]


def _scenario(conn: psycopg.Connection, tmp_path: Path) -> None:
    """The issue's publication in small: population hidden below 6,000; TB cases in total,
    by sex and by quarter hidden below 10; a TB rate of the 2025 population; maternal
    deaths on both vintages; new HIV cases carried over, then their threshold raised."""
    _catalogue(
        conn,
        tmp_path,
        "pop,Dân số,Population,count,,,,6000,,,,,",
        "tb_m,Lao nam,TB male,count,,,,10,,,sum,,",
        "tb_f,Lao nữ,TB female,count,,,,10,,,sum,,",
        "tb,Lao,TB cases,count,,,,10,,tb_m + tb_f,sum,,",
        "tb_rate,Tỷ lệ lao,TB rate,rate,tb,pop,100000,,,,,2025,",
        "deaths,Tử vong mẹ,Maternal deaths,count,,,,10,,,,,",
        "hiv,HIV mới,New HIV cases,count,,,,5,,,,,",
    )
    _store(conn, "pop", "a", "commune", _communes_with_total(POP, "2025"))
    _store(conn, "pop", "a", "province", _province_totals(POP, "2025"))
    rng = np.random.default_rng(17)
    by_sex: dict[str, dict[str, dict[str, float]]] = {}
    for code, yearly in (("tb_m", TB_M), ("tb_f", TB_F)):
        quarters = {
            c: rng.multinomial(int(yearly[c]), [0.25] * 4).astype(float).tolist() for c in yearly
        }
        by_sex[code] = {
            p: {c: (sum(quarters[c]) if p == "2024" else quarters[c][i - 1]) for c in yearly}
            for i, p in enumerate(PERIODS)
        }
    by_sex["tb"] = {
        p: {c: by_sex["tb_m"][p][c] + by_sex["tb_f"][p][c] for c in TB_M} for p in PERIODS
    }
    for code, periods in by_sex.items():
        communes: dict[tuple[str, str], float] = {}
        provinces: dict[tuple[str, str], float] = {}
        for p, per in periods.items():
            communes |= _communes_with_total(per, p)
            provinces |= _province_totals(per, p)
        _store(conn, code, "a", "commune", communes)
        _store(conn, code, "a", "province", provinces)
    _store(
        conn,
        "tb_rate",
        "a",
        "commune",
        {(c, p): by_sex["tb"][p][c] / POP[c] * 100000 for p in PERIODS for c in POP},
    )
    _store(conn, "deaths", "a", "province", {("01", "2023"): 6, ("02", "2023"): 31})
    _store(conn, "deaths", "b", "province", {("91", "2023"): 37})
    _store(conn, "hiv", "a", "province", {("01", "2022"): 8, ("02", "2022"): 45})
    carry_over(conn, "hiv", "a", "b", "province", "area")
    conn.execute("UPDATE indicator SET suppress_below = 10 WHERE code = 'hiv'")  # raised
    refresh(conn)  # (what the service's worker does after the write)


def test_the_attack_through_the_http_api_recovers_no_hidden_cell(
    country: psycopg.Connection,  # noqa: F811
    tmp_path: Path,
    empty_db: str,
) -> None:
    _scenario(country, tmp_path)
    truth = {
        tuple(r[:5]): float(r[5])
        for r in country.execute(
            "SELECT indicator, vintage, level, code, period, value FROM indicator_value"
            " WHERE value IS NOT NULL"
        )
    }
    with serve(empty_db) as url:
        published = read_published(url)
        assert check_items(url, published) > 0
        # the attacker is not toothless: with the complementary cells published by hand,
        # the same attack recovers the small counts
        country.execute("DELETE FROM suppressed_value WHERE reason = 'complementary'")
        weakened = read_published(url)
    assert not published.mismatches
    hidden = published.hidden()
    # every family of the issue has hidden cells for the attacker to try
    assert {k[0] for k in hidden} >= {"pop", "tb_m", "tb_f", "tb", "tb_rate", "deaths", "hiv"}
    assert ("tb_m", "a", "commune", "00002", "2024") in hidden
    bounds, system = attack(published, CROSSWALK)
    assert set(system.kinds) >= {
        "hierarchy",
        "periods",
        "breakdowns",
        "quotients",
        "two vintages",
        "carry-over",
    }
    counts = {"pop", "tb_m", "tb_f", "tb", "deaths", "hiv"}
    result = score(bounds, truth, counts)
    assert result.no_truth == 0
    assert not result.exact, [(b.key, b.lower, b.upper) for b in result.exact]
    assert not result.within_10, [(b.key, b.lower, b.upper) for b in result.within_10]
    weak = score(attack(weakened, CROSSWALK)[0], truth, counts)
    assert {b.key for b in weak.exact} >= {
        ("tb_m", "a", "commune", "00002", "2024"),
        ("deaths", "a", "province", "01", "2023"),
    }
