"""Enumeration areas: roles and scopes, optimistic locking, rules, history, coverage."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import box, mapping, shape
from shapely.ops import polylabel

from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.users import add_user
from tests.helpers import fingerprint

ITEMS = "/collections/enumeration-areas/items"
EA_TABLES = ("enumeration_area", "ea_history")
COMMUNE = "00004"  # Phường Ba Đình, Hà Nội (province 01)


class Env:
    """A service over a fresh demo database, with users of every role."""

    def __init__(self, client: TestClient, url: str, tokens: dict[str, str]):
        self.client, self.url, self.tokens = client, url, tokens

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def commune(self, code: str = COMMUNE) -> Any:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT ST_AsBinary(geom) FROM commune_coverage WHERE vintage ="
                " '2025' AND code = %s",
                (code,),
            ).fetchone()
        assert row is not None
        return shapely.from_wkb(row[0])

    def create(self, geom: Any, user: str = "editor", **props: Any) -> Any:
        feature = {
            "type": "Feature",
            "geometry": mapping(geom),
            "properties": {"census_round": "2029", "commune_code": COMMUNE, **props},
        }
        return self.client.post(ITEMS, json=feature, headers=self.auth(user))

    def act(self, ea_id: int, action: str, user: str, reason: str | None = None) -> Any:
        """submit, approve or reject the EA as it is now (with its ETag)."""
        etag = self.client.get(f"{ITEMS}/{ea_id}").headers["ETag"]
        return self.client.post(
            f"{ITEMS}/{ea_id}/{action}",
            params={"reason": reason} if reason else None,
            headers={**self.auth(user), "If-Match": etag},
        )

    def tables(self) -> dict[str, tuple[int, str]]:
        with psycopg.connect(self.url) as conn:
            return fingerprint(conn, EA_TABLES)


@pytest.fixture
def env(demo_db: str, tmp_path: Path) -> Iterator[Env]:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        tokens = {
            "viewer": add_user(conn, "vi", "viewer", []),
            "editor": add_user(conn, "ed", "editor", ["01"]),
            "editor2": add_user(conn, "ed2", "editor", [COMMUNE]),
            "outsider": add_user(conn, "out", "editor", ["79"]),
            "supervisor": add_user(conn, "sup", "supervisor", ["01"]),
            "supervisor2": add_user(conn, "sup2", "supervisor", ["01"]),
            "admin": add_user(conn, "adm", "admin", []),
        }
        stored = conn.execute("SELECT token_hash FROM app_token").fetchall()
        assert all(len(h) == 64 and h not in tokens.values() for (h,) in stored)
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=demo_db)) as client:
        yield Env(client, demo_db, tokens)


def _halves(geom: Any) -> tuple[Any, Any]:
    x0, y0, x1, y1 = geom.bounds
    middle = (x0 + x1) / 2
    return (
        geom.intersection(box(x0 - 1, y0 - 1, middle, y1 + 1)),
        geom.intersection(box(middle, y0 - 1, x1 + 1, y1 + 1)),
    )


def test_create_read_and_history(env: Env) -> None:
    west, _ = _halves(env.commune())
    response = env.create(west)
    assert response.status_code == 201, response.text
    ea = response.json()
    assert ea["properties"]["code"] == f"{COMMUNE}-001"
    assert ea["properties"]["status"] == "draft" and ea["properties"]["households"] > 0
    etag = response.headers["ETag"]
    read = env.client.get(f"{ITEMS}/{ea['id']}")
    assert read.headers["ETag"] == etag
    history = env.client.get(f"{ITEMS}/{ea['id']}/history").json()["history"]
    assert [h["action"] for h in history] == ["create"] and history[0]["user"] == "ed"


def test_who_may_write(env: Env) -> None:
    west, _ = _halves(env.commune())
    feature = {
        "type": "Feature",
        "geometry": mapping(west),
        "properties": {"census_round": "2029", "commune_code": COMMUNE},
    }
    assert env.client.post(ITEMS, json=feature).status_code == 401
    assert (
        env.client.post(ITEMS, json=feature, headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert env.client.post(ITEMS, json=feature, headers=env.auth("viewer")).status_code == 403
    outside = env.client.post(ITEMS, json=feature, headers=env.auth("outsider"))
    assert outside.status_code == 403 and "scope" in outside.json()["detail"]
    assert env.client.post(ITEMS, json=feature, headers=env.auth("editor2")).status_code == 201


def test_same_etag_twice_one_wins(env: Env) -> None:
    west, east = _halves(env.commune())
    created = env.create(west)
    ea_id, etag = created.json()["id"], created.headers["ETag"]
    smaller = west.buffer(-0.0005)
    body = {"type": "Feature", "geometry": mapping(smaller), "properties": {}}
    results: list[int] = []

    def update() -> None:
        response = env.client.put(
            f"{ITEMS}/{ea_id}", json=body, headers={**env.auth("editor"), "If-Match": etag}
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=update) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 412]
    history = env.client.get(f"{ITEMS}/{ea_id}/history").json()["history"]
    assert [h["action"] for h in history] == ["create", "update"]
    missing = env.client.put(f"{ITEMS}/{ea_id}", json=body, headers=env.auth("editor"))
    assert missing.status_code == 428


def test_overlap_is_rejected_and_nothing_changes(env: Env) -> None:
    west, _ = _halves(env.commune())
    assert env.create(west).status_code == 201
    before = env.tables()
    overlapping = west.buffer(-0.001)
    response = env.create(overlapping)
    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert problem["problem"].startswith("overlaps EA") and len(problem["location"]) == 2
    assert env.tables() == before


def test_outside_the_commune_is_rejected(env: Env) -> None:
    x0, y0, x1, y1 = env.commune().bounds
    response = env.create(box(x0 - 0.01, y0, x0 + 0.002, y1))
    assert response.status_code == 422
    assert any(p["problem"] == "outside its commune" for p in response.json()["problems"])


def test_self_intersection_needs_repair(env: Env) -> None:
    x0, y0, x1, y1 = env.commune().bounds
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    d = 0.002
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [
                [mx - d, my - d],
                [mx + d, my + d],
                [mx + d, my - d],
                [mx - d, my + d],
                [mx - d, my - d],
            ]
        ],
    }
    feature = {
        "type": "Feature",
        "geometry": bowtie,
        "properties": {"census_round": "2029", "commune_code": COMMUNE},
    }
    refused = env.client.post(ITEMS, json=feature, headers=env.auth("editor"))
    assert refused.status_code == 400 and "Self-intersection" in refused.json()["detail"]
    repaired = env.client.post(f"{ITEMS}?repair=true", json=feature, headers=env.auth("editor"))
    assert repaired.status_code == 201
    assert any("repaired" in w.get("warning", "") for w in repaired.json()["warnings"])


@pytest.mark.parametrize(
    "geometry",
    [
        {"type": "Point", "coordinates": [105.84, 21.04]},
        {"type": "Polygon", "coordinates": []},
        {
            "type": "Polygon",
            "coordinates": [
                [[105.84, 21.04], [float("nan"), 21.0], [105.85, 21.0], [105.84, 21.04]]
            ],
        },
        {"type": "Polygon", "coordinates": [[[500, 21], [501, 21], [501, 22], [500, 21]]]},
        "not even an object",
    ],
)
def test_bad_geometries_are_refused(env: Env, geometry: Any) -> None:
    before = env.tables()
    feature = {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"census_round": "2029", "commune_code": COMMUNE},
    }
    response = env.client.post(
        ITEMS,
        content=_dumps(feature),
        headers={**env.auth("editor"), "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500 and response.json()["detail"]
    assert env.tables() == before


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, allow_nan=True)


def test_unknown_commune_is_refused(env: Env) -> None:
    west, _ = _halves(env.commune())
    response = env.create(west, user="admin", commune_code="99999")
    assert response.status_code == 422 and response.json()["parameter"] == "commune_code"


def test_workflow_submit_approve(env: Env) -> None:
    west, _ = _halves(env.commune())
    ea = env.create(west).json()
    url = f"{ITEMS}/{ea['id']}"
    assert env.act(ea["id"], "approve", "supervisor").status_code == 400
    # a transition, like any write, names the version it was decided on
    assert env.client.post(f"{url}/submit", headers=env.auth("editor")).status_code == 428
    assert env.act(ea["id"], "submit", "editor").status_code == 200
    assert env.act(ea["id"], "approve", "editor").status_code == 403
    approved = env.act(ea["id"], "approve", "supervisor")
    assert approved.status_code == 200 and approved.json()["properties"]["status"] == "approved"
    actions = [h["action"] for h in env.client.get(f"{url}/history").json()["history"]]
    assert actions == ["create", "submit", "approve"]


def test_who_submits_does_not_approve(env: Env) -> None:
    west, _ = _halves(env.commune())
    ea = env.create(west, user="supervisor").json()
    assert env.act(ea["id"], "submit", "supervisor").status_code == 200
    refused = env.act(ea["id"], "approve", "supervisor")
    assert refused.status_code == 403 and "another supervisor" in refused.json()["detail"]
    assert env.act(ea["id"], "approve", "supervisor2").status_code == 200


def test_who_drew_an_ea_does_not_approve_it_either(env: Env) -> None:
    west, _ = _halves(env.commune())
    ea = env.create(west).json()
    url = f"{ITEMS}/{ea['id']}"
    current = env.client.get(url)
    redrawn = env.client.put(
        url,
        json={**current.json(), "properties": {}},
        headers={**env.auth("supervisor"), "If-Match": current.headers["ETag"]},
    )
    assert redrawn.status_code == 200, redrawn.text
    assert env.act(ea["id"], "submit", "editor").status_code == 200
    assert env.act(ea["id"], "approve", "supervisor").status_code == 403
    assert env.act(ea["id"], "approve", "supervisor2").status_code == 200


def test_approved_eas_are_changed_only_by_supervisors(env: Env) -> None:
    west, _ = _halves(env.commune())
    ea = env.create(west).json()
    url = f"{ITEMS}/{ea['id']}"
    env.act(ea["id"], "submit", "editor")
    env.act(ea["id"], "approve", "supervisor")
    current = env.client.get(url)
    feature = {**current.json(), "properties": {}}
    before = env.tables()
    for response in (
        env.client.put(
            url, json=feature, headers={**env.auth("editor"), "If-Match": current.headers["ETag"]}
        ),
        env.client.delete(url, headers={**env.auth("editor"), "If-Match": current.headers["ETag"]}),
    ):
        assert response.status_code == 403, response.text
    assert env.tables() == before
    changed = env.client.put(
        url, json=feature, headers={**env.auth("supervisor"), "If-Match": current.headers["ETag"]}
    )
    assert changed.status_code == 200 and changed.json()["properties"]["status"] == "draft"


@pytest.mark.parametrize(("name", "value"), [("commune_code", "00008"), ("census_round", "2039")])
def test_an_ea_keeps_its_commune_and_round(env: Env, name: str, value: str) -> None:
    west, _ = _halves(env.commune())
    created = env.create(west)
    body = {**created.json(), "properties": {name: value}}
    refused = env.client.put(
        f"{ITEMS}/{created.json()['id']}",
        json=body,
        headers={**env.auth("editor"), "If-Match": created.headers["ETag"]},
    )
    assert refused.status_code == 400 and refused.json()["parameter"] == name


def test_history_of_an_unknown_ea_is_not_found(env: Env) -> None:
    assert env.client.get(f"{ITEMS}/999999/history").status_code == 404


def test_delete_needs_if_match_and_keeps_history(env: Env) -> None:
    west, _ = _halves(env.commune())
    created = env.create(west)
    url = f"{ITEMS}/{created.json()['id']}"
    assert env.client.delete(url, headers=env.auth("editor")).status_code == 428
    deleted = env.client.delete(
        url, headers={**env.auth("editor"), "If-Match": created.headers["ETag"]}
    )
    assert deleted.status_code == 204
    assert env.client.get(url).status_code == 404
    actions = [h["action"] for h in env.client.get(f"{url}/history").json()["history"]]
    assert actions == ["create", "delete"]


def test_coverage_report(env: Env) -> None:
    commune = env.commune()
    west, east = _halves(commune)
    assert env.create(west).status_code == 201
    report = env.client.get(f"/communes/{COMMUNE}/ea-coverage", params={"round": "2029"}).json()
    assert report["eas"] == 1 and report["gaps"] and not report["complete"]
    assert 0.3 < report["gap_share"] < 0.7
    assert env.create(east).status_code == 201
    report = env.client.get(f"/communes/{COMMUNE}/ea-coverage", params={"round": "2029"}).json()
    assert report["complete"], report
    eas = env.client.get(ITEMS, params={"commune": COMMUNE}).json()["features"]
    union = shapely.union_all([shape(f["geometry"]) for f in eas])
    assert union.symmetric_difference(commune).area < commune.area * 1e-5


def test_ea_tiles_follow_edits(env: Env) -> None:
    import mapbox_vector_tile

    west, _ = _halves(env.commune())
    url = "/collections/enumeration-areas/tiles/WebMercatorQuad/13/6504/3605"
    assert env.client.get(url).content == b""  # no EAs yet
    created = env.create(west)
    layer = mapbox_vector_tile.decode(env.client.get(url).content)["enumeration-areas"]
    assert [f["properties"]["code"] for f in layer["features"]] == [f"{COMMUNE}-001"]
    assert layer["features"][0]["properties"]["status"] == "draft"
    ea_id = created.json()["id"]
    env.act(ea_id, "submit", "editor")
    layer = mapbox_vector_tile.decode(env.client.get(url).content)["enumeration-areas"]
    # (a tile carries what the pages read of it: households and the rest are in the items)
    assert layer["features"][0]["properties"] == {"code": f"{COMMUNE}-001", "status": "submitted"}


def test_generated_coverage_is_gap_free_and_editable(env: Env) -> None:
    from geo_service.ea.generate import generate
    from geo_service.settings import DEMO_RASTER

    codes = [COMMUNE, "00008"]
    with psycopg.connect(env.url, autocommit=True) as conn:
        summary = generate(conn, "2025", "2029", codes, DEMO_RASTER, 120, 3.5)
        again = generate(conn, "2025", "2029", codes, DEMO_RASTER, 120, 3.5)
    assert summary.communes == 2 and summary.eas > 100 and again.skipped == 2
    for code in codes:
        report = env.client.get(f"/communes/{code}/ea-coverage", params={"round": "2029"}).json()
        assert report["complete"], report
        band = report["outside_workload_band"]
        assert len(band) <= 0.1 * report["eas"]
    eas = env.client.get(ITEMS, params={"commune": COMMUNE}).json()["features"]
    geoms = [shape(f["geometry"]) for f in eas]
    assert shapely.coverage_is_valid(geoms)
    union = shapely.union_all(geoms)
    assert union.symmetric_difference(env.commune()).area < env.commune().area * 1e-5
    # a generated EA can be edited: the rules accept the generator's geometry as it is
    first = env.client.get(f"{ITEMS}/{eas[0]['id']}")
    body = {"type": "Feature", "geometry": first.json()["geometry"], "properties": {}}
    response = env.client.put(
        f"{ITEMS}/{eas[0]['id']}",
        json=body,
        headers={**env.auth("editor"), "If-Match": first.headers["ETag"]},
    )
    assert response.status_code == 200, response.text


def _generated(env: Env) -> list[dict[str, Any]]:
    created = env.client.post(f"/communes/{COMMUNE}/ea-generate", headers=env.auth("editor"))
    assert created.status_code == 201, created.text
    features: list[dict[str, Any]] = env.client.get(ITEMS, params={"commune": COMMUNE}).json()[
        "features"
    ]
    return features


def test_saving_an_ea_unchanged_changes_nothing(env: Env) -> None:
    for feature in _generated(env)[:15]:
        read = env.client.get(f"{ITEMS}/{feature['id']}")
        body = {"type": "Feature", "geometry": read.json()["geometry"], "properties": {}}
        again = env.client.put(
            f"{ITEMS}/{feature['id']}",
            json=body,
            headers={**env.auth("editor"), "If-Match": read.headers["ETag"]},
        )
        assert again.status_code == 200, again.text
        assert shape(again.json()["geometry"]).equals_exact(shape(body["geometry"]), 1e-12)
    report = env.client.get(f"/communes/{COMMUNE}/ea-coverage", params={"round": "2029"}).json()
    assert report["overlaps"] == [] and report["complete"]


def test_an_overlap_wider_than_the_tolerance_is_refused(env: Env) -> None:
    eas = _generated(env)
    shapes = {f["id"]: shape(f["geometry"]) for f in eas}
    mine = eas[0]
    neighbour = next(
        i
        for i, g in shapes.items()
        if i != mine["id"]
        and g.touches(shapes[mine["id"]])
        and g.intersection(shapes[mine["id"]]).length > 0
    )
    # a 10 m × 10 m square taken from the neighbour, on the shared edge
    edge = shapes[neighbour].intersection(shapes[mine["id"]])
    point = edge.interpolate(0.5, normalized=True)
    square = shapely.buffer(point, 5 / 111_320, cap_style="square")
    grown = shapes[mine["id"]].union(square.intersection(shapes[neighbour]))
    read = env.client.get(f"{ITEMS}/{mine['id']}")
    before = env.tables()
    refused = env.client.put(
        f"{ITEMS}/{mine['id']}",
        json={"type": "Feature", "geometry": mapping(grown), "properties": {}},
        headers={**env.auth("editor"), "If-Match": read.headers["ETag"]},
    )
    assert refused.status_code == 422, refused.text
    problems = refused.json()["problems"]
    code = next(f["properties"]["code"] for f in eas if f["id"] == neighbour)
    assert any(p.get("ea") == code and p.get("ea_id") == neighbour for p in problems)
    assert any(p["problem"] == f"overlaps EA {code}" for p in problems)
    assert env.tables() == before


def test_split_parts_follow_the_rules(env: Env) -> None:
    centre = env.commune().buffer(-0.003).representative_point()
    side = 200 / 111_320  # a square EA of about 200 m
    square = box(centre.x, centre.y, centre.x + side, centre.y + side)
    created = env.create(square)
    assert created.status_code == 201, created.text
    cut = 3 / 111_320  # a line cutting off a corner 3 m wide: a part of about 4.5 m²
    line = {
        "type": "LineString",
        "coordinates": [[centre.x - cut, centre.y + 2 * cut], [centre.x + 2 * cut, centre.y - cut]],
    }
    before = env.tables()
    refused = env.client.post(
        f"{ITEMS}/{created.json()['id']}/split",
        json={"line": line},
        headers={**env.auth("editor"), "If-Match": created.headers["ETag"]},
    )
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["problems"]
    assert problem["part"] == 2 and "below the minimum" in problem["problem"]
    assert env.tables() == before


def test_split_then_merge_restores_the_coverage(env: Env) -> None:
    commune = env.commune()
    west, _ = _halves(commune)
    created = env.create(west)
    ea_id = created.json()["id"]
    x0, y0, x1, y1 = west.bounds
    middle = (y0 + y1) / 2
    line = {"type": "LineString", "coordinates": [[x0 - 0.01, middle], [x1 + 0.01, middle]]}
    split = env.client.post(
        f"{ITEMS}/{ea_id}/split",
        json={"line": line},
        headers={**env.auth("editor"), "If-Match": created.headers["ETag"]},
    )
    assert split.status_code == 200, split.text
    parts = split.json()["features"]
    assert len(parts) >= 2
    areas = [shape(f["geometry"]).area for f in parts]
    assert sum(areas) == pytest.approx(shape(created.json()["geometry"]).area, rel=1e-5)
    # each part, read and sent back unchanged, is accepted: what is served is what is stored
    for part in parts:
        read = env.client.get(f"{ITEMS}/{part['id']}")
        body = {"type": "Feature", "geometry": read.json()["geometry"], "properties": {}}
        again = env.client.put(
            f"{ITEMS}/{part['id']}",
            json=body,
            headers={**env.auth("editor"), "If-Match": read.headers["ETag"]},
        )
        assert again.status_code == 200, again.text
        assert shape(again.json()["geometry"]).equals(shape(read.json()["geometry"]))
    etags = ", ".join(env.client.get(f"{ITEMS}/{f['id']}").headers["ETag"] for f in parts)
    merged = env.client.post(
        "/collections/enumeration-areas/merge",
        json={"ids": [f["id"] for f in parts]},
        headers={**env.auth("editor"), "If-Match": etags},
    )
    assert merged.status_code == 200, merged.text
    restored = shape(merged.json()["geometry"])
    original = shape(created.json()["geometry"])
    assert restored.symmetric_difference(original).area < original.area * 1e-5
    assert len(env.client.get(ITEMS, params={"commune": COMMUNE}).json()["features"]) == 1
    actions = [h["action"] for h in env.client.get(f"{ITEMS}/{ea_id}/history").json()["history"]]
    assert actions == ["create", "split", "update", "merge"]
    stale = env.client.post(
        "/collections/enumeration-areas/merge",
        json={"ids": [ea_id, parts[1]["id"]]},
        headers={**env.auth("editor"), "If-Match": etags},
    )
    assert stale.status_code in (404, 412)


def test_coverage_of_a_commune_without_eas(env: Env) -> None:
    report = env.client.get(f"/communes/{COMMUNE}/ea-coverage", params={"round": "2029"})
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["eas"] == 0 and not body["complete"]
    assert body["gap_share"] == pytest.approx(1.0, abs=1e-6)


def test_generate_drafts_through_the_api(env: Env) -> None:
    url = f"/communes/{COMMUNE}/ea-generate"
    assert env.client.post(url).status_code == 401
    assert env.client.post(url, headers=env.auth("viewer")).status_code == 403
    assert env.client.post(url, headers=env.auth("outsider")).status_code == 403
    before = env.tables()
    bad = env.client.post(url, params={"households_per_ea": "0"}, headers=env.auth("editor"))
    assert bad.status_code == 400 and env.tables() == before
    created = env.client.post(url, headers=env.auth("editor"))
    assert created.status_code == 201, created.text
    count = created.json()["created"]
    assert count > 50 and created.json()["replaced"] == 0
    assert env.client.get(f"/communes/{COMMUNE}/ea-coverage").json()["complete"]
    # a second run would overwrite: refused unless asked, and only ever over drafts
    again = env.client.post(url, headers=env.auth("editor"))
    assert again.status_code == 409 and again.json()["parameter"] == "replace"
    eas = env.client.get(ITEMS, params={"commune": COMMUNE}).json()["features"]
    assert {f["properties"]["updated_by"] for f in eas} == {"ed"}
    env.act(eas[0]["id"], "submit", "editor")
    before = env.tables()
    refused = env.client.post(url, params={"replace": "true"}, headers=env.auth("editor"))
    assert refused.status_code == 409 and env.tables() == before
    assert env.act(eas[0]["id"], "reject", "supervisor").status_code == 400  # no reason
    assert env.act(eas[0]["id"], "reject", "supervisor", "too many households").status_code == 200
    with psycopg.connect(env.url, autocommit=True) as conn:
        conn.execute("UPDATE enumeration_area SET status = 'draft'")
    replaced = env.client.post(
        url, params={"replace": "true", "households_per_ea": "240"}, headers=env.auth("editor")
    )
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["replaced"] == count and replaced.json()["created"] < count
    with psycopg.connect(env.url) as conn:
        deleted = conn.execute(
            "SELECT count(*) FROM ea_history WHERE action = 'delete' AND reason LIKE 'replaced%%'"
        ).fetchone()
    assert deleted == (count,)


def test_who_am_i(env: Env) -> None:
    assert env.client.get("/users/me").status_code == 401
    me = env.client.get("/users/me", headers=env.auth("supervisor")).json()
    assert me == {"name": "sup", "role": "supervisor", "scope": ["01"]}
    assert env.client.get("/users/me", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_list_pages_filters_and_matches_single_reads(env: Env) -> None:
    created = env.client.post(f"/communes/{COMMUNE}/ea-generate", headers=env.auth("editor"))
    total = created.json()["created"]
    everything = env.client.get(ITEMS, params={"commune": COMMUNE, "limit": 10_000})
    assert everything.headers["content-type"].startswith("application/geo+json")
    body = everything.json()
    assert body["numberMatched"] == body["numberReturned"] == total
    assert [link["rel"] for link in body["links"]] == ["self"]
    codes = [f["properties"]["code"] for f in body["features"]]
    assert codes == sorted(codes)
    collection = env.client.get("/collections/enumeration-areas").json()
    assert collection["numberOfItems"] == total
    assert len(collection["extent"]["spatial"]["bbox"][0]) == 4
    # each listed feature is exactly what reading it alone gives (geometry to full precision)
    for feature in body["features"][:5]:
        assert env.client.get(f"{ITEMS}/{feature['id']}").json() == feature

    # pages: prev/next links that walk the whole list once
    walked: list[int] = []
    url: str = ITEMS
    params: dict[str, str] | None = {"commune": COMMUNE, "limit": "7"}
    while True:
        page = env.client.get(url, params=params).json()
        walked += [f["id"] for f in page["features"]]
        following = [link["href"] for link in page["links"] if link["rel"] == "next"]
        if not following:
            break
        url, params = following[0], None  # (the link carries every parameter)
    assert walked == [f["id"] for f in body["features"]]
    second = env.client.get(ITEMS, params={"commune": COMMUNE, "limit": 7, "offset": 7}).json()
    assert {link["rel"] for link in second["links"]} == {"self", "prev", "next"}

    # bbox: exactly the EAs whose bounding box meets it
    first = shape(body["features"][0]["geometry"])
    x0, y0, x1, y1 = first.bounds
    inside = env.client.get(ITEMS, params={"bbox": f"{x0},{y0},{x1},{y1}", "limit": 10_000}).json()
    expected = {
        f["id"]
        for f in body["features"]
        if shape(f["geometry"]).envelope.intersects(first.envelope)
    }
    assert {f["id"] for f in inside["features"]} == expected
    assert (
        env.client.get(ITEMS, params={"status": "approved", "commune": COMMUNE}).json()[
            "numberReturned"
        ]
        == 0
    )
    assert (
        inside["features"]
        and env.client.get(ITEMS, params={"limit": 1}).headers["Content-Crs"]
        == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    )
    for bad in ("1,2,3", "a,b,c,d", "5,0,1,1", "105,91,106,92", "185,0,186,1"):
        refused = env.client.get(ITEMS, params={"bbox": bad})
        assert refused.status_code == 400 and refused.json()["parameter"] == "bbox"


def _resave(env: Env, ea_id: int, user: str) -> Any:
    """PUT the EA back exactly as it is stored."""
    read = env.client.get(f"{ITEMS}/{ea_id}")
    feature = {"type": "Feature", "geometry": read.json()["geometry"], "properties": {}}
    return env.client.put(
        f"{ITEMS}/{ea_id}",
        json=feature,
        headers={**env.auth(user), "If-Match": read.headers["ETag"]},
    )


def test_four_eyes_sees_through_a_resave(env: Env) -> None:
    west, _ = _halves(env.commune())
    drawn = env.create(west, user="supervisor")
    assert drawn.status_code == 201
    ea_id = drawn.json()["id"]
    assert _resave(env, ea_id, "editor").status_code == 200
    assert env.act(ea_id, "submit", "editor").status_code == 200
    # the supervisor drew it, whoever saved it last: another one approves
    refused = env.act(ea_id, "approve", "supervisor")
    assert refused.status_code == 403 and refused.json()["parameter"] == "action"
    assert env.act(ea_id, "approve", "supervisor2").status_code == 200


def test_four_eyes_sees_through_a_merge(env: Env) -> None:
    west, east = _halves(env.commune())
    mine = env.create(east, user="editor")
    theirs = env.create(west, user="supervisor")
    assert mine.status_code == 201 and theirs.status_code == 201, theirs.text
    # the merge keeps the lowest id: the editor's EA, drawn first
    keep, ids = mine.json()["id"], [mine.json()["id"], theirs.json()["id"]]
    assert keep == min(ids)
    etags = ", ".join(env.client.get(f"{ITEMS}/{i}").headers["ETag"] for i in ids)
    merged = env.client.post(
        "/collections/enumeration-areas/merge",
        json={"ids": ids},
        headers={**env.auth("editor"), "If-Match": etags},
    )
    assert merged.status_code == 200, merged.text
    assert env.act(keep, "submit", "editor").status_code == 200
    # half of it is the supervisor's drawing: another supervisor approves
    refused = env.act(keep, "approve", "supervisor")
    assert refused.status_code == 403 and refused.json()["parameter"] == "action"
    assert env.act(keep, "approve", "supervisor2").status_code == 200


def _strip_from(env: Env, inside_share: float) -> tuple[Any, float]:
    """A square well inside the commune with a 1.6 m wide strip running 3 km east out of
    it (an outside sliver within the tolerance), sized so `inside_share` of it lies inside;
    and the commune's east edge at the strip."""
    commune = env.commune()
    centre = polylabel(max(shapely.get_parts(commune), key=lambda p: p.area), tolerance=1e-6)
    half_width = 0.8 / 111_320  # 1.6 m
    east = commune.bounds[2]
    strip = box(centre.x, centre.y - half_width, east + 0.03, centre.y + half_width)
    outside = strip.difference(commune).area
    inside_wanted = outside * inside_share / (1 - inside_share)
    side = (max(inside_wanted - strip.intersection(commune).area, 0.0)) ** 0.5
    square = box(centre.x - side, centre.y - side / 2, centre.x, centre.y + side / 2)
    return shapely.union(square, strip), east


def test_an_ea_must_lie_mostly_in_its_commune(env: Env) -> None:
    strip, _ = _strip_from(env, inside_share=0.2)
    refused = env.create(strip)
    assert refused.status_code == 422, refused.text
    assert any("lie in its commune" in p["problem"] for p in refused.json()["problems"])


def test_a_split_cannot_leave_a_part_outside_the_commune(env: Env) -> None:
    shape_, east = _strip_from(env, inside_share=0.8)
    made = env.create(shape_)
    assert made.status_code == 201, made.text
    ea = made.json()
    before = env.tables()
    y = shapely.centroid(shape(ea["geometry"])).y
    y0, y1 = y - 0.01, y + 0.01
    line = {"type": "LineString", "coordinates": [[east + 0.001, y0], [east + 0.001, y1]]}
    etag = env.client.get(f"{ITEMS}/{ea['id']}").headers["ETag"]
    split = env.client.post(
        f"{ITEMS}/{ea['id']}/split",
        json={"line": line},
        headers={**env.auth("editor"), "If-Match": etag},
    )
    assert split.status_code == 422, split.text
    assert any(
        p.get("part") and "lie in its commune" in p["problem"] for p in split.json()["problems"]
    )
    assert env.tables() == before


def test_one_split_makes_a_bounded_number_of_eas(env: Env) -> None:
    commune = env.commune()
    centre = polylabel(max(shapely.get_parts(commune), key=lambda p: p.area), tolerance=1e-6)
    square = box(centre.x - 0.001, centre.y - 0.0005, centre.x + 0.001, centre.y + 0.0005)
    made = env.create(square)
    assert made.status_code == 201, made.text
    ea_id = made.json()["id"]
    zigzag = [
        [centre.x - 0.0011 + 0.0022 * i / 30, centre.y + (0.0007 if i % 2 else -0.0007)]
        for i in range(31)
    ]
    etag = env.client.get(f"{ITEMS}/{ea_id}").headers["ETag"]
    split = env.client.post(
        f"{ITEMS}/{ea_id}/split",
        json={"line": {"type": "LineString", "coordinates": zigzag}},
        headers={**env.auth("editor"), "If-Match": etag},
    )
    assert split.status_code == 400 and split.json()["parameter"] == "line"
    assert split.json()["limit"] == 20
    long_line = [[centre.x + i * 1e-7, centre.y] for i in range(20_001)]
    too_long = env.client.post(
        f"{ITEMS}/{ea_id}/split",
        json={"line": {"type": "LineString", "coordinates": long_line}},
        headers={**env.auth("editor"), "If-Match": etag},
    )
    assert too_long.status_code == 413 and too_long.json()["parameter"] == "line"


def test_one_generation_makes_a_bounded_number_of_eas(env: Env, tmp_path: Path) -> None:
    settings = ServiceSettings(home=tmp_path, ea_max_generated=5)
    with TestClient(create_app(settings, db_url=env.url)) as client:
        refused = client.post(
            f"/communes/{COMMUNE}/ea-generate",
            params={"households_per_ea": 10},
            headers=env.auth("editor"),
        )
    assert refused.status_code == 400 and refused.json()["parameter"] == "households_per_ea"
    assert env.tables()["enumeration_area"][0] == 0
