"""The static files (scripts, stylesheets, vendored libraries) with the caching they allow."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

IMMUTABLE = "public, max-age=31536000, immutable"
# an unversioned or old URL is asked again each time: its file changes with a new release
REVALIDATE = "no-cache"
_VERSION = re.compile(r"^[0-9a-f]{1,64}$")


class StaticWithRevalidation(StaticFiles):
    """`/static/...`: the files, revalidated on each use (ETag) rather than kept stale."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file, marked to be revalidated."""
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = REVALIDATE
        return response


class VersionedStatic(StaticFiles):
    """`/static/v/<version>/...`: the same files; under this release's version they never
    change, so browsers keep them for good and a second visit fetches none of them."""

    def __init__(self, directory: Path, version: str) -> None:
        super().__init__(directory=directory)
        self.version = version

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file; cached for good under the current version, revalidated under another
        (a page opened before a new release still gets today's files)."""
        # (`path` is the normalised path under the mount, with the OS's separator)
        version, _, rest = Path(path).as_posix().partition("/")
        if not _VERSION.match(version) or not rest:
            raise HTTPException(status_code=404)
        response = await super().get_response(rest, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = IMMUTABLE if version == self.version else REVALIDATE
        return response
