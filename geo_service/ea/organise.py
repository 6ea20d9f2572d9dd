"""Organising the census on the EAs: staff (enumerators and supervisors), supervisor areas
(contiguous groups of EAs inside one commune under one supervisor), the assignment of EAs
to enumerators, the workload table, progress across a scope, the supervisors' review queue
and the field listing's figures. Every write is checked whole and saved whole."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any

import psycopg
import shapely

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
from geo_service.ea.grouping import Unit, adjacency, is_contiguous
from geo_service.ea.rules import EaRules
from geo_service.ea.service import Commune, authorise, commune_of, etag
from geo_service.messages import Said, said
from geo_service.users import User, user_row

Row = dict[str, Any]
_STAFF_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_SCOPE = re.compile(r"^(\d{2}|\d{5})$")


@dataclass(frozen=True)
class Band:
    """How many EAs a supervisor area should hold."""

    low: int
    high: int


def scope_codes(user: User | None, asked: list[str] | None) -> list[str] | None:
    """The province/commune codes a read covers: what was asked, else the user's scope
    (None: everything, for admins, users without a scope and anonymous reads). Asked codes
    are checked against the read policy by the caller (geo_service/ea/access.py)."""
    if asked:
        return asked
    if user is None or user.role == "admin" or not user.scope:
        return None
    return list(user.scope)


# ---- staff ----


def _staff_values(body: dict[str, Any], census_round: str) -> dict[str, Any]:
    code, name, role, scope = (body.get(k) for k in ("code", "name", "role", "scope"))
    if not isinstance(code, str) or not _STAFF_CODE.match(code):
        raise InvalidParameter("code must be 1–32 letters, digits or . _ -", parameter="code")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidParameter("name must be a text of 1–200 characters", parameter="name")
    if role not in ("enumerator", "supervisor"):
        raise InvalidParameter("role must be enumerator or supervisor", parameter="role")
    if not isinstance(scope, str) or not _SCOPE.match(scope):
        raise InvalidParameter(
            "scope must be a province (2-digit) or commune (5-digit) code", parameter="scope"
        )
    phone = body.get("phone")
    if phone is not None and (not isinstance(phone, str) or len(phone) > 40):
        raise InvalidParameter("phone must be a text of at most 40 characters", parameter="phone")
    user_name = body.get("user_name")
    if user_name is not None and not isinstance(user_name, str):
        raise InvalidParameter("user_name must be a user's name", parameter="user_name")
    return {
        "round": census_round,
        "code": code,
        "name": name.strip(),
        "role": role,
        "scope": scope,
        "phone": phone,
        "user_name": user_name,
    }


async def round_commune(
    conn: psycopg.AsyncConnection, census_round: str, code: str, parameter: str = "code"
) -> Commune:
    """The commune as the round's EAs know it: in the boundary vintage they lie in, whose
    province decides who may organise and read them (a later vintage may give the code to
    another province); the latest vintage when the round has no EA there."""
    vintage = await sql.round_commune_vintage(conn, census_round, code)
    return await commune_of(conn, code, vintage, parameter)


async def list_staff(
    conn: psycopg.AsyncConnection, user: User | None, census_round: str, asked: list[str] | None
) -> list[Row]:
    """The round's staff working in the scope asked (else the user's)."""
    return await sql.staff_of(conn, census_round, scope_codes(user, asked))


async def _check_scope_code(
    conn: psycopg.AsyncConnection, user: User, census_round: str, scope: str
) -> None:
    """A staff member's place must be inside the user's scope (a known unit)."""
    if len(scope) == 5:
        authorise(user, await round_commune(conn, census_round, scope, "scope"))
    elif user.role != "admin" and scope not in user.scope:
        raise Forbidden(said("out_of_scope", commune=scope, user=user.name), parameter="scope")


async def add_staff(
    conn: psycopg.AsyncConnection, user: User, census_round: str, body: dict[str, Any]
) -> Row:
    """A new enumerator or supervisor in the user's scope."""
    values = _staff_values(body, census_round)
    await _check_scope_code(conn, user, census_round, values["scope"])
    if values["user_name"] is not None:
        await _check_account(conn, census_round, values["scope"], values["user_name"])
    try:
        async with conn.transaction():
            return await sql.insert_staff(conn, values)
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(
            said("staff_exists", staff=values["code"], round=census_round), parameter="code"
        ) from exc
    except psycopg.errors.ForeignKeyViolation as exc:  # (removed meanwhile)
        raise InvalidParameter(said("unlinkable_user"), parameter="user_name") from exc


async def _check_account(
    conn: psycopg.AsyncConnection, census_round: str, scope: str, name: str
) -> None:
    """A staff member's account is an active user, not an administrator, whose scope covers
    the staff member's place. Whatever the reason it is not, the answer is the same: an
    editor cannot learn from it which user names exist."""
    account = await user_row(conn, name)
    province = (
        scope
        if len(scope) == 2
        else (await round_commune(conn, census_round, scope, "scope")).province
    )
    if (
        account is None
        or account["disabled"]
        or account["role"] == "admin"
        or not {scope, province} & set(account["scope"])
    ):
        raise InvalidParameter(said("unlinkable_user"), parameter="user_name")


async def remove_staff(
    conn: psycopg.AsyncConnection, user: User, census_round: str, code: str
) -> None:
    """Remove a staff member; their EAs and areas become unassigned."""
    found = (await sql.staff_by_code(conn, census_round, [code])).get(code)
    if found is None:
        raise NotFound(
            said("unknown_staff", role="enumerator", staff=code, round=census_round),
            parameter="code",
        )
    await _check_scope_code(conn, user, census_round, found["scope"])
    await sql.delete_staff(conn, found["id"])


def _covers(staff: Row, commune: Commune) -> bool:
    return staff["scope"] in (commune.code, commune.province)


async def _staff_for(
    conn: psycopg.AsyncConnection,
    census_round: str,
    commune: Commune,
    codes: list[str],
    role: str,
    where: str,
) -> dict[str, Row]:
    """The staff named, each of the role and working in the commune; refused naming the
    first one that is not."""
    found = await sql.staff_by_code(conn, census_round, codes)
    for number, code in enumerate(codes, 1):
        staff = found.get(code)
        if staff is None or staff["role"] != role:
            raise Unprocessable(
                said("unknown_staff", role=role, staff=code, round=census_round),
                parameter=where,
                row=number,
            )
        if not _covers(staff, commune):
            raise Unprocessable(
                said(
                    "staff_out_of_scope",
                    name=staff["name"],
                    staff=code,
                    scope=staff["scope"],
                    commune=commune.code,
                ),
                parameter=where,
                row=number,
            )
    return found


# ---- supervisor areas ----


def _in_commune(ea: Row, commune: Commune) -> bool:
    """Whether the EA lies in the commune, in the commune's own boundary vintage."""
    return bool(ea["commune_code"] == commune.code and ea["commune_vintage"] == commune.vintage)


async def _area_eas(
    conn: psycopg.AsyncConnection,
    census_round: str,
    commune: Commune,
    area_code: str,
    codes: list[str],
) -> list[int]:
    """The ids of the EAs an area is to hold: all known, all in the commune, one piece."""
    if not codes or not all(isinstance(c, str) for c in codes) or len(set(codes)) != len(codes):
        raise InvalidParameter("eas must list distinct EA codes", parameter="eas")
    rows = await sql.eas_by_code(conn, census_round, codes)
    known = {r["code"]: r for r in rows}
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise Unprocessable(
            said("unknown_eas", round=census_round, codes=", ".join(unknown)), parameter="eas"
        )
    elsewhere = [c for c in codes if not _in_commune(known[c], commune)]
    if elsewhere:
        raise Unprocessable(
            said("area_mixes", area=area_code, codes=", ".join(elsewhere), commune=commune.code),
            parameter="eas",
        )
    ids = [known[c]["id"] for c in codes]
    if len(ids) > 1 and not await one_piece(conn, ids):
        raise Unprocessable(
            said("area_not_contiguous", area=area_code, codes=", ".join(codes)), parameter="eas"
        )
    return ids


async def one_piece(conn: psycopg.AsyncConnection, ids: list[int]) -> bool:
    """Whether the EAs are linked through shared edges (an EA of several islands counts as
    one piece; EAs meeting only at a corner do not)."""
    found = await sql.shapes(conn, ids)
    units = [Unit(str(i), 0.0, shapely.from_wkb(found[i])) for i in ids if i in found]
    return len(units) == len(ids) and is_contiguous(range(len(units)), adjacency(units))


async def save_area(
    conn: psycopg.AsyncConnection,
    user: User,
    census_round: str,
    commune_code: str,
    area_id: int | None,
    body: dict[str, Any],
    if_match: str | None,
) -> int:
    """Create or change a supervisor area (its EAs and its supervisor); its id. EAs in
    another area are refused (take them out of it first). A new area needs the commune's
    areas as they were read (If-Match: the `etag` of `GET …/supervisor-areas`); a change,
    that area as it was read."""
    commune = await round_commune(conn, census_round, commune_code)
    authorise(user, commune)
    codes = body.get("eas")
    if not isinstance(codes, list):
        raise InvalidParameter("eas must list EA codes", parameter="eas")
    supervisor = body.get("supervisor")
    if supervisor is not None and not isinstance(supervisor, str):
        raise InvalidParameter("supervisor must be a staff code", parameter="supervisor")
    async with conn.transaction():
        await sql.lock_commune(conn, census_round, commune.code)
        existing = await sql.supervisor_area(conn, area_id) if area_id is not None else None
        if area_id is not None and (existing is None or existing["commune_code"] != commune.code):
            raise NotFound(said("unknown_area", area=area_id), parameter="area")
        if existing is None:
            await check_areas_version(conn, census_round, commune.code, if_match, "read")
        else:
            await check_area_version(conn, census_round, commune.code, existing["code"], if_match)
        code = (
            existing["code"]
            if existing
            else await sql.next_area_code(conn, census_round, commune.code)
        )
        ids = await _area_eas(conn, census_round, commune, code, codes)
        others = {
            ea: area for ea, area in (await sql.areas_of_eas(conn, ids)).items() if area != area_id
        }
        if others:
            taken = [c for c, i in zip(codes, ids, strict=True) if i in others]
            raise Conflict(
                said("area_taken", area=code, codes=", ".join(taken)),
                parameter="eas",
                in_other_areas=taken,
            )
        staff_id = await _supervisor_id(conn, census_round, commune, supervisor, "supervisor")
        if existing is None:
            area_id = await _insert_area(conn, user, census_round, commune, code, staff_id)
        else:
            await sql.update_area(conn, existing["id"], staff_id, user.name)
        assert area_id is not None
        await sql.set_area_members(conn, area_id, ids, user.name)
    return area_id


def _area_stamps(rows: list[Row]) -> dict[str, str]:
    """Each supervisor area's code with a stamp of what it is (its id, supervisor, EAs)."""
    return {
        row["code"]: hashlib.sha256(
            f"{row['id']}|{row['supervisor_id']}|{sorted(row['ea_ids'])}".encode()
        ).hexdigest()[:10]
        for row in rows
    }


async def areas_etag(conn: psycopg.AsyncConnection, census_round: str, commune: str) -> str:
    """The ETag of a commune's supervisor areas: every area's code and stamp, so that a
    stale one names the areas that changed."""
    stamps = _area_stamps(await sql.supervisor_areas(conn, census_round, commune))
    return '"areas:' + "_".join(f"{code}.{stamp}" for code, stamp in sorted(stamps.items())) + '"'


def _sent_stamps(if_match: str) -> dict[str, str] | None:
    """The areas and stamps an If-Match of `areas_etag` lists (None: not such an ETag)."""
    tag = if_match.strip().removeprefix("W/")
    if not (tag.startswith('"areas:') and tag.endswith('"')):
        return None
    entries = [e for e in tag[len('"areas:') : -1].split("_") if e]
    pairs = [e.rpartition(".") for e in entries]
    if any(not code or not dot for code, dot, _ in pairs):
        return None
    return {code: stamp for code, _, stamp in pairs}


async def check_areas_version(
    conn: psycopg.AsyncConnection,
    census_round: str,
    commune: str,
    if_match: str | None,
    seen: str = "previewed",
) -> None:
    """428 without If-Match; 412 naming the areas made, changed or removed since the ETag
    sent was read (`seen`: in a preview, or read for one area's change)."""
    if not if_match:
        raise PreconditionRequired(said(_NEEDED[seen]), parameter="If-Match")
    now = _area_stamps(await sql.supervisor_areas(conn, census_round, commune))
    if if_match.strip() == "*":
        return
    sent = _sent_stamps(if_match)
    if sent == now:
        return
    # (an ETag that is not ours: every area counts as changed)
    changed = sorted(c for c in {*now, *(sent or {})} if sent is None or now.get(c) != sent.get(c))
    raise PreconditionFailed(
        said(_CHANGED[seen], commune=commune, codes=", ".join(changed) or "–"),
        parameter="If-Match",
        areas=changed,
        current=await areas_etag(conn, census_round, commune),
    )


# (a refusal says what to do again: make a fresh preview, or reload the areas)
_NEEDED = {"previewed": "areas_if_match_needed", "read": "area_if_match_needed"}
_CHANGED = {"previewed": "areas_changed", "read": "areas_changed_since_read"}


async def check_area_version(
    conn: psycopg.AsyncConnection,
    census_round: str,
    commune: str,
    code: str,
    if_match: str | None,
) -> None:
    """One area's write: 428 without If-Match; 412 naming the area when it changed since
    the ETag sent (the commune's areas as read) was read; other areas may have changed."""
    if not if_match:
        raise PreconditionRequired(said("area_if_match_needed"), parameter="If-Match")
    if if_match.strip() == "*":
        return
    now = _area_stamps(await sql.supervisor_areas(conn, census_round, commune))
    sent = _sent_stamps(if_match) or {}
    if sent.get(code) is not None and sent.get(code) == now.get(code):
        return
    raise PreconditionFailed(
        said("area_changed", area=code, commune=commune),
        parameter="If-Match",
        areas=[code],
        current=await areas_etag(conn, census_round, commune),
    )


async def save_areas(
    conn: psycopg.AsyncConnection,
    user: User,
    census_round: str,
    commune_code: str,
    body: dict[str, Any],
    if_match: str | None,
) -> list[str]:
    """Several supervisor areas at once (a confirmed proposal), replacing the areas named in
    `replace`: all checked as one area is, all saved in one transaction or none, and only
    over the commune's areas as the preview saw them (If-Match); the codes of the new
    areas."""
    commune = await round_commune(conn, census_round, commune_code)
    authorise(user, commune)
    areas, replace = body.get("areas"), body.get("replace", [])
    if not isinstance(areas, list) or not areas or not all(isinstance(a, dict) for a in areas):
        raise InvalidParameter("areas must list {eas, supervisor} objects", parameter="areas")
    if not isinstance(replace, list) or not all(isinstance(c, str) for c in replace):
        raise InvalidParameter("replace must list supervisor area codes", parameter="replace")
    made: list[str] = []
    async with conn.transaction():
        await sql.lock_commune(conn, census_round, commune.code)
        await check_areas_version(conn, census_round, commune.code, if_match)
        found = await sql.areas_by_code(conn, census_round, commune.code, replace)
        for code in replace:
            if code not in found:
                raise NotFound(said("unknown_area", area=code), parameter="replace")
            await sql.delete_area(conn, found[code])
        for number, area in enumerate(areas, 1):
            codes, supervisor = area.get("eas"), area.get("supervisor")
            if not isinstance(codes, list):
                raise InvalidParameter("eas must list EA codes", parameter="areas", row=number)
            if supervisor is not None and not isinstance(supervisor, str):
                raise InvalidParameter(
                    "supervisor must be a staff code", parameter="areas", row=number
                )
            code = await sql.next_area_code(conn, census_round, commune.code)
            ids = await _area_eas(conn, census_round, commune, code, codes)
            # (an EA in an area kept, or in an earlier group of this batch)
            others = await sql.areas_of_eas(conn, ids)
            taken = [c for c, i in zip(codes, ids, strict=True) if i in others]
            if taken:
                raise Conflict(
                    said("area_taken", area=code, codes=", ".join(taken)),
                    parameter="areas",
                    row=number,
                    in_other_areas=taken,
                )
            staff_id = await _supervisor_id(conn, census_round, commune, supervisor, "areas")
            area_id = await _insert_area(conn, user, census_round, commune, code, staff_id)
            await sql.set_area_members(conn, area_id, ids, user.name)
            made.append(code)
    return made


async def _supervisor_id(
    conn: psycopg.AsyncConnection,
    census_round: str,
    commune: Commune,
    supervisor: str | None,
    parameter: str,
) -> int | None:
    """The staff id of an area's supervisor (a supervisor of the commune), or None."""
    if supervisor is None:
        return None
    found = await _staff_for(conn, census_round, commune, [supervisor], "supervisor", parameter)
    return int(found[supervisor]["id"])


async def _insert_area(
    conn: psycopg.AsyncConnection,
    user: User,
    census_round: str,
    commune: Commune,
    code: str,
    staff_id: int | None,
) -> int:
    """A new, empty supervisor area of the commune; its id."""
    return await sql.insert_area(
        conn,
        {
            "round": census_round,
            "vintage": commune.vintage,
            "commune": commune.code,
            "code": code,
            "supervisor": staff_id,
            "user": user.name,
        },
    )


async def drop_area(
    conn: psycopg.AsyncConnection,
    user: User,
    commune_code: str,
    area_id: int,
    if_match: str | None,
) -> None:
    """Remove a supervisor area (its EAs stay, in no area), only as it was read (If-Match:
    the `etag` of the commune's areas)."""
    existing = await sql.supervisor_area(conn, area_id)
    if existing is None or existing["commune_code"] != commune_code:
        raise NotFound(said("unknown_area", area=area_id), parameter="area")
    authorise(user, await commune_of(conn, commune_code, existing["commune_vintage"], "code"))
    async with conn.transaction():
        await sql.lock_commune(conn, existing["census_round"], commune_code)
        await check_area_version(
            conn, existing["census_round"], commune_code, existing["code"], if_match
        )
        await sql.delete_area(conn, area_id)


async def areas_report(
    conn: psycopg.AsyncConnection, census_round: str, commune: Commune, band: Band
) -> list[Row]:
    """The commune's supervisor areas, each with what breaks its rules now (EAs change
    after an area is made: a merge or split can leave it in pieces)."""
    rows = await sql.supervisor_areas(conn, census_round, commune.code)
    found = await sql.shapes(conn, [i for row in rows for i in row["ea_ids"]])
    shape = {i: shapely.from_wkb(wkb) for i, wkb in found.items()}
    staff = await sql.staff_by_id(conn, [r["supervisor_id"] for r in rows if r["supervisor_id"]])
    out = []
    for row in rows:
        warnings: list[Said] = []
        count = len(row["eas"])
        if not band.low <= count <= band.high:
            warnings.append(
                said("area_band", area=row["code"], count=count, band=f"{band.low}–{band.high}")
            )
        units = [Unit(str(i), 0.0, shape[i]) for i in row["ea_ids"]]
        if not is_contiguous(range(len(units)), adjacency(units)):
            warnings.append(
                said("area_not_contiguous", area=row["code"], codes=", ".join(row["eas"]))
            )
        out.append(
            {
                **{k: row[k] for k in ("id", "census_round", "commune_code", "code", "eas")},
                "households": row["households"],
                "supervisor": staff.get(row["supervisor_id"]),
                "warnings": warnings,
            }
        )
    return out


# ---- assignments and workload ----


async def assign(
    conn: psycopg.AsyncConnection,
    user: User,
    census_round: str,
    commune_code: str,
    assignments: Any,
) -> int:
    """Assign EAs to enumerators ([{ea, enumerator|null}]), all or nothing, each refusal
    naming its row."""
    commune = await round_commune(conn, census_round, commune_code)
    authorise(user, commune)
    if not isinstance(assignments, list) or not assignments:
        raise InvalidParameter(
            "assignments must list {ea, enumerator} objects", parameter="assignments"
        )
    pairs: list[tuple[str, str | None]] = []
    for number, item in enumerate(assignments, 1):
        if not isinstance(item, dict) or not isinstance(item.get("ea"), str):
            raise InvalidParameter(
                f"row {number}: give an EA code and an enumerator code (or null)",
                parameter="assignments",
                row=number,
            )
        enumerator = item.get("enumerator")
        if enumerator is not None and not isinstance(enumerator, str):
            raise InvalidParameter(
                f"row {number}: the enumerator is a staff code or null",
                parameter="assignments",
                row=number,
            )
        pairs.append((item["ea"], enumerator))
    codes = [ea for ea, _ in pairs]
    if len(set(codes)) != len(codes):
        raise InvalidParameter("an EA is listed twice", parameter="assignments")
    rows = {r["code"]: r for r in await sql.eas_by_code(conn, census_round, codes)}
    for number, (ea, _) in enumerate(pairs, 1):
        if ea not in rows or not _in_commune(rows[ea], commune):
            raise Unprocessable(
                said("unknown_eas", round=census_round, codes=ea),
                parameter="assignments",
                row=number,
            )
    staff_codes = sorted({s for _, s in pairs if s is not None})
    async with conn.transaction():
        await sql.lock_commune(conn, census_round, commune.code)
        staff = await _staff_for(
            conn, census_round, commune, staff_codes, "enumerator", "assignments"
        )
        await sql.assign_enumerators(
            conn,
            [(rows[ea]["id"], staff[s]["id"] if s else None) for ea, s in pairs],
            user.name,
        )
    return len(pairs)


async def workload(
    conn: psycopg.AsyncConnection, census_round: str, commune: Commune, rules: EaRules
) -> dict[str, Any]:
    """Households, area and EAs per enumerator in a commune, with what stands out: EAs
    outside the workload band, unassigned EAs, enumerators with much more or less than the
    band allows."""
    rows = await sql.workload_rows(conn, census_round, commune.code)
    staff = await sql.staff_by_id(
        conn, sorted({r["enumerator_id"] for r in rows if r["enumerator_id"]})
    )
    outside = [
        {"ea": r["code"], "households": round(r["households"] or 0)}
        for r in rows
        if r["households"] is not None
        and not rules.households_min <= r["households"] <= rules.households_max
    ]
    outside_codes = {o["ea"] for o in outside}
    groups: dict[int | None, list[Row]] = {}
    for row in rows:
        groups.setdefault(row["enumerator_id"], []).append(row)
    table = []
    for staff_id, members in sorted(groups.items(), key=lambda kv: (kv[0] is None, str(kv[0]))):
        households = sum(m["households"] or 0 for m in members)
        listed = [m["listed_households"] for m in members if m["listed_households"] is not None]
        flag = None
        if staff_id is not None and households > rules.households_max:
            flag = "over"
        elif staff_id is not None and households < rules.households_min:
            flag = "under"
        table.append(
            {
                "enumerator": staff.get(staff_id) if staff_id is not None else None,
                "eas": [m["code"] for m in members],
                "households": round(households, 1),
                "listed_households": sum(listed) if listed else None,
                "area_km2": round(sum(m["km2"] for m in members), 3),
                "outside_band": [m["code"] for m in members if m["code"] in outside_codes],
                "flag": flag,
            }
        )
    return {
        "commune": commune.code,
        "census_round": census_round,
        "band": [rules.households_min, rules.households_max],
        "eas": len(rows),
        "households": round(sum(r["households"] or 0 for r in rows), 1),
        "area_km2": round(sum(r["km2"] for r in rows), 3),
        "outside_band": outside,
        "unassigned": [r["code"] for r in rows if r["enumerator_id"] is None],
        "without_supervisor_area": [r["code"] for r in rows if r["supervisor_area_id"] is None],
        "enumerators": table,
    }


async def progress(
    conn: psycopg.AsyncConnection,
    census_round: str,
    vintage: str | None,
    codes: list[str] | None,
) -> dict[str, Any]:
    """Every commune of the scope: EAs by status, assigned, in supervisor areas (each
    commune in the boundary vintage of the round's EAs unless `vintage` is given)."""
    rows = await sql.progress(conn, census_round, vintage, codes)
    keys = ("eas", "draft", "submitted", "approved", "rejected", "assigned", "in_supervisor_areas")
    return {
        "census_round": census_round,
        "scope": codes or [],
        "provinces": await sql.progress_provinces(conn, census_round, vintage, codes),
        "communes": len(rows),
        "totals": {k: sum(int(r[k]) for r in rows) for k in keys},
        "without_eas": sum(1 for r in rows if r["eas"] == 0),
        "rows": rows,
    }


async def review_queue(
    conn: psycopg.AsyncConnection, census_round: str, codes: list[str] | None, limit: int = 500
) -> dict[str, Any]:
    """Counts by status per commune of the scope, and the submitted EAs (oldest submission
    first), each with what it gained and lost against its last approved (else first)
    version."""
    counts, rows = await sql.review(conn, census_round, codes, limit)
    entries = []
    for r in rows:
        previous = None
        if r["previous_action"] is not None:
            previous = f"{r['previous_action']} v{r['previous_version']}"
        entries.append(
            {
                "id": r["id"],
                "code": r["code"],
                "commune_code": r["commune_code"],
                "etag": etag(r),
                "households": r["households"],
                "submitted_by": r["submitted_by"] or "?",
                "submitted_at": r["submitted_at"].isoformat() if r["submitted_at"] else "",
                "previous": previous,
                "geometry": r["geometry"],
                "added": r["added"],
                "removed": r["removed"],
            }
        )
    return {"census_round": census_round, "counts": counts, "submitted": entries}


# ---- field listing ----

_LISTING_COLUMNS = {
    "code": ("code", "ea", "ma_dia_ban", "ma"),
    "listed_dwellings": ("listed_dwellings", "dwellings", "so_nha", "nha"),
    "listed_households": ("listed_households", "households", "so_ho", "ho"),
}


def parse_listing(text: str) -> list[tuple[int, str, int | None, int | None]]:
    """(row, EA code, dwellings, households) of a CSV listing; every bad row named at once."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in next(reader, [])]
    where = {}
    for name, aliases in _LISTING_COLUMNS.items():
        found = [i for i, h in enumerate(header) if h in aliases]
        if not found:
            raise InvalidParameter(
                f"the listing needs a column {name} (or {', '.join(aliases[1:])})",
                parameter="file",
            )
        where[name] = found[0]
    rows, problems = [], []
    for number, cells in enumerate(reader, 2):
        if not any(c.strip() for c in cells):
            continue
        cell = {k: (cells[i].strip() if i < len(cells) else "") for k, i in where.items()}
        counts: list[int | None] = []
        for name in ("listed_dwellings", "listed_households"):
            value = cell[name]
            if value == "":
                counts.append(None)
            elif not value.isdigit():
                problem = f"{name} {value!r} is not a count ≥ 0"
                problems.append(
                    {"row": number, "problem": said("listing_row", row=number, problem=problem)}
                )
                counts.append(None)
            else:
                counts.append(int(value))
        rows.append((number, cell["code"], counts[0], counts[1]))
    if problems:
        raise InvalidParameter(
            said("listing_refused", count=len(problems)), parameter="file", problems=problems
        )
    return rows


async def save_listing(
    conn: psycopg.AsyncConnection, user: User, census_round: str, text: str
) -> int:
    """Listed dwellings and households by EA code, beside the raster estimate: every row
    checked (known code, in the user's scope, counts ≥ 0, no code twice), then all saved."""
    rows = parse_listing(text)
    if not rows:
        raise InvalidParameter("the listing has no rows", parameter="file")
    codes = [code for _, code, _, _ in rows]
    targets = {r["code"]: r for r in await sql.listing_targets(conn, census_round, codes)}
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, code, _, _ in rows:
        target = targets.get(code)
        problem: str | Said | None = None
        if code in seen:
            problem = f"{code} is listed twice"
        elif target is None:
            problem = said("unknown_eas", round=census_round, codes=code)
        elif not user.covers(target["commune_code"], target["province"]):
            problem = said("out_of_scope", commune=target["commune_code"], user=user.name)
        if problem is not None:
            problems.append(
                {"row": number, "problem": said("listing_row", row=number, problem=problem)}
            )
        seen.add(code)
    if problems:
        raise Unprocessable(
            said("listing_refused", count=len(problems)), parameter="file", problems=problems
        )
    async with conn.transaction():
        await sql.save_listing(
            conn,
            [
                (targets[code]["id"], dwellings, households)
                for _, code, dwellings, households in rows
            ],
            user.name,
        )
    return len(rows)
