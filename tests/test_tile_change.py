"""The change of an indicator since an earlier period as tile attributes (`compare=`): the
2009 census population carried onto the 2025 communes against the 2025 figure, read from
the published values only, so a hidden value of either period hides the change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from tests.helpers import wait_protected

TILES = "/collections/commune-2025/tiles/WebMercatorQuad"
HANOI_Z10 = "10/813/450"  # central Hà Nội (Ba Đình 00004 and its neighbours)
SAIGON_Z10 = "10/813/483"  # Hồ Chí Minh City, where some 2009 parts are not available
CHANGE = {"indicator": "population", "period": "2025", "compare": "2009"}
SHOWN = ("ok", "provisional")


def _features(client: TestClient, tile: str, **params: str) -> list[dict[str, Any]]:
    response = client.get(f"{TILES}/{tile}", params=params)
    assert response.status_code == 200, response.text
    layer = mapbox_vector_tile.decode(response.content).get("commune-2025", {"features": []})
    return layer["features"]  # type: ignore[no-any-return]


def _published(url: str, period: str) -> dict[str, tuple[float | None, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT code, value, status FROM published_value WHERE indicator = 'population'"
            " AND vintage = '2025' AND level = 'commune' AND period = %s",
            (period,),
        ).fetchall()
    return {code: (value, status) for code, value, status in rows}


def _worst(a: str, b: str) -> str:
    rank = ["ok", "provisional", "not_available", "suppressed"]
    return max(a, b, key=rank.index)


def _check(features: list[dict[str, Any]], url: str) -> dict[str, dict[str, Any]]:
    """Every feature's change equals what its two published values give."""
    now, then = _published(url, "2025"), _published(url, "2009")
    seen = {}
    for feature in features:
        p = feature["properties"]
        code = p["code"]
        (v1, s1), (v0, s0) = now[code], then[code]
        assert p["population_change_status"] == _worst(s1, s0), code
        if s1 in SHOWN and s0 in SHOWN:
            assert v1 is not None and v0 is not None
            assert p["population_change"] == pytest.approx(v1 - v0, rel=1e-12), code
            assert p["population_change_percent"] == pytest.approx(
                (v1 - v0) / abs(v0) * 100, rel=1e-12
            ), code
        else:  # (null properties are left out of a tile)
            assert "population_change" not in p and "population_change_percent" not in p, code
        seen[code] = p
    return seen


@pytest.fixture
def client(demo_db: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=demo_db)) as test_client:
        yield test_client


def test_tiles_carry_the_change_since_an_earlier_period(client: TestClient, demo_db: str) -> None:
    # the plain tile first: a tile with the change must not be served from its cache entry
    plain = _features(client, HANOI_Z10, indicator="population", period="2025")
    assert plain and all("population_change_status" not in f["properties"] for f in plain)
    seen = _check(_features(client, HANOI_Z10, **CHANGE), demo_db)
    ba_dinh = seen["00004"]
    assert ba_dinh["population_change_status"] == "ok" and ba_dinh["population_change"] > 0
    assert {"population", "population_status"} <= set(ba_dinh)
    # a 2025 commune with a 2009 part not available has no change, whatever its 2025 figure
    saigon = _check(_features(client, SAIGON_Z10, **CHANGE), demo_db)
    missing = [p for p in saigon.values() if p["population_change_status"] == "not_available"]
    assert missing and all("population" in p for p in missing)


def test_a_hidden_value_of_either_period_hides_the_change(client: TestClient, demo_db: str) -> None:
    before = _features(client, HANOI_Z10, **CHANGE)
    now, then = _published(demo_db, "2025"), _published(demo_db, "2009")
    # a commune of the tile that grew: a threshold between its two figures hides its 2009
    # figure (and whatever complementary suppression hides with it)
    code = next(
        f["properties"]["code"]
        for f in before
        if (now[f["properties"]["code"]][0] or 0) > (then[f["properties"]["code"]][0] or 1e18)
    )
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE indicator SET suppress_below = %s WHERE code = 'population'",
            ((now[code][0] + then[code][0]) / 2,),  # type: ignore[operator]
        )
    wait_protected(demo_db)  # (until then every population figure is withheld)
    after = _check(_features(client, HANOI_Z10, **CHANGE), demo_db)
    # (what else the rules hide with it is checked feature by feature above)
    assert after[code]["population_change_status"] == "suppressed", after[code]
    assert "population_change" not in after[code]
    assert "population_change_percent" not in after[code]
    assert len(after) == len(before)


def test_tilejson_and_bad_comparisons(client: TestClient) -> None:
    tilejson = client.get(f"{TILES}/tilejson.json", params=CHANGE).json()
    assert "compare=2009" in tilejson["tiles"][0]
    fields = tilejson["vector_layers"][0]["fields"]
    assert {"population_change", "population_change_percent", "population_change_status"} <= set(
        fields
    )
    for params, expected in (
        ({"compare": "2009"}, "compare needs indicator"),
        (CHANGE | {"compare": "1999"}, "no other period '1999'"),
        (CHANGE | {"compare": "2025"}, "no other period '2025'"),
    ):
        response = client.get(f"{TILES}/{HANOI_Z10}", params=params)
        assert response.status_code == 400, params
        assert response.json()["parameter"] == "compare" and expected in response.json()["detail"]
    assert client.get(f"{TILES}/{HANOI_Z10}", params={"compare": "20 09"}).status_code == 400


def _href(links: list[dict[str, Any]], rel: str, type_: str | None = None) -> str:
    """The path of the link with this relation (and media type)."""
    href = next(
        link["href"]
        for link in links
        if link["rel"].endswith(rel) and (type_ is None or link.get("type") == type_)
    )
    return str(href).replace("http://testserver", "")


def test_the_change_is_discovered_through_the_ogc_links(client: TestClient, demo_db: str) -> None:
    """A client that starts from /collections with indicator, period and compare reaches
    tiles carrying the change, and the tileset metadata lists exactly what they carry."""
    listed = client.get("/collections", params=CHANGE).json()["collections"]
    ids = {c["id"] for c in listed}
    # (the 2009 communes have no other period to compare 2009 with)
    assert "commune-2025" in ids and "commune-2009" not in ids
    collection = next(c for c in listed if c["id"] == "commune-2025")
    # items carry no change: their links leave compare out, and they answer
    items = _href(collection["links"], "items", "application/geo+json")
    assert "indicator=population" in items and "compare" not in items
    assert client.get(items, params={"limit": 1}).status_code == 200
    tilesets = client.get(_href(collection["links"], "tilesets-vector")).json()
    template = _href(tilesets["tilesets"][0]["links"], "item")
    assert "compare=2009" in template and "period=2025" in template
    metadata = client.get(_href(tilesets["tilesets"][0]["links"], "self")).json()
    assert _href(metadata["links"], "item") == template
    schema = metadata["layers"][0]["propertiesSchema"]["properties"]
    change = {f"population{s}" for s in ("_change", "_change_percent", "_change_status")}
    assert change <= set(schema)
    for name in change:
        assert "2009" in schema[name]["description"] and "Dân số" in schema[name]["description"]
    assert schema["population_change"]["type"] == "number"
    assert schema["population_change_status"]["type"] == "string"
    # the template's tile carries exactly the fields the metadata lists
    z, x, y = HANOI_Z10.split("/")
    tile = template.replace("{tileMatrix}", z).replace("{tileCol}", x).replace("{tileRow}", y)
    response = client.get(tile)
    assert response.status_code == 200, response.text
    layer = mapbox_vector_tile.decode(response.content)["commune-2025"]
    features = _check(layer["features"], demo_db)
    assert {key for p in features.values() for key in p} == set(schema)


def test_tilejson_describes_the_change_in_both_languages(client: TestClient) -> None:
    fields = client.get(f"{TILES}/tilejson.json", params=CHANGE).json()["vector_layers"][0][
        "fields"
    ]
    assert fields["population_change"].startswith("Population / Dân số")
    assert "2025 minus 2009" in fields["population_change"]
    assert "% of 2009" in fields["population_change_percent"]


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/collections/commune-2025/tiles/WebMercatorQuad", {"compare": "2009"}, "needs"),
        ("/collections/commune-2025/tiles", {"compare": "2009"}, "needs"),
        ("/collections/commune-2025", {"compare": "2009"}, "needs"),
        ("/collections/commune-2025/tiles/WebMercatorQuad", CHANGE | {"compare": "1999"}, "1999"),
        ("/collections/commune-2025/tiles", CHANGE | {"compare": "2025"}, "no other period"),
        ("/collections/commune-2025", CHANGE | {"compare": "1999"}, "1999"),
        ("/tileMatrixSets/WebMercatorQuad", {"compare": "2009"}, "needs"),
    ],
)
def test_bad_comparisons_in_the_metadata(
    client: TestClient, path: str, params: dict[str, str], expected: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["parameter"] == "compare" and expected in response.json()["detail"]
