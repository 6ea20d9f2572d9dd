"""Write enumeration areas: one transaction per change, locked per commune, with history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
import shapely
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from shapely.geometry.base import BaseGeometry

from geo_service.auth import Forbidden, User
from geo_service.ea.rules import EaRules, Findings, check, snap
from geo_service.errors import (
    Conflict,
    InvalidParameter,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    Unprocessable,
)
from geo_service.indicators.zonal import sum_over

# Full precision (15 decimals): an EA read and sent back unchanged is exactly what is stored;
# rounded coordinates can make a valid sliver or a snapped vertex invalid.
COLUMNS = ("id, census_round, code, commune_vintage, commune_code, status, population,"
           " households, version, updated_by, updated_at, ST_AsGeoJSON(geom, 15) AS geometry")
# The Feature `as_feature` makes of a row, built by PostgreSQL, so lists stream unparsed.
FEATURE_JSON = """json_build_object(
    'type', 'Feature', 'id', id, 'geometry', ST_AsGeoJSON(geom, 15)::json,
    'properties', json_build_object(
        'census_round', census_round, 'code', code, 'commune_vintage', commune_vintage,
        'commune_code', commune_code, 'status', status, 'population', population,
        'households', households, 'version', version, 'updated_by', updated_by,
        'updated_at', to_char(updated_at AT TIME ZONE 'UTC',
                              'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))::text"""
TRANSITIONS = {"submit": ({"draft", "rejected"}, "submitted", "editor"),
               "approve": ({"submitted"}, "approved", "supervisor"),
               "reject": ({"submitted"}, "rejected", "supervisor")}


@dataclass(frozen=True)
class ListFilter:
    """Which EAs a list asks for (None: any)."""

    commune: str | None = None
    status: str | None = None
    census_round: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # lon/lat

    def where(self) -> tuple[sql.Composable, dict[str, Any]]:
        """The WHERE condition and its parameters (only the filters given, so the
        planner sees each one and can use its index)."""
        conditions: list[sql.Composable] = []
        params: dict[str, Any] = {}
        for column, value in (("commune_code", self.commune), ("status", self.status),
                              ("census_round", self.census_round)):
            if value is not None:
                conditions.append(sql.SQL("{} = {}").format(sql.Identifier(column),
                                                            sql.Placeholder(column)))
                params[column] = value
        if self.bbox is not None:
            conditions.append(sql.SQL(
                "geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)"))
            params.update(zip(("x0", "y0", "x1", "y1"), self.bbox, strict=True))
        return sql.SQL(" AND ").join(conditions or [sql.SQL("true")]), params


def list_sql(filters: ListFilter, limit: int, offset: int
             ) -> tuple[sql.Composed, sql.Composed, dict[str, Any]]:
    """(count query, page query whose rows are Features as JSON text, parameters)."""
    where, params = filters.where()
    count = sql.SQL("SELECT count(*) FROM enumeration_area WHERE {}").format(where)
    # The page's ids first, then JSON for them only: with OFFSET, PostgreSQL would otherwise
    # build (and throw away) the JSON of every skipped row.
    page = sql.SQL("WITH page AS MATERIALIZED (SELECT id FROM enumeration_area WHERE {}"
                   " ORDER BY census_round, code LIMIT %(limit)s OFFSET %(offset)s)"
                   " SELECT {} FROM page JOIN enumeration_area USING (id)"
                   " ORDER BY census_round, code").format(where, sql.SQL(FEATURE_JSON))
    return count, page, {**params, "limit": limit, "offset": offset}


def etag(row: dict[str, Any]) -> str:
    """Strong ETag of one version of an EA."""
    return f'"ea-{row["id"]}-v{row["version"]}"'


def as_feature(row: dict[str, Any]) -> dict[str, Any]:
    """An EA row as a GeoJSON Feature."""
    props = {k: v for k, v in row.items() if k not in ("geometry", "id")}
    if props.get("updated_at") is not None:
        props["updated_at"] = props["updated_at"].astimezone(UTC).isoformat(
            timespec="microseconds")
    return {"type": "Feature", "id": row["id"], "geometry": json.loads(row["geometry"]),
            "properties": props}


async def fetch(conn: psycopg.AsyncConnection, ea_id: int, lock: bool = False
                ) -> dict[str, Any]:
    """One EA (locked for update when asked); NotFound otherwise."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM enumeration_area WHERE id = %s"
                          + (" FOR UPDATE" if lock else ""), (ea_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no enumeration area {ea_id}", parameter="featureId")
    return row


@dataclass(frozen=True)
class Commune:
    """The commune an EA belongs to."""

    vintage: str
    code: str
    province: str | None


async def commune_of(conn: psycopg.AsyncConnection, code: str, vintage: str | None,
                     parameter: str = "commune_code",
                     vintage_parameter: str = "commune_vintage") -> Commune:
    """The commune (latest vintage unless given); 422 naming what is unknown."""
    cur = await conn.execute(
        "SELECT vintage, code, parent_code FROM admin_unit WHERE level = 'commune'"
        " AND code = %s AND (%s::text IS NULL OR vintage = %s) ORDER BY vintage DESC LIMIT 1",
        (code, vintage, vintage))
    row = await cur.fetchone()
    if row is None and vintage is not None:
        cur = await conn.execute("SELECT 1 FROM admin_unit WHERE level = 'commune' AND"
                                 " code = %s", (code,))
        if await cur.fetchone() is not None:
            raise Unprocessable(f"commune {code!r} has no vintage {vintage!r}",
                                parameter=vintage_parameter)
    if row is None:
        raise Unprocessable(f"unknown commune {code!r}", parameter=parameter)
    return Commune(row[0], row[1], row[2])


def authorise(user: User, commune: Commune, needs: str = "editor") -> None:
    """403 unless the user's role and scope allow editing in this commune."""
    ranks = {"viewer": 0, "editor": 1, "supervisor": 2, "admin": 3}
    if ranks[user.role] < ranks[needs]:
        raise Forbidden(f"this needs the {needs} role; {user.name} is a {user.role}")
    if not user.covers(commune.code, commune.province):
        raise Forbidden(f"commune {commune.code} is outside {user.name}'s scope")


def check_version(row: dict[str, Any], if_match: str | None) -> None:
    """428 without If-Match, 412 when it is not the current version."""
    if not if_match:
        raise PreconditionRequired("send If-Match with the ETag you read", parameter="If-Match")
    if etag(row) not in [t.strip() for t in if_match.split(",")] and if_match.strip() != "*":
        raise PreconditionFailed(f"EA {row['id']} has changed (now {etag(row)}); "
                                 "read it again", parameter="If-Match", current=etag(row))


async def lock_commune(conn: psycopg.AsyncConnection, census_round: str, commune: str) -> None:
    """Serialise writes within one commune and round (overlap checks need a stable view)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                       (f"ea:{census_round}:{commune}",))


async def estimate(raster: Path, geom: BaseGeometry, household_size: float
                   ) -> tuple[float | None, float | None]:
    """Population (raster sum, fractional coverage) and households of a geometry."""
    if not raster.exists():
        return None, None
    population = await asyncio.to_thread(sum_over, raster, geom) or 0.0
    return population, population / household_size


async def validated(conn: psycopg.AsyncConnection, geom: BaseGeometry, context: dict[str, Any],
                    rules: EaRules) -> tuple[BaseGeometry, Findings]:
    """Snap, then check; 422 with every problem when a rule is broken.

    An EA sent back as it is stored is not snapped (a save without changes changes
    nothing), and snapping that breaks more rules than the shape as drawn is not applied.
    """
    if await _is_stored_as(conn, context["self"], geom):
        return geom, await _checked(conn, geom, context, rules)
    snapped = await snap(conn, geom, context, rules)
    findings = await check(conn, snapped, context, rules)
    if findings.problems and not snapped.equals_exact(geom, 0):
        as_drawn = await check(conn, geom, context, rules)
        if len(as_drawn.problems) < len(findings.problems):
            snapped, findings = geom, as_drawn
    if findings.problems:
        raise Unprocessable(f"{len(findings.problems)} rule(s) broken; nothing was saved",
                            parameter="geometry", problems=findings.problems)
    return snapped, findings


async def _checked(conn: psycopg.AsyncConnection, geom: BaseGeometry, context: dict[str, Any],
                   rules: EaRules) -> Findings:
    findings = await check(conn, geom, context, rules)
    if findings.problems:
        raise Unprocessable(f"{len(findings.problems)} rule(s) broken; nothing was saved",
                            parameter="geometry", problems=findings.problems)
    return findings


async def checked_parts(conn: psycopg.AsyncConnection, parts: list[BaseGeometry],
                        context: dict[str, Any], rules: EaRules) -> Findings:
    """Every rule broken by any of the parts (of a split), each problem naming its part."""
    findings = Findings()
    for number, part in enumerate(parts, 1):
        found = await check(conn, part, context, rules)
        findings.problems += [{**p, "part": number} for p in found.problems]
    if findings.problems:
        raise Unprocessable(f"{len(findings.problems)} rule(s) broken by the parts; nothing "
                            "was saved", parameter="line", problems=findings.problems)
    return findings


async def _is_stored_as(conn: psycopg.AsyncConnection, ea_id: int, geom: BaseGeometry) -> bool:
    if ea_id < 0:
        return False
    cur = await conn.execute("SELECT ST_AsBinary(geom) FROM enumeration_area WHERE id = %s",
                             (ea_id,))
    row = await cur.fetchone()
    return row is not None and bool(shapely.equals_exact(shapely.from_wkb(row[0]), geom, 1e-12))


async def next_code(conn: psycopg.AsyncConnection, census_round: str, commune: str) -> str:
    """The commune's next free serial: 00004-001, 00004-002, …"""
    cur = await conn.execute(
        "SELECT coalesce(max(split_part(code, '-', 2)::int), 0) + 1 FROM enumeration_area"
        " WHERE census_round = %s AND commune_code = %s AND code ~ '^[0-9]+-[0-9]+$'",
        (census_round, commune))
    row = await cur.fetchone()
    return f"{commune}-{int(row[0]) if row else 1:03d}"


async def write_history(conn: psycopg.AsyncConnection, ea_id: int, action: str,
                        before: dict[str, Any] | None, after: dict[str, Any] | None,
                        user: User, reason: str | None) -> None:
    """Append the full before/after state."""
    await conn.execute(
        "INSERT INTO ea_history (ea_id, action, before, after, user_name, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (ea_id, action, Jsonb(as_feature(before)) if before else None,
         Jsonb(as_feature(after)) if after else None, user.name, reason))


@asynccontextmanager
async def _unique_code(code: str | None) -> AsyncIterator[None]:
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"EA code {code!r} is already used in this round", parameter="code",
                       ) from exc


async def insert(conn: psycopg.AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Insert one EA row and return it; 409 when its code is taken."""
    async with conn.cursor(row_factory=dict_row) as cur, _unique_code(values["code"]):
        await cur.execute(
            "INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code,"
            " status, population, households, geom, updated_by) VALUES (%(round)s, %(code)s,"
            " %(vintage)s, %(commune)s, 'draft', %(population)s, %(households)s,"
            " ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326)), %(user)s)"
            f" RETURNING {COLUMNS}", values)
        row = await cur.fetchone()
    assert row is not None
    return row


async def update_geometry(conn: psycopg.AsyncConnection, ea_id: int, values: dict[str, Any]
                          ) -> dict[str, Any]:
    """Replace an EA's geometry (and estimates), bumping its version; 409 for a taken code."""
    async with conn.cursor(row_factory=dict_row) as cur, _unique_code(values.get("code")):
        await cur.execute(
            "UPDATE enumeration_area SET geom = ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326)),"
            " population = %(population)s, households = %(households)s, status = 'draft',"
            " code = coalesce(%(code)s, code), version = version + 1, updated_by = %(user)s,"
            f" updated_at = now() WHERE id = %(id)s RETURNING {COLUMNS}", {**values, "id": ea_id})
        row = await cur.fetchone()
    assert row is not None
    return row


async def set_status(conn: psycopg.AsyncConnection, ea_id: int, status: str, user: User
                     ) -> dict[str, Any]:
    """Move an EA along the workflow, bumping its version."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE enumeration_area SET status = %s, version = version + 1, updated_by = %s,"
            f" updated_at = now() WHERE id = %s RETURNING {COLUMNS}", (status, user.name, ea_id))
        row = await cur.fetchone()
    assert row is not None
    return row


def code_for(commune: str, code: str | None) -> str | None:
    """Check a client-given EA code: commune code + '-' + serial."""
    if code is None:
        return None
    head, _, serial = code.partition("-")
    if head != commune or not serial.isdigit() or len(serial) > 6:
        raise InvalidParameter(f"code {code!r} must be the commune code, '-' and a serial "
                               f"(e.g. {commune}-001)", parameter="code")
    return code


def to_wkb(geom: BaseGeometry) -> bytes:
    """WKB of a geometry (for parameters)."""
    return bytes(shapely.to_wkb(geom))


async def split_parts(conn: psycopg.AsyncConnection, ea_id: int, line: BaseGeometry
                      ) -> list[BaseGeometry]:
    """The EA cut by the line (lon/lat), largest part first."""
    cur = await conn.execute(
        "SELECT ST_AsBinary(d.geom) FROM enumeration_area e, LATERAL ST_Dump(ST_Split("
        " e.geom, ST_GeomFromWKB(%s, 4326))) d WHERE e.id = %s"
        " ORDER BY ST_Area(d.geom) DESC", (shapely.to_wkb(line), ea_id))
    parts: list[BaseGeometry] = list(shapely.from_wkb([row[0] for row in await cur.fetchall()]))
    return parts


async def merged_geometry(conn: psycopg.AsyncConnection, ids: list[int]) -> BaseGeometry:
    """The union of the EAs; 422 unless they form one contiguous area."""
    cur = await conn.execute("SELECT ST_AsBinary(ST_UnaryUnion(ST_Collect(geom)))"
                             " FROM enumeration_area WHERE id = ANY(%s)", (ids,))
    row = await cur.fetchone()
    union = shapely.from_wkb(row[0]) if row and row[0] else None
    if union is None or union.geom_type != "Polygon":
        raise Unprocessable("the EAs do not form one contiguous area", parameter="ids")
    return union
