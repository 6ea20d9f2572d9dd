"""API fuzzing with schemathesis against the service's own OpenAPI document (bounded).

The schema comes from the app factory (no database needed to build it); the requests go to
a live service over the shared demo database.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from geo_service.main import create_app

schema = schemathesis.openapi.from_dict(create_app().openapi())


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any, live_server: str) -> None:
    response = case.call(base_url=live_server, timeout=60)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    if 400 <= response.status_code < 500:
        body = response.json()
        assert body.get("detail"), body
        assert "Traceback" not in response.text and "SELECT" not in response.text
