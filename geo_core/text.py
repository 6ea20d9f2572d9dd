"""Text from clients and files: patterns for identifiers and codes, checks for free text."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from geo_core.errors import InvalidParameter

# Unit codes, vintages, levels, periods, indicator codes, EA codes: letters, digits, . _ -
CODE = r"^[0-9A-Za-z_.-]{1,32}$"
# A comma-separated list of codes (indicators, properties, sort keys with + or -)
CODE_LIST = r"^[0-9A-Za-z_.,+ -]*$"
# A CRS: EPSG:3405 or an OGC URI
CRS = r"^[0-9A-Za-z_.:/#-]{1,100}$"
# Comma-separated numbers (bbox, manual breaks)
NUMBERS = r"^[0-9eE.,+ -]*$"

# Bidirectional overrides and isolates can make text read differently from what it is
# ("Trojan Source"); there is no use for them in names, searches or reasons.
_BIDI_CONTROLS = {
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
}


def check_text(value: Any, parameter: str, max_length: int, multiline: bool = False) -> str:
    """Free text: a string without control or bidi characters or broken Unicode, as NFC."""
    if not isinstance(value, str):
        raise InvalidParameter(f"{parameter} must be a string", parameter=parameter)
    if len(value) > max_length:
        raise InvalidParameter(
            f"{parameter} is longer than {max_length} characters", parameter=parameter
        )
    allowed = "\n\t" if multiline else ""
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs" or char == "\ufffd":
            raise InvalidParameter(
                f"{parameter} is not valid Unicode (a lone surrogate or undecodable bytes)",
                parameter=parameter,
            )
        if (category == "Cc" and char not in allowed) or char in _BIDI_CONTROLS:
            raise InvalidParameter(
                f"{parameter} contains the control character U+{ord(char):04X}", parameter=parameter
            )
    return unicodedata.normalize("NFC", value)


def check_code(value: Any, parameter: str) -> str:
    """An identifier (unit code, vintage, EA code…): letters, digits, '.', '_' and '-'."""
    if not isinstance(value, str) or not re.fullmatch(CODE, value):
        shown = repr(value)[:60] if isinstance(value, str) else type(value).__name__
        raise InvalidParameter(
            f"{parameter} must be a code of up to 32 letters, digits, '.', '_' or '-', not {shown}",
            parameter=parameter,
        )
    return value


def as_code(value: object) -> str | None:
    """Codes are text; integral numbers (from numeric columns) become their digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def like_escape(text: str) -> str:
    """Escape LIKE wildcards so that '%' and '_' match themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def first_of(items: list[str], shown: int = 10) -> str:
    """The first items, comma-separated, and how many more there are."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


# Text a spreadsheet would run as a formula (OWASP, "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A CSV cell: text starting like a formula gets a leading quote; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
