"""The container recipe (Dockerfile and compose.yaml), checked without Docker.

There is no Docker daemon on the machines the tests run on, so the image is never built
here. What can go wrong without one is checked instead: the Dockerfile copies every package
and the data the service needs, compose.yaml sets only settings the service reads, and the
files the image would hold, alone (not this checkout), run `geo-service demo` against an
external database the way compose's `service` runs it against `db`.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml

from geo_service.localdb import free_port
from geo_service.settings import DatabaseSettings, ServiceSettings
from geo_service.tiles.nginx import nginx_conf
from tests.conftest import REPO, PgCluster, wait_until_up

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"


def _copied_sources() -> list[str]:
    """The source paths of the Dockerfile's COPY instructions."""
    sources = []
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        words = shlex.split(line)
        if words and words[0].upper() == "COPY":
            sources.extend(w for w in words[1:-1] if not w.startswith("--"))
    return sources


def _compose_service() -> dict[str, object]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    service: dict[str, object] = document["services"]["service"]
    return service


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def _service_settings(environment: dict[str, object]) -> ServiceSettings:
    """The service's settings as compose's environment makes them."""
    prefix = "GEO_SERVICE_"
    values = {k[len(prefix) :].lower(): v for k, v in environment.items() if k.startswith(prefix)}
    return ServiceSettings(_env_file=None, **values)  # type: ignore[call-arg]


def _run_database_initialisation(pg: PgCluster) -> str:
    """Run compose's database initialisation on the test cluster; the service's URL there."""
    script = (REPO / "deploy/db-init/10-service-role.sql").read_text(encoding="utf-8")
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        try:
            conn.execute(script)
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute(script)  # (another test made the roles at the same moment)
    environment = _compose_service()["environment"]
    assert isinstance(environment, dict)
    return str(environment["GEO_SERVICE_APP_DATABASE_URL"])


def _as_login(url: str, user: str | None, password: str | None) -> str:
    """`url` with another user and password."""
    parts = urlsplit(url)
    return f"postgresql://{user}:{password}@{parts.hostname}:{parts.port}{parts.path}"


def _image_python(image: Path, code: str) -> list[str]:
    """A command running `code` with the image's files instead of this checkout.

    Python without site processing (run it in the image's WORKDIR): this checkout's editable
    install (a .pth file) is not on the path; the installed dependencies are added by hand,
    after the image's files.
    """
    prelude = (
        f"import sys; sys.path[:0] = [{str(image)!r}]; "
        f"sys.path.append({sysconfig.get_paths()['purelib']!r}); "
    )
    return [sys.executable, "-S", "-c", prelude + code]


def test_dockerfile_copies_every_package_and_the_demo_data() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = _copied_sources()
    assert set(packages) <= set(copied), f"not copied: {set(packages) - set(copied)}"
    assert {"pyproject.toml", "README.md", "data"} <= set(copied)


def test_compose_sets_only_settings_the_service_reads() -> None:
    environment = _compose_service()["environment"]
    assert isinstance(environment, dict)
    read = {name.upper() for name in DatabaseSettings.model_fields}
    read |= {f"GEO_SERVICE_{name.upper()}" for name in ServiceSettings.model_fields}
    assert set(environment) <= read, f"unknown settings: {set(environment) - read}"
    assert "DATABASE_URL" in environment


def test_compose_waits_for_a_healthy_database() -> None:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert "healthcheck" in document["services"]["db"]
    # the image's temporary initialisation server listens on the socket only: check TCP
    assert "-h 127.0.0.1" in " ".join(document["services"]["db"]["healthcheck"]["test"])
    assert document["services"]["service"]["restart"] == "on-failure"
    assert _compose_service()["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_only_nginx_takes_clients_and_its_configuration_is_the_generated_one() -> None:
    services = _compose()["services"]
    # (front: the scale profile's nginx, tested in test_compose_scale.py)
    assert [name for name, service in services.items() if "ports" in service] == [
        "nginx",
        "front",
    ]
    environment = services["service"]["environment"]
    settings = _service_settings(environment)
    command = services["nginx"]
    conf_mount, tiles_mount = command["volumes"]
    conf = REPO / conf_mount.split(":")[0]
    expected = nginx_conf(settings, "80", "http://service:8000", brotli=False)
    assert conf.read_text(encoding="utf-8") == expected, (
        "deploy/nginx/geo-service.conf is stale: make it again with `geo-service tiles "
        "nginx-conf --listen 80 --upstream http://service:8000 --no-brotli` (compose's settings)"
    )
    # nginx reads the files the service writes, at the same path
    volume, path = tiles_mount.split(":")[:2]
    assert f"{volume}:{settings.tile_cache_path}" in services["service"]["volumes"]
    assert path == str(settings.tile_cache_path)


def test_the_service_trusts_nginx_alone() -> None:
    document = _compose()
    services = document["services"]
    settings = _service_settings(services["service"]["environment"])
    nginx = services["nginx"]["networks"]["internal"]["ipv4_address"]
    assert settings.trusted_proxies.split(",") == [nginx]
    # the fixed address is in the network, outside the range the others are given from
    [ipam] = document["networks"]["internal"]["ipam"]["config"]
    address = ipaddress.ip_address(nginx)
    assert address in ipaddress.ip_network(ipam["subnet"])
    assert address not in ipaddress.ip_network(ipam["ip_range"])
    for name in ("db", "service"):
        assert services[name]["networks"] == ["internal"]
    # and links name the configured origin, never what a client put in Host
    assert settings.public_url == "http://localhost:8000"


def test_the_database_initialisation_makes_the_login_the_service_uses(pg: PgCluster) -> None:
    environment = _compose_service()["environment"]
    assert isinstance(environment, dict)
    login = urlsplit(str(environment["GEO_SERVICE_APP_DATABASE_URL"]))
    _run_database_initialisation(pg)
    _run_database_initialisation(pg)  # (again: it may meet the roles made before)
    with psycopg.connect(_as_login(pg.url("postgres"), login.username, login.password)) as conn:
        row = conn.execute("SELECT pg_has_role(current_user, 'geo_service_app', 'member')")
        assert row.fetchone() == (True,)


def test_the_image_files_alone_run_the_demo(
    pg: PgCluster, demo_template: str, tmp_path: Path
) -> None:
    image = tmp_path / "app"
    for source in _copied_sources():
        path = REPO / source
        if path.is_dir():
            shutil.copytree(
                path, image / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            image.mkdir(exist_ok=True)
            shutil.copy2(path, image / source)
    environment = _compose_service()["environment"]
    assert isinstance(environment, dict)
    port = free_port()
    database_url = pg.create_database(demo_template)
    login = urlsplit(_run_database_initialisation(pg))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        **{k: str(v) for k, v in environment.items()},
        "DATABASE_URL": database_url,
        "GEO_SERVICE_APP_DATABASE_URL": _as_login(database_url, login.username, login.password),
        "GEO_SERVICE_TILE_CACHE_PATH": str(tmp_path / "tiles"),
        "GEO_SERVICE_HOST": "127.0.0.1",
        "GEO_SERVICE_PORT": str(port),
        "GEO_SERVICE_HOME": str(tmp_path / "home"),
    }
    command = _compose_service()["command"]
    assert isinstance(command, list) and command[0] == "geo-service"
    where = subprocess.run(
        _image_python(
            image, "import geo_service, tilecache, boundaries; print(geo_service.__file__)"
        ),
        env=env,
        cwd=image,
        capture_output=True,
        text=True,
    )
    assert where.returncode == 0, where.stderr[-3000:]
    assert where.stdout.strip().startswith(str(image))
    log = tmp_path / "demo.log"
    with log.open("wb") as output:
        geo_service = "sys.argv[0] = 'geo-service'; from geo_service.cli import app; app()"
        process = subprocess.Popen(
            [*_image_python(image, geo_service), *command[1:]],
            env=env,
            cwd=image,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_up(url, process)
            except RuntimeError:
                pytest.fail(f"the demo did not come up:\n{log.read_text()[-3000:]}")
            with urllib.request.urlopen(f"{url}/collections", timeout=10) as response:
                assert response.status == 200
                assert b"commune-2025" in response.read()
            with psycopg.connect(database_url) as conn:
                users = conn.execute(
                    "SELECT DISTINCT usename FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
            # Requests use compose's login; only the protection worker, which writes what may
            # be published, connects as the owner of DATABASE_URL.
            owner = urlsplit(database_url).username
            assert (login.username,) in users
            assert {user for (user,) in users} <= {login.username, owner}
        finally:
            process.terminate()
            process.wait(timeout=15)
            pg.drop_database(database_url)
    assert "communes" in log.read_text() or "commune 2025" in log.read_text()
