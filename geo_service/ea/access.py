"""Who may read which enumeration areas: the one read policy every EA read goes through.

With public reads everyone reads every EA. With private reads (`GEO_SERVICE_PUBLIC_READS=
false`) a user reads the EAs of the provinces and communes of their scope, whatever the
route (items, one item, history, coverage, tiles, downloads, field maps, map books, the
census organisation); an admin, and a viewer given no scope (a national reader), read all.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from geo_core.errors import Forbidden
from geo_service.ea import sql
from geo_service.messages import said
from geo_service.users import User


@dataclass(frozen=True)
class ReadScope:
    """The EAs a reader may see: those of communes in `codes` or of communes whose
    province is in `codes` (None: every EA)."""

    codes: tuple[str, ...] | None = None
    reader: str = "anonymous"

    @property
    def everywhere(self) -> bool:
        """Whether nothing is hidden from this reader."""
        return self.codes is None

    def covers(self, commune: str, province: str | None) -> bool:
        """Whether the commune (in the province) is readable."""
        if self.codes is None:
            return True
        return commune in self.codes or (province is not None and province in self.codes)

    def check(self, commune: str, province: str | None, parameter: str = "commune") -> None:
        """403 naming the parameter when the commune is outside the scope."""
        if not self.covers(commune, province):
            raise Forbidden(
                said("out_of_scope", commune=commune, user=self.reader), parameter=parameter
            )


EVERYWHERE = ReadScope()


def read_scope(user: User | None, public_reads: bool) -> ReadScope:
    """The EAs the user may read under the configured read policy."""
    if public_reads:
        return EVERYWHERE
    if user is None:  # (routes refuse anonymous private reads first; nothing, to be sure)
        return ReadScope((), "anonymous")
    if user.role == "admin" or (user.role == "viewer" and not user.scope):
        return ReadScope(None, user.name)
    return ReadScope(tuple(user.scope), user.name)


async def check_commune(
    conn: psycopg.AsyncConnection,
    scope: ReadScope,
    commune: str,
    parameter: str = "commune",
    vintage: str | None = None,
) -> None:
    """403 naming the parameter when the commune is outside the scope; its province is the
    one of `vintage` (an EA's own boundary vintage; None: the latest), as lists read it."""
    if scope.everywhere or commune in (scope.codes or ()):
        return
    row = await sql.commune_with_province(conn, commune, vintage)
    scope.check(commune, row["province"] if row else None, parameter)


async def check_codes(
    conn: psycopg.AsyncConnection,
    scope: ReadScope,
    codes: list[str],
    parameter: str = "scope",
    census_round: str | None = None,
) -> None:
    """403 naming the parameter unless every province or commune code asked for lies in the
    scope (a province only when the whole province is in it); a commune's province is the
    one of the vintage the round's EAs lie in (the latest without a round or EAs)."""
    for code in codes:
        if len(code) == 5:
            vintage = (
                await sql.round_commune_vintage(conn, census_round, code) if census_round else None
            )
            await check_commune(conn, scope, code, parameter, vintage)
        elif not scope.everywhere and code not in (scope.codes or ()):
            raise Forbidden(
                said("code_out_of_scope", code=code, user=scope.reader), parameter=parameter
            )
