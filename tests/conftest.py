"""Test fixtures: one throwaway PostGIS cluster per worker (a copy of one built once per
run), template databases per test."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from geo_service.demo import load_demo
from geo_service.http.app import create_app
from geo_service.localdb import STATE_FILE, LocalCluster, free_port
from geo_service.migrate import migrate
from geo_service.settings import ServiceSettings
from tests.browser import PHONE, Viewer

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "tests" / "data"
DEMO_DATA = REPO / "data" / "vn"

_counter = itertools.count()

# Tests start many services on shared databases: a background pre-render in each would
# compete with them and fill caches that tests count. It is switched on where it is tested.
os.environ.setdefault("GEO_SERVICE_PRERENDER_MAX_ZOOM", "0")


class PgCluster:
    """A throwaway cluster and helpers to create databases from templates."""

    def __init__(self, cluster: LocalCluster):
        self.cluster = cluster

    def url(self, database: str) -> str:
        """URL of a database of this cluster."""
        return self.cluster.url(database=database)

    def create_database(self, template: str | None = None) -> str:
        """A new empty (or copied) database; returns its URL."""
        name = f"test_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(query)
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database created by `create_database`."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# (authentication_timeout: a connection attempt cancelled half-way, e.g. by a pool that
# closes, leaves a backend waiting for the password; DROP DATABASE waits for every backend,
# so one such attempt held a test's teardown for the default 60 s)
PG_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_parallel_workers_per_gather=0 -c authentication_timeout=10s"
)
GOLDEN_ENV = "GEO_SERVICE_TEST_GOLDEN"
_GOLDEN = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """In the controlling process: a folder where the first worker to need the database
    builds the templated cluster that every worker then copies (see `pg`)."""
    if hasattr(config, "workerinput") or os.environ.get(GOLDEN_ENV):
        return
    folder = Path(tempfile.mkdtemp(prefix="geo-service-golden-"))
    folder.chmod(0o755)  # the postgres user must reach the data folder when we run as root
    config.stash[_GOLDEN] = folder
    # (xdist's workers are started after this, with this environment)
    os.environ[GOLDEN_ENV] = str(folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Delete the golden cluster's files once every worker is done with them."""
    folder = config.stash.get(_GOLDEN, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(GOLDEN_ENV, None)


# The modules holding the run's longest tests (CI's --durations), longest first: xdist hands
# tests out in collection order, and one of them started last kept a single worker busy for
# minutes after the others had finished. (The history viewer is left in place: it copies the
# history the crosswalk tests load, rather than waiting for it.)
SLOW_MODULES = (
    "test_outputs.py",
    "test_crosswalk_build.py",
    "test_viewer.py",
    "test_reliability.py",
    "test_hardening.py",
    "test_tile_weight.py",
    "test_bench_harness.py",
    "test_read_your_writes.py",
    "test_database.py",
    "test_area_report_jobs.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow modules first, each kept whole and in its order (its module-scoped servers
    start once per worker); the others after them in their usual order."""
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` among the run's processes (xdist workers)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_golden(home: Path) -> None:
    """A stopped cluster holding the migrated empty template and the demo template."""
    cluster = LocalCluster(home, database="postgres")
    cluster.start(extra_options=PG_OPTIONS)
    try:
        with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE tmpl_empty")
        with psycopg.connect(cluster.url(database="tmpl_empty"), autocommit=True) as conn:
            migrate(conn)
        with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE tmpl_demo TEMPLATE tmpl_empty")
        with psycopg.connect(cluster.url(database="tmpl_demo"), autocommit=True) as conn:
            for _ in load_demo(conn, DEMO_DATA):
                pass
    finally:
        cluster.stop()


def _copy_golden(home: Path) -> LocalCluster:
    """This process's own cluster, a file copy of the golden one (built first if no worker
    has yet): loading the demo took each of four workers about 40 s of a 2-core machine."""
    return _copy_cluster(_built_once("cluster", _build_golden), home)


def _built_once(name: str, build: Callable[[Path], None]) -> Path:
    """The run's folder `name`, made by `build` in the first process that needs it; the
    others wait for it, then copy its files."""
    folder = Path(os.environ[GOLDEN_ENV])
    built = folder / name
    with _locked(folder / f"{name}.lock"):
        if not (folder / f"{name}.ready").exists():
            shutil.rmtree(built, ignore_errors=True)  # (a build that failed half-way)
            built.mkdir()
            built.chmod(0o755)
            build(built)
            (folder / f"{name}.ready").touch()
    return built


def _copy_cluster(source: Path, home: Path) -> LocalCluster:
    """A stopped cluster under `home`, a file copy of the one under `source`, on a free port."""
    state = LocalCluster(source).load_state()
    assert state is not None
    # (cp -a keeps the files the postgres user's when we run as root)
    subprocess.run(["cp", "-a", str(source / "postgres"), str(home)], check=True)
    state.data_dir = str(home / "postgres" / "pgdata")
    state.port = free_port()
    (home / STATE_FILE).write_text(json.dumps(asdict(state)))
    return LocalCluster(home, database="postgres")


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """This process's throwaway PostgreSQL + PostGIS cluster for the whole run, with the
    templates `tmpl_empty` and `tmpl_demo` already made."""
    home = Path(tempfile.mkdtemp(prefix="geo-service-test-"))
    home.chmod(0o755)  # the postgres user must reach the data folder when we run as root
    cluster = _copy_golden(home)
    cluster.start(extra_options=PG_OPTIONS)
    try:
        yield PgCluster(cluster)
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


class History:
    """A cluster of this process whose template `tmpl_history` is the demo with its history
    (`geo-service demo --history`), and what loading it said."""

    def __init__(self, pg: PgCluster, lines: list[str]):
        self.pg, self.lines = pg, lines


def _build_history(home: Path) -> None:
    """A stopped copy of the golden cluster with `tmpl_history` and the load's lines."""
    from geo_service.demo import load_history

    cluster = _copy_cluster(Path(os.environ[GOLDEN_ENV]) / "cluster", home)
    cluster.start(extra_options=PG_OPTIONS)
    try:
        with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE tmpl_history TEMPLATE tmpl_demo")
        with psycopg.connect(cluster.url(database="tmpl_history"), autocommit=True) as conn:
            lines = list(load_history(conn))
        (home / "history.json").write_text(json.dumps(lines))
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def history(pg: PgCluster) -> Iterator[History]:
    """A second cluster of this process holding `tmpl_history`: the first worker to need it
    loads the history (1½ min of a loaded 2-core machine) and the others copy its files, as
    they copy the golden cluster."""
    built = _built_once("history", _build_history)
    home = Path(tempfile.mkdtemp(prefix="geo-service-history-"))
    home.chmod(0o755)  # the postgres user must reach the data folder when we run as root
    cluster = _copy_cluster(built, home)
    cluster.start(extra_options=PG_OPTIONS)
    try:
        yield History(PgCluster(cluster), json.loads((built / "history.json").read_text()))
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def empty_template(pg: PgCluster) -> str:
    """Name of a migrated database with no data (only used as a template)."""
    return "tmpl_empty"


@pytest.fixture(scope="session")
def demo_template(pg: PgCluster, empty_template: str) -> str:
    """Name of a database with the demo data loaded (only used as a template)."""
    return "tmpl_demo"


@pytest.fixture
def empty_db(pg: PgCluster, empty_template: str) -> Iterator[str]:
    """URL of a fresh migrated database for one test."""
    url = pg.create_database(empty_template)
    yield url
    pg.drop_database(url)


@pytest.fixture
def demo_db(pg: PgCluster, demo_template: str) -> Iterator[str]:
    """URL of a fresh copy of the demo database for one test (may be modified)."""
    url = pg.create_database(demo_template)
    yield url
    pg.drop_database(url)


@pytest.fixture(scope="session")
def demo_ro(pg: PgCluster, demo_template: str) -> str:
    """URL of a demo database shared by read-only tests."""
    return pg.create_database(demo_template)


@pytest.fixture
def conn(empty_db: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a fresh migrated database."""
    with psycopg.connect(empty_db, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def client(demo_ro: str) -> Iterator[TestClient]:
    """An HTTP client of the app over the shared demo database."""
    settings = ServiceSettings(home=Path(tempfile.mkdtemp()))
    with TestClient(create_app(settings, db_url=demo_ro)) as test_client:
        yield test_client


@contextmanager
def live_process(
    database_url: str,
    log: Path | None = None,
    port: int | None = None,
    database_up: bool = True,
    **env: str,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The service running in its own process over a database; yields its URL and process.

    Waits until /health answers 200, or only answers at all when not `database_up`.
    """
    port = port or free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "GEO_SERVICE_HOME": tempfile.mkdtemp(prefix="geo-service-live-"),
        **env,
    }
    with ExitStack() as stack:
        stderr = stack.enter_context(log.open("wb")) if log else None
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "geo_service.http.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=environment,
            stderr=stderr,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, process, database_up)
            yield url, process
        finally:
            process.terminate()
            process.wait(timeout=15)


def wait_until_up(url: str, process: subprocess.Popen[bytes], database_up: bool = True) -> None:
    """Wait until `url`/health answers 200, or answers at all when not `database_up` (fail
    if the process exits or three minutes pass)."""
    # Importing the app and migrating take seconds on a busy machine, over a minute at load 30:
    # a generous wait only costs time when the server is truly broken.
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the live server exited with {process.returncode}")
        try:
            # (without a database /health takes its 3 s connection timeout to say 503)
            with urllib.request.urlopen(
                f"{url}/health", timeout=2 if database_up else 6
            ) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:  # /health is 503 without a database: it answers
            if not database_up:
                return
        except OSError:  # not listening yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the live server did not come up within 180 s")
        time.sleep(0.1)


@contextmanager
def serve(database_url: str, **env: str) -> Iterator[str]:
    """The service running in its own process over a database; yields its URL."""
    with live_process(database_url, **env) as (url, _):
        yield url


@pytest.fixture(scope="session")
def live_server(demo_ro: str) -> Iterator[str]:
    """The service in its own process over the shared demo database; yields its URL."""
    with serve(demo_ro) as url:
        yield url


class LiveWriter:
    """A live service over its own copy of the demo database, and an admin's token."""

    def __init__(self, url: str, database_url: str, token: str):
        self.url, self.database_url, self.token = url, database_url, token

    @property
    def auth(self) -> dict[str, str]:
        """The admin's Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def live_writer(pg: PgCluster, demo_template: str) -> Iterator[LiveWriter]:
    """A live service that tests may write to (its own database copy, an admin user)."""
    from geo_service.users import add_user

    database_url = pg.create_database(demo_template)
    with psycopg.connect(database_url, autocommit=True) as conn:
        token = add_user(conn, "fuzz-admin", "admin", [])
    try:
        with serve(database_url) as url:
            yield LiveWriter(url, database_url, token)
    finally:
        pg.drop_database(database_url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway Redis server (Debian's redis-server) on a free port."""
    from tests.helpers import redis_server

    with redis_server() as (url, _):
        yield url


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@contextmanager
def _viewer_page(browser: Any, base: str, width: int, height: int) -> Iterator[Viewer]:
    """A viewer page in a context of its own, closed after the test, which fails if the page
    met a script error."""
    page = Viewer(browser, base, width, height)
    yield page
    assert not page.errors, page.errors
    page.close()


@pytest.fixture
def viewer(browser: Any, live_server: str) -> Iterator[Viewer]:
    """The map viewer on a 1366×768 screen over the shared demo service."""
    with _viewer_page(browser, live_server, 1366, 768) as page:
        yield page


@pytest.fixture
def phone(browser: Any, live_server: str) -> Iterator[Viewer]:
    """The map viewer on a phone held upright (390×844) over the shared demo service."""
    with _viewer_page(browser, live_server, *PHONE) as page:
        yield page


@pytest.fixture(scope="session")
def replication() -> Iterator[Any]:
    """A real primary (schema and the 34 provinces of 2025) and a hot standby streaming from
    it (`pg_basebackup -R`); see tests/replication.py."""
    from tests.replication import replicated

    with replicated() as pair:
        yield pair
