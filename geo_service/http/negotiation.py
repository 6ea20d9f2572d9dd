"""HTTP content negotiation: Accept and Accept-Encoding with their quality values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from geo_core.errors import NotAcceptable

# Set in a request's scope when its answer was chosen by Accept-Language (VaryByLanguage).
LANGUAGE_READ = "geo_service.language_read"


def qualities(header: str) -> dict[str, float]:
    """Each listed value (lower case) with its q (1 when not given; 0 means "not this")."""
    found: dict[str, float] = {}
    for item in header.split(","):
        value, *params = (part.strip() for part in item.split(";"))
        if not value:
            continue
        q = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(number), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # a q that is not a number accepts nothing
        found[value.lower()] = q
    return found


def _media_quality(accepted: Mapping[str, float], media_type: str) -> float:
    """The q the client gives a media type: its own entry, else type/*, else */*."""
    kind = media_type.split("/")[0]
    for candidate in (media_type, f"{kind}/*", "*/*"):
        if candidate in accepted:
            return accepted[candidate]
    return 0.0


def best_media_type(accept: str, offered: Sequence[str]) -> str:
    """The offered media type the client prefers (the first offered wins ties)."""
    if not accept.strip():
        return offered[0]
    accepted = qualities(accept)
    best, best_q = offered[0], 0.0
    for media_type in offered:
        q = _media_quality(accepted, media_type)
        if q > best_q:
            best, best_q = media_type, q
    if best_q == 0:
        raise NotAcceptable(
            f"none of the media types in Accept ({accept[:200]}) is offered "
            f"here; offered: {', '.join(offered)}",
            parameter="Accept",
            valid=list(offered),
        )
    return best


def accepts_encoding(header: str, encoding: str) -> bool:
    """Whether Accept-Encoding allows the content coding (named, or by `*`) with q > 0."""
    accepted = qualities(header)
    return accepted.get(encoding, accepted.get("*", 0.0)) > 0


def request_language(accept_language: str, languages: tuple[str, ...] = ("en", "vi")) -> str:
    """The language the client prefers among `languages` (Accept-Language); the first one
    (English) when it names none of them."""
    best, best_q = languages[0], 0.0
    for tag, q in qualities(accept_language).items():
        primary = tag.split("-")[0]
        if primary in languages and q > best_q:
            best, best_q = primary, q
    return best
