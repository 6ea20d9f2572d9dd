"""Reading and changing enumeration areas: each change is one transaction, locked per
commune and round, checked against the rules, authorised by role and scope, and recorded
with its full before and after."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from geo_core.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    Unprocessable,
)
from geo_service.ea import sql
from geo_service.ea.coverage import coverage_report
from geo_service.ea.generate import generate_one
from geo_service.ea.rules import EaRules, Findings, check, snap, workload_warning
from geo_service.messages import said
from geo_service.settings import ServiceSettings
from geo_service.users import User
from indicators.zonal import sum_over

Row = dict[str, Any]
TRANSITIONS = {
    "submit": ({"draft", "rejected"}, "submitted", "editor"),
    "approve": ({"submitted"}, "approved", "supervisor"),
    "reject": ({"submitted"}, "rejected", "supervisor"),
}
_RANKS = {"viewer": 0, "editor": 1, "supervisor": 2, "admin": 3}


@dataclass(frozen=True)
class Commune:
    """The commune an EA belongs to."""

    vintage: str
    code: str
    province: str | None


@dataclass(frozen=True)
class Estimator:
    """Where population and households of a shape come from."""

    raster: Path
    household_size: float
    work: Executor | None = None  # the threads of raster work (None: the default ones)

    async def values(self, geom: BaseGeometry) -> dict[str, Any]:
        """WKB, population (raster sum, fractional coverage) and households of a shape."""
        population = households = None
        if self.raster.exists():
            loop = asyncio.get_running_loop()
            population = await loop.run_in_executor(self.work, sum_over, self.raster, geom) or 0.0
            households = population / self.household_size
        return {
            "wkb": bytes(shapely.to_wkb(geom)),
            "population": population,
            "households": households,
        }


def etag(row: Row) -> str:
    """Strong ETag of one version of an EA."""
    return f'"ea-{row["id"]}-v{row["version"]}"'


def as_feature(row: Row) -> dict[str, Any]:
    """An EA row as a GeoJSON Feature."""
    props = {k: v for k, v in row.items() if k not in ("geometry", "id")}
    for name in ("updated_at", "listed_at"):
        if props.get(name) is not None:
            props[name] = props[name].astimezone(UTC).isoformat(timespec="microseconds")
    return {
        "type": "Feature",
        "id": row["id"],
        "geometry": json.loads(row["geometry"]),
        "properties": props,
    }


async def fetch(conn: psycopg.AsyncConnection, ea_id: int, lock: bool = False) -> Row:
    """One EA (locked for update when asked); NotFound otherwise."""
    row = await sql.fetch(conn, ea_id, lock)
    if row is None:
        raise NotFound(said("no_ea", ea=ea_id), parameter="featureId")
    return row


async def commune_of(
    conn: psycopg.AsyncConnection,
    code: str,
    vintage: str | None,
    parameter: str = "commune_code",
    vintage_parameter: str = "commune_vintage",
) -> Commune:
    """The commune (latest vintage unless given); 422 naming what is unknown."""
    row = await sql.commune_row(conn, code, vintage)
    if row is None and vintage is not None and await sql.commune_exists(conn, code):
        raise Unprocessable(
            f"commune {code!r} has no vintage {vintage!r}", parameter=vintage_parameter
        )
    if row is None:
        raise Unprocessable(f"unknown commune {code!r}", parameter=parameter)
    return Commune(*row)


def authorise(user: User, commune: Commune, needs: str = "editor") -> None:
    """403 unless the user's role and scope allow this in the commune."""
    if _RANKS[user.role] < _RANKS[needs]:
        raise Forbidden(said("role_needed", role=needs, user=user.name, has=user.role))
    if not user.covers(commune.code, commune.province):
        raise Forbidden(said("out_of_scope", commune=commune.code, user=user.name))


def check_version(row: Row, if_match: str | None) -> None:
    """428 without If-Match, 412 when it is not the current version."""
    if not if_match:
        raise PreconditionRequired(said("if_match_needed"), parameter="If-Match")
    if etag(row) not in [t.strip() for t in if_match.split(",")] and if_match.strip() != "*":
        raise PreconditionFailed(
            said("ea_changed", code=row["code"]),
            parameter="If-Match",
            current=etag(row),
            ea=row["code"],
        )


def code_for(commune: str, code: str | None) -> str | None:
    """Check a client-given EA code: commune code + '-' + serial."""
    if code is None:
        return None
    head, _, serial = code.partition("-")
    if head != commune or not serial.isdigit() or len(serial) > 6:
        raise InvalidParameter(
            f"code {code!r} must be the commune code, '-' and a serial (e.g. {commune}-001)",
            parameter="code",
        )
    return code


async def next_code(conn: psycopg.AsyncConnection, census_round: str, commune: str) -> str:
    """The commune's next free code: 00004-001, 00004-002, …"""
    return f"{commune}-{await sql.next_serial(conn, census_round, commune):03d}"


async def write_history(
    conn: psycopg.AsyncConnection,
    ea_id: int,
    action: str,
    before: Row | None,
    after: Row | None,
    user: User,
    reason: str | None,
    merged_into: int | None = None,
) -> None:
    """Append the full before/after state."""
    await sql.write_history(
        conn,
        ea_id,
        action,
        as_feature(before) if before else None,
        as_feature(after) if after else None,
        user.name,
        reason,
        merged_into,
    )


def _broken(findings: Findings, parameter: str = "geometry", parts: bool = False) -> None:
    if findings.problems:
        raise Unprocessable(
            said(
                "rules_broken",
                count=len(findings.problems),
                what=said("by_parts") if parts else "",
            ),
            parameter=parameter,
            problems=findings.problems,
        )


async def validated(
    conn: psycopg.AsyncConnection, geom: BaseGeometry, context: dict[str, Any], rules: EaRules
) -> tuple[BaseGeometry, Findings]:
    """Snap, then check; 422 with every problem when a rule is broken.

    An EA sent back as it is stored is not snapped (a save without changes changes
    nothing), and snapping that breaks more rules than the shape as drawn is not applied.
    """
    if await _is_stored_as(conn, context["self"], geom):
        findings = await check(conn, geom, context, rules)
        _broken(findings)
        return geom, findings
    snapped = await snap(conn, geom, context, rules)
    findings = await check(conn, snapped, context, rules)
    if findings.problems and not snapped.equals_exact(geom, 0):
        as_drawn = await check(conn, geom, context, rules)
        if len(as_drawn.problems) < len(findings.problems):
            snapped, findings = geom, as_drawn
    _broken(findings)
    return snapped, findings


async def _is_stored_as(conn: psycopg.AsyncConnection, ea_id: int, geom: BaseGeometry) -> bool:
    if ea_id < 0:
        return False
    stored = await sql.stored_wkb(conn, ea_id)
    return stored is not None and bool(shapely.equals_exact(shapely.from_wkb(stored), geom, 1e-12))


@asynccontextmanager
async def _unique_code(code: str | None) -> AsyncIterator[None]:
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(
            f"EA code {code!r} is already used in this round",
            parameter="code",
        ) from exc


async def _locked(
    conn: psycopg.AsyncConnection,
    ea_id: int,
    user: User,
    if_match: str | None,
    needs: str = "editor",
    change: bool = False,
) -> tuple[Row, Commune]:
    """The EA locked for a write by `user`; with `change`, its geometry or existence is
    changed, which an approved EA allows only to a supervisor (it goes back to draft)."""
    row = await fetch(conn, ea_id)
    commune = await commune_of(conn, row["commune_code"], row["commune_vintage"])
    authorise(user, commune, needs)
    await sql.lock_commune(conn, row["census_round"], commune.code)
    row = await fetch(conn, ea_id, lock=True)
    check_version(row, if_match)
    if change and row["status"] == "approved" and _RANKS[user.role] < _RANKS["supervisor"]:
        raise Forbidden(said("approved_needs_supervisor", code=row["code"]))
    return row, commune


@dataclass(frozen=True)
class Drawn:
    """A shape as an editor drew it, in lon/lat."""

    geometry: BaseGeometry
    note: str | None = None  # how it was repaired, if it was


# Reads the shape sent; called once the commune, scope and version checks have passed, so
# those are answered first.
Drawing = Callable[[], Drawn]


class EaService:
    """The EA operations, with the rules and estimates of one service instance."""

    def __init__(self, rules: EaRules, estimator: Estimator) -> None:
        self.rules, self.estimator = rules, estimator

    @classmethod
    def from_settings(cls, settings: ServiceSettings, work: Executor | None = None) -> EaService:
        """The rules and the population raster the settings name."""
        rules = EaRules(
            settings.ea_tolerance_m,
            settings.ea_snap_m,
            settings.ea_min_area_m2,
            settings.ea_max_area_km2,
            settings.ea_households_min,
            settings.ea_households_max,
            settings.household_size,
            settings.ea_max_vertices,
            settings.ea_max_split_parts,
            settings.ea_max_merged,
            settings.ea_max_generated,
        )
        return cls(rules, Estimator(settings.population_raster, settings.household_size, work))

    async def _prepared(
        self,
        conn: psycopg.AsyncConnection,
        drawing: Drawing,
        ea_id: int,
        census_round: str,
        commune: Commune,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read, snap and check the shape, estimate its workload: the values to write and
        the warnings."""
        drawn = drawing()
        context = {
            "round": census_round,
            "commune": commune.code,
            "vintage": commune.vintage,
            "self": ea_id,
        }
        geom, findings = await validated(conn, drawn.geometry, context, self.rules)
        values = await self.estimator.values(geom)
        warnings = findings.warnings + ([{"warning": drawn.note}] if drawn.note else [])
        return values, warnings

    def _workload(self, rows: list[Row]) -> list[dict[str, Any]]:
        """Warnings for the rows whose estimated households leave the band."""
        return [
            w
            for row in rows
            if (w := workload_warning(row["households"], self.rules, row["code"])) is not None
        ]

    async def create(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        census_round: str,
        commune_code: str,
        vintage: str | None,
        code: str | None,
        drawing: Drawing,
        reason: str | None,
    ) -> tuple[Row, list[dict[str, Any]]]:
        """A new draft EA in a commune of the user's scope."""
        commune = await commune_of(conn, commune_code, vintage)
        authorise(user, commune)
        code = code_for(commune.code, code)
        async with conn.transaction():
            await sql.lock_commune(conn, census_round, commune.code)
            values, warnings = await self._prepared(conn, drawing, -1, census_round, commune)
            code = code or await next_code(conn, census_round, commune.code)
            async with _unique_code(code):
                row = await sql.insert(
                    conn,
                    {
                        **values,
                        "round": census_round,
                        "code": code,
                        "vintage": commune.vintage,
                        "commune": commune.code,
                        "user": user.name,
                    },
                )
            await write_history(conn, row["id"], "create", None, row, user, reason)
        return row, warnings + self._workload([row])

    async def replace(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        ea_id: int,
        if_match: str | None,
        keeps: dict[str, Any],
        code: str | None,
        drawing: Drawing,
        reason: str | None,
        attributes: dict[str, Any] | None = None,
    ) -> tuple[Row, list[dict[str, Any]]]:
        """New geometry (and optionally code and attributes); `keeps` must match what the
        EA has."""
        async with conn.transaction():
            before, commune = await _locked(conn, ea_id, user, if_match, change=True)
            for name, value in keeps.items():
                if value not in (None, before[name]):
                    raise InvalidParameter(
                        f"an EA keeps its {name} ({before[name]}); draw a new EA for another",
                        parameter=name,
                    )
            code = code_for(commune.code, code)
            values, warnings = await self._prepared(
                conn, drawing, ea_id, before["census_round"], commune
            )
            async with _unique_code(code):
                row = await sql.update_geometry(
                    conn, ea_id, {**values, "code": code, "user": user.name}
                )
            if attributes:
                row = await sql.set_attributes(conn, ea_id, attributes, user.name, bump=False)
            _no_gap(await _new_gaps(conn, commune, before["census_round"], [before], self.rules))
            await write_history(conn, ea_id, "update", before, row, user, reason)
        return row, warnings + self._workload([row])

    async def delete(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        ea_id: int,
        if_match: str | None,
        reason: str | None,
        give_gap_to: str | None = None,
    ) -> list[dict[str, Any]]:
        """Delete an EA; its history stays. A delete that opens a gap in the commune (its
        area was covered, not undrawn around it) is refused with the gap unless the gap is
        given to a neighbouring EA (`give_gap_to`, a code; its ETag in If-Match too); the
        last EA of a commune goes without (the commune is then undrawn, not gapped). The
        notices of what was given."""
        async with conn.transaction():
            before, commune = await _locked(conn, ea_id, user, if_match, change=True)
            await sql.delete(conn, ea_id)
            await write_history(conn, ea_id, "delete", before, None, user, reason)
            if not await sql.has_eas(conn, before["census_round"], commune.code):
                return []
            return await self._gaps_given(
                conn, user, commune, before, if_match, give_gap_to, reason, deleted=True
            )

    async def split(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        ea_id: int,
        if_match: str | None,
        line: BaseGeometry,
        reason: str | None,
    ) -> tuple[Row, list[Row], list[dict[str, Any]]]:
        """The EA keeps the largest part; every other part becomes a new draft EA."""
        async with conn.transaction():
            before, commune = await _locked(conn, ea_id, user, if_match, change=True)
            parts = [
                shapely.from_wkb(wkb)
                for wkb in await sql.split_wkb(conn, ea_id, bytes(shapely.to_wkb(line)))
            ]
            if len(parts) < 2:
                raise Unprocessable(
                    said("line_does_not_cut", code=before["code"]), parameter="line"
                )
            if len(parts) > self.rules.max_split_parts:
                raise InvalidParameter(
                    f"the line cuts the EA into {len(parts)} parts; one split makes at most "
                    f"{self.rules.max_split_parts} EAs",
                    parameter="line",
                    limit=self.rules.max_split_parts,
                )
            context = {
                "round": before["census_round"],
                "commune": commune.code,
                "vintage": commune.vintage,
                "self": ea_id,
            }
            await self._checked_parts(conn, parts, context)
            estimates = [await self.estimator.values(part) for part in parts]
            kept = await sql.update_geometry(
                conn, ea_id, {**estimates[0], "code": None, "user": user.name}
            )
            await write_history(conn, ea_id, "split", before, kept, user, reason)
            created = []
            for values in estimates[1:]:
                code = await next_code(conn, before["census_round"], commune.code)
                async with _unique_code(code):
                    row = await sql.insert(
                        conn,
                        {
                            **values,
                            "round": before["census_round"],
                            "code": code,
                            "vintage": commune.vintage,
                            "commune": commune.code,
                            "user": user.name,
                        },
                    )
                await write_history(conn, row["id"], "split", before, row, user, reason)
                created.append(row)
        return kept, created, self._workload([kept, *created])

    async def _checked_parts(
        self, conn: psycopg.AsyncConnection, parts: list[BaseGeometry], context: dict[str, Any]
    ) -> None:
        """Every rule broken by any of the parts (of a split), each problem naming its part."""
        findings = Findings()
        for number, part in enumerate(parts, 1):
            found = await check(conn, part, context, self.rules)
            findings.problems += [{**p, "part": number} for p in found.problems]
        _broken(findings, "line", parts=True)

    async def merge(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        ids: list[int],
        if_match: str | None,
        reason: str | None,
    ) -> Row:
        """The EA with the lowest id takes the union of all; the others are deleted."""
        if len(ids) > self.rules.max_merged:
            raise InvalidParameter(
                f"one merge takes at most {self.rules.max_merged} EAs, not {len(ids)}",
                parameter="ids",
                limit=self.rules.max_merged,
            )
        ids = sorted(ids)
        # One commune and round, checked before any lock: locks are then taken in one order
        # (the commune's, then the rows' by id), so concurrent merges cannot deadlock.
        fetched = [await fetch(conn, ea_id) for ea_id in ids]
        keys = {(r["census_round"], r["commune_code"]) for r in fetched}
        if len(keys) != 1:
            codes = ", ".join(sorted(r["code"] for r in fetched))
            raise Unprocessable(said("mixed_communes", codes=codes), parameter="ids")
        async with conn.transaction():
            rows = [(await _locked(conn, ea_id, user, if_match, change=True))[0] for ea_id in ids]
            wkb = await sql.union_wkb(conn, ids)
            union = shapely.from_wkb(wkb) if wkb else None
            if union is None or union.geom_type != "Polygon":
                codes = ", ".join(r["code"] for r in rows)
                raise Unprocessable(said("not_contiguous", codes=codes), parameter="ids")
            first = rows[0]
            merged = await sql.update_geometry(
                conn,
                first["id"],
                {**await self.estimator.values(union), "code": None, "user": user.name},
            )
            await write_history(conn, first["id"], "merge", first, merged, user, reason)
            for other in rows[1:]:
                await sql.delete(conn, other["id"])
                await write_history(
                    conn, other["id"], "merge", other, None, user, reason, merged_into=first["id"]
                )
        return merged

    async def transition(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        ea_id: int,
        action: str,
        if_match: str | None,
        reason: str | None,
    ) -> Row:
        """Workflow: editors submit drafts; supervisors in scope approve or reject them."""
        allowed_from, target, needs = TRANSITIONS[action]
        if action == "reject" and not (reason or "").strip():
            raise InvalidParameter(said("reject_needs_reason"), parameter="reason")
        async with conn.transaction():
            before, _ = await _locked(conn, ea_id, user, if_match, needs)
            if (
                action in ("approve", "reject")
                and user.role != "admin"
                and user.name in await _authors(conn, ea_id, before)
            ):
                # four eyes: who drew or submitted an EA does not approve it
                raise Forbidden(
                    said("four_eyes", code=before["code"], user=user.name), parameter="action"
                )
            if before["status"] not in allowed_from:
                raise InvalidParameter(
                    said(
                        "cannot_transition",
                        code=before["code"],
                        status=before["status"],
                        action=action,
                    ),
                    parameter="action",
                    current_status=before["status"],
                )
            after = await sql.set_status(conn, ea_id, target, user.name)
            await write_history(conn, ea_id, action, before, after, user, reason)
        return after

    async def reshape(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        edits: list[tuple[int, Drawing]],
        if_match: str | None,
        reason: str | None,
        give_gap_to: str | None = None,
    ) -> tuple[list[Row], list[dict[str, Any]]]:
        """New geometries for several EAs of one commune at once (a shared edge moved for
        all of them), in one transaction: each checked against its own ETag in If-Match,
        all against the rules as they will be together, and no new gap in the commune
        unless it is given to a neighbouring EA (`give_gap_to`, a code)."""
        ids = sorted(ea_id for ea_id, _ in edits)
        drawings = dict(edits)
        fetched = [await fetch(conn, ea_id) for ea_id in ids]
        keys = {(r["census_round"], r["commune_code"], r["commune_vintage"]) for r in fetched}
        if len(keys) != 1:
            codes = ", ".join(sorted(r["code"] for r in fetched))
            raise Unprocessable(said("mixed_communes", codes=codes), parameter="features")
        census_round, commune_code, vintage = keys.pop()
        commune = await commune_of(conn, commune_code, vintage)
        authorise(user, commune)
        async with conn.transaction():
            await sql.lock_commune(conn, census_round, commune.code)
            before = {ea_id: await fetch(conn, ea_id, lock=True) for ea_id in ids}
            receiver = None
            if give_gap_to is not None:
                receiver = await _receiver(conn, census_round, commune, give_gap_to)
            _check_versions([*before.values(), *([receiver] if receiver else [])], if_match, user)
            context = {
                "round": census_round,
                "commune": commune.code,
                "vintage": commune.vintage,
            }
            shapes: dict[int, BaseGeometry] = {}
            # (not snapped: a shared vertex comes identical in every EA that has it, and
            # snapping a whole EA also moves vertices the change did not touch)
            for ea_id in ids:
                shapes[ea_id] = drawings[ea_id]().geometry
                await sql.set_geometry(conn, ea_id, bytes(shapely.to_wkb(shapes[ea_id])))
            olds = list(before.values())
            gaps = await _new_gaps(conn, commune, census_round, olds, self.rules)
            notices: list[dict[str, Any]] = []
            if receiver is not None and gaps:
                given = _given(gaps, receiver["code"])
                if receiver["id"] not in before:
                    before[receiver["id"]] = receiver
                    shapes[receiver["id"]] = shapely.geometry.shape(
                        json.loads(receiver["geometry"])
                    )
                grown = shapely.union_all([shapes[receiver["id"]], *[g["shape"] for g in given]])
                shapes[receiver["id"]] = grown
                await sql.set_geometry(conn, receiver["id"], bytes(shapely.to_wkb(grown)))
                area = sum(g["area_m2"] for g in given)
                notices.append(
                    {"notice": said("gap_given", area=f"{area:.0f}", code=receiver["code"])}
                )
                gaps = await _new_gaps(conn, commune, census_round, olds, self.rules)
            _no_gap(gaps)
            findings = Findings()
            for ea_id, shape in shapes.items():
                found = await check(conn, shape, {**context, "self": ea_id}, self.rules)
                code = before[ea_id]["code"]
                findings.problems += [
                    {
                        **p,
                        "problem": said("ea_problem", code=code, problem=p["problem"]),
                        "ea": code,
                    }
                    for p in found.problems
                ]
                findings.warnings += found.warnings
            _broken(findings)
            rows = []
            for ea_id in sorted(shapes):
                values = await self.estimator.values(shapes[ea_id])
                row = await sql.update_geometry(
                    conn, ea_id, {**values, "code": None, "user": user.name}
                )
                await write_history(conn, ea_id, "update", before[ea_id], row, user, reason)
                rows.append(row)
        return rows, notices + findings.warnings + self._workload(rows)

    async def approve_all(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        code: str,
        vintage: str | None,
        census_round: str,
        if_match: str | None,
        uncovered_acknowledged: bool,
        reason: str | None,
    ) -> list[Row]:
        """Approve every submitted EA of a commune at once (each checked against its own
        ETag in If-Match, four eyes on each); a commune that is not fully covered only when
        the supervisor acknowledges it, which the history records."""
        if vintage is None:  # the commune as the round's EAs know it decides who approves
            vintage = await sql.round_commune_vintage(conn, census_round, code)
        commune = await commune_of(conn, code, vintage, "code", "vintage")
        authorise(user, commune, "supervisor")
        async with conn.transaction():
            await sql.lock_commune(conn, census_round, commune.code)
            targets = [
                await fetch(conn, row["id"], lock=True)
                for row in await sql.of_commune(conn, census_round, commune.code)
                if row["status"] == "submitted"
            ]
            if not targets:
                raise Conflict(
                    said("nothing_submitted", commune=commune.code, round=census_round),
                    parameter="code",
                )
            _check_versions(targets, if_match, user)
            if user.role != "admin":
                own = [r["code"] for r in targets if user.name in await _authors(conn, r["id"], r)]
                if own:
                    raise Forbidden(
                        said("four_eyes_many", codes=", ".join(own), user=user.name),
                        parameter="action",
                    )
            report = await coverage_report(conn, commune, census_round, self.rules)
            note = reason
            if report["gaps"]:
                gap_m2 = sum(g["area_m2"] for g in report["gaps"])
                figures = {
                    "commune": commune.code,
                    "area": f"{gap_m2:.0f}",
                    "share": f"{report['gap_share'] * 100:.2f}",
                }
                if not uncovered_acknowledged:
                    raise Conflict(
                        said("uncovered_commune", **figures),
                        parameter="uncovered_acknowledged",
                        gaps=report["gaps"],
                        gap_area_m2=round(gap_m2, 1),
                        gap_share=report["gap_share"],
                    )
                note = str(said("approved_uncovered", **figures, user=user.name))
                if reason:
                    note = f"{reason} ({note})"
            approved = []
            for before in targets:
                after = await sql.set_status(conn, before["id"], "approved", user.name)
                await write_history(conn, before["id"], "approve", before, after, user, note)
                approved.append(after)
        return approved

    async def restore(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        ea_id: int,
        if_match: str | None,
        entry_id: int,
        reason: str | None,
        give_gap_to: str | None = None,
    ) -> tuple[Row, list[dict[str, Any]]]:
        """The EA's shape and attributes as they were after one change of its history,
        checked against today's rules like any edit (the EA goes back to draft): a restore
        that opens a gap in the commune is refused unless the gap is given to a neighbouring
        EA (`give_gap_to`, a code; its ETag in If-Match too)."""
        async with conn.transaction():
            before, commune = await _locked(conn, ea_id, user, if_match, change=True)
            state = await sql.history_state(conn, ea_id, entry_id)
            if state is None or not state.get("geometry"):
                raise NotFound(
                    said("no_such_version", code=before["code"], entry=entry_id),
                    parameter="entry",
                )
            geometry = shapely.geometry.shape(state["geometry"])
            values, warnings = await self._as_it_was(conn, geometry, ea_id, before, commune)
            row = await sql.update_geometry(
                conn, ea_id, {**values, "code": None, "user": user.name}
            )
            props = state.get("properties") or {}
            attributes = {k: props.get(k) for k in sql.ATTRIBUTES[:3]}
            row = await sql.set_attributes(conn, ea_id, attributes, user.name, bump=False)
            version = props.get("version", "?")
            note = reason or f"restored the version {version} of history entry {entry_id}"
            await write_history(conn, ea_id, "restore", before, row, user, note)
            notices = await self._gaps_given(
                conn, user, commune, before, if_match, give_gap_to, reason
            )
        return row, [
            {"notice": said("restored", code=row["code"], version=version)},
            *notices,
            *warnings,
            *self._workload([row]),
        ]

    async def _as_it_was(
        self,
        conn: psycopg.AsyncConnection,
        geometry: BaseGeometry,
        ea_id: int,
        before: Row,
        commune: Commune,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A restored shape exactly as it was when it keeps every rule (snapping it to
        neighbours that moved since would make slivers of overlap); else snapped and checked
        like any drawn shape."""
        context = {
            "round": before["census_round"],
            "commune": commune.code,
            "vintage": commune.vintage,
            "self": ea_id,
        }
        found = await check(conn, geometry, context, self.rules)
        if found.problems:
            return await self._prepared(
                conn, lambda: Drawn(geometry), ea_id, before["census_round"], commune
            )
        return await self.estimator.values(geometry), found.warnings

    async def _gaps_given(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        commune: Commune,
        before: Row,
        if_match: str | None,
        give_gap_to: str | None,
        reason: str | None,
        deleted: bool = False,
    ) -> list[dict[str, Any]]:
        """After one EA's change (`deleted`: its delete): 422 with the gaps it opened, unless
        `give_gap_to` names a neighbouring EA along every gap, which then takes them (checked
        like any edit)."""
        census_round = before["census_round"]
        gaps = await _new_gaps(conn, commune, census_round, [before], self.rules)
        if not gaps or give_gap_to is None:
            _no_gap(gaps, before["code"] if deleted else None)
            return []
        receiver = await _receiver(conn, census_round, commune, give_gap_to)
        _check_versions([receiver], if_match, user)
        given = _given(gaps, receiver["code"])
        grown = shapely.union_all(
            [shapely.geometry.shape(json.loads(receiver["geometry"])), *[g["shape"] for g in given]]
        )
        context = {"round": census_round, "commune": commune.code, "vintage": commune.vintage}
        found = await check(conn, grown, {**context, "self": receiver["id"]}, self.rules)
        code = receiver["code"]
        named = [
            {**p, "problem": said("ea_problem", code=code, problem=p["problem"]), "ea": code}
            for p in found.problems
        ]
        _broken(Findings(named))
        values = await self.estimator.values(grown)
        row = await sql.update_geometry(
            conn, receiver["id"], {**values, "code": None, "user": user.name}
        )
        await write_history(conn, receiver["id"], "update", receiver, row, user, reason)
        _no_gap(await _new_gaps(conn, commune, census_round, [before], self.rules))
        area = sum(g["area_m2"] for g in given)
        return [{"notice": said("gap_given", area=f"{area:.0f}", code=receiver["code"])}]

    async def set_attributes(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        ea_id: int,
        if_match: str | None,
        attributes: dict[str, Any],
        reason: str | None,
    ) -> Row:
        """Urban/rural, boundary description and landmarks (a new version; an approved EA's
        only by a supervisor, and it stays approved)."""
        async with conn.transaction():
            before, _ = await _locked(conn, ea_id, user, if_match, change=True)
            row = await sql.set_attributes(conn, ea_id, attributes, user.name, bump=True)
            await write_history(conn, ea_id, "attributes", before, row, user, reason)
        return row

    async def _check_generated_count(
        self, conn: psycopg.AsyncConnection, commune: Commune, households_per_ea: float
    ) -> None:
        """Refuse a target that would make more EAs than one generation may."""
        expected = await _expected_eas(conn, commune, households_per_ea, self.estimator)
        if expected > self.rules.max_generated:
            raise InvalidParameter(
                f"{households_per_ea:g} households per EA would make about {expected:,} EAs in "
                f"commune {commune.code}; one generation makes at most "
                f"{self.rules.max_generated:,}: choose a larger target",
                parameter="households_per_ea",
                limit=self.rules.max_generated,
            )

    async def generate(
        self,
        conn: psycopg.AsyncConnection,
        user: User,
        code: str,
        vintage: str | None,
        census_round: str,
        households_per_ea: float,
        replace: bool,
    ) -> dict[str, Any]:
        """A gap-free draft coverage of a commune from the raster; only drafts are replaced."""
        commune = await commune_of(conn, code, vintage)
        authorise(user, commune)
        if not self.estimator.raster.exists():
            raise Unprocessable(
                "no population raster is configured (GEO_SERVICE_POPULATION_RASTER)",
                parameter="raster",
            )
        await self._check_generated_count(conn, commune, households_per_ea)
        async with conn.transaction():
            await sql.lock_commune(conn, census_round, commune.code)
            existing = await sql.of_commune(conn, census_round, commune.code)
            if existing and not replace:
                raise Conflict(
                    said("has_eas", commune=commune.code, count=len(existing), round=census_round),
                    parameter="replace",
                )
            others = [row for row in existing if row["status"] != "draft"]
            if others:
                raise Conflict(
                    said("drafts_only", commune=commune.code, count=len(others)),
                    parameter="replace",
                )
            for row in existing:
                await sql.delete(conn, row["id"])
                await write_history(
                    conn, row["id"], "delete", row, None, user, "replaced by a generated draft"
                )
            created = await generate_one(
                conn,
                commune.vintage,
                commune.code,
                census_round,
                self.estimator.raster,
                households_per_ea,
                self.estimator.household_size,
                user.name,
                self.estimator.work,
            )
        return {
            "commune": commune.code,
            "vintage": commune.vintage,
            "round": census_round,
            "created": created,
            "replaced": len(existing),
        }


async def _expected_eas(
    conn: psycopg.AsyncConnection, commune: Commune, households_per_ea: float, estimator: Estimator
) -> int:
    """About how many EAs a generation with this target makes in the commune."""
    wkb = await sql.commune_coverage_wkb(conn, commune.vintage, commune.code)
    if wkb is None:
        return 0
    households = (await estimator.values(shapely.from_wkb(wkb)))["households"] or 0.0
    return math.ceil(households / households_per_ea)


async def _authors(conn: psycopg.AsyncConnection, ea_id: int, row: Row) -> set[str]:
    """Who submitted the EA and everyone who drew its geometry (a re-save does not make the
    geometry someone else's)."""
    return {row["updated_by"], *await sql.geometry_authors(conn, ea_id)}


async def history(conn: psycopg.AsyncConnection, ea_id: int) -> list[dict[str, Any]]:
    """Every change with who, when, why and the full state before and after."""
    entries = [
        {
            "id": i,
            "action": a,
            "before": b,
            "after": af,
            "user": u,
            "reason": r,
            "at": at.isoformat(),
        }
        for i, a, b, af, u, r, at in await sql.history(conn, ea_id)
    ]
    if not entries:  # (a deleted EA keeps its history)
        raise NotFound(said("no_ea", ea=ea_id), parameter="featureId")
    return entries


def history_communes(entries: list[dict[str, Any]]) -> set[tuple[str, str | None]]:
    """The communes an EA's history shows it in (every state before and after), each with
    its boundary vintage."""
    return {
        (state["properties"]["commune_code"], state["properties"].get("commune_vintage"))
        for entry in entries
        for state in (entry["before"], entry["after"])
        if state and state.get("properties", {}).get("commune_code")
    }


def _check_versions(rows: list[Row], if_match: str | None, user: User) -> None:
    """Every EA against its own ETag in If-Match; 412 naming every EA that changed, and an
    approved EA changes only by a supervisor."""
    if not if_match:
        raise PreconditionRequired(said("if_match_needed"), parameter="If-Match")
    sent = {t.strip() for t in if_match.split(",")}
    stale = [r["code"] for r in rows if etag(r) not in sent and if_match.strip() != "*"]
    if stale:
        raise PreconditionFailed(
            said("eas_changed", codes=", ".join(stale)), parameter="If-Match", eas=stale
        )
    for row in rows:
        if row["status"] == "approved" and _RANKS[user.role] < _RANKS["supervisor"]:
            raise Forbidden(said("approved_needs_supervisor", code=row["code"]))


async def _new_gaps(
    conn: psycopg.AsyncConnection,
    commune: Commune,
    census_round: str,
    before: list[Row],
    rules: EaRules,
) -> list[dict[str, Any]]:
    """The gaps a change opened (EAs as they were: `before`; as they are: in the table)."""
    rows = await sql.new_gaps(
        conn,
        {
            "vintage": commune.vintage,
            "commune": commune.code,
            "round": census_round,
            "before": [
                bytes(shapely.to_wkb(shapely.geometry.shape(json.loads(r["geometry"]))))
                for r in before
            ],
            "min_m2": rules.tolerance_m**2,
            "tolerance": rules.tolerance_m,
        },
    )
    return [
        {
            "geometry": geometry,
            "area_m2": round(area, 1),
            "location": _point_of(at),
            "eas": list(codes),
            "shape": shapely.from_wkb(wkb),
        }
        for geometry, area, at, codes, wkb in rows
    ]


def _point_of(wkt: str) -> list[float]:
    x, y = shapely.get_coordinates(shapely.from_wkt(wkt))[0]
    return [round(float(x), 7), round(float(y), 7)]


def _no_gap(gaps: list[dict[str, Any]], deleted: str | None = None) -> None:
    """422 naming where every new gap is (and the EAs beside it) when there is one
    (`deleted`: the code of the EA whose delete opened them)."""
    if not gaps:
        return
    area = sum(g["area_m2"] for g in gaps)
    codes = sorted({code for g in gaps for code in g["eas"]})
    figures = {"count": len(gaps), "area": f"{area:.0f}", "codes": ", ".join(codes) or "–"}
    raise Unprocessable(
        said("delete_leaves_gap", code=deleted, **figures)
        if deleted
        else said("leaves_gap", **figures),
        parameter="geometry",
        gaps=[{k: v for k, v in g.items() if k != "shape"} for g in gaps],
    )


async def _receiver(
    conn: psycopg.AsyncConnection, census_round: str, commune: Commune, code: str
) -> Row:
    """The EA of the commune named to take a gap; 422 naming `give_gap_to` if none."""
    receiver = await sql.fetch_by_code(conn, census_round, commune.code, code)
    if receiver is None:
        raise Unprocessable(
            said("unknown_eas", round=census_round, codes=code), parameter="give_gap_to"
        )
    return receiver


def _given(gaps: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    """The gaps an EA borders (all of them must: 422 naming the first it does not)."""
    for gap in gaps:
        if code not in gap["eas"]:
            raise Unprocessable(
                said(
                    "gap_not_beside",
                    code=code,
                    area=f"{gap['area_m2']:.0f}",
                    codes=", ".join(gap["eas"]) or "–",
                ),
                parameter="give_gap_to",
                gaps=[{k: v for k, v in g.items() if k != "shape"} for g in gaps],
            )
    return gaps
