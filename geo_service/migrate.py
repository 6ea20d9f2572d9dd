"""Apply the ordered SQL files in `geo_service/migrations/`, each once, recorded in a table;
then write the zoom bands of `geo_core.zoom` into the database and rebuild the loaded units'
bands that a change of bands left missing."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import psycopg

from boundaries.rebuild import rebuild_missing_bands
from boundaries.sql import delete_band_everywhere, index_bands, refresh_tile_geometry
from geo_core.errors import GeoServiceError
from geo_core.zoom import ZOOM_BANDS
from indicators import protect

# Any constant works; it only has to be the same for every process migrating this database.
_MIGRATION_LOCK = 72_019_2025


@dataclass(frozen=True)
class Migration:
    """One SQL file: its version (the numeric prefix), name and text."""

    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration shipped with the package, in order."""
    folder = resources.files("geo_service.migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append(Migration(version, entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations, all in one transaction; return the names applied."""
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migration")}
        for migration in available_migrations():
            if migration.version in done:
                continue
            _apply(conn, migration)
            conn.execute(
                "INSERT INTO schema_migration (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied_now.append(migration.name)
        _write_zoom_bands(conn)
        rebuild_missing_bands(conn)
        # (a migration may leave indicators withheld until they are protected again)
        protect.refresh(conn)
    return applied_now


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    """Run one migration; one that refuses the data it finds says why, in its own words."""
    try:
        conn.execute(migration.sql.encode())
    except psycopg.errors.RaiseException as exc:
        # (a check the migration makes on purpose, e.g. names it will not choose between)
        hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
        raise GeoServiceError(
            f"migration {migration.name} refused, nothing was changed: "
            f"{exc.diag.message_primary}{hint}"
        ) from exc


def _write_zoom_bands(conn: psycopg.Connection) -> None:
    """Make the zoom_band table (read by triggers and views) say what geo_core.zoom says.

    A simplified band whose tolerance changed loses its geometries (rebuilt next); a band
    no longer defined goes with its geometries. The finest band (the clean coverage, which
    cannot be made again from anything stored) is renumbered only by a migration."""
    rows = conn.execute("SELECT band, tolerance, min_zoom, max_zoom FROM zoom_band").fetchall()
    stored = {int(band): float(tolerance) for band, tolerance, _, _ in rows}
    zooms = {int(band): (int(low), int(high)) for band, _, low, high in rows}
    defined = {b.band for b in ZOOM_BANDS}
    for band in sorted(set(stored) - defined):
        delete_band_everywhere(conn, band)
        conn.execute("DELETE FROM zoom_band WHERE band = %s", (band,))
    refresh = []
    for b in ZOOM_BANDS:
        if b.tolerance > 0 and b.band in stored and stored[b.band] != b.tolerance:
            delete_band_everywhere(conn, b.band)
        elif b.band in zooms and zooms[b.band] != (b.min_zoom, b.max_zoom):
            refresh.append(b.band)  # (same geometry, drawn at other zooms: snapped anew)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO zoom_band (band, min_zoom, max_zoom, tolerance) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (band) DO UPDATE SET min_zoom = EXCLUDED.min_zoom,"
            " max_zoom = EXCLUDED.max_zoom, tolerance = EXCLUDED.tolerance"
            " WHERE (zoom_band.min_zoom, zoom_band.max_zoom, zoom_band.tolerance)"
            " IS DISTINCT FROM (EXCLUDED.min_zoom, EXCLUDED.max_zoom, EXCLUDED.tolerance)",
            [(b.band, b.min_zoom, b.max_zoom, b.tolerance) for b in ZOOM_BANDS],
        )
    for band in refresh:
        refresh_tile_geometry(conn, band)
    index_bands(conn, [b.band for b in ZOOM_BANDS])


def current_version(conn: psycopg.Connection) -> int | None:
    """The highest applied migration, or None on an empty database."""
    exists = conn.execute("SELECT to_regclass('schema_migration') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("SELECT max(version) FROM schema_migration").fetchone()
    return row[0] if row else None
