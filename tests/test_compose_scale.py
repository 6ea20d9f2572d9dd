"""compose.yaml's `scale` profile, checked without Docker (no daemon on the test machines):
every reference inside it points at something that exists, the instances' settings are
valid and agree with PgBouncer's, nginx's and the database's files, and the replication
set-up script works on a real PostgreSQL."""

from __future__ import annotations

import configparser
import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.conftest import REPO, PgCluster
from tests.test_container_recipe import (
    _compose,
    _run_database_initialisation,
    _service_settings,
)

SCALE = {"replica", "pgbouncer", "redis", "scale-a", "scale-b", "front"}
INSTANCES = ("scale-a", "scale-b")


def services() -> dict[str, Any]:
    """compose.yaml's services."""
    found: dict[str, Any] = _compose()["services"]
    return found


def test_the_profile_has_each_piece_and_only_its_own_services() -> None:
    profiled = {name for name, s in services().items() if "scale" in s.get("profiles", [])}
    assert profiled == SCALE
    # the single-machine services run without a profile (plain `docker compose up`)
    for name in ("db", "service", "nginx"):
        assert "profiles" not in services()[name]


def test_every_dependency_volume_and_file_exists() -> None:
    document = _compose()
    named = set(document["volumes"])
    for name, service in services().items():
        for needed in service.get("depends_on", {}):
            assert needed in services(), f"{name} depends on unknown {needed}"
            # a scale service never waits for one that the profile would not start
            assert needed in SCALE or needed in ("db", "service"), (name, needed)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in named, f"{name} mounts undeclared volume {source}"
        build = service.get("build")
        if isinstance(build, dict):
            assert (REPO / build["context"] / build["dockerfile"]).is_file()
        for network in service.get("networks", []):
            assert network in document["networks"]


def test_the_instances_settings_are_valid_and_point_at_the_profile() -> None:
    for name in INSTANCES:
        environment = services()[name]["environment"]
        settings = _service_settings(environment)  # (refuses PgBouncer without a LISTEN URL)
        assert settings.db_pgbouncer and settings.tile_cache == "redis"
        hosts = {
            urlsplit(str(environment["DATABASE_URL"])).hostname: "primary",
            urlsplit(str(settings.app_database_url)).hostname: "pooler",
            urlsplit(str(settings.listen_url)).hostname: "primary",
            urlsplit(settings.redis_url).hostname: "cache",
        }
        hosts |= {urlsplit(u).hostname: "replica" for u in settings.replica_url_list}
        assert hosts == {
            "db": "primary",
            "pgbouncer": "pooler",
            "redis": "cache",
            "replica": "replica",
        }
        for host in hosts:
            assert host in services()
        # the instances trust the front alone, at its fixed address outside the dynamic range
        front = services()["front"]["networks"]["internal"]["ipv4_address"]
        assert settings.trusted_proxies.split(",") == [front]
        [ipam] = _compose()["networks"]["internal"]["ipam"]["config"]
        assert ipaddress.ip_address(front) not in ipaddress.ip_network(ipam["ip_range"])
        assert front != services()["nginx"]["networks"]["internal"]["ipv4_address"]
    assert services()["scale-a"]["environment"] == services()["scale-b"]["environment"]
    # one key signs the write positions on both (else a read after a write on the other
    # instance ignores the position and may miss the write)
    assert "GEO_SERVICE_LSN_SECRET" in services()["scale-a"]["environment"]


def test_pgbouncer_nginx_and_the_replica_agree_with_compose() -> None:
    instance = _service_settings(services()["scale-a"]["environment"])
    pooled = urlsplit(str(instance.app_database_url))
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read(REPO / "deploy/scale/pgbouncer.ini")
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    assert ini["pgbouncer"]["listen_port"] == str(pooled.port)
    database = ini["databases"][pooled.path.lstrip("/")]
    assert "host=db " in database + " "
    userlist = (REPO / "deploy/scale/userlist.txt").read_text()
    assert f'"{pooled.username}" "{pooled.password}"' in userlist
    nginx = (REPO / "deploy/scale/nginx.conf").read_text()
    upstreams = re.findall(r"^\s*server (\S+?)(?: |;)", nginx, re.MULTILINE)
    assert upstreams == [f"{name}:{instance.port}" for name in INSTANCES]
    replica = services()["replica"]
    assert replica["environment"]["PRIMARY_HOST"] == "db"
    for script in ("deploy/scale/replica.sh", "deploy/db-init/20-replication.sh"):
        assert subprocess.run(["sh", "-n", str(REPO / script)]).returncode == 0


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_the_replication_set_up_runs_on_a_real_database(pg: PgCluster, tmp_path: Path) -> None:
    url = urlsplit(pg.url("postgres"))
    script = (REPO / "deploy/db-init/20-replication.sh").read_text()
    (tmp_path / "pg_hba.conf").write_text("")
    _run_database_initialisation(pg)  # (10-service-role.sql first, as the image runs them)
    environment = {
        "PATH": "/usr/bin:/bin",
        "PGHOST": str(url.hostname),
        "PGPORT": str(url.port),
        "PGPASSWORD": str(url.password),
        "POSTGRES_USER": str(url.username),
        "POSTGRES_DB": "postgres",
        "PGDATA": str(tmp_path),
    }
    for _ in range(2):  # (again: the role exists by then)
        done = subprocess.run(["sh", "-c", script], env=environment, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT rolreplication, rolcanlogin FROM pg_roles WHERE rolname = 'replicator'"
        ).fetchone()
        assert row == (True, True)
        settings = conn.execute(
            "SELECT unnest(setconfig) FROM pg_db_role_setting s JOIN pg_roles r"
            " ON r.oid = s.setrole WHERE r.rolname = 'geo_service_web'"
        ).fetchall()
    assert {"statement_timeout=30s", "idle_in_transaction_session_timeout=30s"} <= {
        s for (s,) in settings
    }
    assert (
        "host replication replicator samenet scram-sha-256"
        in (tmp_path / "pg_hba.conf").read_text()
    )
