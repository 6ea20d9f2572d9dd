"""Shared edges of EAs: moved for every EA at once, no silent gap, and no approval of a
commune that EAs do not cover without the supervisor acknowledging it."""

from __future__ import annotations

import math
from typing import Any

import psycopg
import pytest
import shapely
import shapely.affinity
from shapely.geometry import Point, box, mapping, shape

import tests.test_enumeration_areas as ea_tests
from tests.test_enumeration_areas import COMMUNE, ITEMS, Env, _generated

RESHAPE = "/collections/enumeration-areas/reshape"
VI = {"Accept-Language": "vi"}
env = ea_tests.env  # (its fixture: a service over a fresh demo database, users of every role)


def _etag(feature: dict[str, Any]) -> str:
    return f'"ea-{feature["id"]}-v{feature["properties"]["version"]}"'


def _moved(geom: Any, old: tuple[float, float], new: tuple[float, float]) -> Any:
    """The shape with one vertex moved (every copy of it, the ring's closing one too)."""
    coords = shapely.get_coordinates(geom)
    hit = (abs(coords[:, 0] - old[0]) < 1e-12) & (abs(coords[:, 1] - old[1]) < 1e-12)
    assert hit.any()
    coords[hit] = new
    return shapely.set_coordinates(geom, coords)


def _shared_vertex(eas: list[dict[str, Any]]) -> tuple[dict, dict, tuple[float, float]]:
    """Two EAs and a vertex inside the commune that they alone share, on an edge they
    share (its ring neighbour in the first is a vertex of the second too)."""
    shapes = {f["id"]: shape(f["geometry"]) for f in eas}
    owners: dict[tuple[float, float], set[int]] = {}
    for ea_id, geom in shapes.items():
        for x, y in shapely.get_coordinates(geom):
            owners.setdefault((x, y), set()).add(ea_id)
    by_id = {f["id"]: f for f in eas}
    for ea_id in sorted(shapes):
        ring = [
            tuple(c) for c in shapely.get_coordinates(shapely.get_parts(shapes[ea_id])[0].exterior)
        ][:-1]
        for i, vertex in enumerate(ring):
            if len(owners[vertex]) != 2:
                continue
            other = (owners[vertex] - {ea_id}).pop()
            if other not in owners[ring[i - 1]] or other not in owners[ring[(i + 1) % len(ring)]]:
                continue
            return by_id[ea_id], by_id[other], vertex
    raise AssertionError("no shared vertex")


def _inward(feature: dict[str, Any], vertex: tuple[float, float]) -> tuple[float, float]:
    """A point 30 % of the way from the vertex to a point inside the EA."""
    inside = shape(feature["geometry"]).representative_point()
    step = min(0.3, 4e-4 / Point(vertex).distance(inside))
    return (vertex[0] + step * (inside.x - vertex[0]), vertex[1] + step * (inside.y - vertex[1]))


def _collection(*features: tuple[dict[str, Any], Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": f["id"], "geometry": mapping(geom), "properties": {}}
            for f, geom in features
        ],
        **extra,
    }


def _setup(env: Env) -> tuple[dict, dict, tuple[float, float], tuple[float, float]]:
    eas = _generated(env)
    first, second, vertex = _shared_vertex(eas)
    return first, second, vertex, _inward(first, vertex)


def test_a_shared_vertex_moved_in_one_ea_alone_is_refused_with_the_gap(env: Env) -> None:
    first, second, vertex, to = _setup(env)
    before = env.tables()
    body = {"type": "Feature", "geometry": mapping(_moved(shape(first["geometry"]), vertex, to))}
    response = env.client.put(
        f"{ITEMS}/{first['id']}",
        json=body,
        headers={**env.auth("editor"), "If-Match": _etag(first), **VI},
    )
    assert response.status_code == 422, response.text
    refusal = response.json()
    assert "khoảng trống" in refusal["detail"] and second["properties"]["code"] in refusal["detail"]
    (gap,) = refusal["gaps"]
    assert set(gap["eas"]) == {first["properties"]["code"], second["properties"]["code"]}
    assert gap["area_m2"] > 10
    assert shape(gap["geometry"]).buffer(1e-9).contains(Point(gap["location"]))
    assert env.tables() == before


def test_a_shared_vertex_moved_in_both_eas_saves_both_in_one_transaction(env: Env) -> None:
    first, second, vertex, to = _setup(env)
    # each alone: the first leaves a gap, the second overlaps the first as it is stored;
    # together they are a valid coverage
    body = _collection(
        (first, _moved(shape(first["geometry"]), vertex, to)),
        (second, _moved(shape(second["geometry"]), vertex, to)),
        reason="theo mép đường",
    )
    response = env.client.post(
        RESHAPE,
        json=body,
        headers={**env.auth("editor"), "If-Match": f"{_etag(first)}, {_etag(second)}"},
    )
    assert response.status_code == 200, response.text
    saved = {f["id"]: f for f in response.json()["features"]}
    assert {
        saved[first["id"]]["properties"]["version"],
        saved[second["id"]]["properties"]["version"],
    } == {2}
    report = env.client.get(f"/communes/{COMMUNE}/ea-coverage", params={"round": "2029"}).json()
    assert report["complete"], (report["gaps"], report["overlaps"], report["outside_commune"])
    with psycopg.connect(env.url) as conn:
        history = conn.execute(
            "SELECT ea_id, action, reason FROM ea_history WHERE action = 'update' ORDER BY ea_id"
        ).fetchall()
    assert history == sorted(
        [(first["id"], "update", "theo mép đường"), (second["id"], "update", "theo mép đường")]
    )


def test_one_ea_changed_meanwhile_refuses_the_whole_change(env: Env) -> None:
    first, second, vertex, to = _setup(env)
    stale = _etag(second)
    described = env.client.patch(
        f"{ITEMS}/{second['id']}",
        json={"type": "Feature", "geometry": None, "properties": {"landmarks": "chợ"}},
        headers={**env.auth("editor"), "If-Match": stale},
    )
    assert described.status_code == 200, described.text
    before = env.tables()
    body = _collection(
        (first, _moved(shape(first["geometry"]), vertex, to)),
        (second, _moved(shape(second["geometry"]), vertex, to)),
    )
    response = env.client.post(
        RESHAPE,
        json=body,
        headers={**env.auth("editor"), "If-Match": f"{_etag(first)}, {stale}", **VI},
    )
    assert response.status_code == 412, response.text
    detail = response.json()["detail"]
    assert second["properties"]["code"] in detail and "người khác sửa" in detail
    assert first["properties"]["code"] not in detail
    assert str(second["id"]) not in detail.replace(second["properties"]["code"], "")
    assert "ea-" not in detail
    assert env.tables() == before


def test_the_rules_are_checked_on_the_result_naming_the_eas(env: Env) -> None:
    first, second, vertex, to = _setup(env)
    before = env.tables()
    # the second EA pushed into the first, the first left alone: an overlap
    body = _collection((second, _moved(shape(second["geometry"]), vertex, to)))
    response = env.client.post(
        RESHAPE,
        json=body,
        headers={**env.auth("editor"), "If-Match": _etag(second), **VI},
    )
    assert response.status_code == 422, response.text
    problems = [p["problem"] for p in response.json()["problems"]]
    code, other = second["properties"]["code"], first["properties"]["code"]
    assert f"Địa bàn {code}: chồng lấn địa bàn {other}" in problems, problems
    assert env.tables() == before


def test_a_gap_is_given_to_the_chosen_neighbour(env: Env) -> None:
    first, second, vertex, to = _setup(env)
    far = max(
        (f for f in _generated_list(env) if f["id"] not in (first["id"], second["id"])),
        key=lambda f: shape(f["geometry"]).distance(shape(first["geometry"])),
    )
    moved = _collection((first, _moved(shape(first["geometry"]), vertex, to)))
    tags = f"{_etag(first)}, {_etag(second)}, {_etag(far)}"
    refused = env.client.post(
        RESHAPE,
        json={**moved, "give_gap_to": far["properties"]["code"]},
        headers={**env.auth("editor"), "If-Match": tags},
    )
    assert refused.status_code == 422 and refused.json()["parameter"] == "give_gap_to"
    given = env.client.post(
        RESHAPE,
        json={**moved, "give_gap_to": second["properties"]["code"]},
        headers={**env.auth("editor"), "If-Match": tags, **VI},
    )
    assert given.status_code == 200, given.text
    saved = {f["id"]: shape(f["geometry"]) for f in given.json()["features"]}
    assert set(saved) == {first["id"], second["id"]}
    assert saved[second["id"]].area > shape(second["geometry"]).area
    notices = [w.get("notice") for w in given.json()["warnings"]]
    assert any(n and second["properties"]["code"] in n for n in notices), notices
    report = env.client.get(f"/communes/{COMMUNE}/ea-coverage", params={"round": "2029"}).json()
    assert report["complete"], (report["gaps"], report["overlaps"], report["outside_commune"])


def _generated_list(env: Env) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = env.client.get(ITEMS, params={"commune": COMMUNE}).json()[
        "features"
    ]
    return features


def test_approving_all_of_an_uncovered_commune_needs_an_acknowledgement(env: Env) -> None:
    eas = _generated(env)
    gone = eas[len(eas) // 2]
    with psycopg.connect(env.url, autocommit=True) as conn:
        # (a hole made in the database: the API refuses a delete that opens a gap)
        conn.execute("DELETE FROM enumeration_area WHERE id = %s", (gone["id"],))
        conn.execute(
            "UPDATE enumeration_area SET status = 'submitted', version = version + 1"
            " WHERE commune_code = %s",
            (COMMUNE,),
        )
    submitted = _generated_list(env)
    tags = ", ".join(_etag(f) for f in submitted)
    url = f"/communes/{COMMUNE}/ea-approve"
    before = env.tables()
    refused = env.client.post(
        url, json={}, headers={**env.auth("supervisor"), "If-Match": tags, **VI}
    )
    assert refused.status_code == 409, refused.text
    body = refused.json()
    area = shape(gone["geometry"]).area
    assert "chưa phủ kín" in body["detail"] and body["gap_area_m2"] > 0
    assert len(body["gaps"]) == 1 and shape(body["gaps"][0]["geometry"]).area > 0.99 * area
    assert env.tables() == before
    # one EA changed since the page read them: nothing approved, that EA named
    stale = tags.replace(_etag(submitted[0]), '"ea-0-v0"')
    conflict = env.client.post(
        url,
        json={"uncovered_acknowledged": True},
        headers={**env.auth("supervisor"), "If-Match": stale},
    )
    assert conflict.status_code == 412 and submitted[0]["properties"]["code"] in conflict.text
    approved = env.client.post(
        url,
        json={"uncovered_acknowledged": True},
        headers={**env.auth("supervisor"), "If-Match": tags},
    )
    assert approved.status_code == 200, approved.text
    assert len(approved.json()["features"]) == len(submitted)
    with psycopg.connect(env.url) as conn:
        statuses = conn.execute(
            "SELECT DISTINCT status FROM enumeration_area WHERE commune_code = %s", (COMMUNE,)
        ).fetchall()
        reasons = conn.execute(
            "SELECT DISTINCT reason, user_name FROM ea_history WHERE action = 'approve'"
        ).fetchall()
    assert statuses == [("approved",)]
    ((reason, who),) = reasons
    assert who == "sup" and "not fully covered" in reason and "acknowledged by sup" in reason


def _shrunk_then_grown(env: Env) -> tuple[dict, dict, int]:
    """A shared vertex moved into the first EA for both (the second grows): the two EAs as
    they now are, and the second's history entry of its smaller first version."""
    first, second, vertex, to = _setup(env)
    moved = env.client.post(
        RESHAPE,
        json=_collection(
            (first, _moved(shape(first["geometry"]), vertex, to)),
            (second, _moved(shape(second["geometry"]), vertex, to)),
        ),
        headers={**env.auth("editor"), "If-Match": f"{_etag(first)}, {_etag(second)}"},
    )
    assert moved.status_code == 200, moved.text
    now = {f["id"]: f for f in moved.json()["features"]}
    history = env.client.get(f"{ITEMS}/{second['id']}/history").json()["history"]
    (entry,) = [e for e in history if e["after"] and e["after"]["properties"]["version"] == 1]
    return now[first["id"]], now[second["id"]], entry["id"]


def test_restoring_a_smaller_version_that_opens_a_gap_is_refused(env: Env) -> None:
    first, second, entry = _shrunk_then_grown(env)
    before = env.tables()
    url = f"{ITEMS}/{second['id']}/restore"
    refused = env.client.post(
        url,
        params={"entry": entry},
        headers={**env.auth("editor"), "If-Match": _etag(second), **VI},
    )
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert "khoảng trống" in body["detail"] and first["properties"]["code"] in body["detail"]
    (gap,) = body["gaps"]
    assert set(gap["eas"]) == {first["properties"]["code"], second["properties"]["code"]}
    assert env.tables() == before
    english = env.client.post(
        url, params={"entry": entry}, headers={**env.auth("editor"), "If-Match": _etag(second)}
    )
    assert english.status_code == 422 and "gap" in english.json()["detail"]
    # given to the EA along it: both saved, the commune still covered
    given = env.client.post(
        url,
        params={"entry": entry, "give_gap_to": first["properties"]["code"]},
        headers={**env.auth("editor"), "If-Match": f"{_etag(second)}, {_etag(first)}", **VI},
    )
    assert given.status_code == 200, given.text
    assert given.json()["properties"]["version"] == 3
    notices = [w.get("notice") for w in given.json()["warnings"]]
    assert any(n and first["properties"]["code"] in n for n in notices), notices
    grown = env.client.get(f"{ITEMS}/{first['id']}").json()
    assert shape(grown["geometry"]).area > shape(first["geometry"]).area
    report = env.client.get(f"/communes/{COMMUNE}/ea-coverage", params={"round": "2029"}).json()
    assert report["complete"], (report["gaps"], report["overlaps"], report["outside_commune"])


def test_a_restore_gives_a_gap_only_with_the_neighbours_etag(env: Env) -> None:
    first, second, entry = _shrunk_then_grown(env)
    before = env.tables()
    refused = env.client.post(
        f"{ITEMS}/{second['id']}/restore",
        params={"entry": entry, "give_gap_to": first["properties"]["code"]},
        headers={**env.auth("editor"), "If-Match": _etag(second)},
    )
    assert refused.status_code == 412, refused.text
    assert first["properties"]["code"] in refused.json()["detail"]
    assert env.tables() == before


def test_moving_an_ea_along_the_undrawn_part_of_a_commune_opens_no_gap(env: Env) -> None:
    """A commune being drawn: two EAs side by side, the rest undrawn. Moving the second 5 m
    away from the first releases a strip whose ends join the undrawn area: that is the
    commune still being drawn, not a gap (it was refused: the undrawn area beside the strip
    was measured only 0.1 m deep, under 1 m², so it did not count)."""
    centre = env.commune().representative_point()
    cx, cy = centre.x, centre.y
    west = env.create(box(cx - 0.002, cy - 0.001, cx, cy + 0.001))
    east = env.create(box(cx, cy - 0.001, cx + 0.002, cy + 0.001))
    assert west.status_code == east.status_code == 201, (west.text, east.text)
    feature = east.json()
    step = 5 / (111_320 * math.cos(math.radians(cy)))  # 5 m in degrees of longitude
    moved = shapely.affinity.translate(shape(feature["geometry"]), xoff=step)
    response = env.client.put(
        f"{ITEMS}/{feature['id']}",
        json={"type": "Feature", "geometry": mapping(moved)},
        headers={**env.auth("editor"), "If-Match": _etag(feature)},
    )
    assert response.status_code == 200, response.text


def _inner_pair(env: Env) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The smallest generated EA with a neighbour along an edge, that neighbour, and an EA
    not beside it."""
    return inner_pair(_generated(env))


def inner_pair(features: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], dict]:
    """Of these EAs: the smallest with a neighbour along an edge, its smallest such
    neighbour, and an EA not beside it."""
    eas = sorted(features, key=lambda f: shape(f["geometry"]).area)
    for gone in eas:
        geom = shape(gone["geometry"])
        beside = [
            f
            for f in eas
            if f["id"] != gone["id"] and shape(f["geometry"]).intersection(geom).length > 1e-4
        ]
        far = [f for f in eas if shape(f["geometry"]).distance(geom) > 1e-3]
        if beside and far:
            return gone, min(beside, key=lambda f: shape(f["geometry"]).area), far[0]
    raise AssertionError("no EA with a neighbour")


def test_deleting_an_ea_of_a_covered_commune_is_refused_with_the_gap(env: Env) -> None:
    gone, neighbour, far = _inner_pair(env)
    url = f"{ITEMS}/{gone['id']}"
    before = env.tables()
    refused = env.client.delete(url, headers={**env.auth("editor"), "If-Match": _etag(gone), **VI})
    assert refused.status_code == 422, refused.text
    body = refused.json()
    code = gone["properties"]["code"]
    assert body["detail"].startswith(f"xoá địa bàn {code}") and "khoảng trống" in body["detail"]
    (gap,) = body["gaps"]
    assert neighbour["properties"]["code"] in gap["eas"] and code not in gap["eas"]
    assert gap["area_m2"] > 0
    assert shape(gap["geometry"]).area == pytest.approx(shape(gone["geometry"]).area, rel=1e-3)
    english = env.client.delete(url, headers={**env.auth("editor"), "If-Match": _etag(gone)})
    assert english.status_code == 422 and "give_gap_to" in english.json()["detail"]
    # given to an EA not beside it, or without the neighbour's ETag: refused
    away = env.client.delete(
        url,
        params={"give_gap_to": far["properties"]["code"]},
        headers={**env.auth("editor"), "If-Match": f"{_etag(gone)}, {_etag(far)}"},
    )
    assert away.status_code == 422 and away.json()["parameter"] == "give_gap_to"
    untagged = env.client.delete(
        url,
        params={"give_gap_to": neighbour["properties"]["code"]},
        headers={**env.auth("editor"), "If-Match": _etag(gone)},
    )
    assert untagged.status_code == 412 and neighbour["properties"]["code"] in untagged.text
    assert env.tables() == before
    # given to the neighbour: the EA gone, the neighbour grown, the commune still covered
    given = env.client.delete(
        url,
        params={"give_gap_to": neighbour["properties"]["code"], "reason": "gộp vào bên cạnh"},
        headers={**env.auth("editor"), "If-Match": f"{_etag(gone)}, {_etag(neighbour)}"},
    )
    assert given.status_code == 204, given.text
    assert env.client.get(url).status_code == 404
    grown = env.client.get(f"{ITEMS}/{neighbour['id']}").json()
    union = shape(neighbour["geometry"]).union(shape(gone["geometry"]))
    assert shape(grown["geometry"]).symmetric_difference(union).area < union.area * 1e-3
    report = env.client.get(f"/communes/{COMMUNE}/ea-coverage", params={"round": "2029"}).json()
    assert report["complete"], (report["gaps"], report["overlaps"], report["outside_commune"])
    actions = [h["action"] for h in env.client.get(f"{url}/history").json()["history"]]
    assert actions[-1] == "delete"


def test_moving_an_edge_shared_with_an_approved_ea_says_what_to_do(env: Env) -> None:
    """A rejected EA beside approved ones: moving the edge they share is the supervisor's
    (the approved EA goes back to draft); the refusal said only who may, not what to do."""
    first, second, vertex, to = _setup(env)
    env.act(second["id"], "submit", "editor")
    env.act(second["id"], "approve", "supervisor")
    second = env.client.get(f"{ITEMS}/{second['id']}").json()
    before = env.tables()
    body = _collection(
        (first, _moved(shape(first["geometry"]), vertex, to)),
        (second, _moved(shape(second["geometry"]), vertex, to)),
    )
    tags = f"{_etag(first)}, {_etag(second)}"
    code = second["properties"]["code"]
    refused = env.client.post(
        RESHAPE, json=body, headers={**env.auth("editor"), "If-Match": tags, **VI}
    )
    assert refused.status_code == 403, refused.text
    detail = refused.json()["detail"]
    assert f"nhờ người giám sát trả lại {code}" in detail and "chưa lưu gì" in detail, detail
    english = env.client.post(RESHAPE, json=body, headers={**env.auth("editor"), "If-Match": tags})
    assert f"ask a supervisor to reject {code}" in english.json()["detail"]
    assert env.tables() == before
