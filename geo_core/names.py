"""Accent folding, so that "ho chi minh" finds "Hồ Chí Minh"."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def fold(text: str) -> str:
    """Lower-case, strip diacritics (đ → d) and collapse spaces."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped).strip().lower()


_PUNCTUATION = re.compile(r"[.,;:()\-_/']+")
# Words that name a unit's type, not the unit: "TP HCM", "Tỉnh Đồng Nai", "Phường Bến Nghé".
_TYPE_WORDS = re.compile(
    r"^(?:tp|thanh pho|tinh|xa|phuong|dac khu|thi xa|thi tran|quan|huyen|city|province|"
    r"ward|commune)\s+"
)
# Other names and abbreviations people type for a place, folded: alias → official name.
ALIASES: dict[str, str] = {
    "hcm": "ho chi minh",
    "hcmc": "ho chi minh",
    "tphcm": "ho chi minh",
    "sai gon": "ho chi minh",
    "saigon": "ho chi minh",
    "sg": "ho chi minh",
    "hochiminh": "ho chi minh",
    "ho chi minh city": "ho chi minh",
    "hn": "ha noi",
    "hanoi": "ha noi",
    "tphn": "ha noi",
    "hp": "hai phong",
    "haiphong": "hai phong",
    "danang": "da nang",
    "dng": "da nang",
    "cantho": "can tho",
    "tt hue": "hue",
    "thua thien hue": "hue",
}


def search_terms(text: str) -> list[tuple[str, bool]]:
    """What to look for when someone types `text`: the folded text without punctuation or a
    leading type word, and what an alias of it stands for (flagged True)."""
    typed = _SPACES.sub(" ", _PUNCTUATION.sub(" ", fold(text))).strip()
    terms: list[tuple[str, bool]] = []
    for candidate in (typed, _TYPE_WORDS.sub("", typed)):
        if candidate and (candidate, False) not in terms:
            terms.append((candidate, False))
    for candidate, _ in list(terms):
        official = ALIASES.get(candidate) or ALIASES.get(candidate.replace(" ", ""))
        if official and not any(term == official for term, _ in terms):
            terms.append((official, True))
    return terms
