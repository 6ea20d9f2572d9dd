"""`/indicators`: the catalogue and disclosure-controlled values (JSON or CSV)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from geo_service.db import Conn
from geo_service.errors import InvalidParameter
from geo_service.indicators import read
from geo_service.indicators.catalogue import KINDS
from geo_service.negotiation import best_media_type
from geo_service.text import CODE, check_text

router = APIRouter(prefix="/indicators", tags=["indicators"])

CSV_COLUMNS = ("code", "name", "parent_code", "period", "value", "status", "moe")


@router.get("", summary="The indicator catalogue")
async def list_indicators(
    request: Request, conn: Conn,
    kind: Annotated[Literal[KINDS] | None, Query(description="filter by kind")] = None,  # type: ignore[valid-type]
    source: Annotated[str | None, Query(max_length=200, description="text in the source")] = None,
) -> dict[str, Any]:
    """Every indicator with links to its metadata and values."""
    if source is not None:
        source = check_text(source, "source", 200)
    entries = await read.list_indicators(conn, kind, source)
    base = str(request.url_for("list_indicators"))
    for entry in entries:
        entry["links"] = [{"rel": "self", "href": f"{base}/{entry['code']}"},
                          {"rel": "data", "href": f"{base}/{entry['code']}/values"}]
    return {"indicators": entries, "numberReturned": len(entries)}


@router.get("/{code}", summary="One indicator's metadata and series")
async def get_indicator(code: Annotated[str, Path(pattern=CODE)], conn: Conn) -> dict[str, Any]:
    """Metadata with the vintages, levels and periods available (and how derived ones were made)."""
    return await read.get_indicator(conn, code)


@router.get("/{code}/values", summary="Values of one indicator (suppressed values are null)",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
async def indicator_values(
    code: Annotated[str, Path(pattern=CODE)], conn: Conn, request: Request,
    vintage: Annotated[str | None, Query(pattern=CODE)] = None,
    level: Annotated[str | None, Query(pattern=CODE)] = None,
    period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
    parent: Annotated[str | None, Query(pattern=CODE, description="children of this unit")] = None,
    unit: Annotated[str | None, Query(pattern=CODE, description="one unit's code")] = None,
    f: Annotated[Literal["json", "csv"] | None, Query(
        description="output format (default: by the Accept header, else json)")] = None,
) -> Any:
    """Values by unit code and period, with status; CSV is UTF-8 with BOM for Excel."""
    if f is None:
        chosen = best_media_type(request.headers.get("accept", ""), ["application/json",
                                                                      "text/csv"])
        f = "csv" if chosen == "text/csv" else "json"
    meta = await read.get_indicator(conn, code)
    choice = read.choose_series(meta, vintage, level, period)
    if parent is not None:
        cur = await conn.execute("SELECT 1 FROM admin_unit WHERE vintage = %s AND code = %s"
                                 " AND level <> %s", (choice.vintage, parent, choice.level))
        if await cur.fetchone() is None:
            raise InvalidParameter(f"parent {parent!r} is not a unit of vintage "
                                   f"{choice.vintage}", parameter="parent")
    if unit is not None:
        cur = await conn.execute("SELECT 1 FROM admin_unit WHERE vintage = %s AND level = %s"
                                 " AND code = %s", (choice.vintage, choice.level, unit))
        if await cur.fetchone() is None:
            raise InvalidParameter(f"unit {unit!r} is not a {choice.level} of vintage "
                                   f"{choice.vintage}", parameter="unit")
    rows = await read.published_values(conn, choice, parent, unit)
    if f == "csv":
        return _csv_response(rows, f"{code}_{choice.vintage}_{choice.level}.csv")
    body = {"indicator": code, "vintage": choice.vintage, "level": choice.level,
            "period": choice.period, "unit": meta["unit"], "decimals": meta["decimals"],
            "numberReturned": len(rows), "values": rows}
    return JSONResponse(jsonable_encoder(body), headers={"Vary": "Accept"})


def _csv_response(rows: list[dict[str, Any]], filename: str) -> Response:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # BOM: Excel then reads the Vietnamese names as UTF-8
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore",
                            lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(buffer.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Vary": "Accept"})
