"""What the ninth attack pass checked (issue #22): /health tells anyone the status and only
an operator the versions and replicas; the lines near a commune are valid features; a HEAD
of a download builds no body and starts no job; and the checks of earlier passes that the
newer routes (jobs, processes, restores) could reopen."""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.users import add_user
from tests.conftest import PgCluster
from tests.helpers import get_health
from tests.test_server_limits import served  # noqa: F401  (`geo-service serve` over the demo)

COMMUNE = "00004"  # Phường Ba Đình, Hà Nội (province 01)
EAS = "/collections/enumeration-areas/items"
UNITS = "/collections/commune-2025/items"
ROLES = {"viewer": ["01"], "editor": ["01"], "supervisor": ["01"], "admin": []}
OPERATOR_ONLY = {"postgis", "schema_version", "replicas"}


@dataclass
class Site:
    """The app over its own demo copy, with a user of every role (and one elsewhere)."""

    client: TestClient
    url: str
    auth: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def site(pg: PgCluster, demo_template: str) -> Iterator[Site]:
    url = pg.create_database(demo_template)
    auth = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for role, scope in {**ROLES, "other": ["79"]}.items():
            token = add_user(conn, f"p9-{role}", "editor" if role == "other" else role, scope)
            auth[role] = {"Authorization": f"Bearer {token}"}
    # (a download of more than 1 EA is a job: HEAD must not start one)
    settings = ServiceSettings(home=Path(tempfile.mkdtemp()), ea_export_sync_eas=1)
    try:
        with TestClient(create_app(settings, db_url=url)) as client:
            made = client.post(f"/communes/{COMMUNE}/ea-generate", headers=auth["admin"])
            assert made.status_code == 201 and made.json()["created"] > 1, made.text
            yield Site(client, url, auth)
    finally:
        pg.drop_database(url)


@pytest.fixture(scope="module")
def private(site: Site) -> Iterator[TestClient]:
    """A second instance over the same database, with private reads."""
    settings = ServiceSettings(home=Path(tempfile.mkdtemp()), public_reads=False)
    with TestClient(create_app(settings, db_url=site.url)) as client:
        yield client


def test_health_tells_the_status_to_anyone_and_the_details_to_an_operator(site: Site) -> None:
    client = site.client
    for who in ({}, site.auth["viewer"], site.auth["editor"], site.auth["supervisor"]):
        got = client.get("/health", headers=who)
        assert got.status_code == 200 and got.json()["status"] == "ok", got.text
        assert not OPERATOR_ONLY & set(got.json()), (who, got.json())
    for details in (client.get("/health", headers=site.auth["admin"]), get_health(client)):
        assert details.status_code == 200
        assert details.json()["postgis"].startswith("3.") and details.json()["schema_version"]
    # a proxy on the service's machine is no operator; a bad token is refused as anywhere
    proxied = client.get("/health", headers={"X-Forwarded-For": "203.0.113.9"})
    assert not OPERATOR_ONLY & set(proxied.json())
    bad = client.get("/health", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and bad.json()["parameter"] == "Authorization"


def test_the_lines_near_a_commune_are_valid_features(site: Site) -> None:
    # a line whose box meets the commune's surroundings but which passes by their corner:
    # its clipped part is empty, and was sent as a LineString without coordinates
    with psycopg.connect(site.url, autocommit=True) as conn:
        x0, y1 = conn.execute(
            "SELECT ST_XMin(b) - 0.01, ST_YMax(b) + 0.01 FROM (SELECT ST_Envelope(geom) AS b"
            " FROM commune_coverage WHERE code = %s ORDER BY vintage DESC LIMIT 1) c",
            (COMMUNE,),
        ).fetchone()
        conn.execute(
            "INSERT INTO ea_line (kind, name, source, geom) VALUES ('road', 'passing by',"
            " 'test', ST_Multi(ST_MakeLine(ST_Point(%s, %s, 4326), ST_Point(%s, %s, 4326))))",
            (x0 - 0.1, y1 - 0.05, x0 + 0.05, y1 + 0.1),
        )
    got = site.client.get(f"/communes/{COMMUNE}/lines", headers=site.auth["viewer"])
    assert got.status_code == 200, got.text
    for feature in got.json()["features"]:
        geometry = feature["geometry"]
        assert geometry and geometry["type"] in ("LineString", "MultiLineString"), feature
        assert geometry["coordinates"], feature


def _jobs(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM output_job").fetchone()[0]


def test_a_head_of_a_download_builds_no_file_and_starts_no_job(site: Site) -> None:
    client, viewer = site.client, site.auth["viewer"]
    before = _jobs(site.url)
    for fmt in ("gpkg", "shp", "csv", "geojson"):  # (every format past the job threshold)
        head = client.head(EAS, params={"f": fmt}, headers=viewer)
        assert head.status_code == 202 and head.content == b"", (fmt, head.text)
    assert _jobs(site.url) == before  # (the GET starts one)
    for path, params in (
        (EAS, {"f": "csv", "limit": 1}),  # (one EA: under the threshold, made at once)
        (EAS, {"f": "geojson", "limit": 1}),
        (EAS, {"f": "json"}),
        (UNITS, {"f": "csv", "limit": 50}),
        (UNITS, {"limit": 50}),
    ):
        got = client.get(path, params=params, headers={**viewer, "Accept-Encoding": "identity"})
        head = client.head(path, params=params, headers={**viewer, "Accept-Encoding": "identity"})
        assert head.status_code == got.status_code == 200, (path, params, head.text)
        assert head.headers["content-type"] == got.headers["content-type"]
        for name in ("content-disposition", "ogc-numbermatched", "content-crs"):
            assert head.headers.get(name) == got.headers.get(name), (path, params, name)
        # (the body was not built: its length is not known)
        assert "content-length" in got.headers and "content-length" not in head.headers
    # the download slots a HEAD takes are given back: more HEADs than one client may have
    # open downloads, then a GET
    one = {"f": "csv", "limit": 1}
    for _ in range(10):
        assert client.head(EAS, params=one, headers=viewer).status_code == 200
    assert client.get(EAS, params=one, headers=viewer).status_code == 200


def _get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_geo_service_serve_trusts_no_forwarded_header_of_its_own(served: int) -> None:  # noqa: F811
    # uvicorn by default takes X-Forwarded-For and -Proto from any process on 127.0.0.1:
    # with a new address every time, bad tokens were never limited (30 × 401, no 429)
    base = f"http://127.0.0.1:{served}"
    codes = [
        _get(
            f"{base}/users/me",
            {"Authorization": f"Bearer bad-{i}", "X-Forwarded-For": f"10.9.{i}.1"},
        )[0]
        for i in range(25)
    ]
    assert codes[:20] == [401] * 20 and codes[20:] == [429] * 5, codes
    status, body = _get(f"{base}/collections", {"X-Forwarded-Proto": "https"})
    assert status == 200 and b"https://" not in body
    assert json.loads(body)["links"][0]["href"].startswith("http://127.0.0.1")


def _etag(client: TestClient, ea_id: int) -> str:
    return str(client.get(f"{EAS}/{ea_id}").headers["ETag"])


def test_four_eyes_sees_through_a_restore_and_the_communes_batch(site: Site) -> None:
    # the supervisor re-saves an EA, the editor restores the generated version and submits
    # it: the supervisor's hand is in its history, one by one and in the commune's batch
    client, auth, ea = site.client, site.auth, 20
    read = client.get(f"{EAS}/{ea}")
    feature = {"type": "Feature", "geometry": read.json()["geometry"], "properties": {}}
    put = client.put(
        f"{EAS}/{ea}",
        json=feature,
        headers={**auth["supervisor"], "If-Match": read.headers["ETag"]},
    )
    assert put.status_code == 200, put.text
    first = client.get(f"{EAS}/{ea}/history", headers=auth["editor"]).json()["history"][0]
    restored = client.post(
        f"{EAS}/{ea}/restore",
        params={"entry": first["id"]},
        headers={**auth["editor"], "If-Match": _etag(client, ea)},
    )
    assert restored.status_code == 200, restored.text
    submitted = client.post(
        f"{EAS}/{ea}/submit", headers={**auth["editor"], "If-Match": _etag(client, ea)}
    )
    assert submitted.status_code == 200, submitted.text
    one = client.post(
        f"{EAS}/{ea}/approve", headers={**auth["supervisor"], "If-Match": _etag(client, ea)}
    )
    assert one.status_code == 403 and one.json()["parameter"] == "action", one.text
    batch = client.post(
        f"/communes/{COMMUNE}/ea-approve",
        json={"uncovered_acknowledged": True},
        headers={**auth["supervisor"], "If-Match": _etag(client, ea)},
    )
    assert batch.status_code == 403 and batch.json()["parameter"] == "action", batch.text


def test_jobs_are_read_by_who_asked_and_admins_only(site: Site) -> None:
    client, auth = site.client, site.auth
    inputs = {"unit": COMMUNE, "vintage": "2025", "format": "xlsx"}
    asked = client.post(
        "/processes/area-report/execution", json={"inputs": inputs}, headers=auth["editor"]
    )
    assert asked.status_code == 201, asked.text
    job = f"/jobs/{asked.json()['jobID']}"
    for who in ({}, auth["other"], auth["viewer"], auth["supervisor"]):
        for path in (job, f"{job}/results"):
            assert client.get(path, headers=who).status_code == 403, (who, path)
        assert client.delete(job, headers=who).status_code == 403, who
        listed = client.get("/jobs", headers=who).json()["jobs"]
        assert asked.json()["jobID"] not in {j["jobID"] for j in listed}
    for who in (auth["editor"], auth["admin"]):
        assert client.get(job, headers=who).status_code == 200


def test_private_reads_hold_on_the_newer_routes(site: Site, private: TestClient) -> None:
    other = site.auth["other"]  # (an editor of province 79)
    scoped = (
        f"/communes/{COMMUNE}/lines",
        f"/communes/{COMMUNE}/ea-lines",
        f"/communes/{COMMUNE}/workload",
        "/census/2029/progress?scope=01",
        "/census/2029/review?scope=01",
        f"{EAS}/20/history",
    )
    for path in (*scoped, "/census/2029/progress", "/jobs", f"{EAS}?f=csv", "/census/2029/staff"):
        assert private.get(path).status_code == 401, path
        assert private.head(path).status_code == 401, path
    for path in scoped:
        assert private.get(path, headers=other).status_code == 403, path
    book = {"inputs": {"commune": COMMUNE}}
    assert private.post("/processes/ea-map-book/execution", json=book).status_code == 401
    refused = private.post("/processes/ea-map-book/execution", json=book, headers=other)
    assert refused.status_code == 403 and refused.json()["parameter"] == "code"
    # a download outside the reader's scope holds none of its EAs, a HEAD says so too
    for method in (private.get, private.head):
        got = method(EAS, params={"f": "csv"}, headers=other)
        assert got.status_code == 200 and got.headers["ogc-numbermatched"] == "0"
