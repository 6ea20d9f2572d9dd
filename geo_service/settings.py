"""Settings read from the environment (and an optional `.env` file)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "geo-service"


# Signs the write positions handed to clients when GEO_SERVICE_LSN_SECRET is unset: one per
# process (so positions from another instance, or from before a restart, are ignored).
_PROCESS_LSN_SECRET = secrets.token_urlsafe(32)


def _process_lsn_secret() -> SecretStr:
    return SecretStr(_PROCESS_LSN_SECRET)


# What the service creates is its user's (and group's) to read, nobody else's: 0640 files,
# 0750 folders. (The directory tile cache makes its folders and tiles readable to all
# itself: nginx, another user, serves them.)
PRIVATE_UMASK = 0o027


def keep_home_private(home: Path, passed_through: bool) -> None:
    """Make the home (0750) or keep it no more open than that; 0751 when another user must
    pass through it to a folder inside (nginx to the tile tree, the postgres user to the
    embedded cluster run by root): others can pass, but neither list nor read it."""
    home.mkdir(mode=0o750, parents=True, exist_ok=True)
    found = home.stat()
    mode = stat.S_IMODE(found.st_mode)
    if found.st_uid != os.geteuid() or mode & stat.S_ISVTX:
        return  # (a folder shared with others, like /tmp, is not the service's to change)
    allowed = (0o751 if passed_through else 0o750) | stat.S_ISGID  # (a group kept for nginx)
    wanted = mode & allowed | (0o001 if passed_through else 0)
    if wanted != mode:
        home.chmod(wanted)


# Response headers a browser script may read across origins (nginx in front sends the same).
CORS_EXPOSE_HEADERS = (
    "ETag",
    "Content-Crs",
    "X-Request-Id",
    "Link",
    "OGC-NumberMatched",
    "OGC-NumberReturned",
    "Content-Range",
    "Accept-Ranges",
)

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "vn"
# the national roads and railways shown as a map layer (CC BY-SA 4.0; see data/vn/transport)
DEMO_ROADS = DATA_DIR / "transport" / "roads-railways.geojson"

DEMO_RASTER = (
    Path(__file__).resolve().parent.parent
    / "data"
    / "vn"
    / "raster"
    / "vn_ppp_2020_1km_Aggregated.tif"
)


class BaseMapSetting(BaseModel):
    """One base map or overlay the service serves from a file (MBTiles, PMTiles, GeoTIFF)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    path: Path
    title: str = ""  # shown in the layer switcher (both languages unless title_vi is given)
    title_vi: str = ""
    attribution: str = ""
    overlay: bool = False  # drawn over the map (True) or under it as its base (False)
    colormap: str = "YlOrRd"  # single-band rasters: ColorBrewer ramp
    scale: Literal["log", "linear"] = "log"


class DatabaseSettings(BaseSettings):
    """Where the database is: `DATABASE_URL`, or the standard libpq `PG*` variables.

    When neither is set the service runs its own embedded PostgreSQL cluster.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    pghost: str | None = None
    pgport: int | None = None
    pguser: str | None = None
    pgpassword: str | None = None
    pgdatabase: str | None = None

    @property
    def configured(self) -> bool:
        """True when the environment names an external database."""
        return bool(self.database_url or self.pghost)

    def url(self) -> str:
        """The configured connection URL (only meaningful when `configured`)."""
        if self.database_url:
            return self.database_url
        user = quote(self.pguser or "postgres", safe="")
        password = f":{quote(self.pgpassword, safe='')}" if self.pgpassword else ""
        port = self.pgport or 5432
        database = self.pgdatabase or "geo_service"
        return f"postgresql://{user}{password}@{self.pghost}:{port}/{database}"


class ServiceSettings(BaseSettings):
    """Settings of the service itself, prefixed `GEO_SERVICE_`."""

    model_config = SettingsConfigDict(env_prefix="GEO_SERVICE_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    # The URL the web service connects with: a login (geo_service_web on the embedded
    # database and in compose) in the role geo_service_app (migrations 0010 and 0016);
    # default DATABASE_URL. Loaders, migrations and disclosure protection use DATABASE_URL.
    app_database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # Hot-standby replicas for reads (comma-separated URLs; empty: everything on the primary)
    # and how far behind one may be before reads leave it (see geo_service/replicas.py).
    replica_urls: str = ""
    replica_max_lag_s: Annotated[float, Field(gt=0)] = 5.0
    replica_check_interval_s: Annotated[float, Field(gt=0)] = 1.0
    # A read carrying a client's write position waits at most this long for a replica that
    # has replayed it, then goes to the primary (read-your-writes; see http/consistency.py).
    replica_wait_ms: Annotated[int, Field(ge=0, le=10_000)] = 300
    # The HMAC key of the write positions handed to clients (a client cannot forge one);
    # instances behind one load balancer need the same. Unset: a random one per process.
    lsn_secret: SecretStr = Field(default_factory=_process_lsn_secret)
    # The service's connections go through PgBouncer in transaction pooling mode: no
    # server-side prepared statements, no startup options (set the timeouts on the login
    # role instead), and LISTEN and the pre-render's lock on GEO_SERVICE_LISTEN_URL, a
    # direct connection to the primary (a pooled one loses notifications and session locks).
    db_pgbouncer: bool = False
    listen_url: str | None = None
    pool_min_size: int = 1
    pool_max_size: int = 20
    statement_timeout_ms: int = 30_000
    # How long a request waits for a pooled connection before a 503 (database down or busy).
    pool_timeout_s: float = 5.0
    # libpq connect_timeout: a database host that does not answer fails in this time.
    connect_timeout_s: int = 5
    # A failing reconnection is retried with backoff for this long, then restarted on demand,
    # so the service notices a database that is back within a few seconds.
    pool_reconnect_timeout_s: float = 5.0
    # A response not started by then is a 503 (a database that stopped answering); 0: never.
    response_deadline_s: float = 60.0
    # A pooled connection idle for this long is pinged before use (0: before every use).
    pool_check_idle_s: float = 1.0
    # A transaction left idle this long is ended by the database: nothing pins a connection.
    idle_in_transaction_timeout_ms: int = 30_000
    # Downloads are read from the database in full (into memory up to this size, then a
    # temporary file) and sent from there: a slow client never holds a database connection.
    download_spool_mb: int = 8
    # A client that does not take one chunk of a response within this time is disconnected.
    send_timeout_s: float = 60.0
    # Downloads reading from the database at once (default: half the pool), and per client
    # address at once (reading and sending).
    downloads_at_once: int | None = None
    downloads_per_client: int = 8
    # Built GeoPackages kept (under <home>/downloads) so that byte-range reads get one file
    download_cache_mb: int = 512
    # one JSON line per request on stderr (request id, method, route, status, duration)
    access_log: bool = True
    # when set, /metrics answers only requests with "Authorization: Bearer <this>"
    metrics_token: str | None = None
    pg_bindir: Path | None = None
    database_name: str = "geo_service"
    # population raster used for population-weighted area statistics
    population_raster: Path = DEMO_RASTER
    max_body_bytes: int = 5_000_000
    # `geo-service serve`: a request head must arrive within this, and a body may pause at
    # most this long between reads (nginx's client_header_timeout and client_body_timeout)
    request_head_timeout_s: float = Field(default=20.0, gt=0)
    request_body_idle_s: float = Field(default=30.0, gt=0)
    aggregate_max_vertices: int = 100_000
    aggregate_max_area_km2: float = 500_000.0
    # vertices of a drawn area × units it touches: the size of the overlay it asks for
    aggregate_max_cost: int = 20_000_000
    # database time of one anonymous request's heavy statements (a drawn area's overlay)
    anonymous_statement_timeout_ms: int = 10_000
    # drawn areas (POST /aggregate) computed at once (default: twice the raster workers),
    # and per client address at once
    aggregates_at_once: Annotated[int, Field(ge=1)] | None = None
    aggregates_per_client: Annotated[int, Field(ge=1)] = 2
    # maps and PDFs (map exports, field maps, map books) drawn at once, and per client: each
    # takes seconds of CPU and hundreds of MB (a map book minutes)
    renders_at_once: Annotated[int, Field(ge=1)] = 2
    renders_per_client: Annotated[int, Field(ge=1)] = 1
    # worker processes drawing a map book's EA pages beside each other (at most
    # renders_at_once, shared by every book; each holds ~350 MB once started); 0 or 1: a book
    # is drawn in its request's thread. Off by default: on a shared, saturated 2-core machine
    # two workers gained 6 % (bench/README.md)
    map_book_workers: Annotated[int, Field(ge=0)] = 0
    # Background jobs (map books; see geo_service/jobs): jobs this instance runs at once
    # (each takes one of renders_at_once, and at most renders_at_once - 1 of them, so that a
    # field map or an export always finds a slot), accepted or running jobs per client and
    # in all (more: 429 and 503), how long a finished job's result is kept, how often a
    # running job reports its pages (its heartbeat), after how long without a heartbeat
    # another instance takes it over, how often idle workers look for work, and the largest
    # map book (in EAs) that GET /communes/{code}/ea-map-book.pdf still draws in the request.
    # job_workers 0: this instance accepts and answers jobs but draws none (others do)
    job_workers: Annotated[int, Field(ge=0)] = 1
    jobs_per_client: Annotated[int, Field(ge=1)] = 2
    job_queue_size: Annotated[int, Field(ge=1)] = 20
    job_result_hours: Annotated[float, Field(gt=0)] = 24.0
    job_heartbeat_s: Annotated[float, Field(gt=0)] = 1.0
    job_stale_s: Annotated[float, Field(gt=0)] = 30.0
    job_poll_s: Annotated[float, Field(gt=0)] = 5.0
    job_attempts: Annotated[int, Field(ge=1)] = 3
    map_book_sync_eas: Annotated[int, Field(ge=0)] = 60
    # the largest drawn area (in units of its collection whose boxes meet the area's box)
    # whose report POST /reports/area still makes in the request; beyond, it is a job
    # (`area-report`), waited for while the response deadline allows, then 202
    area_report_sync_units: Annotated[int, Field(ge=0)] = 300
    # the largest EA download (in EAs, any format) built in the request; beyond, a job
    # (`ea-export`): nothing is sent until the file is built, and a national file takes
    # longer than the response deadline
    ea_export_sync_eas: Annotated[int, Field(ge=0)] = 50_000
    # threads for raster work (population-weighted areas, EA estimates), apart from the
    # ones that compress tiles: a few heavy requests cannot starve the rest
    raster_workers: int = 2
    # tiles: cache backend "sqlite" (on disk, default), "redis" (shared), "directory" (files
    # that nginx serves; see `geo-service tiles nginx-conf`) or "none"
    tile_cache: Literal["sqlite", "redis", "directory", "none"] = "sqlite"
    tile_cache_path: Path | None = None  # default: <home>/tiles.sqlite or <home>/tiles/
    tile_cache_max_mb: int = 512
    redis_url: str = "redis://127.0.0.1:6379/0"
    # "strict": check the change log on every tile request (never stale);
    # "notify": rely on LISTEN/NOTIFY only (faster, stale for milliseconds after a change)
    tile_freshness: Literal["strict", "notify"] = "strict"
    tile_cache_control: str = "public, max-age=0, must-revalidate"
    # tiles rendered at once (default: half the pool; cached tiles never wait): a burst of
    # dense uncached tiles cannot take every connection; a render waits up to
    # pool_timeout_s for a slot, then 503 with Retry-After
    tile_renders_at_once: Annotated[int, Field(ge=1)] | None = None
    # a guard: a tile holding more features is refused (422 naming `z`) rather than drawn
    # in part; 0 (default): every feature is drawn, at every zoom
    max_features_per_tile: int = Field(default=0, ge=0)
    # the background job that renders every tile z0..this of every unit collection into the
    # cache, at start-up (what is missing) and after each change (what it touched); 0: off
    prerender_max_zoom: int = Field(default=12, ge=0, le=22)
    # its pause between two tiles, so requests keep priority (it also waits while they run)
    prerender_pause_ms: int = Field(default=5, ge=0)
    cors_origins: str = "*"  # comma-separated; reads only
    # The origin (scheme://host[:port]) the service's links name, e.g. https://stat.example
    public_url: str | None = None
    # Proxies (comma-separated addresses or networks) whose X-Forwarded-*/Forwarded headers
    # say who the client is and which origin it asked for; nobody else's are believed.
    trusted_proxies: str = ""
    # Host headers links may repeat when no public URL is set (others get the own address).
    allowed_hosts: str = "localhost,127.0.0.1,::1"
    # the office named on every printed map and report (exports, field maps, area reports)
    office_name: str = "National Statistics Office of Viet Nam"
    office_name_vi: str = "Cục Thống kê"
    # enumeration areas
    public_reads: bool = True
    household_size: float = 3.5  # persons per household (2019 census average)
    ea_households_min: float = 60
    ea_households_max: float = 240
    ea_tolerance_m: float = 1.0  # EAs may leave their commune / overlap by this much
    ea_snap_m: float = 2.0  # vertices this close to neighbours are snapped
    ea_min_area_m2: float = 100.0
    ea_max_area_km2: float = 1000.0
    ea_max_vertices: int = 100_000
    ea_max_split_parts: int = 20  # EAs one split may make
    ea_max_merged: int = 100  # EAs one merge may take
    ea_max_generated: int = 2_000  # draft EAs one commune's generation may make
    ea_per_supervisor_min: int = 3  # EAs a supervisor area should hold (census practice:
    ea_per_supervisor_max: int = 8  # one supervisor for a handful of enumerators)
    token_ttl_hours: float = 12.0  # a token from a password sign-in lasts a working day
    # optional base map for the viewer (none by default: the page then needs no other host)
    basemap_url: str | None = None
    basemap_attribution: str = ""
    # base maps and overlays served by the service itself, as JSON: [{"id": "vn", "path":
    # "/srv/vietnam.pmtiles", "title": "...", "attribution": "...", "overlay": false}, ...]
    basemaps: list[BaseMapSetting] = Field(default_factory=list)
    # the built-in roads and railways layer (a GeoJSON file; empty: none)
    roads_geojson: Path | None = DEMO_ROADS

    @model_validator(mode="after")
    def _listen_url_with_pgbouncer(self) -> ServiceSettings:
        if self.db_pgbouncer and not self.listen_url:
            raise ValueError(
                "GEO_SERVICE_DB_PGBOUNCER needs GEO_SERVICE_LISTEN_URL: a direct connection to "
                "the primary for LISTEN (notifications do not pass a transaction pooler)"
            )
        return self

    @field_validator("lsn_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("GEO_SERVICE_LSN_SECRET must be at least 16 characters")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: str) -> str:
        for part in (p.strip() for p in value.split(",")):
            if part:
                ipaddress.ip_network(part, strict=False)  # (ValueError: named by pydantic)
        return value

    def keep_home_private(self) -> None:
        """`keep_home_private` for this home: passed through when the directory tile cache or
        the embedded cluster's folder (owned by postgres when run as root) is inside it."""
        tree = self.tile_cache_path or self.home / "tiles"
        inside = self.tile_cache == "directory" and tree.resolve().is_relative_to(
            self.home.resolve()
        )
        keep_home_private(self.home, inside or (self.home / "postgres").is_dir())

    @property
    def job_slots(self) -> int:
        """Jobs this instance runs at once: never every render slot, when there are two."""
        if self.job_workers == 0:
            return 0
        return max(1, min(self.job_workers, self.renders_at_once - 1))

    @property
    def download_slots(self) -> int:
        """Downloads that may read from the database at once."""
        return self.downloads_at_once or max(1, self.pool_max_size // 2)

    @property
    def tile_render_slots(self) -> int:
        """Tiles that may be rendered at once."""
        return self.tile_renders_at_once or max(1, self.pool_max_size // 2)

    @property
    def aggregate_slots(self) -> int:
        """Drawn areas that may be computed at once."""
        return self.aggregates_at_once or 2 * self.raster_workers

    @property
    def replica_url_list(self) -> list[str]:
        """The configured replicas' URLs."""
        return [u.strip() for u in self.replica_urls.split(",") if u.strip()]

    @property
    def cors_origin_list(self) -> list[str]:
        """The origins allowed to read across origins ("*": any)."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
