"""What every benchmark shares: tools, the throwaway cluster, servers, wrk, the machine."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from geo_service.demo import DATA_DIR, load_demo
from geo_service.localdb import LocalCluster, find_bindir, free_port
from geo_service.migrate import migrate
from geo_service.tiles.nginx import standalone_conf

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "geo-service-bench"
TIPG_VERSION = "1.6.1"
TIPG = f"tipg {TIPG_VERSION}"
NGINX = "nginx (static files)"
NGINX_FRONT = "ours, nginx front (directory cache)"
COMMUNES = 3321
DATABASE = "bench_features"
FAST_PG = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"

Log = Callable[[str], None]

TIPG_TABLE_SQL = """
CREATE SCHEMA bench;
CREATE TABLE bench.communes AS
    SELECT u.code, u.name, u.parent_code, u.unit_type, u.area_km2, p.value AS density, u.geom
    FROM admin_unit u
    LEFT JOIN published_value p ON p.indicator = 'density' AND p.vintage = u.vintage
        AND p.level = u.level AND p.code = u.code AND p.period = '2025'
    WHERE u.vintage = '2025' AND u.level = 'commune';
ALTER TABLE bench.communes ADD PRIMARY KEY (code);
CREATE INDEX communes_geom_idx ON bench.communes USING gist (geom);
"""

# Cycles through the paths listed in the file given after `--`; each thread starts at its
# own place in the list. done() prints one JSON line that the benchmark parses.
WRK_LUA = r"""
local paths = {}
local counter = 0
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  local threads = tonumber(args[2]) or 1
  counter = math.floor((id or 0) * #paths / threads)
end

function request()
  counter = counter % #paths + 1
  return wrk.format("GET", paths[counter])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""

# nginx serving the tiles fetched from ours as static files z/x/y.pbf (inside the http
# block of geo_service.tiles.nginx.standalone_conf, the one our nginx front runs in too)
NGINX_STATIC_SERVER = """server {{
    listen 127.0.0.1:{port};
    root {root};
    types {{ application/vnd.mapbox-vector-tile pbf; }}
    location / {{ try_files $uri =404; }}
}}
"""


@dataclasses.dataclass
class Server:
    """A running server process and how to reach its items."""

    name: str
    base: str
    items_path: str
    process: subprocess.Popen[bytes]
    log: Path
    command: list[str]


@dataclasses.dataclass
class WrkRun:
    """wrk's summary of one measurement."""

    requests: int
    seconds: float
    bytes: int
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        """Megabytes (10^6 bytes, headers included) read per second."""
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        """Socket errors, timeouts and non-2xx/3xx responses together."""
        return sum(self.errors.values())


# ---------------------------------------------------------------------------- environment


def ensure_binary(name: str, package: str, log: Log, fallback: str | None = None) -> str:
    """The path of a program, installed from Debian's `package` when missing."""
    found = shutil.which(name) or (fallback if fallback and Path(fallback).exists() else None)
    if found:
        return found
    log(f"{name} is missing: apt-get install -y {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", "install", "-y", package], capture_output=True, env=env)
    if result.returncode != 0:  # an old or missing package list: update once and retry
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", package], check=True, capture_output=True, env=env
        )
    found = shutil.which(name) or (fallback if fallback and Path(fallback).exists() else None)
    if not found:
        raise SystemExit(f"could not install {name} (Debian package {package})")
    return found


def ensure_wrk(log: Log) -> str:
    """The wrk binary, installed with apt when missing."""
    return ensure_binary("wrk", "wrk", log)


def ensure_nginx(log: Log) -> str:
    """The nginx binary, installed with apt when missing."""
    return ensure_binary("nginx", "nginx", log, fallback="/usr/sbin/nginx")


def ensure_ogr2ogr(log: Log) -> str:
    """The ogr2ogr binary, installed with apt (gdal-bin) when missing."""
    return ensure_binary("ogr2ogr", "gdal-bin", log)


def version(python: Path | str, module: str) -> str:
    """The installed version of a distribution in the environment of `python`."""
    result = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({module!r}))"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def ensure_tipg(log: Log) -> Path:
    """tipg in its own virtualenv under the cache folder; returns its python.

    Its uvicorn is the version ours runs, with the same extras (uvloop, httptools).
    """
    uvicorn = version(sys.executable, "uvicorn")
    venv = CACHE / f"tipg-{TIPG_VERSION}-uvicorn-{uvicorn}"
    python = venv / "bin" / "python"
    if python.exists() and version(python, "tipg") == TIPG_VERSION:
        return python
    log(f"installing tipg {TIPG_VERSION} into {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            f"tipg=={TIPG_VERSION}",
            f"uvicorn[standard]=={uvicorn}",
        ],
        check=True,
    )
    return python


# ------------------------------------------------------------------------------- database


def git(*args: str, repo: Path = REPO) -> str:
    """Output of a git command in the repository (this harness's unless `repo`), or '' when
    it fails."""
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


# What decides the contents of the loaded demo database (hashed into the cache key).
DEMO_INPUTS = (
    "data/vn",
    "boundaries",
    "geo_service/migrations",
    "geo_service/indicators",
    "geo_service/demo.py",
    "geo_service/migrate.py",
)


def demo_cache_key(extra: str = "", inputs: tuple[str, ...] = ()) -> str:
    """A key for the loaded demo: a hash of the contents of every file that shapes it."""
    digest = hashlib.sha256(extra.encode())
    for name in (*DEMO_INPUTS, *inputs):
        root = REPO / name
        files = (
            [root]
            if root.is_file()
            else sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        )
        for path in files:
            digest.update(str(path.relative_to(REPO)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def pg_env(cluster: LocalCluster) -> dict[str, str]:
    """The environment with the cluster's password for libpq tools."""
    state = cluster.load_state()
    assert state is not None
    return {**os.environ, "PGPASSWORD": state.password}


def conninfo(cluster: LocalCluster, database: str) -> str:
    """A libpq keyword string without the password (it goes through PGPASSWORD)."""
    state = cluster.load_state()
    assert state is not None
    return f"host=127.0.0.1 port={state.port} user=postgres dbname={database}"


@dataclasses.dataclass(frozen=True)
class Extra:
    """A step run on the freshly loaded demo before it is cached (e.g. generating EAs)."""

    name: str  # names the cached dump: demo-NAME-KEY.dump
    key: str  # what the step does, hashed into the cache key
    inputs: tuple[str, ...]  # files that shape its result, hashed too
    run: Callable[[str, Log], None]  # (database URL, log)


def prepare_database(
    cluster: LocalCluster, use_cache: bool, log: Log, extra: Extra | None = None
) -> tuple[str, str]:
    """Create the demo database (loaded, or restored from the cache) with bench.communes.

    Returns its URL and a sentence on how it was made.
    """
    with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        # roles belong to the cluster, not to the dump: the grants of migration 0010 in a
        # cached dump need the service's role in this fresh cluster before they are restored
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo_service_app')"
            " THEN CREATE ROLE geo_service_app NOLOGIN; END IF; END $$"
        )
    url = cluster.url(database=DATABASE)
    bindir = find_bindir()
    key = (
        demo_cache_key(extra.key if extra else "", extra.inputs if extra else ())
        if use_cache
        else None
    )
    prefix = f"demo-{extra.name}-" if extra else "demo-"
    dump = CACHE / f"{prefix}{key}.dump" if key else None
    started = time.perf_counter()
    if dump and dump.exists():
        log(f"restoring the demo database from {dump}")
        subprocess.run(
            [
                str(bindir / "pg_restore"),
                "--no-owner",
                "--no-acl",  # (grants name roles of the cluster it was dumped from)
                "--exit-on-error",
                "-d",
                conninfo(cluster, DATABASE),
                str(dump),
            ],
            check=True,
            env=pg_env(cluster),
        )
        how = f"demo restored from a cached dump of `load_demo` (key {key})"
    else:
        log("loading the demo (migrate + load_demo; takes about a minute)")
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            for line in load_demo(conn, DATA_DIR):
                log(f"  {line}")
        how = "demo loaded with `migrate` + `load_demo`"
        if extra:
            extra.run(url, log)
        if dump:
            dump.parent.mkdir(parents=True, exist_ok=True)
            partial = dump.with_suffix(".partial")
            subprocess.run(
                [str(bindir / "pg_dump"), "-Fc", "-f", str(partial), conninfo(cluster, DATABASE)],
                check=True,
                env=pg_env(cluster),
            )
            partial.replace(dump)
            # keep one dump per kind (prefix + key alone); older ones are of older code or data
            for stale in CACHE.glob(f"{prefix}*.dump"):
                if stale != dump and "-" not in stale.name.removeprefix(prefix):
                    stale.unlink(missing_ok=True)
            log(f"cached the loaded demo as {dump}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TIPG_TABLE_SQL)
        conn.execute("VACUUM ANALYZE")
        row = conn.execute(
            "SELECT count(*), Find_SRID('bench', 'communes', 'geom'),"
            " (SELECT count(*) FROM admin_unit WHERE vintage = '2025'"
            "  AND level = 'commune') FROM bench.communes"
        ).fetchone()
    if not row or row[0] != COMMUNES or row[1] != 4326 or row[2] != COMMUNES:
        raise SystemExit(f"unexpected demo database: {row}")
    log(f"database ready in {time.perf_counter() - started:.0f} s")
    return url, how


@contextmanager
def throwaway_cluster(prefix: str, log: Log) -> Iterator[tuple[LocalCluster, Path]]:
    """A PostgreSQL + PostGIS cluster in a temporary folder, destroyed on exit."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    workdir.chmod(0o755)  # postgres (data) and nginx's worker (tiles) must reach it as root
    cluster = LocalCluster(workdir / "cluster", database="postgres")
    try:
        log(f"starting a throwaway cluster in {workdir}")
        cluster.start(extra_options=FAST_PG)
        yield cluster, workdir
    finally:
        cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


# -------------------------------------------------------------------------------- servers


def clean_env() -> dict[str, str]:
    """This environment without anything that would point a server at another database.

    The background pre-render is off: it would fill the caches a run measures cold and
    compete with the requests measured (it is timed on its own, see bench/README.md); the
    load generator is one client, not held to the per-client download limit."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "TIPG_", "GEO_SERVICE_", "DATABASE_URL"))
    }
    # (wrk's connections all come from one address: the per-client download limit, 8 at
    # once, refused some of its pages and full downloads with 429, counted as errors)
    return {
        **kept,
        "GEO_SERVICE_PRERENDER_MAX_ZOOM": "0",
        "GEO_SERVICE_DOWNLOADS_PER_CLIENT": "1000",
    }


def ours_command() -> list[str]:
    """The command that starts our service (uvicorn options are added by start_server)."""
    return [sys.executable, "-m", "uvicorn", "geo_service.http.app:create_app", "--factory"]


def tipg_command(tipg_python: Path) -> list[str]:
    """The command that starts tipg."""
    return [str(tipg_python), "-m", "uvicorn", "tipg.main:app"]


def uvicorn_args(port: int) -> list[str]:
    """One worker (no 40 ms Nagle stall), uvloop + httptools, no access log."""
    return [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited: {log_file.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within 60 s")


def start_server(
    name: str,
    command: list[str],
    env: dict[str, str],
    ready_path: str,
    items_path: str,
    workdir: Path,
    args: Callable[[int], list[str]] = uvicorn_args,
) -> Server:
    """Start one server from its own empty folder and wait until it answers."""
    port = free_port()
    command = [*command, *args(port)]
    folder = workdir / re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")
    folder.mkdir()
    log_file = folder / "server.log"
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    server = Server(name, base, items_path, process, log_file, command)
    try:
        _wait_ready(base + ready_path, process, log_file)
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: Server) -> None:
    """Terminate the process we started (by its pid), killing it if it does not exit."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def start_nginx(binary: str, workdir: Path, root: Path, probe: str) -> Server:
    """nginx (one worker) serving `root` as static files on a free port, in the foreground."""
    port = free_port()
    conf = standalone_conf(NGINX_STATIC_SERVER.format(port=port, root=root), workers="1")
    return run_nginx(binary, workdir / "nginx", conf, NGINX, port, probe)


def start_nginx_front(binary: str, workdir: Path, env: dict[str, str], upstream: str) -> Server:
    """nginx (one worker) in front of ours at `upstream`, configured as `geo-service tiles
    nginx-conf --standalone` prints it for ours's environment (the directory cache)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "geo_service",
        "tiles",
        "nginx-conf",
        "--standalone",
        "--workers",
        "1",
        "--listen",
        f"127.0.0.1:{port}",
        "--upstream",
        upstream,
    ]
    conf = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return run_nginx(binary, workdir / "nginx-front", conf, NGINX_FRONT, port, "/health")


def run_nginx(
    binary: str, folder: Path, conf_text: str, name: str, port: int, probe: str
) -> Server:
    """nginx in the foreground with a configuration in `folder`, once `probe` answers 200."""
    folder.mkdir(parents=True)
    conf = folder / "nginx.conf"
    conf.write_text(conf_text)
    log_file = folder / "server.log"
    command = [binary, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"]
    with log_file.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, f"http://127.0.0.1:{port}", "", process, log_file, command)
    for _ in range(100):
        if process.poll() is not None:
            raise SystemExit(
                f"nginx exited: {log_file.read_text(errors='replace')}"
                f"{(folder / 'error.log').read_text(errors='replace')}"
            )
        try:
            if Client(server.base, timeout=2).get(probe)[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise SystemExit(f"{name} did not answer")


class Client:
    """A keep-alive HTTP/1.1 client for one server."""

    def __init__(self, base: str, timeout: float = 120.0):
        parts = urllib.parse.urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """GET one path (no Accept-Encoding: raw bodies, like wrk); reconnect once."""
        for attempt in range(2):
            try:
                self.conn.request("GET", path)
                response = self.conn.getresponse()
                body = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, body
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


# ------------------------------------------------------------------------------------ wrk


def run_wrk(
    wrk: str,
    lua: Path,
    base: str,
    paths_file: Path,
    connections: int,
    duration: float,
    what: str = "",
) -> WrkRun:
    """One wrk measurement of the server at `base`, cycling through the paths in a file."""
    threads = min(2, connections)
    command = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "120s",
        "-s",
        str(lua),
        base,
        "--",
        str(paths_file),
        str(threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if result.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed on {what or base}: {result.stdout}\n{result.stderr}")
    data: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    return WrkRun(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        bytes=int(data["bytes"]),
        errors={k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")},
        p50_ms=data["p50_us"] / 1e3,
        p90_ms=data["p90_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        max_ms=data["max_us"] / 1e3,
    )


# -------------------------------------------------------------------------------- machine


def loadavg() -> list[str]:
    """The 1, 5 and 15-minute load averages."""
    return Path("/proc/loadavg").read_text().split()[:3]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    """Total memory in GiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def git_commit(
    paths: tuple[str, ...] = ("geo_service", "boundaries", "tilecache"), repo: Path = REPO
) -> str:
    """The short commit of `repo`, flagged when the measured code has uncommitted changes."""
    commit = git("rev-parse", "--short", "HEAD", repo=repo) or "unknown"
    if git("status", "--porcelain", "--", *paths, repo=repo):
        commit += " + uncommitted changes"
    return commit


def served_tree(env: dict[str, str] | None = None) -> Path | None:
    """The checkout whose geo_service a server started by ours_command() with `env` imports
    (from an empty folder, as start_server does): the virtualenv's editable install, or
    PYTHONPATH: not necessarily this harness's checkout. None if it cannot be imported."""
    probe = "import geo_service; print(geo_service.__file__)"
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            [sys.executable, "-c", probe],
            env=clean_env() if env is None else env,
            cwd=folder,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return Path(result.stdout.strip()).resolve().parent.parent


def served_commit(env: dict[str, str] | None = None) -> str:
    """The commit of the code our servers run (what is measured), naming its checkout and
    the harness's commit when the two differ."""
    tree = served_tree(env)
    if tree is None:
        return "unknown (geo_service cannot be imported by the servers)"
    commit = git_commit(repo=tree)
    if tree != REPO.resolve():
        commit += f" (the servers' code, from {tree}; harness {git_commit()})"
    return commit


def now_utc() -> str:
    """The current time as 'YYYY-MM-DD HH:MM UTC'."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def describe(cluster: LocalCluster, tipg_python: Path, wrk: str) -> str:
    """When, which commit, on what machine, with which versions."""
    with psycopg.connect(cluster.url(database=DATABASE)) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), postgis_lib_version()"
        ).fetchone()
    pg, postgis = row if row else ("?", "?")
    wrk_version = (
        subprocess.run([wrk, "--version"], capture_output=True, text=True)
        .stdout.split(" Copyright")[0]
        .strip()
    )
    return (
        f"{now_utc()}, commit {served_commit()}, {os.cpu_count()} CPUs ({cpu_model()}); "
        f"load generator, servers and PostgreSQL share them. PostgreSQL {pg}, PostGIS "
        f"{postgis}, Python {platform.python_version()}, uvicorn "
        f"{version(sys.executable, 'uvicorn')} (both), fastapi "
        f"{version(sys.executable, 'fastapi')} (ours) / {version(tipg_python, 'fastapi')}"
        f" (tipg), psycopg {version(sys.executable, 'psycopg')} (ours), asyncpg "
        f"{version(tipg_python, 'asyncpg')} (tipg), {wrk_version}."
    )


def shown(command: list[str]) -> str:
    """A server command line as shown in a report (interpreter path shortened)."""
    return " ".join([Path(command[0]).name, *command[1:]])
