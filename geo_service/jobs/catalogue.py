"""The kinds of job offered, by process id (the runner and the HTTP edge look a job's kind
up here)."""

from __future__ import annotations

from geo_service.jobs import area_reports, ea_exports, map_books
from geo_service.jobs.kinds import Kind

KINDS: dict[str, Kind] = {
    kind.process: kind for kind in (map_books.KIND, area_reports.KIND, ea_exports.KIND)
}


def kind_of(process: str) -> Kind:
    """The kind of a job's process (a stored job of an unknown process is a bug)."""
    return KINDS[process]
