"""How an answer says that its indicator values are withheld while their disclosure
protection is re-checked after a change (they are hidden, not suppressed): headers a
client can act on without reading the body, and no cache keeps the answer."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi.responses import Response

# the indicators withheld, comma-separated (the body says the same in the client's language)
HEADER = "Disclosure-Rechecking"


def rechecking_headers(
    target: Response | MutableMapping[str, str], note: dict[str, Any] | None
) -> None:
    """Set the re-protection headers on a response (or a headers dict) when `note` is set."""
    if not note:
        return
    headers = target.headers if isinstance(target, Response) else target
    headers[HEADER] = ", ".join(note["indicators"])
    headers["Retry-After"] = str(note["retry_after"])
    headers["Cache-Control"] = "no-store"
