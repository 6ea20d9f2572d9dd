"""Proposals through the API (issue #24): supervisor areas and assignments proposed for a
commune, nothing written until confirmed; a confirmed proposal saved in one transaction;
refusals in the client's language naming EA codes."""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry import shape

from geo_service.ea.grouping import Unit, adjacency, is_contiguous
from tests import test_census_ops
from tests.test_census_ops import COMMUNE, ITEMS, Env, _staff, _touching_run, areas_tag

env = test_census_ops.env  # (the fixture: a service over a fresh demo database)
AREAS = f"/communes/{COMMUNE}/supervisor-areas"


def _held_areas(env: Env) -> dict[str, list[str]]:
    """Supervisor areas of the commune and their EAs, as the database holds them."""
    rows = env.sql(
        "SELECT s.code, array_agg(e.code ORDER BY e.code) FROM supervisor_area s"
        " JOIN ea_assignment a ON a.supervisor_area_id = s.id"
        " JOIN enumeration_area e ON e.id = a.ea_id WHERE s.commune_code = %s GROUP BY 1",
        COMMUNE,
    )
    return {code: list(eas) for code, eas in rows}


def _contiguous(eas: list[dict[str, Any]], codes: list[str]) -> bool:
    shapes = {f["properties"]["code"]: shape(f["geometry"]) for f in eas}
    units = [Unit(c, 0.0, shapes[c]) for c in codes]
    return is_contiguous(range(len(units)), adjacency(units))


def test_supervisor_areas_proposed_then_saved_in_one_go(env: Env) -> None:
    eas = env.generate()
    codes = sorted(f["properties"]["code"] for f in eas)
    for staff in ("S1", "S2"):
        assert _staff(env, staff, "supervisor", COMMUNE).status_code == 201
    run = _touching_run(eas, 4)
    made = env.client.post(
        AREAS,
        json={"eas": run, "supervisor": "S1"},
        headers={**env.auth("editor"), **areas_tag(env)},
    )
    assert made.status_code == 201, made.text
    (kept,) = made.json()["areas"]

    before = env.tables()
    asked = env.client.post(f"{AREAS}/proposal", json={}, headers=env.auth("editor", "vi"))
    assert asked.status_code == 200, asked.text
    assert env.tables() == before  # a proposal writes nothing
    proposal = asked.json()
    assert proposal["kept"] == [kept["code"]] and proposal["replaces"] == []
    groups = proposal["groups"]
    grouped = [c for g in groups for c in g["eas"]]
    assert sorted(grouped) == sorted(set(codes) - set(run))  # each free EA exactly once
    assert all(_contiguous(eas, g["eas"]) for g in groups)
    assert all(3 <= g["count"] <= 8 and g["notes"] == [] for g in groups)
    households = {f["properties"]["code"]: f["properties"]["households"] for f in eas}
    for g in groups:
        assert g["households"] == round(sum(households[c] for c in g["eas"]), 1)
        members = [shape(f["geometry"]) for f in eas if f["properties"]["code"] in g["eas"]]
        outline = shape(g["geometry"])  # (the preview's outline: the group's EAs dissolved)
        assert (
            abs(outline.area - shapely.union_all(members).area) < 1e-4 * outline.area
        )  # (rounded to 1e-7°)
    # S1 leads the area kept: the free supervisor S2 is proposed for the first group
    assert [g["supervisor"] for g in groups[:2]] == ["S2", None]

    saved = env.client.post(
        f"{AREAS}/batch",
        json={"areas": [{"eas": g["eas"], "supervisor": g["supervisor"]} for g in groups]},
        headers={**env.auth("editor"), "If-Match": proposal["etag"]},
    )
    assert saved.status_code == 200, saved.text
    held = _held_areas(env)
    assert sorted(map(sorted, held.values())) == sorted(
        [sorted(run)] + [sorted(g["eas"]) for g in groups]
    )
    assert {a["code"]: sorted(a["eas"]) for a in saved.json()["areas"]} == held
    assert all(a["warnings"] == [] for a in saved.json()["areas"])

    # nothing left to group, unless asked to redo (a band of 4–6 this time)
    again = env.client.post(f"{AREAS}/proposal", json={}, headers=env.auth("editor", "vi"))
    assert again.json()["groups"] == []
    assert "không còn địa bàn nào để nhóm" in again.json()["notes"][0]
    redo = env.client.post(
        f"{AREAS}/proposal",
        json={"redo": True, "min_eas": 4, "max_eas": 6},
        headers=env.auth("editor"),
    ).json()
    assert sorted(redo["replaces"]) == sorted(held) and redo["kept"] == []
    assert sorted(c for g in redo["groups"] for c in g["eas"]) == codes
    assert all(4 <= g["count"] <= 6 for g in redo["groups"])
    saved = env.client.post(
        f"{AREAS}/batch",
        json={"areas": [{"eas": g["eas"]} for g in redo["groups"]], "replace": redo["replaces"]},
        headers={**env.auth("editor"), "If-Match": redo["etag"]},
    )
    assert saved.status_code == 200, saved.text
    assert sorted(map(sorted, _held_areas(env).values())) == sorted(
        sorted(g["eas"]) for g in redo["groups"]
    )


def test_a_refused_batch_saves_nothing_and_names_the_eas(env: Env) -> None:
    eas = env.generate()
    shapes = {f["properties"]["code"]: shape(f["geometry"]) for f in eas}
    run = _touching_run(eas, 4)
    apart = next(c for c in shapes if shapes[c].distance(shapes[run[0]]) > 0.002)
    made = env.client.post(
        AREAS, json={"eas": run[:2]}, headers={**env.auth("editor"), **areas_tag(env)}
    )
    assert made.status_code == 201
    (old,) = made.json()["areas"]
    tag = {"If-Match": made.json()["etag"]}
    before = env.tables()
    # the old area would be replaced, the first group is fine, the second takes its EAs
    refused = env.client.post(
        f"{AREAS}/batch",
        json={"areas": [{"eas": run}, {"eas": run[:2]}], "replace": [old["code"]]},
        headers={**env.auth("editor", "vi"), **tag},
    )
    assert refused.status_code == 409, refused.text  # run[0] is in the first group already
    assert run[0] in refused.json()["detail"] and refused.json()["row"] == 2
    refused = env.client.post(
        f"{AREAS}/batch",
        json={"areas": [{"eas": run[2:]}, {"eas": [run[0], apart]}], "replace": [old["code"]]},
        headers={**env.auth("editor", "vi"), **tag},
    )
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert "không liền nhau" in detail and run[0] in detail and apart in detail
    assert env.tables() == before  # the old area is still there, no new area
    for body, parameter in (
        ({"areas": [{"eas": run}], "replace": ["00004-S99"]}, "replace"),
        ({"areas": []}, "areas"),
    ):
        bad = env.client.post(f"{AREAS}/batch", json=body, headers={**env.auth("editor"), **tag})
        assert bad.status_code in (400, 404) and bad.json()["parameter"] == parameter
    for body, parameter in (
        ({"min_eas": 5, "max_eas": 4}, "max_eas"),
        ({"min_eas": 0}, "min_eas"),
        ({"max_eas": "8"}, "max_eas"),
        ({"min_eas": True}, "min_eas"),
    ):
        bad = env.client.post(f"{AREAS}/proposal", json=body, headers=env.auth("editor", "vi"))
        assert bad.status_code == 400 and bad.json()["parameter"] == parameter
        assert "khoảng số địa bàn" in bad.json()["detail"]
    unknown = env.client.post(
        f"{AREAS}/proposal", json={"eas": ["00004-999"]}, headers=env.auth("editor")
    )
    assert unknown.status_code == 422 and "00004-999" in unknown.json()["detail"]
    outsider = env.client.post(f"{AREAS}/proposal", json={}, headers=env.auth("outsider"))
    assert outsider.status_code == 403
    assert env.tables() == before


def test_assignments_proposed_within_areas_then_saved(env: Env) -> None:
    eas = env.generate()
    proposal = env.client.post(
        f"{AREAS}/proposal", json={"min_eas": 4, "max_eas": 8}, headers=env.auth("editor")
    ).json()
    groups = proposal["groups"]
    saved = env.client.post(
        f"{AREAS}/batch",
        json={"areas": [{"eas": g["eas"]} for g in groups]},
        headers={**env.auth("editor"), "If-Match": proposal["etag"]},
    )
    assert saved.status_code == 200
    url = f"/communes/{COMMUNE}/assignments"
    none = env.client.post(f"{url}/proposal", json={}, headers=env.auth("editor", "vi")).json()
    assert none["assignments"] == [] and "chưa có điều tra viên" in none["notes"][0]
    # fewer enumerators than EAs: the EAs of an area shared among a few of them
    enumerators = [f"E{i:02d}" for i in range(len(eas) // 2)]
    for code in enumerators:
        assert _staff(env, code, "enumerator", COMMUNE).status_code == 201
    before = env.tables()
    asked = env.client.post(f"{url}/proposal", json={}, headers=env.auth("editor"))
    assert asked.status_code == 200, asked.text
    assert env.tables() == before
    found = asked.json()
    area_of = {c: g["number"] for g in groups for c in g["eas"]}
    proposed = [a["ea"] for a in found["assignments"]]
    assert sorted(proposed + found["unassigned"]) == sorted(area_of)
    assert len(proposed) == len(set(proposed))
    by_enumerator: dict[str, list[str]] = {}
    for a in found["assignments"]:
        by_enumerator.setdefault(a["enumerator"], []).append(a["ea"])
    assert set(by_enumerator) == set(enumerators)  # every enumerator gets work
    for who, codes in by_enumerator.items():
        assert len({area_of[c] for c in codes}) == 1, who  # never across two areas
    saved_table = env.client.put(
        url, json={"assignments": found["assignments"]}, headers=env.auth("editor")
    )
    assert saved_table.status_code == 200
    table = {
        r["enumerator"]["code"]: r["households"]
        for r in saved_table.json()["enumerators"]
        if r["enumerator"]
    }
    assert table == {t["enumerator"]: t["households"] for t in found["enumerators"]}


def test_an_ea_of_several_islands_joins_an_area_with_its_neighbours(env: Env) -> None:
    """Cô Tô (07192): EAs made of several islands share an edge with a neighbour on one of
    them; an area of such EAs is one piece (it was refused: the dissolved EAs are not one
    polygon), and the proposal groups them the same way."""
    admin = env.auth("admin", "vi")
    made = env.client.post("/communes/07192/ea-generate", headers=admin)
    assert made.status_code == 201, made.text
    eas = env.client.get(ITEMS, params={"commune": "07192", "limit": 1000}).json()["features"]
    units = [Unit(f["properties"]["code"], 0.0, shape(f["geometry"])) for f in eas]
    neighbours = adjacency(units)
    multi = [
        i for i, u in enumerate(units) if len(shapely.get_parts(u.geometry)) > 1 and neighbours[i]
    ]
    assert multi
    first = multi[0]
    group = sorted({units[first].code} | {units[j].code for j in neighbours[first]})
    area = env.client.post(
        "/communes/07192/supervisor-areas",
        json={"eas": group},
        headers={**admin, **areas_tag(env, "07192")},
    )
    assert area.status_code == 201, area.text
    # (a band warning when it holds fewer than 3 EAs, but no "not contiguous")
    assert all("không liền" not in w for w in area.json()["areas"][0]["warnings"])
    proposal = env.client.post(
        "/communes/07192/supervisor-areas/proposal", json={"redo": True}, headers=admin
    ).json()
    for g in proposal["groups"]:
        members = [units[[u.code for u in units].index(c)] for c in g["eas"]]
        assert is_contiguous(range(len(members)), adjacency(members))
    saved = env.client.post(
        "/communes/07192/supervisor-areas/batch",
        json={
            "areas": [{"eas": g["eas"]} for g in proposal["groups"]],
            "replace": proposal["replaces"],
        },
        headers={**admin, "If-Match": proposal["etag"]},
    )
    assert saved.status_code == 200, saved.text
    for saved_area in saved.json()["areas"]:
        assert all("không liền" not in w for w in saved_area["warnings"])
        assert bool(saved_area["warnings"]) == (len(saved_area["eas"]) < 3)  # (the band)


def test_a_stale_preview_is_not_saved_over_a_colleagues_areas(env: Env) -> None:
    eas = env.generate()
    for staff in ("S1", "S2"):
        assert _staff(env, staff, "supervisor", COMMUNE).status_code == 201
    run = _touching_run(eas, 4)
    made = env.client.post(
        AREAS, json={"eas": run}, headers={**env.auth("editor"), **areas_tag(env)}
    )
    assert made.status_code == 201, made.text
    (area,) = made.json()["areas"]
    read = env.client.get(AREAS, headers=env.auth("editor"))
    assert read.headers["ETag"] == read.json()["etag"] == made.json()["etag"]
    # a preview that regroups the whole commune, the colleague's area among them
    preview = env.client.post(
        f"{AREAS}/proposal", json={"redo": True}, headers=env.auth("editor")
    ).json()
    assert preview["replaces"] == [area["code"]] and preview["etag"] == read.headers["ETag"]
    body = {"areas": [{"eas": g["eas"]} for g in preview["groups"]], "replace": [area["code"]]}
    # meanwhile a colleague puts a supervisor over that area
    changed = env.client.put(
        f"{AREAS}/{area['id']}",
        json={"eas": run, "supervisor": "S1"},
        headers={**env.auth("supervisor"), "If-Match": read.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    before = env.tables()
    stale = env.client.post(
        f"{AREAS}/batch",
        json=body,
        headers={**env.auth("editor", "vi"), "If-Match": preview["etag"]},
    )
    assert stale.status_code == 412, stale.text
    refusal = stale.json()
    assert refusal["parameter"] == "If-Match" and refusal["areas"] == [area["code"]]
    assert area["code"] in refusal["detail"] and "xem trước lại" in refusal["detail"]
    english = env.client.post(
        f"{AREAS}/batch", json=body, headers={**env.auth("editor"), "If-Match": preview["etag"]}
    )
    assert english.status_code == 412 and "fresh preview" in english.json()["detail"]
    missing = env.client.post(f"{AREAS}/batch", json=body, headers=env.auth("editor", "vi"))
    assert missing.status_code == 428 and missing.json()["parameter"] == "If-Match"
    assert "If-Match" in missing.json()["detail"]
    odd = env.client.post(
        f"{AREAS}/batch", json=body, headers={**env.auth("editor"), "If-Match": '"ea-1-v1"'}
    )
    assert odd.status_code == 412 and odd.json()["areas"] == [area["code"]]
    assert env.tables() == before
    # a fresh preview sees the colleague's area and saves
    fresh = env.client.post(
        f"{AREAS}/proposal", json={"redo": True}, headers=env.auth("editor")
    ).json()
    assert fresh["etag"] != preview["etag"]
    saved = env.client.post(
        f"{AREAS}/batch",
        json={"areas": [{"eas": g["eas"]} for g in fresh["groups"]], "replace": fresh["replaces"]},
        headers={**env.auth("editor"), "If-Match": fresh["etag"]},
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["etag"] != fresh["etag"]


def test_an_area_made_since_the_preview_is_named(env: Env) -> None:
    eas = env.generate()
    preview = env.client.post(f"{AREAS}/proposal", json={}, headers=env.auth("editor")).json()
    run = _touching_run(eas, 3)
    made = env.client.post(
        AREAS, json={"eas": run}, headers={**env.auth("supervisor"), **areas_tag(env)}
    )
    assert made.status_code == 201, made.text
    (area,) = made.json()["areas"]
    free = [g for g in preview["groups"] if not set(g["eas"]) & set(run)]
    stale = env.client.post(
        f"{AREAS}/batch",
        json={"areas": [{"eas": g["eas"]} for g in free]},
        headers={**env.auth("editor", "vi"), "If-Match": preview["etag"]},
    )
    assert stale.status_code == 412, stale.text
    assert stale.json()["areas"] == [area["code"]]


def test_single_area_writes_need_the_areas_as_read(env: Env) -> None:
    """Making, changing and removing one supervisor area: 428 without If-Match, 412 naming
    the area a colleague changed since (saying to reload), nothing written; a change to
    another area does not stop a write on this one."""
    eas = env.generate()
    for staff in ("S1", "S2"):
        assert _staff(env, staff, "supervisor", COMMUNE).status_code == 201
    run = _touching_run(eas, 6)
    first, second = run[:3], run[3:]
    before = env.tables()
    missing = env.client.post(AREAS, json={"eas": first}, headers=env.auth("editor", "vi"))
    assert missing.status_code == 428 and missing.json()["parameter"] == "If-Match"
    assert "tải lại" in missing.json()["detail"]
    assert env.tables() == before
    made = env.client.post(
        AREAS, json={"eas": first}, headers={**env.auth("editor"), **areas_tag(env)}
    )
    assert made.status_code == 201, made.text
    (area,) = made.json()["areas"]
    assert made.headers["ETag"] == made.json()["etag"]
    seen = made.headers["ETag"]  # what the editor's page now holds
    # a colleague puts a supervisor over it
    changed = env.client.put(
        f"{AREAS}/{area['id']}",
        json={"eas": first, "supervisor": "S1"},
        headers={**env.auth("supervisor"), "If-Match": seen},
    )
    assert changed.status_code == 200, changed.text
    before = env.tables()
    for method, url, body in (
        ("PUT", f"{AREAS}/{area['id']}", {"eas": first, "supervisor": "S2"}),
        ("DELETE", f"{AREAS}/{area['id']}", None),
        ("POST", AREAS, {"eas": second}),
    ):
        headers = {**env.auth("editor", "vi"), "If-Match": seen}
        stale = env.client.request(method, url, json=body, headers=headers)
        assert stale.status_code == 412, (method, stale.text)
        refusal = stale.json()
        assert refusal["parameter"] == "If-Match" and refusal["areas"] == [area["code"]]
        assert area["code"] in refusal["detail"] and "tải lại" in refusal["detail"]
        english = env.client.request(
            method, url, json=body, headers={**env.auth("editor"), "If-Match": seen}
        )
        assert english.status_code == 412 and "reload" in english.json()["detail"]
        bare = env.client.request(method, url, json=body, headers=env.auth("editor"))
        assert bare.status_code == 428, (method, bare.text)
    assert env.tables() == before
    # read again: a second area made; then the first removed on the ETag read before that
    fresh = changed.headers["ETag"]
    other = env.client.post(
        AREAS, json={"eas": second}, headers={**env.auth("editor"), "If-Match": fresh}
    )
    assert other.status_code == 201, other.text
    removed = env.client.delete(
        f"{AREAS}/{area['id']}", headers={**env.auth("editor"), "If-Match": fresh}
    )
    assert removed.status_code == 204, removed.text
    (kept,) = [a["code"] for a in other.json()["areas"] if sorted(a["eas"]) == sorted(second)]
    assert list(_held_areas(env)) == [kept]
