"""Proposals for organising a commune: supervisor areas grouped automatically and EAs shared
among the enumerators, computed on what the database holds now (geo_service/ea/grouping.py)
and returned for a preview; nothing is written here. A confirmed proposal is saved through
`organise.save_areas` (areas) and `organise.assign` (assignments), in one transaction each."""

from __future__ import annotations

from typing import Any

import psycopg
import shapely
from shapely.geometry import mapping

from geo_core.errors import InvalidParameter, Unprocessable
from geo_service.ea import sql
from geo_service.ea.grouping import Pick, Unit, adjacency, propose_assignments, propose_groups
from geo_service.ea.organise import Band, areas_etag, round_commune
from geo_service.ea.service import Commune, authorise
from geo_service.messages import Said, said
from geo_service.users import User

Row = dict[str, Any]
MOST_PER_AREA = 50  # EAs a supervisor area may be asked to hold at most


def _band(body: dict[str, Any], default: Band) -> Band:
    low, high = body.get("min_eas", default.low), body.get("max_eas", default.high)

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    low_ok = whole(low) and 1 <= low <= MOST_PER_AREA
    if not low_ok or not whole(high) or not low <= high <= MOST_PER_AREA:
        raise InvalidParameter(
            said("bad_band", most=MOST_PER_AREA), parameter="max_eas" if low_ok else "min_eas"
        )
    return Band(low, high)


def _selection(body: dict[str, Any], rows: list[Row], census_round: str) -> set[str] | None:
    """The EA codes asked for (None: the whole commune); unknown codes refused by name."""
    asked = body.get("eas")
    if asked is None:
        return None
    if not isinstance(asked, list) or not all(isinstance(c, str) for c in asked) or not asked:
        raise InvalidParameter("eas must list EA codes of the commune", parameter="eas")
    known = {r["code"] for r in rows}
    unknown = [c for c in asked if c not in known]
    if unknown:
        raise Unprocessable(
            said("unknown_eas", round=census_round, codes=", ".join(unknown)), parameter="eas"
        )
    return set(asked)


async def _commune(
    conn: psycopg.AsyncConnection, user: User, census_round: str, commune_code: str
) -> Commune:
    """The commune as the round's EAs know it, once the user may organise it."""
    commune = await round_commune(conn, census_round, commune_code)
    authorise(user, commune)
    return commune


def _geometry(rows: list[Row]) -> Any:
    """The group's outline (GeoJSON), for the preview."""
    union = shapely.union_all([shapely.from_wkb(bytes(r["wkb"])) for r in rows])
    return mapping(shapely.set_precision(union, 1e-7))


async def propose_areas(
    conn: psycopg.AsyncConnection,
    user: User,
    census_round: str,
    commune_code: str,
    body: dict[str, Any],
    default: Band,
) -> dict[str, Any]:
    """Supervisor areas for the commune's EAs (or those asked for) not yet in an area; with
    `redo`, the areas holding any of them are replaced (their EAs grouped anew)."""
    commune = await _commune(conn, user, census_round, commune_code)
    band = _band(body, default)
    redo = body.get("redo", False)
    if not isinstance(redo, bool):
        raise InvalidParameter("redo must be true or false", parameter="redo")
    # (read before the EAs: a change in between makes the tag stale, never the preview)
    tag = await areas_etag(conn, census_round, commune.code)
    rows = await sql.organise_rows(conn, census_round, commune.code)
    asked = _selection(body, rows, census_round)
    wanted = [r for r in rows if asked is None or r["code"] in asked]
    replaced = sorted({r["area"] for r in wanted if r["area"]}) if redo else []
    wanted_codes = {r["code"] for r in wanted}
    scope = [
        r
        for r in rows
        if (r["code"] in wanted_codes and (redo or not r["area"])) or r["area"] in replaced
    ]
    kept = sorted({r["area"] for r in rows if r["area"] and r["area"] not in replaced})
    notes: list[Said] = []
    groups: list[dict[str, Any]] = []
    if not scope:
        notes.append(said("nothing_to_group"))
    else:
        units = [
            Unit(r["code"], float(r["households"]), shapely.from_wkb(bytes(r["wkb"])))
            for r in scope
        ]
        supervisors = await _free_supervisors(conn, census_round, commune, replaced)
        for number, group in enumerate(propose_groups(units, band.low, band.high), 1):
            members = [scope[i] for i in group.members]
            groups.append(
                {
                    "number": number,
                    "eas": [r["code"] for r in members],
                    "count": len(members),
                    "households": round(group.households, 1),
                    "supervisor": supervisors[number - 1] if number <= len(supervisors) else None,
                    "notes": group.notes,
                    "geometry": _geometry(members),
                }
            )
    return {
        "commune": commune.code,
        "census_round": census_round,
        "band": [band.low, band.high],
        "redo": redo,
        "replaces": replaced,
        "kept": kept,
        "groups": groups,
        "notes": notes,
        "etag": tag,
    }


async def _free_supervisors(
    conn: psycopg.AsyncConnection, census_round: str, commune: Commune, replaced: list[str]
) -> list[str]:
    """Supervisors working in the commune who lead no area (or only areas being replaced),
    by code."""
    staff = await sql.staff_of(conn, census_round, [commune.code])
    leading = await sql.supervisors_with_areas(conn, census_round)
    if replaced:
        areas = await sql.supervisor_areas(conn, census_round, commune.code)
        ids = [a["supervisor_id"] for a in areas if a["code"] in replaced and a["supervisor_id"]]
        leading -= {s["code"] for s in (await sql.staff_by_id(conn, ids)).values()}
    return [
        s["code"]
        for s in staff
        if s["role"] == "supervisor"
        and s["scope"] in (commune.code, commune.province)
        and s["code"] not in leading
    ]


async def propose_enumerators(
    conn: psycopg.AsyncConnection,
    user: User,
    census_round: str,
    commune_code: str,
    body: dict[str, Any],
    capacity: float,
) -> dict[str, Any]:
    """Enumerators for the commune's EAs without one (or those of them asked for), balanced
    by households within each supervisor area, none above `capacity` households (the top
    of the workload band) unless one EA alone is; each enumerator's total as it would be."""
    commune = await _commune(conn, user, census_round, commune_code)
    rows = await sql.organise_rows(conn, census_round, commune.code)
    asked = _selection(body, rows, census_round)
    staff = [
        s
        for s in await sql.staff_of(conn, census_round, [commune.code])
        if s["role"] == "enumerator" and s["scope"] in (commune.code, commune.province)
    ]
    notes: list[Said] = []
    if not staff:
        notes.append(said("no_enumerators", commune=commune.code, round=census_round))
    todo_rows = [r for r in rows if not r["enumerator"] and (asked is None or r["code"] in asked)]
    if not todo_rows:
        notes.append(said("nothing_to_assign"))
    neighbours = adjacency([Unit(r["code"], 0.0, shapely.from_wkb(bytes(r["wkb"]))) for r in rows])
    picks = {
        r["code"]: Pick(
            r["code"],
            float(r["households"]),
            r["area"],
            frozenset(rows[j]["code"] for j in neighbours[i]),
        )
        for i, r in enumerate(rows)
    }
    codes = [s["code"] for s in staff]
    busy = await sql.enumerators_elsewhere(conn, census_round, commune.code, codes)
    current: dict[str, list[Pick]] = {}
    for r in rows:
        if r["enumerator"]:
            current.setdefault(r["enumerator"], []).append(picks[r["code"]])
    available = [c for c in codes if c not in busy]
    result = propose_assignments(
        [picks[r["code"]] for r in todo_rows] if staff else [], available, current, capacity
    )
    if staff:
        notes.extend(result.notes)
    totals = []
    by_code = {s["code"]: s for s in staff}
    for code in available:
        eas = [p.code for p in current.get(code, [])] + sorted(
            ea for ea, e in result.enumerator_of.items() if e == code
        )
        totals.append(
            {
                "enumerator": code,
                "name": by_code[code]["name"],
                "eas": eas,
                "new": sorted(ea for ea, e in result.enumerator_of.items() if e == code),
                "households": round(sum(picks[ea].households for ea in eas), 1),
            }
        )
    return {
        "commune": commune.code,
        "census_round": census_round,
        "assignments": [
            {"ea": ea, "enumerator": result.enumerator_of[ea]}
            for ea in sorted(result.enumerator_of)
        ],
        "enumerators": totals,
        "unassigned": sorted(r["code"] for r in todo_rows if r["code"] not in result.enumerator_of),
        "notes": notes,
    }
