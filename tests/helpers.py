"""Small helpers shared by tests."""

from __future__ import annotations

import psycopg
from psycopg import sql

BOUNDARY_TABLES = ("vintage", "admin_unit", "admin_unit_generalised", "crosswalk")


def fingerprint(conn: psycopg.Connection, tables: tuple[str, ...] = BOUNDARY_TABLES
                ) -> dict[str, tuple[int, str]]:
    """Row count and checksum of every row of each table: equal means byte-for-byte unchanged."""
    result = {}
    for table in tables:
        query = sql.SQL(
            "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
            " FROM {} t").format(sql.Identifier(table))
        row = conn.execute(query).fetchone()
        assert row is not None
        result[table] = (int(row[0]), str(row[1]))
    return result
