"""Class limits in legends (not of a change): written with the indicator's decimals, or with
up to two more where fewer would write different limits alike, the same for every limit,
in the page's legend and the map export's (PNG/PDF), in Vietnamese and English.

The scene: PAPI's first score of 2024 with every province within a hundredth of 5 (a
narrow spread, as a classification within a province or a view often meets); its equal
intervals are a quarter of a hundredth wide, so at the indicator's two decimals the
legend read "5,00 – 5,00", "5,00 – 5,00", "5,00 – 5,01" …"""

from __future__ import annotations

import io
import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest

from geo_service.outputs import cartography as carto
from geo_service.outputs.maps import _notes, legend_entries
from tests.browser import Viewer
from tests.conftest import PgCluster, serve

QUERY = {
    "collection": "province-2019",
    "indicator": "papi_sc11",
    "period": "2024",
    "method": "equal_interval",
    "k": "5",
}
PAGE = "vintage=2019&level=province&indicator=papi_sc11&period=2024&method=equal_interval&k=5"


def _body(limits: list[float]) -> dict[str, Any]:
    return {
        "classes": [
            {"lower": lo, "upper": up, "colour": "#ffffff", "count": 1}
            for lo, up in zip(limits, limits[1:], strict=False)
        ],
        "no_value": {},
    }


def _ranges(entries: list[carto.LegendEntry]) -> list[str]:
    return [e.label.split("  (")[0] for e in entries[:-2]]  # (less the no-value swatches)


def test_export_legend_writes_enough_decimals_to_tell_limits_apart() -> None:
    narrow = _body([5.0, 5.002, 5.004, 5.006, 5.008, 5.010])
    assert _ranges(legend_entries(narrow, 2, "vi")) == [
        "5,000 – 5,002",
        "5,002 – 5,004",
        "5,004 – 5,006",
        "5,006 – 5,008",
        "5,008 – 5,010",
    ]
    assert _ranges(legend_entries(narrow, 2, "en"))[1] == "5.002 – 5.004"
    # limits apart at the indicator's decimals keep them (density: one decimal)
    wide = _body([12.3, 250.0, 1234.56, 8354.6955, 42000.0])
    assert _ranges(legend_entries(wide, 1, "en")) == [
        "12.3 – 250.0",
        "250.0 – 1,234.6",
        "1,234.6 – 8,354.7",
        "8,354.7 – 42,000.0",
    ]
    # at most two more: limits a float's noise apart are not written with ten decimals
    noise = _body([1.0, 1.0 + 1e-9, 2.0, 3.0])
    assert _ranges(legend_entries(noise, 0, "en"))[0] == "1.00 – 1.00"
    # the standard deviations' mean and σ with the limits' decimals (as the page's legend)
    sigma = {**narrow, "mean": 5.0051, "sd": 0.0032}
    assert _notes(sigma, 2, "vi")[0] == "trung bình 5,005, độ lệch chuẩn 0,003"
    # and never "−0": a limit that rounds to zero is 0
    assert _ranges(legend_entries(_body([-0.0004, 0.5, 1.0]), 2, "vi"))[0] == "0,00 – 0,50"


@pytest.fixture(scope="module")
def narrow(pg: PgCluster, demo_template: str) -> Iterator[str]:
    """A live service whose provinces' 2024 PAPI score 1.1 all lie within 5 … 5.0124."""
    url = pg.create_database(demo_template)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE indicator_value AS t SET value = 5 + 0.0002 * (r.n - 1) FROM (SELECT code,"
            " row_number() OVER (ORDER BY code) AS n FROM indicator_value WHERE indicator ="
            " 'papi_sc11' AND vintage = '2019' AND level = 'province' AND period = '2024'"
            " AND status = 'ok') r WHERE t.indicator = 'papi_sc11' AND t.vintage = '2019'"
            " AND t.level = 'province' AND t.period = '2024' AND t.code = r.code"
        )
    try:
        with serve(url) as live:
            yield live
    finally:
        pg.drop_database(url)


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_page_and_export_legends_tell_narrow_limits_apart(
    browser: Any, narrow: str, lang: str
) -> None:
    with urllib.request.urlopen(f"{narrow}/maps/choropleth?{urlencode(QUERY)}") as answer:
        classes = json.load(answer)["classes"]
    assert classes[0]["lower"] == pytest.approx(5.0) and classes[-1]["upper"] < 5.02
    limits = [(c["lower"], c["upper"]) for c in classes]
    # at the indicator's two decimals the limits read alike ...
    assert len({f"{v:.2f}" for pair in limits for v in pair}) < len(limits) + 1
    # ... at three they are told apart: what both legends must write
    expected = [" – ".join(f"{v:.3f}" for v in pair) for pair in limits]
    if lang == "vi":
        expected = [e.replace(".", ",") for e in expected]
    viewer = Viewer(browser, narrow)
    try:
        viewer.open(f"{PAGE}&lang={lang}")
        viewer.page.wait_for_selector(".gv-legend .gv-range")
        ranges = viewer.js(
            "[...document.querySelectorAll('.gv-legend .gv-range')].map(r => r.textContent)"
        )
        assert ranges == expected, ranges
        viewer.screenshot(f"legend-narrow-limits-{lang}")
        if lang == "vi":
            phone = Viewer(browser, narrow, 390, 844)
            try:
                phone.open(f"{PAGE}&lang=vi")
                phone.page.wait_for_selector(".gv-legend .gv-range")
                phone.screenshot("legend-narrow-limits-vi-phone")
            finally:
                phone.close()
        assert not viewer.errors, viewer.errors
    finally:
        viewer.close()
    from pypdf import PdfReader

    for fmt in ("pdf", "png"):
        query = urlencode({**QUERY, "format": fmt, "lang": lang})
        with urllib.request.urlopen(f"{narrow}/maps/export?{query}") as answer:
            assert answer.status == 200
            content = answer.read()
        if fmt == "pdf":
            text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages)
            # the same limits as the page's legend, each with its class's count
            found = re.findall(r"5[,.]\d{3} – 5[,.]\d{3}", text)
            assert found == expected, text
