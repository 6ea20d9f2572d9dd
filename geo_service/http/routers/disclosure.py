"""`/admin/disclosure/audit`: the disclosure audit for staff (administrators only)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from geo_core.errors import Forbidden, InvalidParameter, NotFound, Unauthorized
from geo_core.text import CODE
from geo_service.http.auth import MaybeUser
from geo_service.http.deps import Conn, ServicesDep
from geo_service.http.documents import DisclosureAudit, SeriesAuditDocument
from geo_service.users import User
from indicators import read
from indicators.protect import audit_at

router = APIRouter(prefix="/admin/disclosure", tags=["admin"])


async def administrator(user: MaybeUser) -> User:
    """The audit shows what is hidden and how narrowly: administrators only."""
    if user is None:
        raise Unauthorized("this needs a token: Authorization: Bearer …", parameter="Authorization")
    if user.role != "admin":
        raise Forbidden(f"user {user.name} is not an administrator")
    return user


Administrator = Annotated[User, Depends(administrator)]


@router.get("/audit", summary="Each series' hidden cells against their protection ranges")
async def disclosure_audit(
    user: Administrator,
    conn: Conn,
    services: ServicesDep,
    indicator: Annotated[
        list[Annotated[str, Query(pattern=CODE)]] | None,
        Query(description="these indicators (default: all)"),
    ] = None,
) -> DisclosureAudit:
    """Recomputed from what is served: per series the hidden cells, the narrowest interval an
    attacker can deduce by linear programming, and every cell below its protection range."""
    for code in indicator or []:
        try:
            await read.get_indicator(conn, code)
        except NotFound as exc:
            raise InvalidParameter(exc.message, parameter="indicator") from exc
    # (as the owner: the audit reads stored values, which the service's role may not)
    report = await asyncio.to_thread(audit_at, services.owner_url, indicator)
    series = [SeriesAuditDocument(**vars(s)) for s in report]
    return DisclosureAudit(passed=not any(s.below for s in series), series=series)
