"""Census organisation over the EAs: staff, supervisor areas, assignments, the workload
table, progress across a scope, the supervisors' review queue, the field listing and how
far EA boundaries follow the loaded lines."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import Response

from geo_core.errors import InvalidParameter, PayloadTooLarge
from geo_core.text import CODE
from geo_service.ea import organise, proposals
from geo_service.ea.access import EVERYWHERE, ReadScope, check_codes
from geo_service.ea.lines import line_share, lines_near
from geo_service.ea.organise import Band
from geo_service.http.auth import EaScope, Reader, Writer
from geo_service.http.deps import Conn, EaOps, Language, Settings
from geo_service.http.documents import (
    AreaProposal,
    AssignmentProposal,
    LineShare,
    ListingResult,
    Progress,
    ProgressRow,
    ProposedArea,
    ReviewEntry,
    ReviewQueue,
    StaffList,
    StaffMember,
    SupervisorAreaDoc,
    SupervisorAreas,
    Workload,
    WorkloadRow,
)
from geo_service.http.ogc import GEOJSON
from geo_service.messages import localised, said
from geo_service.settings import ServiceSettings
from geo_service.users import User

router = APIRouter(tags=["census organisation"])
Round = Annotated[str, Path(pattern=r"^\d{4}$", description="census round, e.g. 2029")]
RoundQuery = Annotated[str, Query(alias="round", pattern=r"^\d{4}$")]
CommuneCode = Annotated[str, Path(pattern=CODE)]
Scope = Annotated[
    str | None,
    Query(
        max_length=2000,
        pattern=r"^(\d{2}|\d{5})(,(\d{2}|\d{5}))*$",
        description="province (2-digit) or commune (5-digit) codes, comma-separated; "
        "default: the user's scope",
    ),
]
MAX_LISTING_BYTES = 5_000_000


def _codes(scope: str | None) -> list[str] | None:
    return scope.split(",") if scope else None


async def _read_codes(
    conn: Conn, user: User | None, reads: ReadScope, scope: str | None, census_round: str
) -> list[str] | None:
    """The codes a read covers (what was asked, else the user's scope); with private reads,
    a 403 naming `scope` for asked codes outside the user's (a commune in the vintage of
    the round's EAs)."""
    asked = _codes(scope)
    if asked:
        await check_codes(conn, reads, asked, census_round=census_round)
    return organise.scope_codes(user, asked)


def _band(settings: Any) -> Band:
    return Band(settings.ea_per_supervisor_min, settings.ea_per_supervisor_max)


def _member(row: dict[str, Any], user: User | None) -> StaffMember:
    """A staff member as the reader may see them: phone numbers and user names (personal
    data, and the names an attacker locks accounts by) only for signed-in users."""
    if user is None:
        row = {**row, "phone": None, "user_name": None}
    return StaffMember(**row)


# ---- staff ----


@router.get("/census/{census_round}/staff", summary="Enumerators and supervisors")
async def list_staff(
    census_round: Round, conn: Conn, user: Reader, reads: EaScope, scope: Scope = None
) -> StaffList:
    """The round's staff working in the scope (a commune's and its province's)."""
    rows = await organise.sql.staff_of(
        conn, census_round, await _read_codes(conn, user, reads, scope, census_round)
    )
    return StaffList(staff=[_member(row, user) for row in rows])


@router.post("/census/{census_round}/staff", status_code=201, summary="Add a staff member")
async def add_staff(
    census_round: Round,
    conn: Conn,
    user: Writer,
    body: Annotated[Any, Body(description='{"code", "name", "role", "scope", "phone"}')],
) -> StaffMember:
    """An enumerator or supervisor working in a province or commune of the user's scope
    (not necessarily a user of the service; `user_name` links one)."""
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object", parameter="body")
    return StaffMember(**await organise.add_staff(conn, user, census_round, body))


@router.delete("/census/{census_round}/staff/{code}", status_code=204, summary="Remove staff")
async def remove_staff(
    census_round: Round,
    code: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,32}$")],
    conn: Conn,
    user: Writer,
) -> None:
    """Their EAs and supervisor areas become unassigned."""
    await organise.remove_staff(conn, user, census_round, code)


# ---- supervisor areas ----


@router.get("/communes/{code}/supervisor-areas", summary="A commune's supervisor areas")
async def list_areas(
    code: CommuneCode,
    conn: Conn,
    user: Reader,
    reads: EaScope,
    settings: Settings,
    lang: Language,
    response: Response,
    census_round: RoundQuery = "2029",
) -> SupervisorAreas:
    """Each area with its EAs, households, supervisor and what breaks its rules now; the
    ETag (header and `etag`) is the If-Match of a batch of areas."""
    doc = await _areas_doc(code, conn, user, reads, settings, lang, census_round)
    response.headers["ETag"] = doc.etag
    return doc


async def _areas_doc(
    code: str,
    conn: psycopg.AsyncConnection,
    user: User | None,
    reads: ReadScope,
    settings: ServiceSettings,
    lang: str,
    census_round: str,
) -> SupervisorAreas:
    """The commune's supervisor areas as a document, with their ETag."""
    commune = await organise.round_commune(conn, census_round, code)
    reads.check(commune.code, commune.province, "code")
    band = _band(settings)
    # (the tag read first: a change in between makes it stale, never the areas shown)
    tag = await organise.areas_etag(conn, census_round, commune.code)
    areas = await organise.areas_report(conn, census_round, commune, band)
    return SupervisorAreas(
        etag=tag,
        commune=commune.code,
        census_round=census_round,
        band=[band.low, band.high],
        areas=[
            SupervisorAreaDoc(
                **{
                    **area,
                    "supervisor": _member(area["supervisor"], user) if area["supervisor"] else None,
                    "warnings": localised(area["warnings"], lang),
                }
            )
            for area in areas
        ],
    )


@router.post("/communes/{code}/supervisor-areas", status_code=201, summary="Group EAs into an area")
async def add_area(
    code: CommuneCode,
    conn: Conn,
    user: Writer,
    settings: Settings,
    lang: Language,
    body: Annotated[Any, Body(description='{"eas": [EA codes], "supervisor": staff code}')],
    response: Response,
    census_round: RoundQuery = "2029",
    if_match: Annotated[
        str | None,
        Header(max_length=8000, description="the `etag` of the commune's areas as read"),
    ] = None,
) -> SupervisorAreas:
    """A contiguous group of EAs of the commune (none in another area), optionally under a
    supervisor who works there; the commune's areas as they now are. Needs If-Match with the
    `etag` of the areas read (428 without; 412 naming the areas made, changed or removed
    since)."""
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object", parameter="body")
    await organise.save_area(conn, user, census_round, code, None, body, if_match)
    return await _written(code, conn, user, settings, lang, census_round, response)


async def _written(
    code: str,
    conn: psycopg.AsyncConnection,
    user: User,
    settings: ServiceSettings,
    lang: str,
    census_round: str,
    response: Response,
) -> SupervisorAreas:
    """The commune's areas after a write, with the ETag the next write sends."""
    doc = await _areas_doc(code, conn, user, EVERYWHERE, settings, lang, census_round)
    response.headers["ETag"] = doc.etag
    return doc


@router.post(
    "/communes/{code}/supervisor-areas/proposal", summary="Propose supervisor areas (not saved)"
)
async def propose_areas(
    code: CommuneCode,
    conn: Conn,
    user: Writer,
    settings: Settings,
    lang: Language,
    body: Annotated[
        Any,
        Body(
            description='{"eas": [EA codes] (default: the whole commune), "min_eas", '
            '"max_eas" (default: the settings\' band), "redo": false}'
        ),
    ] = None,
    census_round: RoundQuery = "2029",
) -> AreaProposal:
    """Contiguous groups of the EAs not yet in an area (with `redo`: replacing the areas that
    hold any EA asked for), each of min–max EAs where the commune's shape allows, balanced by
    households, each with its outline and the reasons it breaks the band. Nothing is saved:
    send the groups to `POST …/supervisor-areas/batch` to keep them."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object", parameter="body")
    found = await proposals.propose_areas(conn, user, census_round, code, body, _band(settings))
    return AreaProposal(
        **{
            **localised({k: v for k, v in found.items() if k != "groups"}, lang),
            "groups": [ProposedArea(**localised(g, lang)) for g in found["groups"]],
        }
    )


@router.post("/communes/{code}/supervisor-areas/batch", summary="Save several supervisor areas")
async def save_areas(
    code: CommuneCode,
    conn: Conn,
    user: Writer,
    settings: Settings,
    lang: Language,
    body: Annotated[
        Any,
        Body(
            description='{"areas": [{"eas": [EA codes], "supervisor": staff code}], '
            '"replace": [area codes]}'
        ),
    ],
    census_round: RoundQuery = "2029",
    if_match: Annotated[
        str | None,
        Header(max_length=8000, description="the `etag` of the proposal or areas read"),
    ] = None,
) -> SupervisorAreas:
    """A confirmed proposal: the areas named in `replace` removed and every area listed made,
    each checked as one area is (contiguous, in the commune, in no other area), in one
    transaction: all saved or none, a refusal naming the EA codes. Needs If-Match with the
    proposal's `etag` (428 without; 412 naming the areas made, changed or removed since)."""
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object", parameter="body")
    await organise.save_areas(conn, user, census_round, code, body, if_match)
    return await _areas_doc(code, conn, user, EVERYWHERE, settings, lang, census_round)


@router.put("/communes/{code}/supervisor-areas/{area}", summary="Change a supervisor area")
async def change_area(
    code: CommuneCode,
    area: Annotated[int, Path(ge=1, le=2**63 - 1)],
    conn: Conn,
    user: Writer,
    settings: Settings,
    lang: Language,
    body: Annotated[Any, Body(description='{"eas": [EA codes], "supervisor": staff code}')],
    response: Response,
    census_round: RoundQuery = "2029",
    if_match: Annotated[
        str | None,
        Header(max_length=8000, description="the `etag` of the commune's areas as read"),
    ] = None,
) -> SupervisorAreas:
    """The area holds exactly the EAs listed, under the supervisor named (or none). Needs
    If-Match with the `etag` of the areas read (428 without; 412 naming the area when it
    changed since)."""
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object", parameter="body")
    await organise.save_area(conn, user, census_round, code, area, body, if_match)
    return await _written(code, conn, user, settings, lang, census_round, response)


@router.delete(
    "/communes/{code}/supervisor-areas/{area}", status_code=204, summary="Remove an area"
)
async def remove_area(
    code: CommuneCode,
    area: Annotated[int, Path(ge=1, le=2**63 - 1)],
    conn: Conn,
    user: Writer,
    if_match: Annotated[
        str | None,
        Header(max_length=8000, description="the `etag` of the commune's areas as read"),
    ] = None,
) -> None:
    """Its EAs stay, in no area. Needs If-Match with the `etag` of the areas read (428
    without; 412 naming the area when it changed or went since)."""
    await organise.drop_area(conn, user, code, area, if_match)


# ---- assignments, workload, progress ----


@router.put("/communes/{code}/assignments", summary="Assign EAs to enumerators")
async def assign(
    code: CommuneCode,
    conn: Conn,
    user: Writer,
    ops: EaOps,
    body: Annotated[Any, Body(description='{"assignments": [{"ea": code, "enumerator": code}]}')],
    census_round: RoundQuery = "2029",
) -> Workload:
    """All or nothing: each enumerator must work in the commune; null unassigns. The
    commune's workload table as it now is."""
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object", parameter="body")
    await organise.assign(conn, user, census_round, code, body.get("assignments"))
    return await workload(code, conn, user, EVERYWHERE, ops, census_round)


@router.post("/communes/{code}/assignments/proposal", summary="Propose assignments (not saved)")
async def propose_assignments(
    code: CommuneCode,
    conn: Conn,
    user: Writer,
    ops: EaOps,
    lang: Language,
    body: Annotated[Any, Body(description='{"eas": [EA codes] (default: all)}')] = None,
    census_round: RoundQuery = "2029",
) -> AssignmentProposal:
    """Enumerators for the EAs without one: one EA each while free enumerators last, then the
    EAs of each supervisor area shared among the enumerators working there, balanced by
    households and none above the workload band's top; EAs nobody can take are listed.
    Nothing is saved: send `assignments` to `PUT …/assignments` to keep them."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object", parameter="body")
    found = await proposals.propose_enumerators(
        conn, user, census_round, code, body, ops.rules.households_max
    )
    return AssignmentProposal(**localised(found, lang))


@router.get("/communes/{code}/workload", summary="Workload per enumerator in a commune")
async def workload(
    code: CommuneCode,
    conn: Conn,
    user: Reader,
    reads: EaScope,
    ops: EaOps,
    census_round: RoundQuery = "2029",
) -> Workload:
    """Households, area and EAs per enumerator; EAs outside the band, unassigned EAs,
    enumerators above or below the band."""
    commune = await organise.round_commune(conn, census_round, code)
    reads.check(commune.code, commune.province, "code")
    table = await organise.workload(conn, census_round, commune, ops.rules)
    return Workload(
        **{
            **table,
            "enumerators": [
                WorkloadRow(
                    **{
                        **r,
                        "enumerator": _member(r["enumerator"], user) if r["enumerator"] else None,
                    }
                )
                for r in table["enumerators"]
            ],
        }
    )


@router.get("/census/{census_round}/progress", summary="Progress across the communes of a scope")
async def progress(
    census_round: Round,
    conn: Conn,
    user: Reader,
    reads: EaScope,
    scope: Scope = None,
    vintage: Annotated[str | None, Query(pattern=CODE)] = None,
) -> Progress:
    """Every commune of the provinces or communes named (default: the user's scope): its
    EAs by status, assigned, in supervisor areas; communes without EAs are counted."""
    found = await organise.progress(
        conn, census_round, vintage, await _read_codes(conn, user, reads, scope, census_round)
    )
    return Progress(**{**found, "rows": [ProgressRow(**r) for r in found["rows"]]})


@router.get("/census/{census_round}/review", summary="The supervisors' review queue")
async def review(
    census_round: Round,
    conn: Conn,
    user: Reader,
    reads: EaScope,
    scope: Scope = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
) -> ReviewQueue:
    """Counts by status per commune, and the submitted EAs (oldest first) with what each
    gained and lost against its last approved (else first) version."""
    found = await organise.review_queue(
        conn, census_round, await _read_codes(conn, user, reads, scope, census_round), limit
    )
    return ReviewQueue(**{**found, "submitted": [ReviewEntry(**e) for e in found["submitted"]]})


@router.post("/census/{census_round}/listing", summary="Upload field listing figures")
async def listing(
    census_round: Round, request: Request, conn: Conn, user: Writer, lang: Language
) -> ListingResult:
    """A CSV with columns code, listed_dwellings, listed_households (UTF-8): every row is
    checked (known EA code of the round, in the user's scope, whole counts ≥ 0, no code
    twice) and then all are saved, or none."""
    raw = await request.body()
    if len(raw) > MAX_LISTING_BYTES:
        raise PayloadTooLarge("the listing is larger than 5 MB", parameter="body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameter("the listing must be UTF-8 text (CSV)", parameter="file") from exc
    saved = await organise.save_listing(conn, user, census_round, text)
    return ListingResult(saved=saved, message=said("listing_saved", count=saved).in_language(lang))


@router.get("/communes/{code}/ea-lines", summary="How far EA boundaries follow loaded lines")
async def ea_lines(
    code: CommuneCode, conn: Conn, reads: EaScope, census_round: RoundQuery = "2029"
) -> LineShare:
    """Length of the EA boundaries inside the commune, and how much of it runs along a
    loaded road, river or railway (within a few metres)."""
    commune = await organise.round_commune(conn, census_round, code)
    reads.check(commune.code, commune.province, "code")
    return LineShare(**await line_share(conn, commune, census_round))


@router.get("/communes/{code}/lines", summary="Loaded roads, rivers and railways near a commune")
async def lines(
    code: CommuneCode, conn: Conn, reads: EaScope, census_round: RoundQuery = "2029"
) -> Response:
    """GeoJSON of the lines EA boundaries follow, clipped to the commune's surroundings:
    read as the commune's EAs are (its province as the round's EAs know it)."""
    commune = await organise.round_commune(conn, census_round, code)
    reads.check(commune.code, commune.province, "code")
    return Response(await lines_near(conn, commune), media_type=GEOJSON)
