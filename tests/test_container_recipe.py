"""The container recipe (Dockerfile and compose.yaml), checked without Docker.

There is no Docker daemon on the machines the tests run on, so the image is never built
here. What can go wrong without one is checked instead: the Dockerfile copies every package
and the data the service needs, compose.yaml sets only settings the service reads, and the
files the image would hold, alone (not this checkout), run `geo-service demo` against an
external database the way compose's `service` runs it against `db`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

from geo_service.localdb import free_port
from geo_service.settings import DatabaseSettings, ServiceSettings
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
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        **{k: str(v) for k, v in environment.items()},
        "DATABASE_URL": database_url,
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
        finally:
            process.terminate()
            process.wait(timeout=15)
            pg.drop_database(database_url)
    assert "communes" in log.read_text() or "commune 2025" in log.read_text()
