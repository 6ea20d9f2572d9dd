"""Map books as background jobs (issues #18/#24), in the shape of OGC API – Processes: asked
for with POST /processes/ea-map-book/execution, followed at /jobs/{id}, fetched from
/jobs/{id}/results, cancelled with DELETE /jobs/{id}.

Jobs live in the database, so the tests use several instances over one database: a front
that runs no jobs (`job_workers=0`: what it accepts stays waiting, which makes the waiting
states observable) and a worker instance that draws them; a worker killed while drawing
has its job finished by another. Books are of a handful of made-up EAs (strips of Phường
Ba Đình), the smallest that have a map book."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from pypdf import PdfReader

from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.users import add_user
from tests.conftest import live_process
from tests.helpers import run_coroutine
from tests.test_outputs import COMMUNE, keep

EXECUTE = "/processes/ea-map-book/execution"
ASYNC = {"Prefer": "respond-async"}
VI = {"Accept-Language": "vi"}


def strips(url: str, commune: str, count: int) -> None:
    """`count` draft EAs of round 2029 in the commune: vertical strips of its box."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code,
                                          status, households, geom, updated_by)
            SELECT '2029', c.code || '-' || lpad(i::text, 3, '0'), c.vintage, c.code, 'draft',
                   100 + i, ST_Multi(ST_CollectionExtract(ST_Intersection(c.geom,
                   ST_MakeEnvelope(
                       ST_XMin(c.geom) + (i - 1) * (ST_XMax(c.geom) - ST_XMin(c.geom)) / %s,
                       ST_YMin(c.geom),
                       ST_XMin(c.geom) + i * (ST_XMax(c.geom) - ST_XMin(c.geom)) / %s,
                       ST_YMax(c.geom), 4326)), 3)), 'test'
            FROM commune_coverage c, generate_series(1, %s) i
            WHERE c.vintage = '2025' AND c.code = %s
            """,
            (count, count, count, commune),
        )


def hanoi_communes(url: str, count: int) -> list[str]:
    """`count` communes of Hà Nội (2025), Ba Đình first."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT code FROM admin_unit WHERE vintage = '2025' AND level = 'commune'"
            " AND parent_code = '01' AND code <> %s ORDER BY code LIMIT %s",
            (COMMUNE, count - 1),
        ).fetchall()
    return [COMMUNE, *(r[0] for r in rows)]


@contextmanager
def instance(url: str, home: Path, **settings: Any) -> Iterator[TestClient]:
    """A service instance over the database (its own home, its own job workers)."""
    home.mkdir(parents=True, exist_ok=True)
    app = create_app(ServiceSettings(home=home, **settings), db_url=url)
    with TestClient(app) as client:
        yield client


def execute(client: Any, commune: str = COMMUNE, **headers: str) -> Any:
    body = {"inputs": {"commune": commune, "round": "2029", "lang": "vi"}}
    return client.post(EXECUTE, json=body, headers={**ASYNC, **headers})


def follow(client: Any, job_id: str, headers: dict[str, str] | None = None) -> list[Any]:
    """The job's statuses, polled until it finishes (generously: no time is asserted)."""
    seen = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = client.get(f"/jobs/{job_id}", headers=headers).json()
        seen.append(status)
        if status["status"] not in ("accepted", "running"):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {seen[-1]}")


def pages(content: bytes) -> list[tuple[str, bytes]]:
    """Each page's text and drawing (its content stream)."""
    reader = PdfReader(io.BytesIO(content))
    return [(page.extract_text(), page.get_contents().get_data()) for page in reader.pages]


def test_map_book_job_lifecycle_limits_and_cancel(demo_db: str, tmp_path: Path) -> None:
    first, second, third = hanoi_communes(demo_db, 3)
    for code in (first, second, third):
        strips(demo_db, code, 4)
    with psycopg.connect(demo_db, autocommit=True) as conn:
        editor = {"Authorization": f"Bearer {add_user(conn, 'ed', 'editor', ['01'])}"}
    # the front accepts jobs and runs none; two jobs per client, two in the queue; books of
    # more than 2 EAs go through jobs from the map book's own URL too
    limits = {"jobs_per_client": 2, "job_queue_size": 2, "map_book_sync_eas": 2}
    with instance(
        demo_db, tmp_path / "front", job_workers=0, response_deadline_s=5, **limits
    ) as front:
        made = execute(front)
        assert made.status_code == 201, made.text
        job = made.json()
        job_id = job["jobID"]
        assert made.headers["Location"].endswith(f"/jobs/{job_id}")
        assert made.headers["Preference-Applied"] == "respond-async"
        assert job["status"] == "accepted" and job["type"] == "process"
        assert (job["pagesDone"], job["pagesTotal"], job["progress"]) == (0, 5, 0)
        assert job["processID"] == "ea-map-book" and job["joined"] is False

        # the same book asked again joins the job, from the API and from the book's URL
        again = execute(front)
        assert again.status_code == 201 and again.json()["jobID"] == job_id
        assert again.json()["joined"] is True
        by_url = front.get(f"/communes/{COMMUNE}/ea-map-book.pdf", params={"round": "2029"})
        assert by_url.status_code == 202, by_url.text
        assert by_url.headers["Location"].endswith(f"/jobs/{job_id}")
        assert by_url.json()["status"] == "accepted"
        not_ready = front.get(f"/jobs/{job_id}/results", headers=VI)
        assert not_ready.status_code == 404 and not_ready.json()["parameter"] == "jobId"
        assert "chưa có" in not_ready.json()["detail"]

        # limits: two jobs per client (429), two in the queue (503), in the client's language
        other = execute(front, second)
        assert other.status_code == 201
        other_id = other.json()["jobID"]
        over = execute(front, third, **VI)
        assert over.status_code == 429 and over.headers["Retry-After"]
        # (the limits count every kind of job: a report or a download counts too)
        assert "tối đa 2 tệp (báo cáo, tập bản đồ" in over.json()["detail"], over.json()
        full = execute(front, third, **VI, **editor)
        assert full.status_code == 503 and full.headers["Retry-After"]
        assert "đang tạo 2 tệp (báo cáo, tập bản đồ" in full.json()["detail"], full.json()
        english = execute(front, third, **editor)
        assert (
            english.status_code == 503
            and "making 2 files (reports, map" in english.json()["detail"]
        )

        # cancel: only who asked (403 for another client), then the job is dismissed
        refused = front.delete(f"/jobs/{other_id}", headers=editor)
        assert refused.status_code == 403 and refused.json()["parameter"] == "jobId"
        cancelled = front.delete(f"/jobs/{other_id}", headers=VI)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "dismissed"
        assert front.get(f"/jobs/{other_id}", headers=VI).json()["message"] == "đã huỷ"
        gone = front.get(f"/jobs/{other_id}/results")
        assert gone.status_code == 404 and "cancelled" in gone.json()["detail"]
        # (its place in the queue is free again)
        freed = execute(front, third, **editor)
        assert freed.status_code == 201, freed.text
        assert front.delete(f"/jobs/{freed.json()['jobID']}", headers=editor).status_code == 200
        mine = front.get("/jobs").json()["jobs"]
        assert {j["jobID"] for j in mine} == {job_id, other_id}

        # another instance draws the waiting job; the front answers its progress
        with instance(demo_db, tmp_path / "worker", job_poll_s=0.2, job_heartbeat_s=0.2) as worker:
            seen = follow(front, job_id)
            synchronous = worker.get(
                f"/communes/{COMMUNE}/ea-map-book.pdf", params={"round": "2029"}
            )
        done = seen[-1]
        assert done["status"] == "successful", done
        assert (done["pagesDone"], done["pagesTotal"], done["progress"]) == (5, 5, 100)
        pages_done = [s["pagesDone"] for s in seen]
        assert pages_done == sorted(pages_done)
        result = front.get(f"/jobs/{job_id}/results")
        assert result.status_code == 200 and result.headers["content-type"] == "application/pdf"
        assert 'filename="ea-map-book-00004-2029.pdf"' in result.headers["content-disposition"]
        keep("map-book-job.pdf", result.content)
        # the job's book is the synchronous book, page for page
        assert synchronous.status_code == 200, synchronous.text
        assert pages(result.content) == pages(synchronous.content)
        assert len(pages(result.content)) == 5
        # a later request is a new book (the EAs may have changed since): a new job
        later = front.get(f"/communes/{COMMUNE}/ea-map-book.pdf", params={"round": "2029"})
        assert later.status_code == 202 and later.json()["jobID"] != job_id

        # kept for a stated time, then gone with its result
        assert done["expires"] > done["finished"]
        with psycopg.connect(demo_db, autocommit=True) as conn:
            conn.execute("UPDATE output_job SET expires = now() WHERE id = %s", (job_id,))
        expired = front.get(f"/jobs/{job_id}", headers=VI)
        assert expired.status_code == 404 and expired.json()["parameter"] == "jobId"
        assert run_coroutine(_delete_expired(demo_db)) >= 1
        with psycopg.connect(demo_db) as conn:
            left = conn.execute(
                "SELECT count(*) FROM output_job_chunk WHERE job_id = %s", (job_id,)
            ).fetchone()
        assert left == (0,)


async def _delete_expired(url: str) -> int:
    from geo_service.jobs import sql as jobs_sql

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await jobs_sql.delete_expired(conn)


def test_a_killed_workers_job_is_finished_by_another(demo_db: str, tmp_path: Path) -> None:
    strips(demo_db, COMMUNE, 6)
    env = {"GEO_SERVICE_JOB_HEARTBEAT_S": "0.2", "GEO_SERVICE_JOB_POLL_S": "0.2"}
    with live_process(demo_db, **env) as (url, process):
        asked = urllib.request.Request(
            url + EXECUTE,
            data=json.dumps({"inputs": {"commune": COMMUNE, "round": "2029"}}).encode(),
            headers={**ASYNC, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(asked, timeout=60) as answer:
            assert answer.status == 201
            job_id = json.loads(answer.read())["jobID"]
        # killed while drawing: once its heartbeat has recorded a page
        with psycopg.connect(demo_db, autocommit=True) as conn:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT status, pages_done, worker FROM output_job WHERE id = %s", (job_id,)
                ).fetchone()
                assert row is not None and row[0] in ("accepted", "running"), row
                if row[0] == "running" and row[1] >= 1:
                    break
                time.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            status, drawn, dead = conn.execute(
                "SELECT status, pages_done, worker FROM output_job WHERE id = %s", (job_id,)
            ).fetchone() or (None, None, None)
    assert status == "running" and 1 <= drawn < 7, (status, drawn)
    # another instance takes the job over once the dead worker's heartbeat is stale
    with instance(demo_db, tmp_path / "other", job_stale_s=1.5, job_poll_s=0.2) as other:
        done = follow(other, job_id)[-1]
        assert done["status"] == "successful", done
        book = other.get(f"/jobs/{job_id}/results")
    assert len(PdfReader(io.BytesIO(book.content)).pages) == 7
    with psycopg.connect(demo_db) as conn:
        worker, attempts = conn.execute(
            "SELECT worker, attempts FROM output_job WHERE id = %s", (job_id,)
        ).fetchone() or (None, None)
    assert worker != dead and attempts == 2


def test_a_job_is_read_only_by_who_may_read_the_map_book(demo_db: str, tmp_path: Path) -> None:
    strips(demo_db, COMMUNE, 2)
    with psycopg.connect(demo_db, autocommit=True) as conn:
        tokens = {
            name: {"Authorization": f"Bearer {add_user(conn, name, role, scope)}"}
            for name, role, scope in (
                ("ed", "editor", ["01"]),
                ("out", "editor", ["79"]),
                ("adm", "admin", []),
            )
        }
    with instance(
        demo_db, tmp_path / "private", public_reads=False, job_poll_s=0.2, job_heartbeat_s=0.2
    ) as service:
        assert execute(service).status_code == 401
        outside = execute(service, **tokens["out"])
        assert outside.status_code == 403 and outside.json()["parameter"] == "code"
        made = execute(service, **tokens["ed"])
        assert made.status_code == 201, made.text
        job_id = made.json()["jobID"]
        for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/results"):
            assert service.get(path).status_code == 401
            refused = service.get(path, headers=tokens["out"])
            assert refused.status_code == 403 and refused.json()["parameter"] == "jobId"
        assert service.delete(f"/jobs/{job_id}", headers=tokens["out"]).status_code == 403
        assert follow(service, job_id, tokens["ed"])[-1]["status"] == "successful"
        for reader in ("ed", "adm"):
            book = service.get(f"/jobs/{job_id}/results", headers=tokens[reader])
            assert book.status_code == 200 and len(PdfReader(io.BytesIO(book.content)).pages) == 3
        assert service.get(f"/jobs/{job_id}/results", headers=tokens["out"]).status_code == 403
        assert service.get("/jobs", headers=tokens["out"]).json()["jobs"] == []


def test_processes_describe_the_map_book(client: TestClient) -> None:
    listed = client.get("/processes").json()
    assert [p["id"] for p in listed["processes"]] == ["ea-map-book", "area-report", "ea-export"]
    described = client.get("/processes/ea-map-book").json()
    assert described["jobControlOptions"] == ["async-execute", "dismiss"]
    assert set(described["inputs"]) == {"commune", "round", "lang"}
    assert described["outputs"]["book"]["schema"]["contentMediaType"] == "application/pdf"
    unknown = client.get("/processes/nothing")
    assert unknown.status_code == 404 and unknown.json()["parameter"] == "processId"
    for body in (
        {"inputs": {"commune": "abc"}},
        {"inputs": {}},
        {"inputs": {"commune": "00004", "x": 1}},
    ):
        refused = client.post(EXECUTE, json=body, headers=ASYNC)
        assert refused.status_code in (400, 422), refused.text
    no_eas = client.post(EXECUTE, json={"inputs": {"commune": "00008"}}, headers=ASYNC)
    assert no_eas.status_code == 404 and no_eas.json()["parameter"] == "code"
    assert client.get("/jobs/not-a-job").status_code == 404


def test_the_editor_asks_for_a_map_book_follows_it_and_downloads_it(
    browser: Any, pg: Any, demo_template: str, tmp_path: Path
) -> None:
    from tests.test_ea_editor import Editor, _editor_over_demo

    # the page's service accepts jobs and draws none until a worker instance starts: the
    # waiting state, a reload and a cancel are seen before the book is drawn
    server = {"GEO_SERVICE_JOB_WORKERS": "0"}
    phone_screen = {"viewport": {"width": 390, "height": 844}, "has_touch": True}
    with _editor_over_demo(browser, pg, demo_template, server, **phone_screen) as phone:
        strips(phone.db, COMMUNE, 4)
        # a phone: ask, then cancel (the confirmation first; its cancel changes nothing)
        card = _ask_for_the_book(phone)
        phone.screenshot("map-book-job-phone")
        box = card.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        card.locator(".geo-job-cancel").click()
        assert "Huỷ việc tạo «Tập bản đồ xã Ba Đình (2029)»" in phone.confirm(False)
        assert card.get_attribute("data-status") == "accepted"
        assert _statuses(phone.db) == ["accepted"]
        card.locator(".geo-job-cancel").click()
        phone.confirm(True)
        phone.page.wait_for_selector(".geo-job[data-status=dismissed]")
        assert card.locator(".geo-job-state").inner_text() == "Đã huỷ"
        assert _statuses(phone.db) == ["dismissed"]

        # a desktop: ask, reload (the job is found again), a worker draws it, download
        desk = Editor(browser, phone.base, phone.db, phone.tokens, viewport=DESKTOP)
        try:
            card = _ask_for_the_book(desk)
            desk.open(f"commune={COMMUNE}&round=2029&lang=vi")
            card = desk.page.locator(".geo-job")
            assert card.get_attribute("data-status") == "accepted"
            assert card.locator(".geo-job-state").inner_text() == "Đang chờ đến lượt: 0/5 trang"
            with instance(phone.db, tmp_path / "worker", job_poll_s=0.2, job_heartbeat_s=0.2):
                desk.page.wait_for_selector(".geo-job[data-status=successful]", timeout=300_000)
            text = card.inner_text()
            assert "Đã xong: 5 trang, giữ đến" in text and "Tải PDF" in text
            assert not any(word in text for word in ("pages", "Waiting", "Ready", "Download"))
            card_at(card, "left", DESKTOP["width"])  # (the right holds the editor's panel)
            desk.screenshot("map-book-job-desktop")
            with desk.page.expect_download(timeout=120_000) as info:
                card.locator(".geo-job-download").click()
            assert info.value.suggested_filename == "ea-map-book-00004-2029.pdf"
            assert len(PdfReader(info.value.path()).pages) == 5
            assert not desk.errors, desk.errors
        finally:
            desk.context.close()


DESKTOP = {"width": 1366, "height": 768}


def _ask_for_the_book(editor: Any) -> Any:
    """Open Ba Đình's EAs in Vietnamese, ask for the map book; its card, waiting."""
    editor.open(f"commune={COMMUNE}&round=2029&lang=vi")
    if not editor.page.locator(".ea-panel").is_visible():  # (a phone: a folded sheet)
        editor.page.click(".ea-panel-toggle")
    editor.sign_in("editor")
    editor.page.locator("button.ea-map_book").click()
    card = editor.page.locator(".geo-job")
    card.wait_for(state="visible", timeout=30_000)
    assert card.locator(".geo-job-title").inner_text() == "Tập bản đồ xã Ba Đình (2029)"
    assert card.locator(".geo-job-state").inner_text() == "Đang chờ đến lượt: 0/5 trang"
    assert card.locator(".geo-job-cancel").inner_text() == "Huỷ"
    return card


def _statuses(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT status FROM output_job ORDER BY created")]


def test_a_large_ea_download_is_a_job_readable_only_by_who_asked(
    demo_db: str, tmp_path: Path
) -> None:
    import pyogrio

    strips(demo_db, COMMUNE, 4)
    with psycopg.connect(demo_db, autocommit=True) as conn:
        tokens = {
            name: {"Authorization": f"Bearer {add_user(conn, name, 'editor', ['01'])}"}
            for name in ("ed", "other")
        }
    items = "/collections/enumeration-areas/items"
    asked = {"f": "gpkg", "round": "2029"}
    # downloads of more than 2 EAs are built by a job; the front draws none
    with instance(
        demo_db, tmp_path / "front", job_workers=0, response_deadline_s=5, ea_export_sync_eas=2
    ) as front:
        answer = front.get(items, params=asked, headers=tokens["ed"])
        assert answer.status_code == 202, answer.text
        job = answer.json()
        assert answer.headers["Location"].endswith(f"/jobs/{job['jobID']}")
        assert job["processID"] == "ea-export" and job["pagesTotal"] == 4
        assert job["inputs"]["format"] == "gpkg" and "scope" not in job["inputs"]
        refused = front.get(f"/jobs/{job['jobID']}", headers=tokens["other"])
        assert refused.status_code == 403 and refused.json()["parameter"] == "jobId"
        # a small download is still made in the request
        small = front.get(items, params={**asked, "limit": 2}, headers=tokens["ed"])
        assert small.status_code == 200 and small.headers["OGC-NumberReturned"] == "2"
        # a CQL2 filter goes with the job (the job once exported every EA the scope allows)
        with psycopg.connect(demo_db) as conn:
            first = conn.execute(
                "SELECT min(code) FROM enumeration_area WHERE commune_code = %s", (COMMUNE,)
            ).fetchone()
        but_one = {**asked, "filter": f"code <> '{first[0] if first else ''}'"}
        filtered = front.get(items, params=but_one, headers=tokens["ed"])
        assert filtered.status_code == 202 and filtered.json()["pagesTotal"] == 3, filtered.text
        with instance(demo_db, tmp_path / "worker", job_poll_s=0.2, job_heartbeat_s=0.2) as worker:
            done = follow(front, job["jobID"], tokens["ed"])[-1]
            synchronous = worker.get(items, params=asked)
            follow(front, filtered.json()["jobID"], tokens["ed"])
        part = front.get(f"/jobs/{filtered.json()['jobID']}/results", headers=tokens["ed"])
        (tmp_path / "part.gpkg").write_bytes(part.content)
        assert first and first[0] not in set(pyogrio.read_dataframe(tmp_path / "part.gpkg")["code"])
        assert len(pyogrio.read_dataframe(tmp_path / "part.gpkg")) == 3
        assert done["status"] == "successful" and done["pagesDone"] == 4, done
        got = front.get(f"/jobs/{job['jobID']}/results", headers=tokens["ed"])
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/geopackage+sqlite3"
        assert 'filename="enumeration-areas.gpkg"' in got.headers["content-disposition"]
    assert synchronous.status_code == 200, synchronous.text
    frames = []
    for name, content in (("job", got.content), ("sync", synchronous.content)):
        path = tmp_path / f"{name}.gpkg"
        path.write_bytes(content)
        frames.append(pyogrio.read_dataframe(path))
    job_frame, sync_frame = frames
    assert sorted(job_frame["code"]) == sorted(sync_frame["code"]) and len(job_frame) == 4
    assert list(job_frame.columns) == list(sync_frame.columns)
    assert job_frame.crs == sync_frame.crs


def card_at(card: Any, side: str, width: int) -> None:
    """The job card is styled (jobs.css: fixed, white, bordered) and sits on `side`."""
    style = card.evaluate(
        "e => { const s = getComputedStyle(e), t = getComputedStyle(e.parentElement);"
        " return [t.position, s.backgroundColor, s.borderTopStyle]; }"
    )
    assert style == ["fixed", "rgb(255, 255, 255)", "solid"], style
    box = card.bounding_box()
    assert box is not None
    middle = box["x"] + box["width"] / 2
    assert (middle > width / 2) if side == "right" else (middle < width / 2), (side, box)


def test_the_job_cards_are_styled_in_one_stylesheet() -> None:
    # (written twice, the two copies drift: one stylesheet, each page says only the side)
    from geo_service.viewer.assets import STATIC_DIR

    for sheet in STATIC_DIR.glob("*.css"):
        text = re.sub(r"/\*.*?\*/", "", sheet.read_text(), flags=re.S)
        rules = re.findall(r"([^{}]*)\{([^{}]*)\}", text)
        cards = [(s.strip(), body) for s, body in rules if ".geo-job" in s]
        if sheet.name == "jobs.css":
            assert len(cards) == 11, cards
        elif sheet.name in ("viewer.css", "ea_editor.css"):
            assert len(cards) == 1 and cards[0][0].endswith(".geo-jobs"), (sheet.name, cards)
            assert set(re.findall(r"([a-z-]+)\s*:", cards[0][1])) <= {"left", "right"}, cards
        else:
            assert not cards, sheet.name


def test_large_csv_and_geojson_downloads_are_jobs_with_the_downloads_bytes(
    demo_db: str, tmp_path: Path
) -> None:
    # (made in the request, a national CSV or GeoJSON outlasts the response deadline
    # before its first byte, as a GeoPackage did)
    strips(demo_db, COMMUNE, 4)
    items = "/collections/enumeration-areas/items"
    with instance(
        demo_db, tmp_path / "front", job_workers=0, response_deadline_s=5, ea_export_sync_eas=2
    ) as front:
        asked = {
            fmt: front.get(items, params={"f": fmt, "round": "2029", "commune": COMMUNE})
            for fmt in ("csv", "geojson")
        }
        for fmt, answer in asked.items():
            assert answer.status_code == 202, (fmt, answer.text)
            job = answer.json()
            assert job["processID"] == "ea-export" and job["pagesTotal"] == 4, job
            assert job["inputs"]["format"] == fmt
        with instance(demo_db, tmp_path / "worker", job_poll_s=0.2, job_heartbeat_s=0.2) as worker:
            files = {}
            for fmt, answer in asked.items():
                job_id = answer.json()["jobID"]
                assert follow(front, job_id)[-1]["status"] == "successful"
                files[fmt] = front.get(f"/jobs/{job_id}/results")
            small = {"round": "2029", "commune": COMMUNE}
            direct = {fmt: worker.get(items, params={**small, "f": fmt}) for fmt in files}
    for fmt, got in files.items():
        assert got.status_code == 200 and direct[fmt].status_code == 200, fmt
        name = f'filename="enumeration-areas-{COMMUNE}.{fmt}"'
        assert name in got.headers["content-disposition"], got.headers
        assert got.headers["content-type"] == direct[fmt].headers["content-type"]
        # the same file as the download made in the request (the worker's limit is 50,000)
        assert got.content == direct[fmt].content, fmt
    assert len(json.loads(files["geojson"].content)["features"]) == 4
    assert files["csv"].content.decode("utf-8-sig").count("\r\n") == 5  # (header and 4)


def test_a_download_counted_large_is_answered_202_at_once(demo_db: str, tmp_path: Path) -> None:
    # (the count comes first: a file known to be past the limit is a job the client follows,
    # not ~50 s of waiting for a file that would outlast the deadline anyway)
    strips(demo_db, COMMUNE, 4)
    items = "/collections/enumeration-areas/items"
    asked = {"f": "csv", "round": "2029", "commune": COMMUNE}
    # (this instance runs its jobs, and its deadline would let it wait for the file)
    with instance(
        demo_db, tmp_path / "both", response_deadline_s=600, ea_export_sync_eas=2, job_poll_s=0.2
    ) as both:
        answer = both.get(items, params=asked)
        assert answer.status_code == 202, answer.text[:200]
        job = answer.json()
        assert job["processID"] == "ea-export" and job["pagesTotal"] == 4, job
        assert answer.headers["Location"].endswith(f"/jobs/{job['jobID']}")
        assert follow(both, job["jobID"])[-1]["status"] == "successful"
        got = both.get(f"/jobs/{job['jobID']}/results")
        assert got.status_code == 200
        assert got.content.decode("utf-8-sig").count("\r\n") == 5  # (header and 4)


def test_an_export_the_database_stops_half_way_fails_saying_so(
    demo_db: str, tmp_path: Path
) -> None:
    # (a statement stopped by its time limit: once the job ran until its instance was
    # thought lost, three times over, and then said so instead of what happened)
    strips(demo_db, COMMUNE, 4)
    items = "/collections/enumeration-areas/items"
    asked = {"f": "gpkg", "round": "2029", "commune": COMMUNE}
    front_settings = {"job_workers": 0, "ea_export_sync_eas": 2, "jobs_per_client": 1}
    with instance(demo_db, tmp_path / "front", **front_settings) as front:
        job_id = front.get(items, params=asked).json()["jobID"]
        # the export's statement waits for a lock the test holds until the worker's time
        # limit stops it, after the job is claimed and its file begun
        with psycopg.connect(demo_db) as blocker:
            blocker.execute("LOCK TABLE ea_assignment IN ACCESS EXCLUSIVE MODE")
            worker_settings = {"job_poll_s": 0.2, "job_heartbeat_s": 0.2, "job_stale_s": 1.0}
            with instance(
                demo_db, tmp_path / "worker", statement_timeout_ms=1500, **worker_settings
            ):
                seen = follow(front, job_id)
            blocker.rollback()
        assert seen[-1]["status"] == "failed", seen[-1]
        assert "running" in {s["status"] for s in seen}
        assert "database stopped writing the file half-way" in seen[-1]["message"], seen[-1]
        said_vi = front.get(f"/jobs/{job_id}", headers=VI).json()["message"]
        assert "cơ sở dữ liệu đã dừng việc ghi tệp giữa chừng" in said_vi, said_vi
        # no file, complete or not, is served: the reason instead
        result = front.get(f"/jobs/{job_id}/results", headers=VI)
        assert result.status_code == 404 and result.json()["parameter"] == "jobId", result.text
        assert "cơ sở dữ liệu" in result.json()["detail"] and not result.content.startswith(b"SQ")
        with psycopg.connect(demo_db, autocommit=True) as conn:
            attempts, stored = conn.execute(
                "SELECT attempts, result_name IS NOT NULL OR EXISTS (SELECT 1 FROM"
                " output_job_chunk WHERE job_id = id) FROM output_job WHERE id = %s",
                (job_id,),
            ).fetchone() or (None, None)
            assert attempts == 1 and not stored  # (failed once, not retried, nothing stored)
            # nothing left locked: the table is free, and the client's one job slot too
            with conn.transaction():
                conn.execute("LOCK TABLE ea_assignment IN ACCESS EXCLUSIVE MODE NOWAIT")
        again = front.get(items, params=asked)
        assert again.status_code == 202 and again.json()["jobID"] != job_id, again.text
        with instance(demo_db, tmp_path / "worker2", **worker_settings):
            assert follow(front, again.json()["jobID"])[-1]["status"] == "successful"


def test_ea_export_is_a_process_readable_by_who_asked_with_messages_per_kind(
    demo_db: str, tmp_path: Path
) -> None:
    strips(demo_db, COMMUNE, 3)
    with psycopg.connect(demo_db, autocommit=True) as conn:
        tokens = {
            name: {"Authorization": f"Bearer {add_user(conn, name, 'editor', [province])}"}
            for name, province in (("ed", "01"), ("south", "79"))
        }
    run = "/processes/ea-export/execution"
    private = {"public_reads": False}  # (EAs read within the reader's scope)
    front_settings = {"job_workers": 0, "jobs_per_client": 3, **private}
    with instance(demo_db, tmp_path / "front", **front_settings) as front:
        listed = {p["id"]: p for p in front.get("/processes").json()["processes"]}
        anonymous = front.post(run, json={"inputs": {"commune": COMMUNE}})
        assert anonymous.status_code == 401, anonymous.text
        assert set(listed) == {"ea-map-book", "area-report", "ea-export"}
        described = front.get("/processes/ea-export").json()
        assert {"commune", "round", "filter", "format"} <= set(described["inputs"])
        assert described["inputs"]["format"]["schema"]["enum"] == ["geojson", "csv", "gpkg", "shp"]
        types = {o["contentMediaType"] for o in described["outputs"]["file"]["schema"]["oneOf"]}
        assert "application/geopackage+sqlite3" in types and "text/csv; charset=utf-8" in types

        # bad inputs: 400 naming the input; a commune outside the scope: 403 naming commune
        for inputs, parameter in (
            ({"format": "pdf"}, "format"),
            ({"bbox": "1,2"}, "bbox"),
            ({"filter": "code = "}, "filter"),
            ({"commune": "1"}, "commune"),
        ):
            refused = front.post(run, json={"inputs": inputs}, headers=tokens["ed"])
            assert refused.status_code == 400, (inputs, refused.text)
            assert parameter in refused.json()["parameter"], (inputs, refused.json())
        outside = front.post(run, json={"inputs": {"commune": COMMUNE}}, headers=tokens["south"])
        assert outside.status_code == 403 and outside.json()["parameter"] == "commune"

        inputs = {
            "commune": COMMUNE,
            "round": "2029",
            "format": "csv",
            "filter": "households > 101",
        }
        asked = front.post(run, json={"inputs": inputs}, headers={**tokens["ed"], **ASYNC})
        assert asked.status_code == 201, asked.text
        job_id = asked.json()["jobID"]
        assert asked.json()["pagesTotal"] == 2
        other = front.get(f"/jobs/{job_id}", headers={**tokens["south"], **VI})
        assert other.status_code == 403 and "tệp tải về của người khác" in other.json()["detail"]
        # one each of the other kinds, to see their messages below
        report = {"unit": COMMUNE, "vintage": "2025", "format": "xlsx"}
        reported = front.post(
            "/processes/area-report/execution", json={"inputs": report}, headers=tokens["ed"]
        )
        book = execute(front, **tokens["ed"])
        assert reported.status_code == book.status_code == 201, (reported.text, book.text)
        with instance(demo_db, tmp_path / "worker", job_poll_s=0.2, job_heartbeat_s=0.2, **private):
            assert follow(front, job_id, tokens["ed"])[-1]["status"] == "successful"
            answer = front.get(f"/jobs/{job_id}/results", headers=tokens["ed"])
            assert answer.status_code == 200
            lines = answer.content.decode("utf-8-sig").split("\r\n")
            assert len([line for line in lines if line]) == 3  # (the header and two EAs)

            # a job whose worker stopped too often, and one that failed, say what they make
            jobs = {"export": job_id, "report": reported.json()["jobID"],
                    "book": book.json()["jobID"]}  # fmt: skip
            for other_job in jobs.values():
                follow(front, other_job, tokens["ed"])
            with psycopg.connect(demo_db, autocommit=True) as conn:  # (3 attempts are allowed)
                conn.execute(
                    "UPDATE output_job SET status = 'accepted', attempts = 3, result_bytes = NULL"
                    " WHERE id = ANY(%s::uuid[])",
                    (list(jobs.values()),),
                )
            lost = {k: follow(front, j, tokens["ed"])[-1] for k, j in jobs.items()}
            with psycopg.connect(demo_db, autocommit=True) as conn:  # (inputs it cannot read)
                conn.execute(
                    "UPDATE output_job SET status = 'accepted', attempts = 0, inputs = '{}'"
                    " WHERE id = ANY(%s::uuid[])",
                    (list(jobs.values()),),
                )
            failed = {k: follow(front, j, tokens["ed"])[-1] for k, j in jobs.items()}
        said = {k: front.get(f"/jobs/{j}", headers={**tokens["ed"], **VI}).json()["message"]
                for k, j in jobs.items()}  # fmt: skip
    assert {k: s["status"] for k, s in lost.items()} == dict.fromkeys(jobs, "failed"), lost
    assert lost["export"]["message"] == "the instance writing the file stopped 3 times"
    assert lost["report"]["message"] == "the instance making the report stopped 3 times"
    assert lost["book"]["message"] == "the instance drawing it stopped 3 times"
    assert {k: s["status"] for k, s in failed.items()} == dict.fromkeys(jobs, "failed"), failed
    assert said == {
        "export": "ghi tệp không thành công; xem nhật ký dịch vụ",
        "report": "lập báo cáo không thành công; xem nhật ký dịch vụ",
        "book": "vẽ không thành công; xem nhật ký dịch vụ",
    }
