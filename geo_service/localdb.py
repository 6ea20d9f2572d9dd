"""An embedded PostgreSQL + PostGIS cluster, managed with the system's initdb and pg_ctl.

PostgreSQL refuses to run as root, so when we are root only the server runs as the
`postgres` system user; clients keep running as root and connect over loopback TCP
with a generated password.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from geo_core.errors import LocalDatabaseError

STATE_FILE = "cluster.json"
SUPERUSER = "postgres"


@dataclass
class ClusterState:
    """What we remember about the cluster between commands."""

    data_dir: str
    port: int
    password: str
    database: str
    service_password: str = ""  # of the web service's restricted login (see service_url)


# Where root's clusters go when the postgres user cannot reach the service's home.
FALLBACK_ROOT = Path("/var/lib/geo-service")


def _is_root() -> bool:
    return os.geteuid() == 0


def find_bindir(configured: Path | None = None) -> Path:
    """Return the newest PostgreSQL bin directory that has PostGIS available."""
    if configured:
        if not (configured / "initdb").exists():
            raise LocalDatabaseError(f"no initdb in GEO_SERVICE_PG_BINDIR={configured}")
        return configured
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        version = bindir.parent.name
        if (bindir / "initdb").exists() and Path(
            f"/usr/share/postgresql/{version}/extension/postgis.control"
        ).exists():
            return bindir
    raise LocalDatabaseError(
        "no PostgreSQL with PostGIS found under /usr/lib/postgresql; "
        "install it with scripts/setup.sh (Debian package postgresql-15-postgis-3)"
    )


def _as_postgres(*command: str) -> list[str]:
    """`command` run as the postgres user (we are root): runuser, wherever it is installed."""
    # root's PATH under cron, sudo or a bare `env -i` may lack the sbin folders
    runuser = shutil.which("runuser") or shutil.which(
        "runuser", path="/usr/sbin:/sbin:/usr/bin:/bin"
    )
    if runuser is None:
        raise LocalDatabaseError(
            "running the embedded database as root needs `runuser` (Debian package util-linux)"
        )
    return [runuser, "-u", SUPERUSER, "--", *command]


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read it: {exc})"


def free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _postgres_can_reach(path: Path) -> bool:
    """True when the `postgres` user can traverse into `path`'s parent."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    result = subprocess.run(_as_postgres("test", "-x", str(probe)), capture_output=True)
    return result.returncode == 0


class LocalCluster:
    """A PostgreSQL cluster living under `home` (or a postgres-owned folder when root)."""

    def __init__(self, home: Path, database: str = "geo_service", bindir: Path | None = None):
        self.home = home
        self.database = database
        self._bindir_setting = bindir
        self.moved_from: int | None = None  # the port start() found taken, if it moved

    @property
    def state_path(self) -> Path:
        """The JSON file that records data folder, port and password."""
        return self.home / STATE_FILE

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if _is_root():
            cmd = _as_postgres(*cmd)
        result = subprocess.run(cmd, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise LocalDatabaseError(
                f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def load_state(self) -> ClusterState | None:
        """Return the remembered cluster, or None before `init`."""
        if not self.state_path.exists():
            return None
        return ClusterState(**json.loads(self.state_path.read_text()))

    def _save_state(self, state: ClusterState) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(asdict(state), indent=2))
        self.state_path.chmod(0o600)

    def _choose_data_dir(self) -> Path:
        # (in a folder of its own, owned by the postgres user: the home stays its user's)
        wanted = self.home / "postgres" / "pgdata"
        if not _is_root() or _postgres_can_reach(wanted):
            return wanted
        # Under a 0700 folder such as /root the postgres user cannot reach the data.
        digest = hashlib.sha1(str(self.home.resolve()).encode()).hexdigest()[:12]
        # (made here, and passable by the postgres user whatever the umask: the commands
        # run with 027, which made it 0750 root's and every initdb below it fail)
        FALLBACK_ROOT.mkdir(parents=True, exist_ok=True)
        FALLBACK_ROOT.chmod(0o711)
        return FALLBACK_ROOT / digest / "pgdata"

    def init(self) -> ClusterState:
        """Create the cluster once; later calls return the existing state."""
        state = self.load_state()
        if state and Path(state.data_dir, "PG_VERSION").exists():
            return state
        bindir = find_bindir(self._bindir_setting)
        # (made first, as private as the service keeps it: whether the postgres user can
        # reach a data folder inside depends on it)
        self.home.mkdir(mode=0o750, parents=True, exist_ok=True)
        data_dir = self._choose_data_dir()
        data_dir.mkdir(parents=True, exist_ok=True)
        if _is_root():
            shutil.chown(data_dir.parent, SUPERUSER)
            shutil.chown(data_dir, SUPERUSER)
        data_dir.chmod(0o700)
        password = secrets.token_urlsafe(24)
        pwfile = data_dir.parent / ".pwfile"
        pwfile.write_text(password + "\n")
        if _is_root():
            shutil.chown(pwfile, SUPERUSER)
        try:
            self._run(
                str(bindir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        state = ClusterState(str(data_dir), free_port(), password, self.database)
        self._save_state(state)
        return state

    def is_running(self) -> bool:
        """True when the server answers on its port."""
        state = self.load_state()
        if not state:
            return False
        bindir = find_bindir(self._bindir_setting)
        result = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(state.port), "-q"],
            capture_output=True,
        )
        return result.returncode == 0 and self._pid_file_exists(state)

    def _pid_file_exists(self, state: ClusterState) -> bool:
        pid_file = f"{state.data_dir}/postmaster.pid"
        return self._run("test", "-f", pid_file, check=False).returncode == 0

    def start(self, extra_options: str = "") -> ClusterState:
        """Initialise if needed, start the server and create the database."""
        state = self.init()
        if self.is_running():
            return state
        if _port_in_use(state.port):
            self.moved_from = state.port
            state.port = free_port()
            self._save_state(state)
        bindir = find_bindir(self._bindir_setting)
        log = Path(state.data_dir).parent / "postgresql.log"
        # (pg_ctl hands the options to a shell: a folder with spaces must be quoted)
        options = (
            f"-p {state.port} -c listen_addresses=127.0.0.1 -k {shlex.quote(state.data_dir)} "
            f"-c max_connections=200 {extra_options}"
        )
        try:
            self._run(
                str(bindir / "pg_ctl"),
                "-D",
                state.data_dir,
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            )
        except LocalDatabaseError as exc:
            raise LocalDatabaseError(f"{exc.message}\nlast lines of {log}:\n{_tail(log)}") from exc
        self._create_database(state)
        return state

    def _create_database(self, state: ClusterState) -> None:
        import psycopg

        admin_url = self.url(state, database="postgres")
        for attempt in range(50):
            try:
                with psycopg.connect(admin_url, autocommit=True) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (state.database,)
                    ).fetchone()
                    if not exists:
                        from psycopg import sql

                        conn.execute(
                            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(state.database))
                        )
                    return
            except psycopg.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)

    def stop(self) -> bool:
        """Stop the server; return False when it was not running."""
        state = self.load_state()
        if not state or not self._pid_file_exists(state):
            return False
        bindir = find_bindir(self._bindir_setting)
        self._run(str(bindir / "pg_ctl"), "-D", state.data_dir, "-m", "fast", "-w", "stop")
        return True

    def destroy(self) -> None:
        """Stop the server and delete its data (used by throwaway test clusters)."""
        state = self.load_state()
        self.stop()
        if state:
            shutil.rmtree(
                Path(state.data_dir).parent if _owned_subdir(state) else state.data_dir,
                ignore_errors=True,
            )
        self.state_path.unlink(missing_ok=True)

    def url(self, state: ClusterState | None = None, database: str | None = None) -> str:
        """The connection URL of the running cluster (as its owner)."""
        state = state or self.load_state()
        if state is None:
            raise LocalDatabaseError("the local database has not been created yet")
        name = database or state.database
        return f"postgresql://{SUPERUSER}:{state.password}@127.0.0.1:{state.port}/{name}"

    def service_url(self, login: str) -> str:
        """The URL of the web service's restricted login (its password made once, kept in
        the state file)."""
        state = self.load_state()
        if state is None:
            raise LocalDatabaseError("the local database has not been created yet")
        if not state.service_password:
            state.service_password = secrets.token_urlsafe(24)
            self._save_state(state)
        return (
            f"postgresql://{login}:{state.service_password}@127.0.0.1:{state.port}/{state.database}"
        )


def _owned_subdir(state: ClusterState) -> bool:
    """True when the data folder's parent is ours alone (the /var/lib fallback)."""
    return Path(state.data_dir).parent.parent == FALLBACK_ROOT
