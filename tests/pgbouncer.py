"""A real PgBouncer (the Debian package) in transaction pooling mode in front of a database
of the test cluster, started and stopped by the tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from geo_service.localdb import SUPERUSER, _is_root, free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@contextmanager
def pgbouncer(database_url: str, pool_size: int = 2) -> Iterator[str]:
    """PgBouncer in transaction mode in front of `database_url`, with `pool_size` server
    connections: yields the URL of the same database through it."""
    target = conninfo_to_dict(database_url)
    home = Path(tempfile.mkdtemp(prefix="geo-service-pgbouncer-"))
    port = free_port()
    server = " ".join(
        f"{key}={target[key]}" for key in ("host", "port", "user", "password") if target.get(key)
    )
    (home / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = {server}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        # (any client name is accepted; the server login is the one above)
        "auth_type = any\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "max_client_conn = 500\n"
        "ignore_startup_parameters = extra_float_digits\n"
        f"logfile = {home / 'pgbouncer.log'}\n"
    )
    command = [PGBOUNCER, str(home / "pgbouncer.ini")]
    if _is_root():  # (PgBouncer refuses to run as root)
        shutil.chown(home, SUPERUSER)
        command[1:1] = ["-u", SUPERUSER]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pooled = make_conninfo(database_url, host="127.0.0.1", port=str(port))
    try:
        _wait_until_up(pooled, process, home)
        yield _as_url(pooled)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _as_url(conninfo: str) -> str:
    """A conninfo string as a postgresql:// URL (what the service's settings take)."""
    parts = conninfo_to_dict(conninfo)
    return (
        f"postgresql://{parts['user']}:{parts['password']}@{parts['host']}:{parts['port']}"
        f"/{parts['dbname']}"
    )


def _wait_until_up(pooled: str, process: subprocess.Popen[bytes], home: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            log = (home / "pgbouncer.log").read_text() if (home / "pgbouncer.log").exists() else ""
            raise RuntimeError(
                f"pgbouncer exited: {process.stdout.read() if process.stdout else b''!r} {log}"
            )
        try:
            with psycopg.connect(pooled, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
