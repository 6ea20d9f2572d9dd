"""Census field operations: EAs along loaded lines, password sign-in with expiring and
revocable tokens, staff, supervisor areas, assignments, workload, progress, the review queue,
the field listing and refusals in the client's language."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import LineString, MultiPolygon, mapping, shape

from boundaries.lines import load_lines
from geo_core.errors import LoaderError
from geo_service.ea.blocks import boundary_share
from geo_service.ea.delineate import DraftEA
from geo_service.http.app import create_app
from geo_service.http.auth import UNDER_ATTACK_PAIR_LIMIT
from geo_service.settings import ServiceSettings
from geo_service.users import add_user
from tests.conftest import live_process
from tests.helpers import fingerprint

ITEMS = "/collections/enumeration-areas/items"
COMMUNE = "00004"  # Phường Ba Đình, Hà Nội (province 01)
NEIGHBOUR = "00008"  # another commune of Hà Nội
ORGANISATION = ("census_staff", "supervisor_area", "ea_assignment", "enumeration_area")
_M_PER_DEG = 111_320.0


class Env:
    """A service over a fresh demo database, with users of every role."""

    def __init__(self, client: TestClient, url: str, tokens: dict[str, str]):
        self.client, self.url, self.tokens = client, url, tokens

    def auth(self, user: str, lang: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return {**headers, "Accept-Language": lang} if lang else headers

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(query, args or None)
            return cursor.fetchall() if cursor.description else []

    def tables(self, names: tuple[str, ...] = ORGANISATION) -> dict[str, tuple[int, str]]:
        with psycopg.connect(self.url) as conn:
            return fingerprint(conn, names)

    def commune(self, code: str = COMMUNE) -> Any:
        (wkb,) = self.sql(
            "SELECT ST_AsBinary(geom) FROM commune_coverage WHERE vintage = '2025' AND code = %s",
            code,
        )[0]
        return shapely.from_wkb(wkb)

    def generate(self, code: str = COMMUNE, **params: Any) -> list[dict[str, Any]]:
        made = self.client.post(
            f"/communes/{code}/ea-generate", params=params, headers=self.auth("editor")
        )
        assert made.status_code == 201, made.text
        found: list[dict[str, Any]] = self.client.get(
            ITEMS, params={"commune": code, "limit": 10_000}
        ).json()["features"]
        return found

    def act(self, ea_id: int, action: str, user: str, reason: str | None = None) -> Any:
        etag = self.client.get(f"{ITEMS}/{ea_id}").headers["ETag"]
        return self.client.post(
            f"{ITEMS}/{ea_id}/{action}",
            params={"reason": reason} if reason else None,
            headers={**self.auth(user), "If-Match": etag},
        )


@pytest.fixture
def env(demo_db: str, tmp_path: Path) -> Iterator[Env]:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        # the demo's national roads stay out of the way of the synthetic streets
        conn.execute("DELETE FROM ea_line")
        tokens = {
            "editor": add_user(conn, "ed", "editor", ["01"]),
            "outsider": add_user(conn, "out", "editor", ["79"]),
            "supervisor": add_user(conn, "sup", "supervisor", ["01"]),
            "admin": add_user(conn, "adm", "admin", []),
        }
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=demo_db)) as client:
        yield Env(client, demo_db, tokens)


# ---- EAs along lines ----


def _street_grid(area: Any, spacing_m: float) -> list[LineString]:
    """Straight streets every `spacing_m` across the area's box, off the raster's cell edges
    (so following them is not following the grid by chance)."""
    x0, y0, x1, y1 = area.bounds
    step = spacing_m / _M_PER_DEG
    offset = 0.37 * step
    streets = [
        LineString([(x, y0 - step), (x, y1 + step)]) for x in np.arange(x0 + offset, x1, step)
    ]
    streets += [
        LineString([(x0 - step, y), (x1 + step, y)]) for y in np.arange(y0 + offset, y1, step)
    ]
    return streets


def _write_lines(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _polygons(geometry: Any) -> list[Any]:
    return list(shapely.get_parts(geometry))


def _share(eas: list[dict[str, Any]], commune: Any, lines: list[Any]) -> float:
    drafts = [
        DraftEA(i, MultiPolygon(_polygons(shape(f["geometry"]))), 0.0, 0.0)
        for i, f in enumerate(eas)
    ]
    total, along = boundary_share(drafts, commune, lines)
    return along / total


def test_generated_eas_follow_a_street_grid(env: Env, tmp_path: Path) -> None:
    commune = env.commune()
    streets = _street_grid(commune, 160)
    # without lines: the grid method, whose boundaries follow the streets only by chance
    plain = env.generate(households_per_ea=200)
    assert _share(plain, commune, streets) < 0.35
    env.sql("DELETE FROM ea_history")
    env.sql("DELETE FROM enumeration_area")

    path = _write_lines(
        tmp_path / "streets.geojson",
        [
            {"type": "Feature", "properties": {"ten": f"phố {i}"}, "geometry": mapping(s)}
            for i, s in enumerate(streets)
        ],
    )
    with psycopg.connect(env.url) as conn:
        summary = load_lines(conn, path, "road", name_field="ten")
    assert summary.loaded == len(streets)
    eas = env.generate(households_per_ea=200)
    share = _share(eas, commune, streets)
    assert share > 0.8, share
    reported = env.client.get(f"/communes/{COMMUNE}/ea-lines").json()
    assert reported["share"] == pytest.approx(share, abs=0.05)
    assert reported["boundary_km"] > 1

    # still a valid coverage of the commune (EAs from neighbouring blocks, cut on their own
    # grids, share every vertex along the line between them), and every EA passes every rule
    geoms = [shape(f["geometry"]) for f in eas]
    assert shapely.coverage_is_valid(np.asarray(geoms, dtype=object))
    union = shapely.union_all(geoms)
    assert sum(g.area for g in geoms) - union.area < commune.area * 1e-6
    assert union.symmetric_difference(commune).area < commune.area * 1e-5
    report = env.client.get(f"/communes/{COMMUNE}/ea-coverage").json()
    assert report["complete"] and report["overlaps"] == []
    assert len(report["outside_workload_band"]) <= 0.15 * report["eas"]
    for feature in eas:
        read = env.client.get(f"{ITEMS}/{feature['id']}")
        body = {"type": "Feature", "geometry": read.json()["geometry"], "properties": {}}
        saved = env.client.put(
            f"{ITEMS}/{feature['id']}",
            json=body,
            headers={**env.auth("editor"), "If-Match": read.headers["ETag"]},
        )
        assert saved.status_code == 200, (feature["properties"]["code"], saved.text)


def test_the_demo_lines_are_loaded_and_reported(demo_db: str, tmp_path: Path) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        kinds: dict[str, int] = dict(
            conn.execute("SELECT kind, count(*) FROM ea_line GROUP BY kind").fetchall()
        )
        token = add_user(conn, "ed", "editor", ["01"])
        # a commune a national road crosses
        (crossed,) = conn.execute(
            "SELECT c.code FROM commune_coverage c JOIN ea_line l ON ST_Intersects(c.geom, l.geom)"
            " WHERE c.vintage = '2025' ORDER BY c.code LIMIT 1"
        ).fetchone() or (None,)
    assert kinds.get("road", 0) > 100 and kinds.get("railway", 0) > 0
    assert crossed is not None
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=demo_db)) as client:
        made = client.post(f"/communes/{crossed}/ea-generate", headers=headers)
        assert made.status_code == 201, made.text
        reported = client.get(f"/communes/{crossed}/ea-lines").json()
        assert reported["along_lines_km"] > 0 and 0 < reported["share"] <= 1
        lines = client.get(f"/communes/{crossed}/lines")
        assert lines.headers["content-type"].startswith("application/geo+json")
        assert lines.json()["features"]


def _line_feature(geometry: dict[str, Any], gid: int) -> dict[str, Any]:
    return {"type": "Feature", "id": gid, "properties": {"gid": gid}, "geometry": geometry}


def test_lines_files_that_cannot_be_right_are_refused_whole(env: Env, tmp_path: Path) -> None:
    commune = env.commune()
    x, y = commune.centroid.x, commune.centroid.y
    road = {"type": "LineString", "coordinates": [[x - 0.01, y], [x + 0.01, y]]}
    before = env.tables(("ea_line",))
    cases = {
        "point.geojson": (
            [_line_feature(road, 1), _line_feature({"type": "Point", "coordinates": [x, y]}, 2)],
            "2",
        ),
        "sea.geojson": (
            [_line_feature({"type": "LineString", "coordinates": [[112, 10], [112.1, 10]]}, 1)],
            "overlap",
        ),
        # projected metres read as if they were degrees: nowhere on Earth
        "metres.geojson": (
            [
                _line_feature(
                    {"type": "LineString", "coordinates": [[585000, 2326000], [586000, 2326000]]},
                    1,
                )
            ],
            "",
        ),
    }
    for name, (features, names_it) in cases.items():
        path = _write_lines(tmp_path / name, features)
        with psycopg.connect(env.url) as conn, pytest.raises(LoaderError) as refused:
            load_lines(conn, path, "road")
        assert name in str(refused.value) and names_it in str(refused.value)
    with psycopg.connect(env.url) as conn, pytest.raises(LoaderError):
        load_lines(conn, _write_lines(tmp_path / "road.geojson", [_line_feature(road, 1)]), "lane")
    assert env.tables(("ea_line",)) == before


# ---- users: passwords and tokens ----


def test_password_sign_in_expiry_and_revocation(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Mật-khẩu dài 2029"
    admin = env.auth("admin")
    assert (
        env.client.post(
            "/admin/users",
            json={"name": "lan", "role": "editor", "scope": ["01"], "password": "short"},
            headers=admin,
        ).status_code
        == 400
    )
    assert (
        env.client.post(
            "/admin/users",
            json={"name": "lan", "role": "editor", "scope": ["01"], "password": secret},
            headers=env.auth("editor"),
        ).status_code
        == 403
    )
    made = env.client.post(
        "/admin/users",
        json={"name": "lan", "role": "editor", "scope": ["01"], "password": secret},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    signed = env.client.post("/users/sign-in", json={"name": "lan", "password": secret})
    assert signed.status_code == 200, signed.text
    token = signed.json()["token"]
    assert signed.json()["expires_at"]
    mine = {"Authorization": f"Bearer {token}"}
    assert env.client.get("/users/me", headers=mine).json()["name"] == "lan"

    # a wrong password and an unknown name read the same, in the client's language
    wrong = env.client.post(
        "/users/sign-in",
        json={"name": "lan", "password": "not it at all"},
        headers={"Accept-Language": "vi"},
    )
    nobody = env.client.post(
        "/users/sign-in",
        json={"name": "nobody", "password": "not it at all"},
        headers={"Accept-Language": "vi"},
    )
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json()["detail"] == nobody.json()["detail"]
    assert "401" not in wrong.json()["detail"] and "password" not in wrong.json()["detail"]

    # nothing in clear: the hash is argon2id, no column and no log line holds the password
    ((stored,),) = env.sql("SELECT password_hash FROM app_user WHERE name = 'lan'")
    assert stored.startswith("$argon2id$") and secret not in stored
    dump = env.sql("SELECT row_to_json(u)::text FROM app_user u")
    dump += env.sql("SELECT row_to_json(t)::text FROM app_token t")
    assert not any(secret in row[0] or token in row[0] for row in dump)
    assert secret not in caplog.text and token not in caplog.text

    # expired: refused
    env.sql("UPDATE app_token SET expires_at = now() - interval '1 second' WHERE user_name = 'lan'")
    assert env.client.get("/users/me", headers=mine).status_code == 401
    # a new sign-in; the admin revokes every token of the user (a lost tablet)
    again = env.client.post("/users/sign-in", json={"name": "lan", "password": secret})
    mine = {"Authorization": f"Bearer {again.json()['token']}"}
    assert env.client.get("/users/me", headers=mine).status_code == 200
    listed = env.client.get("/admin/users", headers=admin).json()["users"]
    assert [len(u["tokens"]) for u in listed if u["name"] == "lan"] == [1]
    assert env.client.post("/admin/users/lan/revoke", headers=admin).json()["revoked"] == 1
    assert env.client.get("/users/me", headers=mine).status_code == 401
    # sign-out revokes the token it carries, and only it
    one = env.client.post("/users/sign-in", json={"name": "lan", "password": secret}).json()
    two = env.client.post("/users/sign-in", json={"name": "lan", "password": secret}).json()
    first = {"Authorization": f"Bearer {one['token']}"}
    second = {"Authorization": f"Bearer {two['token']}"}
    assert env.client.post("/users/sign-out", headers=first).json()["revoked"] == 1
    assert env.client.get("/users/me", headers=first).status_code == 401
    assert env.client.get("/users/me", headers=second).status_code == 200
    # a password reset revokes the tokens; the old password stops working
    reset = env.client.patch(
        "/admin/users/lan", json={"password": "another long one"}, headers=admin
    )
    assert reset.status_code == 200, reset.text
    assert env.client.get("/users/me", headers=second).status_code == 401
    assert (
        env.client.post("/users/sign-in", json={"name": "lan", "password": secret}).status_code
        == 401
    )


def test_wrong_passwords_count_towards_the_failed_auth_limit(env: Env) -> None:
    secret = "a long enough password"
    env.client.post(
        "/admin/users",
        json={"name": "hoa", "role": "viewer", "scope": [], "password": secret},
        headers=env.auth("admin"),
    )
    limit = env.client.app.state.services.failed_auth.limit  # type: ignore[attr-defined]
    codes = [
        env.client.post(
            "/users/sign-in", json={"name": "hoa", "password": f"guess {i}"}
        ).status_code
        for i in range(limit)
    ]
    assert set(codes) == {401}
    # the limit is reached: even the right password is turned away for now
    blocked = env.client.post("/users/sign-in", json={"name": "hoa", "password": secret})
    assert blocked.status_code == 429, blocked.text


def test_others_failed_sign_ins_do_not_lock_a_user_out(demo_db: str, tmp_path: Path) -> None:
    """An attacker guessing a user's password (user names are public: EA histories name
    their authors), or a neighbour behind the office's NAT failing, does not stop the user
    signing in from where they signed in before or from an address that has not failed;
    the attacker's own attempts stay limited."""
    settings = ServiceSettings(home=tmp_path, trusted_proxies="127.0.0.1")
    app = create_app(settings, db_url=demo_db)
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        with psycopg.connect(demo_db, autocommit=True) as conn:
            admin = add_user(conn, "adm", "admin", [])
        for name in ("hoa", "lan"):
            made = client.post(
                "/admin/users",
                json={
                    "name": name,
                    "role": "editor",
                    "scope": ["01"],
                    "password": f"{name} pw 2029",
                },
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert made.status_code == 201, made.text
        limit = app.state.services.failed_auth.limit

        def sign_in(name: str, password: str, address: str) -> int:
            answer = client.post(
                "/users/sign-in",
                json={"name": name, "password": password},
                headers={"X-Forwarded-For": address},
            )
            return answer.status_code

        office, attacker, elsewhere = "10.1.1.1", "203.0.113.9", "10.2.2.2"
        assert sign_in("hoa", "hoa pw 2029", office) == 200
        # an attacker spends the name's attempts, and then their own
        assert {sign_in("hoa", f"guess {i}", attacker) for i in range(limit)} == {401}
        assert sign_in("hoa", "guess again", attacker) == 429
        assert sign_in("hoa", "hoa pw 2029", attacker) == 429
        # hoa still signs in at the office, and from an address that has not failed
        assert sign_in("hoa", "hoa pw 2029", office) == 200
        assert sign_in("hoa", "hoa pw 2029", elsewhere) == 200
        # an attacker who moves to a fresh address gains only a few guesses at the name
        moved, tablet = "198.51.100.7", "10.3.3.3"
        few = UNDER_ATTACK_PAIR_LIMIT
        assert [sign_in("hoa", f"guess {i}", moved) for i in range(few + 1)] == [401] * few + [429]
        assert sign_in("hoa", "hoa pw 2029", moved) == 429
        assert sign_in("hoa", "hoa pw 2029", tablet) == 200
        # a neighbour behind the office's address fails with many names
        assert {sign_in(f"nobody{i}", "wrong password", office) for i in range(limit)} == {401}
        assert sign_in("nobody", "wrong password", office) == 429
        assert sign_in("hoa", "hoa pw 2029", office) == 200
        assert sign_in("lan", "lan pw 2029", office) == 429  # (never signed in from there)
        assert sign_in("lan", "lan pw 2029", elsewhere) == 200


def test_a_burst_of_sign_ins_is_cut_at_the_limit_and_holds_no_connection(
    demo_db: str, tmp_path: Path
) -> None:
    """Sign-ins sent all at once from one address: only the limit's worth have their
    password checked, and while they are checked the pool stays free for everyone else (a
    burst held every pooled connection while argon2 ran: others got 503 'database not
    available')."""
    with psycopg.connect(demo_db, autocommit=True) as conn:
        add_user(conn, "hoa", "viewer", [], password="hoa pw 2029")
    pool = {"GEO_SERVICE_POOL_MAX_SIZE": "2"}  # (others wait up to 5 s for a connection)
    with live_process(demo_db, GEO_SERVICE_TRUSTED_PROXIES="127.0.0.1", **pool) as (url, _):

        def sign_in(number: int) -> int:
            request = urllib.request.Request(
                f"{url}/users/sign-in",
                data=json.dumps({"name": "hoa", "password": f"guess {number}"}).encode(),
                headers={"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.9"},
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as refused:
                return int(refused.code)

        with ThreadPoolExecutor(60) as burst:
            sent = [burst.submit(sign_in, number) for number in range(60)]
            # (meanwhile another client's reads need a pooled connection)
            reads = [
                urllib.request.urlopen(f"{url}/indicators/population", timeout=120).status
                for _ in range(5)
            ]
            statuses = [answer.result() for answer in sent]
        assert statuses.count(401) == 20 and statuses.count(429) == 40, Counter(statuses)
        assert reads == [200] * 5


def test_an_admin_creating_users_hashes_their_passwords_holding_no_connection(
    demo_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 takes tens of milliseconds by design: run while the request holds a pooled
    connection, a burst of user creations (or password resets) held the pool like the
    sign-in burst did. With a pool of one, the hashing must find that one connection free."""
    import geo_service.users as users

    settings = ServiceSettings(home=tmp_path, pool_min_size=1, pool_max_size=1)
    app = create_app(settings, db_url=demo_db)
    free_while_hashing: list[int] = []
    hash_password = users.hash_password

    def watched(password: str) -> str:
        # (a connection given back is checked by the pool before it is lent again: wait
        # for that, never for the request to end)
        for _ in range(200):
            if app.state.services.pool.get_stats()["pool_available"]:
                break
            time.sleep(0.01)
        free_while_hashing.append(app.state.services.pool.get_stats()["pool_available"])
        return hash_password(password)

    monkeypatch.setattr(users, "hash_password", watched)
    with psycopg.connect(demo_db, autocommit=True) as conn:
        admin = {"Authorization": f"Bearer {add_user(conn, 'adm', 'admin', [])}"}
    with TestClient(app) as client:
        made = client.post(
            "/admin/users",
            json={"name": "hoa", "role": "viewer", "scope": [], "password": "hoa pw 2029"},
            headers=admin,
        )
        assert made.status_code == 201, made.text
        reset = client.patch("/admin/users/hoa", json={"password": "new pw 2029"}, headers=admin)
        assert reset.status_code == 200, reset.text
        signed = client.post("/users/sign-in", json={"name": "hoa", "password": "new pw 2029"})
        assert signed.status_code == 200, signed.text
        # (an anonymous request is refused before any hashing)
        anonymous = client.post(
            "/admin/users",
            json={"name": "lan", "role": "viewer", "scope": [], "password": "lan pw 2029"},
        )
        assert anonymous.status_code == 401
    assert free_while_hashing == [1, 1]


# ---- organisation ----


def _staff(env: Env, code: str, role: str, scope: str, user: str = "editor") -> Any:
    return env.client.post(
        "/census/2029/staff",
        json={"code": code, "name": f"Nguyễn {code}", "role": role, "scope": scope},
        headers=env.auth(user),
    )


def areas_tag(env: Env, commune: str = COMMUNE) -> dict[str, str]:
    """If-Match with the ETag of the commune's supervisor areas as they are now."""
    return {"If-Match": env.client.get(f"/communes/{commune}/supervisor-areas").headers["ETag"]}


def _touching_run(eas: list[dict[str, Any]], size: int) -> list[str]:
    """Codes of `size` EAs that form one piece (grown from the first by shared edges)."""
    shapes = {f["properties"]["code"]: shape(f["geometry"]) for f in eas}
    chosen = [eas[0]["properties"]["code"]]
    while len(chosen) < size:
        grown = shapely.union_all([shapes[c] for c in chosen])
        chosen.append(
            next(
                c for c, g in shapes.items() if c not in chosen and g.intersection(grown).length > 0
            )
        )
    return chosen


def test_staff_areas_assignments_and_workload(env: Env) -> None:
    eas = env.generate()
    assert _staff(env, "E1", "enumerator", COMMUNE).status_code == 201
    assert _staff(env, "E2", "enumerator", "01").status_code == 201
    assert _staff(env, "S1", "supervisor", COMMUNE).status_code == 201
    assert _staff(env, "E9", "enumerator", "79", "admin").status_code == 201
    assert _staff(env, "E8", "enumerator", "79").status_code == 403  # outside ed's scope
    assert _staff(env, "E1", "enumerator", COMMUNE).status_code == 409
    codes = [f["properties"]["code"] for f in eas]
    url = f"/communes/{COMMUNE}/assignments"

    # refusals name the row and write nothing
    before = env.tables()
    for rows, row in (
        ([{"ea": codes[0], "enumerator": "E1"}, {"ea": codes[1], "enumerator": "NOBODY"}], 2),
        ([{"ea": codes[0], "enumerator": "E9"}], 1),  # works in province 79
        ([{"ea": codes[0], "enumerator": "S1"}], 1),  # a supervisor, not an enumerator
        ([{"ea": codes[0], "enumerator": "E1"}, {"ea": "99999-001", "enumerator": "E1"}], 2),
    ):
        refused = env.client.put(url, json={"assignments": rows}, headers=env.auth("editor"))
        assert refused.status_code == 422, refused.text
        assert refused.json()["row"] == row
        assert env.tables() == before
    assert (
        env.client.put(
            url,
            json={"assignments": [{"ea": codes[0], "enumerator": "E1"}]},
            headers=env.auth("outsider"),
        ).status_code
        == 403
    )

    half = len(codes) // 2
    table = env.client.put(
        url,
        json={
            "assignments": [{"ea": c, "enumerator": "E1"} for c in codes[:half]]
            + [{"ea": c, "enumerator": "E2"} for c in codes[half:-3]]
        },
        headers=env.auth("editor"),
    )
    assert table.status_code == 200, table.text
    workload = table.json()
    assert workload == env.client.get(f"/communes/{COMMUNE}/workload").json()
    # the table is what the database holds
    held = dict(
        env.sql(
            "SELECT coalesce(s.code, '-'), sum(e.households) FROM enumeration_area e"
            " LEFT JOIN ea_assignment a ON a.ea_id = e.id"
            " LEFT JOIN census_staff s ON s.id = a.enumerator_id"
            " WHERE e.commune_code = %s GROUP BY 1",
            COMMUNE,
        )
    )
    for row in workload["enumerators"]:
        who = row["enumerator"]["code"] if row["enumerator"] else "-"
        assert row["households"] == pytest.approx(held[who], abs=0.1)
    assert sorted(workload["unassigned"]) == sorted(codes[-3:])
    assert workload["eas"] == len(codes)
    band = workload["band"]
    assert {o["ea"] for o in workload["outside_band"]} == {
        f["properties"]["code"]
        for f in eas
        if not band[0] <= f["properties"]["households"] <= band[1]
    }

    # supervisor areas: contiguous, one commune, none shared
    areas_url = f"/communes/{COMMUNE}/supervisor-areas"
    run = _touching_run(eas, 4)
    shapes = {f["properties"]["code"]: shape(f["geometry"]) for f in eas}
    apart = next(c for c in codes if shapes[c].distance(shapes[run[0]]) > 0.002)
    other = env.generate(NEIGHBOUR)[0]["properties"]["code"]
    before = env.tables()
    for body in (
        {"eas": [run[0], apart]},
        {"eas": [run[0], other]},
        {"eas": [run[0], "00004-999"]},
        {"eas": run, "supervisor": "E1"},
    ):
        refused = env.client.post(
            areas_url, json=body, headers={**env.auth("editor"), **areas_tag(env)}
        )
        assert refused.status_code == 422, (body, refused.text)
        assert env.tables() == before
    made = env.client.post(
        areas_url,
        json={"eas": run, "supervisor": "S1"},
        headers={**env.auth("editor"), **areas_tag(env)},
    )
    assert made.status_code == 201, made.text
    (area,) = made.json()["areas"]
    assert area["code"] == f"{COMMUNE}-S01" or area["code"].startswith(f"{COMMUNE}-S")
    assert sorted(area["eas"]) == sorted(run) and area["supervisor"]["code"] == "S1"
    assert area["warnings"] == []  # 4 EAs: inside the 3–8 band
    taken = env.client.post(
        areas_url,
        json={"eas": [run[0]]},
        headers={**env.auth("editor"), "If-Match": made.headers["ETag"]},
    )
    assert taken.status_code == 409 and run[0] in taken.json()["in_other_areas"]
    held_area = env.sql(
        "SELECT e.code FROM ea_assignment a JOIN enumeration_area e ON e.id = a.ea_id"
        " WHERE a.supervisor_area_id = %s ORDER BY 1",
        area["id"],
    )
    assert [c for (c,) in held_area] == sorted(run)
    # removing a staff member leaves their EAs unassigned
    assert env.client.delete("/census/2029/staff/E2", headers=env.auth("editor")).status_code == 204
    after = env.client.get(f"/communes/{COMMUNE}/workload").json()
    assert sorted(after["unassigned"]) == sorted(codes[half:])


def test_staff_phones_and_user_names_are_for_signed_in_readers_only(env: Env) -> None:
    eas = env.generate()
    code = eas[0]["properties"]["code"]
    for staff, role in (("E1", "enumerator"), ("S1", "supervisor")):
        added = env.client.post(
            "/census/2029/staff",
            json={
                "code": staff,
                "name": f"Nguyễn {staff}",
                "role": role,
                "scope": COMMUNE,
                "phone": "+84 912 345 678",
                "user_name": "ed",
            },
            headers=env.auth("editor"),
        )
        assert added.status_code == 201, added.text
    assign = {"assignments": [{"ea": code, "enumerator": "E1"}]}
    url = f"/communes/{COMMUNE}/assignments"
    assert env.client.put(url, json=assign, headers=env.auth("editor")).status_code == 200
    area = {"eas": [code], "supervisor": "S1"}
    made = env.client.post(
        f"/communes/{COMMUNE}/supervisor-areas",
        json=area,
        headers={**env.auth("editor"), **areas_tag(env)},
    )
    assert made.status_code == 201, made.text
    again = env.client.post(
        f"/communes/{COMMUNE}/supervisor-areas",
        json=area,
        headers={**env.auth("editor"), **areas_tag(env)},
    )
    assert again.status_code == 409 and again.json()["in_other_areas"] == [code]
    assert "already in another supervisor area" in again.json()["detail"]

    def members(headers: dict[str, str]) -> list[dict[str, Any]]:
        staff = env.client.get("/census/2029/staff", headers=headers).json()["staff"]
        areas = env.client.get(f"/communes/{COMMUNE}/supervisor-areas", headers=headers).json()
        workload = env.client.get(f"/communes/{COMMUNE}/workload", headers=headers).json()
        return [
            *staff,
            *(a["supervisor"] for a in areas["areas"]),
            *(r["enumerator"] for r in workload["enumerators"] if r["enumerator"]),
        ]

    anonymous = members({})
    assert len(anonymous) == 4 and {m["name"] for m in anonymous} == {"Nguyễn E1", "Nguyễn S1"}
    assert all(m["phone"] is None and m["user_name"] is None for m in anonymous)
    signed_in = members(env.auth("outsider"))
    assert all(m["phone"] == "+84 912 345 678" and m["user_name"] == "ed" for m in signed_in)


def test_linking_staff_to_an_account_does_not_tell_which_user_names_exist(env: Env) -> None:
    """An editor adding staff with a user_name got "there is no user X" for names that do
    not exist and a 201 or another answer for those that do: a probe of every user name
    (the administrators' first). Now every account that cannot be linked gets one answer."""
    with psycopg.connect(env.url, autocommit=True) as conn:
        add_user(conn, "gone", "editor", ["01"])
    env.sql("UPDATE app_user SET disabled = true WHERE name = 'gone'")

    def link(code: str, user_name: str) -> Any:
        body = {"code": code, "name": "Trần Văn A", "role": "enumerator", "scope": COMMUNE}
        return env.client.post(
            "/census/2029/staff", json={**body, "user_name": user_name}, headers=env.auth("editor")
        )

    refusals = [link(f"E{i}", name) for i, name in enumerate(("nobody", "adm", "out", "gone"))]
    assert {r.status_code for r in refusals} == {400}
    assert len({r.text for r in refusals}) == 1 and "nobody" not in refusals[0].text
    assert refusals[0].json()["parameter"] == "user_name"
    assert link("E9", "sup").status_code == 201  # (an active supervisor of the province)
    vietnamese = env.client.post(
        "/census/2029/staff",
        json={"code": "E8", "name": "A", "role": "enumerator", "scope": COMMUNE, "user_name": "x"},
        headers=env.auth("editor", "vi"),
    )
    assert "người dùng" in vietnamese.json()["detail"]


def test_progress_and_review_queue_equal_the_database(env: Env) -> None:
    eas = env.generate()
    env.generate(NEIGHBOUR)
    for feature in eas[:6]:
        assert env.act(feature["id"], "submit", "editor").status_code == 200
    assert env.act(eas[0]["id"], "approve", "supervisor").status_code == 200
    assert env.act(eas[1]["id"], "reject", "supervisor", "chia theo phố Đội Cấn").status_code == 200
    rejected = env.client.get(f"{ITEMS}/{eas[1]['id']}").json()
    assert rejected["properties"]["rejection_reason"] == "chia theo phố Đội Cấn"
    env.client.put(
        f"/communes/{COMMUNE}/assignments",
        json={"assignments": []},
        headers=env.auth("editor"),
    )
    _staff(env, "E1", "enumerator", COMMUNE)
    env.client.put(
        f"/communes/{COMMUNE}/assignments",
        json={
            "assignments": [{"ea": f["properties"]["code"], "enumerator": "E1"} for f in eas[:5]]
        },
        headers=env.auth("editor"),
    )

    queue = env.client.get("/census/2029/review", headers=env.auth("supervisor")).json()
    submitted = {
        code
        for (code,) in env.sql(
            "SELECT code FROM enumeration_area WHERE status = 'submitted' AND census_round = '2029'"
        )
    }
    assert {e["code"] for e in queue["submitted"]} == submitted and len(submitted) == 4
    assert all(e["geometry"] for e in queue["submitted"])

    progress = env.client.get("/census/2029/progress", params={"scope": "01"}).json()
    held = env.sql(
        "SELECT c.code, count(e.id), count(e.id) FILTER (WHERE e.status = 'draft'),"
        " count(e.id) FILTER (WHERE e.status = 'submitted'),"
        " count(e.id) FILTER (WHERE e.status = 'approved'),"
        " count(a.enumerator_id)"
        " FROM admin_unit c LEFT JOIN enumeration_area e ON e.commune_code = c.code"
        "  AND e.census_round = '2029'"
        " LEFT JOIN ea_assignment a ON a.ea_id = e.id"
        " WHERE c.vintage = '2025' AND c.level = 'commune' AND c.parent_code = '01'"
        " GROUP BY c.code"
    )
    assert progress["communes"] == len(held) > 100
    assert progress["without_eas"] == sum(1 for row in held if row[1] == 0)
    rows = {r["code"]: r for r in progress["rows"]}
    for code, count, draft, sub, approved, assigned in held:
        got = rows[code]
        assert (got["eas"], got["draft"], got["submitted"], got["approved"], got["assigned"]) == (
            count,
            draft,
            sub,
            approved,
            assigned,
        )
    assert progress["totals"]["assigned"] == 5


# ---- field listing ----


def test_listing_upload_all_or_nothing(env: Env) -> None:
    eas = env.generate()
    first, second = (f["properties"]["code"] for f in eas[:2])
    url = "/census/2029/listing"
    before = env.tables()
    bad = f"code,listed_dwellings,listed_households\n{first},40,38\n00004-999,3,3\n{second},-2,5\n"
    refused = env.client.post(url, content=bad.encode(), headers=env.auth("editor"))
    assert refused.status_code in (400, 422), refused.text
    problems = refused.json()["problems"]
    assert {p["row"] for p in problems} >= {4} and env.tables() == before
    unknown = f"code,listed_dwellings,listed_households\n{first},40,38\n00004-999,3,3\n"
    refused = env.client.post(url, content=unknown.encode(), headers=env.auth("editor"))
    assert refused.status_code == 422 and [p["row"] for p in refused.json()["problems"]] == [3]
    assert env.tables() == before
    outside = env.client.post(
        url,
        content=f"code,dwellings,households\n{first},1,1\n".encode(),
        headers=env.auth("outsider"),
    )
    assert outside.status_code == 422 and env.tables() == before

    good = f"code,listed_dwellings,listed_households\n{first},40,38\n{second},12,\n"
    saved = env.client.post(url, content=good.encode(), headers=env.auth("editor", "vi"))
    assert saved.status_code == 200, saved.text
    assert saved.json()["saved"] == 2
    props = env.client.get(f"{ITEMS}/{eas[0]['id']}").json()["properties"]
    assert (props["listed_dwellings"], props["listed_households"]) == (40, 38)
    assert props["households"] > 0  # the raster estimate stays beside it


# ---- attributes, restore and messages ----


def test_attributes_restore_and_refusals_in_the_clients_language(env: Env) -> None:
    eas = env.generate()
    ea = eas[0]
    code = ea["properties"]["code"]
    read = env.client.get(f"{ITEMS}/{ea['id']}")
    original = shape(read.json()["geometry"])
    patched = env.client.patch(
        f"{ITEMS}/{ea['id']}",
        json={
            "type": "Feature",
            "geometry": None,
            "properties": {
                "urban_rural": "urban",
                "boundary_description": "Bắc: phố Kim Mã; Nam: ngõ 12",
                "landmarks": "Chợ Ngọc Hà",
            },
        },
        headers={**env.auth("editor"), "If-Match": read.headers["ETag"]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["properties"]["urban_rural"] == "urban"
    bad = env.client.patch(
        f"{ITEMS}/{ea['id']}",
        json={"type": "Feature", "geometry": None, "properties": {"urban_rural": "suburban"}},
        headers={**env.auth("editor"), "If-Match": patched.headers["ETag"]},
    )
    assert bad.status_code in (400, 422) and bad.json()["parameter"]

    # a stale version: refused in Vietnamese, naming the EA by its code
    stale = env.client.patch(
        f"{ITEMS}/{ea['id']}",
        json={"type": "Feature", "geometry": None, "properties": {"landmarks": "Đình Ngọc Hà"}},
        headers={**env.auth("editor", "vi"), "If-Match": read.headers["ETag"]},
    )
    assert stale.status_code == 412
    detail = stale.json()["detail"]
    assert code in detail and "Địa bàn" in detail
    assert read.headers["ETag"].strip('"') not in detail and "changed" not in detail
    english = env.client.patch(
        f"{ITEMS}/{ea['id']}",
        json={"type": "Feature", "geometry": None, "properties": {"landmarks": "Đình Ngọc Hà"}},
        headers={**env.auth("editor", "en"), "If-Match": read.headers["ETag"]},
    )
    assert code in english.json()["detail"] and "reload" in english.json()["detail"]

    # reshape, then restore the version of the first entry: the geometry comes back
    # (a neighbour taken out first, in the database since the API refuses a delete that
    # opens a gap: the ring the EA gives up joins that uncovered area instead of opening a
    # gap, which a save refuses)
    neighbour = next(f for f in eas[1:] if shape(f["geometry"]).intersection(original).length)
    env.sql("DELETE FROM enumeration_area WHERE id = %s", neighbour["id"])
    smaller = original.buffer(-0.0003)
    now = env.client.get(f"{ITEMS}/{ea['id']}")
    changed = env.client.put(
        f"{ITEMS}/{ea['id']}",
        json={"type": "Feature", "geometry": mapping(smaller), "properties": {}},
        headers={**env.auth("editor"), "If-Match": now.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    history = env.client.get(f"{ITEMS}/{ea['id']}/history").json()["history"]
    first = min(history, key=lambda h: h["id"])
    current = env.client.get(f"{ITEMS}/{ea['id']}")
    before = env.tables(("enumeration_area", "ea_history"))
    assert (
        env.client.post(
            f"{ITEMS}/{ea['id']}/restore",
            params={"entry": first["id"]},
            headers={**env.auth("editor"), "If-Match": read.headers["ETag"]},
        ).status_code
        == 412
    )
    assert env.tables(("enumeration_area", "ea_history")) == before
    restored = env.client.post(
        f"{ITEMS}/{ea['id']}/restore",
        params={"entry": first["id"]},
        headers={**env.auth("editor"), "If-Match": current.headers["ETag"]},
    )
    assert restored.status_code == 200, restored.text
    assert shape(restored.json()["geometry"]).symmetric_difference(original).area < 1e-12
    actions = [h["action"] for h in env.client.get(f"{ITEMS}/{ea['id']}/history").json()["history"]]
    assert actions[-1] == "restore" or actions[0] == "restore"


def test_progress_and_users_pages_speak_the_pages_language(env: Env) -> None:
    for path, vi_title, en_title in (
        ("/map/ea/progress?scope=01", "Tiến độ vẽ địa bàn điều tra", "progress"),
        ("/map/users", "Quản lý người dùng", "users"),
    ):
        vi = env.client.get(f"{path}{'&' if '?' in path else '?'}lang=vi")
        assert vi.status_code == 200 and vi_title in vi.text
        assert "<script>" not in vi.text  # (settings travel as JSON data)
        en = env.client.get(f"{path}{'&' if '?' in path else '?'}lang=en")
        assert en.status_code == 200 and en_title in en.text.lower()
        assert vi_title not in en.text
