"""The embedded cluster, migrations and the CLI's database commands."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from geo_service.migrate import available_migrations, current_version, migrate
from tests.conftest import PgCluster
from tests.helpers import get_health

GEO_SERVICE = [sys.executable, "-m", "geo_service"]


def _cli(home: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE")
    }
    env["GEO_SERVICE_HOME"] = str(home)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [*GEO_SERVICE, *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_embedded_database_lifecycle(tmp_path: Path) -> None:
    home = tmp_path / "home with spaces"  # (as under "C:/Users/Nguyen Van A" or a NAS share)
    tmp_path.chmod(0o755)
    assert _cli(home, "db", "status").returncode == 1
    started = _cli(home, "db", "start")
    assert started.returncode == 0, started.stderr
    # the database server's files are its own; the home stays the user's (as root too)
    assert (
        home.stat().st_uid == os.getuid() and (home / "cluster.json").stat().st_uid == os.getuid()
    )
    try:
        status = _cli(home, "db", "status")
        assert status.returncode == 0 and "running" in status.stdout
        # root's PATH under cron or `env -i` has no sbin folders, where runuser lives
        bare = _cli(home, "db", "status", path="/usr/bin:/bin")
        assert bare.returncode == 0 and "running" in bare.stdout, bare.stderr
        url = _cli(home, "db", "url").stdout.strip()
        assert url.startswith("postgresql://postgres:") and "127.0.0.1" in url
        first = _cli(home, "db", "migrate")
        assert "applied:" in first.stdout, first.stderr
        again = _cli(home, "db", "migrate")
        assert "up to date" in again.stdout
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT postgis_lib_version()").fetchone()
            assert row and row[0].startswith("3.")
        # the web service's own login reads, and cannot change the schema
        state = json.loads((home / "cluster.json").read_text())
        service = url.replace(
            f"postgres:{state['password']}", f"geo_service_web:{state['service_password']}"
        )
        with psycopg.connect(service, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM admin_level").fetchone() == (3,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DROP TABLE admin_level CASCADE")
        # a second start is a no-op on the same port
        assert _cli(home, "db", "start").returncode == 0
        assert _cli(home, "db", "url").stdout.strip() == url
    finally:
        stopped = _cli(home, "db", "stop")
        assert "stopped" in stopped.stderr
    assert _cli(home, "db", "status").returncode == 1
    # its port taken by another program meanwhile: it moves, and says so
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as squatter:
        # as a real server binds: the stopped cluster's connections may linger in TIME_WAIT
        # on this port, which a plain bind refuses (EADDRINUSE, about one run in three)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        moved = _cli(home, "db", "start")
        try:
            assert moved.returncode == 0 and f"port {port} was taken" in moved.stderr
        finally:
            _cli(home, "db", "stop")


def test_a_database_that_does_not_answer_is_a_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [*GEO_SERVICE, "db", "migrate"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "DATABASE_URL": "postgresql://u:p@127.0.0.1:1/x",
            "GEO_SERVICE_HOME": str(tmp_path),
        },
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the database does not answer" in done.stderr


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        [*GEO_SERVICE, "db", "status"],
        capture_output=True,
        text=True,
        env={**os.environ, "GEO_SERVICE_TILE_CACHE": "redsi", "GEO_SERVICE_HOME": str(tmp_path)},
        timeout=60,
    )
    assert done.returncode == 2 and "GEO_SERVICE_TILE_CACHE" in done.stderr
    assert "Traceback" not in done.stderr


def test_migrations_are_idempotent(conn: psycopg.Connection) -> None:
    assert migrate(conn) == []
    assert current_version(conn) == available_migrations()[-1].version
    tables = {
        r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {"vintage", "admin_unit", "admin_unit_generalised", "crosswalk", "zoom_band"} <= tables


def test_migrations_apply_to_an_empty_database(pg: PgCluster) -> None:
    url = pg.create_database()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            assert current_version(conn) is None
            applied = migrate(conn)
            assert applied == [m.name for m in available_migrations()]
    finally:
        pg.drop_database(url)


@pytest.mark.parametrize("path", ["/", "/api", "/health"])
def test_service_pages_answer(client, path: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 200


def test_health_reports_database(client) -> None:  # type: ignore[no-untyped-def]
    body = get_health(client).json()
    assert body["status"] == "ok" and body["postgis"].startswith("3.")
    assert body["schema_version"] == available_migrations()[-1].version


def test_health_is_503_when_database_is_down(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from geo_service.http.app import create_app
    from geo_service.localdb import free_port
    from geo_service.settings import ServiceSettings

    dead = f"postgresql://postgres:x@127.0.0.1:{free_port()}/nothing"
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=dead)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"
    assert response.headers["Retry-After"]


def test_landing_page_links(client) -> None:  # type: ignore[no-untyped-def]
    links = {link["rel"]: link["href"] for link in client.get("/").json()["links"]}
    assert {"self", "service-desc", "service-doc", "status"} <= links.keys()


def test_pool_pings_only_connections_idle_for_a_while(empty_db: str) -> None:
    """A connection handed back moments ago is lent without a round trip; an idle one is
    pinged, so a dead one is replaced instead of failing a request."""
    import asyncio
    import concurrent.futures

    from geo_service.db import _check_when_idle

    async def scenario() -> None:
        conn = await psycopg.AsyncConnection.connect(empty_db, autocommit=True)
        await conn.close()  # dead, as after a database restart
        trusting_check, returned = _check_when_idle(idle_s=3600)
        await returned(conn)
        await trusting_check(conn)  # just returned: no ping, so no error
        pinging_check, _ = _check_when_idle(idle_s=0)
        with pytest.raises(psycopg.Error):
            await pinging_check(conn)

    # in a thread of its own: a worker that ran a browser test has Playwright's loop running
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()
