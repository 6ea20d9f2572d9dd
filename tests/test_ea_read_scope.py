"""One EA read policy: with private reads, a user reads the EAs of their scope through
every route (items, one item, history, coverage, tiles, downloads, field maps, map books,
the census organisation); an admin and a viewer without a scope read all (issue #22)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from geo_core import grid
from geo_core.errors import InvalidParameter
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.users import add_user

ITEMS = "/collections/enumeration-areas/items"
HANOI = "00004"  # Phường Ba Đình, province 01


class Office:
    """A service with private reads, EAs in Hà Nội and in Hồ Chí Minh City, and users."""

    def __init__(self, client: TestClient, tokens: dict[str, str], hcm: str):
        self.client, self.tokens, self.hcm = client, tokens, hcm

    def get(self, user: str, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return self.client.get(path, params=params, headers=headers)


@pytest.fixture
def office(demo_db: str, tmp_path: Path) -> Iterator[Office]:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT code FROM admin_unit WHERE level = 'commune' AND vintage = '2025'"
            " AND parent_code = '79' ORDER BY ST_Area(geom) LIMIT 1"
        ).fetchone()
        assert row is not None
        tokens = {
            "hanoi": add_user(conn, "lan", "editor", ["01"]),
            "hcm": add_user(conn, "minh", "editor", ["79"]),
            "hcm_commune": add_user(conn, "vy", "viewer", [row[0]]),
            "national": add_user(conn, "quoc", "viewer", []),
            "admin": add_user(conn, "boss", "admin", []),
        }
    settings = ServiceSettings(
        home=tmp_path, public_reads=False, tile_cache="sqlite", tile_cache_path=tmp_path / "t"
    )
    with TestClient(create_app(settings, db_url=demo_db)) as client:
        found = Office(client, tokens, row[0])
        for user, commune in (("hanoi", HANOI), ("hcm", found.hcm)):
            made = client.post(
                f"/communes/{commune}/ea-generate",
                headers={"Authorization": f"Bearer {tokens[user]}"},
            )
            assert made.status_code == 201 and made.json()["created"] > 0, made.text
        yield found


def _codes(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {f["properties"]["commune_code"] for f in response.json()["features"]}


def _refused(response: Any, parameter: str = "commune") -> None:
    assert response.status_code == 403, response.text
    assert response.json()["parameter"] == parameter


def test_items_item_history_and_collection_follow_the_scope(office: Office) -> None:
    assert _codes(office.get("hcm", ITEMS)) == {office.hcm}
    assert _codes(office.get("hanoi", ITEMS)) == {HANOI}
    assert _codes(office.get("national", ITEMS)) == {HANOI, office.hcm}
    assert _codes(office.get("admin", ITEMS)) == {HANOI, office.hcm}
    assert _codes(office.get("hcm_commune", ITEMS)) == {office.hcm}
    _refused(office.get("hcm", ITEMS, commune=HANOI))
    hanoi_ea = office.get("hanoi", ITEMS).json()["features"][0]["id"]
    _refused(office.get("hcm", f"{ITEMS}/{hanoi_ea}"))
    _refused(office.get("hcm", f"{ITEMS}/{hanoi_ea}/history"))
    assert office.get("hanoi", f"{ITEMS}/{hanoi_ea}/history").status_code == 200
    _refused(office.get("hcm", f"/communes/{HANOI}/ea-coverage"), "code")
    assert office.get("hanoi", f"/communes/{HANOI}/ea-coverage").status_code == 200
    mine = office.get("hcm", "/collections/enumeration-areas").json()["numberOfItems"]
    every = office.get("admin", "/collections/enumeration-areas").json()["numberOfItems"]
    assert 0 < mine < every
    listed = office.get("hcm", "/collections").json()["collections"]
    assert [c["numberOfItems"] for c in listed if c["id"] == "enumeration-areas"] == [mine]


def test_downloads_field_maps_and_map_books_follow_the_scope(office: Office) -> None:
    csv = office.get("hcm", ITEMS, f="csv")
    assert csv.status_code == 200 and HANOI not in csv.text and office.hcm in csv.text
    _refused(office.get("hcm", ITEMS, f="gpkg", commune=HANOI))
    hanoi_ea = office.get("hanoi", ITEMS).json()["features"][0]["id"]
    _refused(office.get("hcm", f"{ITEMS}/{hanoi_ea}/field-map.pdf"))
    _refused(office.get("hcm", f"/communes/{HANOI}/ea-map-book.pdf"), "code")


def test_one_eas_scope_follows_its_own_boundary_vintage(office: Office, demo_db: str) -> None:
    # a later boundary vintage puts code 00004 under Hồ Chí Minh City: the EAs drawn on the
    # 2025 commune still belong to Hà Nội's readers, as the list of EAs already says
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute("INSERT INTO vintage (id, valid_from) VALUES ('2026', '2026-07-01')")
        conn.execute(
            "INSERT INTO admin_unit (vintage, level, code, parent_code, name, search_name,"
            " unit_type, area_km2, geom) SELECT '2026', level, code, '79', name, search_name,"
            " unit_type, area_km2, geom FROM admin_unit"
            " WHERE vintage = '2025' AND level = 'commune' AND code = %s",
            (HANOI,),
        )
    hanoi_ea = office.get("hanoi", ITEMS).json()["features"][0]["id"]
    assert _codes(office.get("hanoi", ITEMS)) == {HANOI}
    assert _codes(office.get("hcm", ITEMS)) == {office.hcm}
    for path in (f"{ITEMS}/{hanoi_ea}", f"{ITEMS}/{hanoi_ea}/history"):
        assert office.get("hanoi", path).status_code == 200, path
        _refused(office.get("hcm", path))
    _refused(office.get("hcm", f"{ITEMS}/{hanoi_ea}/field-map.pdf"))


def test_census_organisation_follows_the_eas_own_boundary_vintage(
    office: Office, demo_db: str
) -> None:
    # as above: a later vintage gives code 00004 to Hồ Chí Minh City, while the round's EAs
    # lie in the 2025 commune of Hà Nội (before, Hồ Chí Minh City's editor organised them
    # and Hà Nội's was refused)
    hanoi_ea = office.get("hanoi", ITEMS).json()["features"][0]["properties"]["code"]
    with psycopg.connect(demo_db, autocommit=True) as conn:
        hcm_supervisor = add_user(conn, "thu", "supervisor", ["79"])
        conn.execute("INSERT INTO vintage (id, valid_from) VALUES ('2026', '2026-07-01')")
        conn.execute(
            "INSERT INTO admin_unit (vintage, level, code, parent_code, name, search_name,"
            " unit_type, area_km2, geom) SELECT '2026', level, code, '79', name, search_name,"
            " unit_type, area_km2, geom FROM admin_unit"
            " WHERE vintage = '2025' AND level = 'commune' AND code = %s",
            (HANOI,),
        )

    def send(user: str, method: str, path: str, body: Any) -> Any:
        # (the areas as read: a write in scope gets past If-Match to do its work)
        headers = {"Authorization": f"Bearer {office.tokens[user]}", "If-Match": "*"}
        return office.client.request(method, path, json=body, headers=headers)

    area = {"eas": [hanoi_ea]}
    assignment = {"assignments": [{"ea": hanoi_ea, "enumerator": None}]}
    staff = {"code": "E1", "name": "An", "role": "enumerator", "scope": HANOI}
    for method, path, body in (
        ("POST", f"/communes/{HANOI}/supervisor-areas", area),
        ("PUT", f"/communes/{HANOI}/assignments", assignment),
        ("POST", "/census/2029/staff", staff),
    ):
        refused = send("hcm", method, path, body)
        assert refused.status_code == 403, (path, refused.text)
        assert send("hanoi", method, path, body).status_code in (200, 201), path
    approve = office.client.post(
        f"/communes/{HANOI}/ea-approve", headers={"Authorization": f"Bearer {hcm_supervisor}"}
    )
    assert approve.status_code == 403, approve.text
    batch = {"areas": [{"eas": [hanoi_ea]}]}
    refused = send("hcm", "POST", f"/communes/{HANOI}/supervisor-areas/batch", batch)
    assert refused.status_code == 403, refused.text
    for path in ("supervisor-areas/proposal", "assignments/proposal"):
        refused = send("hcm", "POST", f"/communes/{HANOI}/{path}", {})
        assert refused.status_code == 403, (path, refused.text)
        assert send("hanoi", "POST", f"/communes/{HANOI}/{path}", {}).status_code == 200, path
    for path in ("supervisor-areas", "workload", "ea-lines", "ea-coverage"):
        _refused(office.get("hcm", f"/communes/{HANOI}/{path}"), "code")
        assert office.get("hanoi", f"/communes/{HANOI}/{path}").status_code == 200
    for path in ("progress", "review", "staff"):
        _refused(office.get("hcm", f"/census/2029/{path}", scope=HANOI), "scope")
        assert office.get("hanoi", f"/census/2029/{path}", scope=HANOI).status_code == 200
    # the 2026 commune is Hồ Chí Minh City's, and none of the round's EAs lie in it
    later = office.get("hcm", f"/communes/{HANOI}/ea-coverage", vintage="2026")
    assert later.status_code == 200 and later.json()["eas"] == 0, later.text


def test_census_organisation_reads_follow_the_scope(office: Office) -> None:
    for path in ("supervisor-areas", "workload", "ea-lines"):
        _refused(office.get("hcm", f"/communes/{HANOI}/{path}"), "code")
        assert office.get("hanoi", f"/communes/{HANOI}/{path}").status_code == 200
    for path in ("progress", "review", "staff"):
        _refused(office.get("hcm", f"/census/2029/{path}", scope="01"), "scope")
        _refused(office.get("hcm", f"/census/2029/{path}", scope=HANOI), "scope")
        assert office.get("hcm", f"/census/2029/{path}", scope=office.hcm).status_code == 200
        assert office.get("admin", f"/census/2029/{path}", scope="01").status_code == 200
    communes = {r["code"] for r in office.get("hcm", "/census/2029/progress").json()["rows"]}
    assert office.hcm in communes and HANOI not in communes


def _tile_communes(office: Office, user: str, path: str) -> set[str]:
    got = office.get(user, path)
    assert got.status_code == 200, got.text
    assert got.headers["cache-control"].startswith("private")
    layers = mapbox_vector_tile.decode(got.content) if got.content else {}
    features = layers.get("enumeration-areas", {}).get("features", [])
    # (a tile carries the EA's code, the commune's followed by the serial, not the commune)
    return {f["properties"]["code"].split("-")[0] for f in features}


def test_ea_tiles_hold_only_the_readers_eas_whatever_was_cached(office: Office) -> None:
    box = office.get("admin", f"{ITEMS}", commune=HANOI).json()["features"][0]["geometry"]
    lon, lat = box["coordinates"][0][0][0]
    z, (x, y) = 12, next(grid.tiles_in((lon, lat, lon, lat), 12))
    tile = f"/collections/enumeration-areas/tiles/WebMercatorQuad/{z}/{x}/{y}"
    # the admin's full tile first, so that a shared cache would now hold it
    assert _tile_communes(office, "admin", tile) == {HANOI}
    assert _tile_communes(office, "hanoi", tile) == {HANOI}
    assert _tile_communes(office, "hcm", tile) == set()
    assert _tile_communes(office, "hcm_commune", tile) == set()
    assert _tile_communes(office, "national", tile) == {HANOI}
    tilejson = office.get(
        "hcm", "/collections/enumeration-areas/tiles/WebMercatorQuad/tilejson.json"
    )
    assert tilejson.status_code == 200
    west, south, east, north = tilejson.json()["bounds"]
    assert not (west <= lon <= east and south <= lat <= north)


def test_an_admin_takes_no_scope(demo_db: str, tmp_path: Path) -> None:
    # an admin reads and changes everything: a stored scope would promise a limit nothing keeps
    with psycopg.connect(demo_db, autocommit=True) as conn:
        with pytest.raises(InvalidParameter, match="admin") as refused:
            add_user(conn, "scoped", "admin", ["01"])
        assert refused.value.parameter == "--scope"
        boss = {"Authorization": f"Bearer {add_user(conn, 'boss', 'admin', [])}"}
        add_user(conn, "lan", "editor", ["01"])
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=demo_db)) as client:
        body = {"name": "hoa", "role": "admin", "scope": ["79"], "password": "long enough"}
        made = client.post("/admin/users", json=body, headers=boss)
        assert made.status_code == 400 and made.json()["parameter"] == "scope"
        promoted = client.patch("/admin/users/lan", json={"role": "admin"}, headers=boss)
        assert promoted.status_code == 400 and promoted.json()["parameter"] == "scope"
        cleared = {"role": "admin", "scope": []}
        assert client.patch("/admin/users/lan", json=cleared, headers=boss).status_code == 200
        listed = {u["name"]: u for u in client.get("/admin/users", headers=boss).json()["users"]}
        assert listed["lan"]["role"] == "admin" and listed["lan"]["scope"] == []


def test_ea_queryables_and_filters_follow_the_scope(office: Office) -> None:
    """The EA collection has queryables and takes CQL2 filters (OGC API - Features Part 3),
    read as its items are: a filter selects only among the EAs the reader may read."""
    anonymous = office.client.get("/collections/enumeration-areas/queryables")
    assert anonymous.status_code == 401, anonymous.text
    schema = office.get("hcm", "/collections/enumeration-areas/queryables").json()
    assert schema["properties"]["population"]["type"] == "number"
    assert schema["properties"]["status"]["enum"][0] == "draft"
    assert schema["properties"]["geometry"]["x-ogc-role"] == "primary-geometry"
    links = office.get("hcm", "/collections/enumeration-areas").json()["links"]
    assert any(link["href"].endswith("/enumeration-areas/queryables") for link in links)
    every = office.get("admin", ITEMS).json()["features"]
    populations = sorted(f["properties"]["population"] or 0 for f in every)
    middle = populations[len(populations) // 2]
    # the same selection done in Python, over every EA, then over the reader's
    expected = {f["id"] for f in every if (f["properties"]["population"] or 0) > middle}
    assert 0 < len(expected) < len(every)
    dense = office.get("admin", ITEMS, filter=f"population > {middle}").json()
    assert {f["id"] for f in dense["features"]} == expected
    assert dense["numberMatched"] == len(expected)
    theirs = office.get("hcm", ITEMS, filter=f"population > {middle}").json()["features"]
    assert {f["id"] for f in theirs} == {
        f["id"] for f in every if f["id"] in expected and f["properties"]["commune_code"] != HANOI
    }
    # a filter naming the other province's commune finds nothing it may not read
    assert office.get("hcm", ITEMS, filter=f"commune_code = '{HANOI}'").json()["features"] == []
    one = every[0]["properties"]["code"]
    as_json = json.dumps({"op": "=", "args": [{"property": "code"}, one]})
    found = office.get("admin", ITEMS, filter=as_json, **{"filter-lang": "cql2-json"})
    assert [f["properties"]["code"] for f in found.json()["features"]] == [one]
    near = office.get("admin", ITEMS, filter="S_INTERSECTS(geometry, POINT(105.83 21.03))")
    assert near.status_code == 200, near.text
    csv = office.get("admin", ITEMS, f="csv", filter=f"population > {middle}")
    assert csv.status_code == 200 and csv.headers["OGC-NumberMatched"] == str(len(expected))
    for bad in ("nosuch = 1", "status > 3", "population >"):
        refused = office.get("admin", ITEMS, filter=bad)
        assert refused.status_code == 400 and refused.json()["parameter"] == "filter", bad
        assert "position" in refused.json(), bad


def _give_hanoi_code_to_hcm(demo_db: str) -> None:
    """A later boundary vintage (2026) in which code 00004 lies in Hồ Chí Minh City."""
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute("INSERT INTO vintage (id, valid_from) VALUES ('2026', '2026-07-01')")
        conn.execute(
            "INSERT INTO admin_unit (vintage, level, code, parent_code, name, search_name,"
            " unit_type, area_km2, geom) SELECT '2026', level, code, '79', name, search_name,"
            " unit_type, area_km2, geom FROM admin_unit"
            " WHERE vintage = '2025' AND level = 'commune' AND code = %s",
            (HANOI,),
        )


def test_the_lines_near_a_commune_are_read_as_its_eas(office: Office, demo_db: str) -> None:
    # the roads, rivers and railways the editor draws along answered anyone signed in, of
    # any province, for any commune
    _give_hanoi_code_to_hcm(demo_db)
    for user, mine, theirs in (("hanoi", HANOI, office.hcm), ("hcm", office.hcm, HANOI)):
        got = office.get(user, f"/communes/{mine}/lines")
        assert got.status_code == 200 and got.json()["type"] == "FeatureCollection", got.text
        _refused(office.get(user, f"/communes/{theirs}/lines"), "code")
    assert office.get("admin", f"/communes/{HANOI}/lines", round="2029").status_code == 200
    assert office.client.get(f"/communes/{HANOI}/lines").status_code == 401


def test_progress_lists_each_commune_as_the_rounds_eas_know_it(
    office: Office, demo_db: str
) -> None:
    # progress took the newest vintage holding communes (2026): Hà Nội's editor lost the
    # commune and its EAs, and Hồ Chí Minh City's got the commune's row
    drawn = len(office.get("hanoi", ITEMS, commune=HANOI).json()["features"])
    _give_hanoi_code_to_hcm(demo_db)
    hanoi = office.get("hanoi", "/census/2029/progress")
    assert hanoi.status_code == 200, hanoi.text
    rows = {r["code"]: r for r in hanoi.json()["rows"]}
    assert rows[HANOI]["eas"] == drawn > 0 and hanoi.json()["communes"] > 1
    assert [p["code"] for p in hanoi.json()["provinces"]] == ["01"]
    hcm = office.get("hcm", "/census/2029/progress").json()
    assert HANOI not in {r["code"] for r in hcm["rows"]} and office.hcm in {
        r["code"] for r in hcm["rows"]
    }
    every = office.get("admin", "/census/2029/progress").json()
    assert (
        every["totals"]["eas"]
        == office.get("admin", "/collections/enumeration-areas").json()["numberOfItems"]
    )
    # a vintage asked for is still read in that vintage, where none of the round's EAs lie
    later = office.get("hcm", "/census/2029/progress", vintage="2026").json()
    assert {r["code"]: r["eas"] for r in later["rows"]} == {HANOI: 0}
