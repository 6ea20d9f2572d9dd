"""API fuzzing with schemathesis against the service's own OpenAPI document (bounded).

The schema comes from the app factory (no database needed to build it). Reads (and writes
without a token) go to a live service over the shared read-only demo database; writes with an
admin's token go to another live service over its own copy (`live_writer`), so no other test
sees them. Every response must be below 500, declared in the OpenAPI document (status code,
content type, headers, body schema) and, for a 4xx, a JSON body with a `detail`.

`FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py` runs a longer search (examples per operation).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx2
import psycopg
import pytest
import schemathesis
import shapely
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from shapely.geometry import box, mapping

from geo_service.http.app import create_app
from tests.conftest import LiveWriter

schema = schemathesis.openapi.from_dict(create_app().openapi())
WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
# (not the writes that revoke tokens: a sign-out, a user's revocation or password reset, a
# token by id would revoke the one admin token the other cases need; without a token they
# are fuzzed like every operation, below)
writes = (
    schema.include(method=WRITE_METHODS)
    .exclude(path="/aggregate")
    .exclude(path="/reports/area")
    .exclude(path_regex=r"^/(users/sign-out|admin/users/\{name\}|admin/tokens/)")
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
READ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
WRITE_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
ITEMS = "/collections/enumeration-areas/items"
# (computations open to everyone, and a client's own map-book jobs, kept by address when
# it has no token: not writes that need a token)
OPEN_WRITES = ("/aggregate", "/reports/area", "/processes/{processId}/execution", "/jobs/{jobId}")
COMMUNES = ("00004", "00008")
# (the commune routes steered to plausible bodies, so that they reach the database)
COMMUNE_WRITES = (
    "/ea-approve",
    "/supervisor-areas/proposal",
    "/supervisor-areas/batch",
    "/assignments/proposal",
)  # Hà Nội wards, inside the admin's (unlimited) scope


def _check_error_body(case: Any, response: Any) -> None:
    label = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{label}: {response.text}"
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict) and body.get("detail"), f"{label}: {body}"
        assert "Traceback" not in response.text and "SELECT" not in response.text, label


@schema.parametrize()
@settings(max_examples=READ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any, live_server: str) -> None:
    """Every operation, without a token (writes must answer 401)."""
    response = case.call_and_validate(base_url=live_server, timeout=60, checks=CHECKS)
    _check_error_body(case, response)
    declared = case.operation.method.upper()
    if case.method.upper() == declared in WRITE_METHODS and case.path not in OPEN_WRITES:
        assert response.status_code in (400, 401), response.text


class Target:
    """Where plausible writes land: the communes' bounds and the EAs seeded there."""

    def __init__(self, bounds: dict[str, tuple[float, float, float, float]]):
        self.bounds = bounds


@pytest.fixture(scope="module")
def target(live_writer: LiveWriter) -> Iterator[Target]:
    """Seed EAs (the western half of each commune, in two) so ids and ETags exist."""
    bounds = {}
    with psycopg.connect(live_writer.database_url) as conn:
        for code in COMMUNES:
            row = conn.execute(
                "SELECT ST_AsBinary(geom) FROM commune_coverage WHERE vintage ="
                " '2025' AND code = %s",
                (code,),
            ).fetchone()
            assert row is not None
            commune = shapely.from_wkb(row[0])
            bounds[code] = commune.bounds
            x0, y0, x1, y1 = commune.bounds
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            for quarter in (box(x0 - 1, y0 - 1, mx, my), box(x0 - 1, my, mx, y1 + 1)):
                feature = {
                    "type": "Feature",
                    "geometry": mapping(commune.intersection(quarter)),
                    "properties": {"census_round": "2029", "commune_code": code},
                }
                response = httpx2.post(
                    live_writer.url + ITEMS, json=feature, headers=live_writer.auth, timeout=60
                )
                assert response.status_code == 201, response.text
    yield Target(bounds)


@st.composite
def _plausible_box(draw: Any, target: Target) -> tuple[str, dict[str, Any]]:
    code = draw(st.sampled_from(COMMUNES))
    x0, y0, x1, y1 = target.bounds[code]
    fx, fy = draw(st.floats(0, 1)), draw(st.floats(0, 1))
    w, h = draw(st.floats(0.0002, 0.004)), draw(st.floats(0.0002, 0.004))
    x, y = x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)
    return code, mapping(box(x, y, x + w, y + h))


def _steer(case: Any, data: Any, target: Target) -> None:
    """Sometimes replace the generated values by plausible ones, to reach the database."""
    if not data.draw(st.booleans(), label="steer"):
        return
    if "featureId" in (case.path_parameters or {}):
        case.path_parameters["featureId"] = data.draw(st.integers(1, 12), label="featureId")
    case.query = {}
    case.headers = {"If-Match": data.draw(st.sampled_from(["*", '"ea-1-v1"', "*, x"]))}
    reason = data.draw(st.none() | st.text(max_size=50), label="reason")
    if case.method == "POST" and case.path == ITEMS:
        code, geometry = data.draw(_plausible_box(target), label="geometry")
        case.body = {
            "type": "Feature",
            "geometry": geometry,
            "properties": {"census_round": "2029", "commune_code": code, "reason": reason},
        }
    elif case.method in ("PUT", "PATCH"):
        _, geometry = data.draw(_plausible_box(target), label="geometry")
        case.body = {"type": "Feature", "geometry": geometry, "properties": {"reason": reason}}
    elif case.path.endswith("/split"):
        code = data.draw(st.sampled_from(COMMUNES))
        x0, y0, x1, y1 = target.bounds[code]
        points = data.draw(
            st.lists(st.tuples(st.floats(x0, x1), st.floats(y0, y1)), min_size=2, max_size=4),
            label="line",
        )
        case.body = {"line": {"type": "LineString", "coordinates": points}, "reason": reason}
    elif case.path.endswith("/merge"):
        ids = data.draw(st.lists(st.integers(1, 12), min_size=2, max_size=4, unique=True))
        case.body = {"ids": ids, "reason": reason}
    elif case.path.endswith("/reshape"):
        ids = data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True))
        features = [
            {"type": "Feature", "id": i, "geometry": data.draw(_plausible_box(target))[1]}
            for i in ids
        ]
        case.body = {"type": "FeatureCollection", "features": features, "reason": reason}
        if data.draw(st.booleans(), label="give"):
            case.body["give_gap_to"] = data.draw(_ea_codes(), label="give_gap_to")[0]
    elif case.path.endswith(COMMUNE_WRITES):
        _steer_commune(case, data)


@st.composite
def _ea_codes(draw: Any, commune: str | None = None) -> list[str]:
    """Codes of the seeded EAs (and some unknown ones), of one commune."""
    code = commune or draw(st.sampled_from(COMMUNES))
    serials = st.lists(st.integers(0, 5), min_size=1, max_size=4, unique=True)
    return [f"{code}-{n:03d}" for n in draw(serials)]


def _steer_commune(case: Any, data: Any) -> None:
    """Plausible bodies for the commune routes: approving all, proposals and a batch of
    supervisor areas."""
    code = data.draw(st.sampled_from(COMMUNES), label="commune")
    case.path_parameters["code"] = code
    codes = data.draw(_ea_codes(code), label="eas")
    if case.path.endswith("/ea-approve"):
        case.body = {"uncovered_acknowledged": data.draw(st.booleans())}
    elif case.path.endswith("/supervisor-areas/proposal"):
        band = data.draw(st.tuples(st.integers(-1, 60), st.integers(-1, 60)), label="band")
        case.body = {"eas": codes, "min_eas": band[0], "max_eas": band[1]}
        case.body["redo"] = data.draw(st.booleans(), label="redo")
    elif case.path.endswith("/supervisor-areas/batch"):
        case.headers["If-Match"] = data.draw(st.sampled_from(["*", '"areas:"', '"areas:x.y"']))
        supervisor = data.draw(st.none() | st.sampled_from(["S1", "E1", ""]), label="boss")
        replace = data.draw(st.lists(st.sampled_from([f"{code}-S01", "x"]), max_size=2))
        case.body = {"areas": [{"eas": codes, "supervisor": supervisor}], "replace": replace}
    elif case.path.endswith("/assignments/proposal"):
        case.body = {"eas": codes}


@writes.given(data=st.data())
@writes.parametrize()
@settings(max_examples=WRITE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_writes_with_a_token(case: Any, data: Any, live_writer: LiveWriter, target: Target) -> None:
    """Every write, as an admin, half of the time steered towards plausible requests."""
    _steer(case, data, target)
    response = case.call_and_validate(
        base_url=live_writer.url, headers=live_writer.auth, timeout=60, checks=CHECKS
    )
    _check_error_body(case, response)
    assert response.status_code not in (401, 403), response.text
