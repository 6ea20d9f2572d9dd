"""A real primary and a real hot standby of it (streaming replication), for routing tests.

The primary is a cluster of its own, not the suite's shared one: that one runs without
full-page writes (fast, but a base backup of it could not be trusted) and holds the large
demo database, while the routing tests need only a few units. The standby is made with
`pg_basebackup -R` (which writes `primary_conninfo` and `standby.signal`) and started as
a hot standby; both are run by the same LocalCluster code as the service's own database.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import psycopg
from psycopg import sql

from boundaries.checks import FieldMap
from boundaries.generalise import DEMO_GAP_WIDTH
from boundaries.load import LoadOptions, load_boundaries
from boundaries.vintages import add_vintage
from geo_service.demo import VINTAGES
from geo_service.localdb import (
    STATE_FILE,
    SUPERUSER,
    ClusterState,
    LocalCluster,
    _as_postgres,
    _is_root,
    find_bindir,
    free_port,
)
from geo_service.migrate import migrate

DEMO_DATA = Path(__file__).resolve().parent.parent / "data" / "vn"
DATABASE = "geo_service"
# (streaming replication needs these on the primary; PostgreSQL 15's defaults already say
# so, given here so that a changed default cannot break the tests silently)
PRIMARY_OPTIONS = "-c wal_level=replica -c max_wal_senders=5 -c synchronous_commit=off"
STANDBY_OPTIONS = "-c hot_standby=on -c hot_standby_feedback=on"


class Replication:
    """A running primary and its hot standby."""

    def __init__(self, primary: LocalCluster, standby: LocalCluster):
        self.primary, self.standby = primary, standby

    @property
    def primary_url(self) -> str:
        """The primary's database, as its owner."""
        return self.primary.url()

    @property
    def standby_url(self) -> str:
        """The same database on the standby."""
        return self.standby.url()

    def wait_streaming(self, timeout_s: float = 60.0) -> None:
        """Wait until the standby streams from the primary and has replayed every commit
        made on the primary before this call."""
        # The primary runs synchronous_commit=off: a commit that has returned may still lie
        # beyond pg_current_wal_lsn() (what is written out), so a standby that reached that
        # position could still miss it. The insert position read now is past every commit
        # record made so far (the same position the service hands out after a write).
        with psycopg.connect(self.primary_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        self.wait_replayed(str(row[0]), timeout_s)

    def wait_replayed(self, lsn: str, timeout_s: float = 60.0) -> None:
        """Wait until the standby streams from the primary and has replayed up to `lsn`."""
        deadline = time.monotonic() + timeout_s
        while not (self._streaming() and self.replayed(lsn)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby did not replay {lsn} within {timeout_s:g} s")
            time.sleep(0.05)

    def _streaming(self) -> bool:
        """Whether the primary has a standby streaming from it."""
        with psycopg.connect(self.primary_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT FROM pg_stat_replication WHERE state = 'streaming')"
            ).fetchone()
        return bool(row and row[0])

    def replayed(self, lsn: str) -> bool:
        """Whether the standby has replayed the primary's WAL up to `lsn`."""
        with psycopg.connect(self.standby_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
        return bool(row and row[0])

    @contextmanager
    def replay_paused(self) -> Iterator[None]:
        """The standby receives the primary's WAL but applies none of it (it falls behind)."""
        with psycopg.connect(self.standby_url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            with psycopg.connect(self.standby_url, autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
            self.wait_streaming()

    @contextmanager
    def apply_delayed(self, seconds: float) -> Iterator[None]:
        """The standby applies each commit only `seconds` after it was made
        (`recovery_min_apply_delay`): it streams, but its data are that far behind."""
        self._set_standby("recovery_min_apply_delay", f"{round(seconds * 1000)}ms")
        try:
            yield
        finally:
            self._set_standby("recovery_min_apply_delay", None)
            self.wait_streaming()

    def _set_standby(self, name: str, value: str | None) -> None:
        with psycopg.connect(self.standby_url, autocommit=True) as conn:
            if value is None:
                conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
            else:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
            conn.execute("SELECT pg_reload_conf()")

    def promote(self) -> None:
        """Promote the standby to a primary (what an operator does when the primary is
        lost: `SELECT pg_promote()`, as `pg_ctl promote` does); waits until it accepts writes."""
        with psycopg.connect(self.standby_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_promote(wait => true, wait_seconds => 60)").fetchone()
        if not (row and row[0]):
            raise RuntimeError("the standby was not promoted within 60 s")

    def commit_on_primary(self, statement: str, params: tuple[object, ...] = ()) -> str:
        """Run a statement on the primary; the WAL insert position after its commit."""
        with psycopg.connect(self.primary_url, autocommit=True) as conn:
            conn.execute(statement, params)
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        return str(row[0])

    def write_on_primary(self) -> None:
        """A committed write on the primary (its WAL position moves on)."""
        with psycopg.connect(self.primary_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS replication_probe (at timestamptz)")
            conn.execute("INSERT INTO replication_probe VALUES (now())")


def hanoi_name(url: str) -> str:
    """Hà Nội's province name (vintage 2025) in the database at `url`."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT name FROM admin_unit WHERE vintage = '2025' AND level = 'province'"
            " AND code = '01'"
        ).fetchone()
    assert row is not None
    return str(row[0])


def _load_provinces(url: str) -> None:
    """The schema, the demo's vintages and its 34 provinces of 2025: enough to route reads."""
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        for vintage in VINTAGES:
            add_vintage(conn, vintage)
        options = LoadOptions(
            "2025", "province", FieldMap("id", "name", None, "type"), gap_width=DEMO_GAP_WIDTH
        )
        load_boundaries(conn, [DEMO_DATA / "vietnam-3d-map-2025" / "provinces.json"], options)


def _base_backup(primary: LocalCluster, home: Path) -> ClusterState:
    """`pg_basebackup -R` of the primary into a new cluster folder under `home`."""
    source = primary.load_state()
    assert source is not None
    data_dir = home / "postgres" / "pgdata"
    data_dir.parent.mkdir(parents=True)
    if _is_root():  # (the server runs as postgres: its folders must be postgres's)
        shutil.chown(data_dir.parent, SUPERUSER)
    conninfo = (
        f"host=127.0.0.1 port={source.port} user={SUPERUSER} password={source.password}"
        " application_name=test-standby"
    )
    command = [
        str(find_bindir() / "pg_basebackup"),
        "-d",
        conninfo,
        "-D",
        str(data_dir),
        "-R",  # standby.signal and primary_conninfo: it starts as a standby of the primary
        "-X",
        "stream",
        "-c",
        "fast",
        "--no-sync",
    ]

    result = subprocess.run(
        _as_postgres(*command) if _is_root() else command, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_basebackup failed: {result.stderr.strip()}")
    state = ClusterState(str(data_dir), free_port(), source.password, DATABASE)
    (home / STATE_FILE).write_text(json.dumps(asdict(state)))
    return state


@contextmanager
def replicated() -> Iterator[Replication]:
    """Start a primary with a few units and a hot standby streaming from it; tear both
    down afterwards."""
    primary = LocalCluster(_home("primary"), database=DATABASE)
    standby = LocalCluster(_home("standby"), database=DATABASE)
    try:
        primary.start(extra_options=PRIMARY_OPTIONS)
        _load_provinces(primary.url())
        _base_backup(primary, standby.home)
        standby.start(extra_options=STANDBY_OPTIONS)
        replication = Replication(primary, standby)
        replication.wait_streaming()
        yield replication
    finally:
        for cluster in (standby, primary):
            cluster.destroy()
            shutil.rmtree(cluster.home, ignore_errors=True)


def _home(role: str) -> Path:
    home = Path(tempfile.mkdtemp(prefix=f"geo-service-{role}-"))
    home.chmod(0o755)  # the postgres user must reach the data folder when we run as root
    return home
