"""Find units by name across the levels of a vintage, as people type them: without accents,
with abbreviations ("hcm", "TP HCM", "HN"), ranked exact → prefix → word → anywhere."""

from __future__ import annotations

from typing import Any

import psycopg

from geo_core.errors import InvalidParameter
from geo_core.names import search_terms
from geo_core.text import check_text
from geo_service.features import sql


async def search(
    conn: psycopg.AsyncConnection, text: str, vintage: str, limit: int = 10
) -> list[dict[str, Any]]:
    """The best matches of every level with their type, parent and the extent to show
    (the unit's main part: far islands left out)."""
    terms = search_terms(check_text(text, "q", 100))
    if not terms:
        raise InvalidParameter("q is empty", parameter="q")
    hits = await sql.search_units(conn, vintage, terms, limit)
    for hit in hits:
        hit["match"] = ("exact", "prefix", "word", "contains")[hit["score"] // 2]
        hit["alias"] = bool(hit.pop("score") % 2)
        hit["bbox"] = await sql.focus_extent(conn, vintage, hit["level"], hit["code"])
    return hits
