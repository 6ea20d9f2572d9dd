"""User names are unique whatever their letter case (issue #22): `Editor` and `editor`
cannot both exist (API, command line, and a database migrated with such a pair is refused
naming them); sign-in compares the name exactly."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from geo_core.errors import GeoServiceError, InvalidParameter
from geo_service.http.app import create_app
from geo_service.migrate import migrate
from geo_service.settings import ServiceSettings
from geo_service.users import add_user

PASSWORD = "Mật-khẩu dài 2029"


def test_a_name_differing_only_in_case_is_refused(empty_db: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        boss = {"Authorization": f"Bearer {add_user(conn, 'boss', 'admin', [])}"}
        with pytest.raises(InvalidParameter, match="letter case") as refused:
            add_user(conn, "BOSS", "viewer", [])  # the command line's `users add`
        assert refused.value.parameter == "NAME"
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=empty_db)) as client:
        body = {"name": "editor", "role": "editor", "scope": ["01"], "password": PASSWORD}
        assert client.post("/admin/users", json=body, headers=boss).status_code == 201
        for lang, words in (("en", "letter case"), ("vi", "chữ hoa, chữ thường")):
            twin = client.post(
                "/admin/users",
                json={**body, "name": "Editor", "role": "admin", "scope": []},
                headers={**boss, "Accept-Language": lang},
            )
            assert twin.status_code == 409, twin.text
            assert twin.json()["parameter"] == "name" and words in twin.json()["detail"]
        same = client.post("/admin/users", json=body, headers=boss)
        assert same.status_code == 409 and "already exists" in same.json()["detail"]
        # sign-in compares the name exactly: one user, one spelling
        signed = client.post("/users/sign-in", json={"name": "editor", "password": PASSWORD})
        assert signed.status_code == 200 and signed.json()["user"]["name"] == "editor"
        other = client.post("/users/sign-in", json={"name": "Editor", "password": PASSWORD})
        assert other.status_code == 401, other.text
        names = [u["name"] for u in client.get("/admin/users", headers=boss).json()["users"]]
        assert sorted(names) == ["boss", "editor"]


def test_migrating_users_that_clash_in_case_names_them_and_changes_nothing(
    empty_db: str,
) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        # as a database made before the rule: the index and its record gone, pairs inside
        conn.execute("DROP INDEX app_user_name_any_case")
        conn.execute("DELETE FROM schema_migration WHERE version = 26")
        for name in ("Editor", "editor", "lan", "Lan", "LAN", "minh"):
            add_user(conn, name, "viewer", [])
        with pytest.raises(GeoServiceError) as refused:
            migrate(conn)
        message = refused.value.message
        assert "0026" in message and "Editor, editor" in message and "LAN, Lan, lan" in message
        assert "minh" not in message
        count = conn.execute("SELECT count(*) FROM app_user").fetchone()
        assert count is not None and count[0] == 6  # nobody dropped
        conn.execute("UPDATE app_user SET name = 'editor2' WHERE name = 'Editor'")
        conn.execute("DELETE FROM app_user WHERE name IN ('Lan', 'LAN')")
        assert "0026_user_names_unique_whatever_the_case.sql" in migrate(conn)
        with pytest.raises(InvalidParameter):
            add_user(conn, "MINH", "viewer", [])
