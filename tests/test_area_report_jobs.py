"""Area reports as background jobs (issues #18/#24): `POST /processes/area-report/execution`,
and `POST /reports/area` for an area past `area_report_sync_units` (202 + Location). The
job's file is the synchronous report's (same figures, same disclosure); only who asked for
a report (or an admin) may read its job. Instances over one database, as in
test_output_jobs: a front that runs no jobs, and a worker."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from pypdf import PdfReader

from geo_service.users import add_user
from tests.conftest import live_process
from tests.test_area_report import (
    COMMUNE_INDICATORS,
    DRAWN,
    REPORT,
    _written,
    cell_values,
    figure_rows,
    keep,
    workbook,
)
from tests.test_output_jobs import ASYNC, VI, card_at, follow, instance

EXECUTE = "/processes/area-report/execution"
FAST = {"job_poll_s": 0.2, "job_heartbeat_s": 0.2}


def execute(client: TestClient, inputs: dict[str, Any], **headers: str) -> Any:
    return client.post(EXECUTE, json={"inputs": inputs}, headers={**ASYNC, **headers})


def page_texts(content: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(content)).pages]


def result_of(client: TestClient, job_id: str, **headers: str) -> Any:
    done = follow(client, job_id, headers)[-1]
    assert done["status"] == "successful", done
    got = client.get(f"/jobs/{job_id}/results", headers=headers)
    assert got.status_code == 200, got.text
    return got


def test_area_report_job_lifecycle_limits_and_the_synchronous_route(
    demo_db: str, tmp_path: Path
) -> None:
    body = {"geometry": DRAWN, "indicators": COMMUNE_INDICATORS}
    # the front draws nothing; an area reaching more than 2 units is a job from /reports/area
    front_settings = {
        "job_workers": 0,
        "response_deadline_s": 5,
        "jobs_per_client": 2,
        "job_queue_size": 2,
        "area_report_sync_units": 2,
    }
    with instance(demo_db, tmp_path / "front", **front_settings) as front:
        by_route = front.post(REPORT, params={"format": "xlsx"}, json=body)
        assert by_route.status_code == 202, by_route.text
        job = by_route.json()
        job_id = job["jobID"]
        assert by_route.headers["Location"].endswith(f"/jobs/{job_id}")
        assert job["processID"] == "area-report" and job["status"] == "accepted"
        # one step per figure, and the file
        assert (job["pagesDone"], job["pagesTotal"]) == (0, len(COMMUNE_INDICATORS) + 1)
        assert job["inputs"]["format"] == "xlsx" and "area" not in job["inputs"]
        # the same report asked for as a process joins the job
        joined = execute(front, {**body, "format": "xlsx"})
        assert joined.status_code == 201 and joined.json()["jobID"] == job_id
        assert joined.json()["joined"] is True
        # a small area is still made in the request
        small = front.post(REPORT, params={"unit": "00004", "vintage": "2025", "format": "xlsx"})
        assert small.status_code == 200 and small.content[:2] == b"PK"

        # limits: two jobs per client (429), in the client's language and the report's words
        pdf = execute(front, {**body, "format": "pdf"})
        assert pdf.status_code == 201, pdf.text
        over = execute(front, {**body, "format": "pdf", "lang": "en"}, **VI)
        assert over.status_code == 429 and over.json()["parameter"] == "limit"
        assert "tối đa 2 tệp (báo cáo" in over.json()["detail"], over.json()
        cancelled = front.delete(f"/jobs/{pdf.json()['jobID']}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "dismissed"

        with instance(demo_db, tmp_path / "worker", **FAST) as worker:
            seen = follow(front, job_id)
            synchronous = worker.post(REPORT, params={"format": "xlsx"}, json=body)
        assert [s["pagesDone"] for s in seen] == sorted(s["pagesDone"] for s in seen)
        assert seen[-1]["status"] == "successful" and seen[-1]["progress"] == 100
        result = front.get(f"/jobs/{job_id}/results")
        assert result.status_code == 200, result.text
        assert result.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert 'filename="bao-cao-khu-vuc.xlsx"' in result.headers["content-disposition"]
        assert synchronous.status_code == 200, synchronous.text
        # the job's figures are the synchronous report's, cell for cell
        assert cell_values(workbook(result.content)) == cell_values(workbook(synchronous.content))
        assert set(figure_rows(workbook(result.content))) == set(COMMUNE_INDICATORS)


def test_an_area_report_job_is_read_only_by_who_asked(demo_db: str, tmp_path: Path) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        tokens = {
            name: {"Authorization": f"Bearer {add_user(conn, name, role, scope)}"}
            for name, role, scope in (
                ("ed", "editor", ["01"]),
                ("out", "editor", ["79"]),
                ("adm", "admin", []),
            )
        }
    with instance(demo_db, tmp_path / "one", **FAST) as service:
        made = execute(service, {"unit": "01", "vintage": "2025"}, **tokens["ed"])
        assert made.status_code == 201, made.text
        job_id = made.json()["jobID"]
        report = result_of(service, job_id, **tokens["ed"])
        assert 'filename="bao-cao-khu-vuc-01.pdf"' in report.headers["content-disposition"]
        assert "Hà Nội" in "".join(page_texts(report.content))
        for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/results"):
            for other in (tokens["out"], VI):  # another province's user, anyone else
                refused = service.get(path, headers=other)
                assert refused.status_code == 403, refused.text
                assert refused.json()["parameter"] == "jobId"
            assert "chỉ người đã yêu cầu" in service.get(path, headers=VI).json()["detail"]
        assert service.delete(f"/jobs/{job_id}", headers=tokens["out"]).status_code == 403
        assert service.get(f"/jobs/{job_id}/results", headers=tokens["adm"]).status_code == 200
        assert service.get("/jobs", headers=tokens["out"]).json()["jobs"] == []
        assert [j["jobID"] for j in service.get("/jobs", headers=tokens["ed"]).json()["jobs"]] == [
            job_id
        ]


def test_a_suppressed_value_stays_hidden_in_the_jobs_report(demo_db: str, tmp_path: Path) -> None:
    from indicators.protect import refresh
    from tests.test_area_report import _sql

    # (as test_area_report's disclosure test: a small area touching a commune hidden below)
    x0, y0, x1, y1 = _sql(
        demo_db,
        "SELECT ST_XMin(u.geom), ST_YMin(u.geom), ST_XMax(u.geom), ST_YMax(u.geom)"
        " FROM admin_unit u JOIN indicator_value v ON v.code = u.code AND v.vintage = u.vintage"
        " AND v.level = u.level WHERE u.vintage = '2025' AND u.level = 'commune'"
        " AND u.parent_code = '01' AND v.indicator = 'population' AND v.value < 25000"
        " ORDER BY v.value LIMIT 1",
    )[0]
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    body = {"geometry": {"type": "Polygon", "coordinates": [ring]}, "indicators": ["population"]}
    with instance(demo_db, tmp_path / "one", **FAST) as service:
        truth = service.post("/aggregate", json=body).json()
        with psycopg.connect(demo_db, autocommit=True) as conn:
            conn.execute("UPDATE indicator SET suppress_below = 25000 WHERE code = 'population'")
            refresh(conn)
        after = service.post("/aggregate", json=body).json()
        assert after["results"][0]["status"] == "suppressed", after
        touched = [u["code"] for u in after["units"]]
        hidden = _sql(
            demo_db,
            "SELECT value FROM indicator_value WHERE indicator = 'population' AND vintage = '2025'"
            " AND level = 'commune' AND period = '2025' AND code = ANY(%s) AND value < 25000",
            touched,
        )
        secrets = _written(truth["results"][0]["value"])
        for (value,) in hidden:
            secrets |= _written(value)
        for fmt in ("pdf", "xlsx"):
            made = execute(service, {**body, "format": fmt})
            assert made.status_code == 201, made.text
            job_file = result_of(service, made.json()["jobID"]).content
            synchronous = service.post(REPORT, params={"format": fmt}, json=body).content
            if fmt == "pdf":
                keep("area-report-job-suppressed.pdf", job_file)
                text = page_texts(job_file)
                assert text == page_texts(synchronous)  # exactly the synchronous report
                assert "Bị ẩn (bảo mật thống kê)" in "".join(text)
                assert not {s for s in secrets if s in "".join(text)}
            else:
                values = cell_values(workbook(job_file))
                assert values == cell_values(workbook(synchronous))
                assert truth["results"][0]["value"] not in values
                assert not {v for (v,) in hidden} & set(values)
                assert not {s for s in secrets if any(s == str(v) for v in values)}


def test_area_report_process_and_bad_inputs(client: TestClient) -> None:
    listed = [p["id"] for p in client.get("/processes").json()["processes"]]
    assert listed == ["ea-map-book", "area-report", "ea-export"]
    described = client.get("/processes/area-report").json()
    assert {"geometry", "unit", "vintage", "format", "lang"} <= set(described["inputs"])
    for inputs, parameter in (
        ({"geometry": DRAWN, "unit": "01", "vintage": "2025"}, "unit"),
        ({"unit": "01"}, "vintage"),
        ({}, "unit"),
        ({"unit": "nowhere", "vintage": "2025"}, "unit"),
        ({"geometry": DRAWN, "indicators": ["no_such_thing"]}, "indicators"),
        ({"geometry": DRAWN, "collection": "nothing-2025"}, "collection"),
        ({"geometry": {"type": "Point", "coordinates": [105, 21]}}, "geometry"),
    ):
        refused = execute(client, inputs)
        assert refused.status_code == 400, (inputs, refused.text)
        assert refused.json()["parameter"] == parameter, (inputs, refused.json())
    for inputs, parameter in (({"geometry": DRAWN, "format": "png"}, "format"), ({"x": 1}, "x")):
        refused = execute(client, inputs)
        assert refused.status_code == 400 and parameter in refused.json()["parameter"], inputs
    assert client.post(EXECUTE, json=[], headers=ASYNC).status_code == 400


def test_the_viewer_follows_a_large_areas_report_and_downloads_it(
    browser: Any, demo_db: str
) -> None:
    # every drawn area is "large" here; the answer waits 1 s for the job, then 202 (the
    # page's instance draws no job: one that finished within the second would be the file)
    env = {
        "GEO_SERVICE_AREA_REPORT_SYNC_UNITS": "2",
        "GEO_SERVICE_RESPONSE_DEADLINE_S": "5",
        "GEO_SERVICE_JOB_POLL_S": "0.2",
        "GEO_SERVICE_JOB_HEARTBEAT_S": "0.2",
    }
    with live_process(demo_db, GEO_SERVICE_JOB_WORKERS="0", **env) as (url, _):
        desk = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True)
        page = desk.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/map?level=commune&indicator=density&lang=vi")
        page.wait_for_function("window.geoViewer && window.geoViewer.ready", timeout=120_000)
        page.evaluate("window.geoViewer.map.setView([21.03, 105.84], 12)")
        page.wait_for_timeout(300)
        page.click(".leaflet-draw-draw-rectangle")
        box = page.evaluate("window.geoViewer.map.getContainer().getBoundingClientRect().toJSON()")
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x - 60, y - 40)
        page.mouse.down()
        page.mouse.move(x + 60, y + 40, steps=5)
        page.mouse.up()
        page.wait_for_function("window.geoViewer.lastAggregate", timeout=60_000)
        page.click(".gv-report-pdf")
        card = page.locator(".geo-job")
        card.wait_for(state="visible", timeout=60_000)
        assert card.locator(".geo-job-title").inner_text() == "Báo cáo khu vực (PDF)"
        with live_process(demo_db, **env):  # (another instance draws it)
            page.wait_for_selector(".geo-job[data-status=successful]", timeout=300_000)
        text = card.inner_text()
        assert "Đã xong, giữ đến" in text and "Tải xuống" in text and "Đóng" in text
        assert not any(w in text for w in ("steps", "Ready", "Download", "Close")), text
        # the card's look from the shared jobs.css, its side (the right) from viewer.css
        card_at(card, "right", 1366)
        page.screenshot(path=str(keep("viewer-report-job-desktop.png", b"")))
        with page.expect_download(timeout=120_000) as info:
            card.locator(".geo-job-download").click()
        assert info.value.suggested_filename == "bao-cao-khu-vuc.pdf"
        assert "Báo cáo khu vực đã vẽ" in "".join(page_texts(Path(info.value.path()).read_bytes()))
        remembered = page.evaluate("localStorage.getItem('geoViewerJobs')")
        assert not errors, errors
        desk.close()

        # a phone, the same browser's jobs remembered: the card again, within the screen
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, has_touch=True, bypass_csp=True
        )
        phone.add_init_script(f"localStorage.setItem('geoViewerJobs', {json.dumps(remembered)})")
        page = phone.new_page()
        page.goto(f"{url}/map?level=commune&indicator=density&lang=vi")
        page.wait_for_selector(".geo-job[data-status=successful]", timeout=120_000)
        shown = page.locator(".geo-job").bounding_box()
        assert shown is not None and shown["x"] >= 0 and shown["x"] + shown["width"] <= 390
        assert "Đã xong, giữ đến" in page.locator(".geo-job-state").inner_text()
        page.screenshot(path=str(keep("viewer-report-job-phone.png", b"")))
        phone.close()
