"""Refuse query parameters an operation does not define (OGC API – Features, Part 1).

A client that sends `filter=…` or `datetime=…` to a server that ignored them would take the
unfiltered answer for a filtered one: /req/core/query-param-unknown asks for a 400 instead.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from geo_core.errors import InvalidParameter

_KNOWN: dict[int, frozenset[str]] = {}  # id(route) → its query parameters


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters of an operation and of everything it depends on."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _known(route: APIRoute) -> frozenset[str]:
    known = _KNOWN.get(id(route))
    if known is None:
        known = _KNOWN[id(route)] = frozenset(_query_names(route.dependant))
    return known


async def reject_unknown_parameters(request: Request) -> None:
    """A 400 naming the first query parameter the operation does not define."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _known(route)
    for name, value in request.query_params.multi_items():
        # f=json is understood everywhere: clients such as OWSLib add it to every request
        if name not in known and not (name == "f" and value in ("json", "geojson")):
            listed = ", ".join(sorted(known)) or "none"
            raise InvalidParameter(
                f"unknown query parameter {name!r}; this operation takes: {listed}",
                parameter=name,
                valid=sorted(known),
            )
