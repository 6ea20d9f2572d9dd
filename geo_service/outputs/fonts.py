"""A cut of DejaVu Sans for the pages the service draws: only the characters they print
(Latin with every Vietnamese letter, punctuation, Greek, arrows, maths), made once with
fontTools into matplotlib's cache folder and registered under its own family name.

The cut keeps the legacy `kern` table and drops the OpenType layout tables (GSUB, GPOS,
GDEF) and the MATH table: every PDF embeds a subset of its fonts, made by fontTools from the
font's tables when the file is closed, and walking those tables took 0.2 s of each font's
0.25 s (an A4 field map embeds two fonts). Glyph positions stay those of the whole font
(the text is laid out with the `kern` table, which holds the same pairs as GPOS `kern`);
no ligature replaces "fi" or "fl", and the pages print precomposed (NFC) letters, which
need no mark positioning."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import matplotlib
from fontTools import subset
from fontTools.ttLib import TTFont
from matplotlib import font_manager

log = logging.getLogger(__name__)
CUT_VERSION = "2"  # (change when the ranges change: the cached files are made again)
# Basic Latin to Latin Extended-B (Ơ ơ Ư ư), IPA and spacing modifiers, combining marks,
# Greek, Latin Extended Additional (Ạ … ỹ), punctuation, super/subscripts, currencies,
# letterlike symbols, number forms, arrows, mathematical operators, box drawing, shapes
RANGES = [
    (0x20, 0x24F),
    (0x250, 0x2FF),
    (0x300, 0x36F),
    (0x370, 0x3FF),
    (0x1E00, 0x1EFF),
    (0x2000, 0x206F),
    (0x2070, 0x209F),
    (0x20A0, 0x20BF),
    (0x2100, 0x21FF),
    (0x2200, 0x22FF),
    (0x2500, 0x25FF),
]


def _source(family: str, bold: bool) -> Path:
    """The font file matplotlib uses for the family (the Debian one when registered)."""
    weight = "bold" if bold else "normal"
    return Path(font_manager.findfont(font_manager.FontProperties(family=family, weight=weight)))


def _cut(source: Path, target: Path, family: str) -> None:
    """Write the cut of `source` to `target` (atomically: processes may race)."""
    options = subset.Options()
    options.layout_features = []
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.glyph_names = True
    options.legacy_kern = True
    options.drop_tables = [*options.drop_tables, "FFTM", "GSUB", "GPOS", "GDEF", "MATH"]
    font = TTFont(str(source))
    cutter = subset.Subsetter(options)
    cutter.populate(unicodes=[c for lo, hi in RANGES for c in range(lo, hi + 1)])
    cutter.subset(font)
    for record in font["name"].names:  # family names only: the PostScript name stays
        if record.nameID in (1, 4, 16):
            record.string = record.toUnicode().replace(family, f"{family} VN")
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".ttf")
    os.close(handle)
    try:
        font.save(temporary)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def cut_font(family: str, bold: bool) -> str | None:
    """Register the cut of the family's (bold) font; its family name, or None when it cannot
    be made (the pages then use the whole font)."""
    try:
        source = _source(family, bold)
        stat = source.stat()
        key = hashlib.sha256(
            f"{source}|{stat.st_size}|{stat.st_mtime_ns}|{CUT_VERSION}".encode()
        ).hexdigest()[:16]
        folder = Path(matplotlib.get_cachedir()) / "geo-service-fonts"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{source.stem}-vn-{key}.ttf"
        if not target.exists():
            _cut(source, target, family)
        font_manager.fontManager.addfont(str(target))
    except (OSError, ValueError, KeyError) as exc:  # (a read-only cache, an odd font)
        log.warning("no cut of %s: %s; the whole font is used", family, exc)
        return None
    return f"{family} VN"
