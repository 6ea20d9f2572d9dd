"""Class breaks for choropleth maps (mapclassify) with ColorBrewer palettes (via branca)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import mapclassify
import numpy as np
from branca.utilities import color_brewer

from geo_core.errors import InvalidParameter

METHODS = ("quantiles", "equal_interval", "natural_breaks", "std_mean", "manual")
METHOD_NAMES = {
    "quantiles": ("Phân vị", "Quantiles"),
    "equal_interval": ("Khoảng đều", "Equal interval"),
    "natural_breaks": ("Ngắt tự nhiên (Fisher–Jenks)", "Natural breaks (Fisher–Jenks)"),
    "std_mean": ("Độ lệch chuẩn", "Standard deviation"),
    "manual": ("Ngắt thủ công", "Manual breaks"),
}
# ColorBrewer schemes offered; all are colour-blind safe per ColorBrewer.
SEQUENTIAL = ("YlOrRd", "YlGnBu", "Blues", "Greens", "Purples", "OrRd", "PuBu", "YlOrBr")
DIVERGING = ("RdBu", "PuOr", "BrBG", "PRGn", "PiYG", "RdYlBu")
DEFAULT_SEQUENTIAL = "YlOrRd"
DEFAULT_DIVERGING = "RdBu"
# Standard-deviation class limits (in SDs from the mean) for k classes.
_SD_MULTIPLES = {
    3: [-1, 1],
    4: [-1, 0, 1],
    5: [-2, -1, 1, 2],
    6: [-2, -1, 0, 1, 2],
    7: [-3, -2, -1, 1, 2, 3],
}


@dataclass
class Classification:
    """Breaks, colours and counts of a choropleth, and what had no value."""

    method: str
    k: int
    palette: str
    breaks: list[float]  # upper bound of each class
    lower: float | None  # lower bound of the first class
    colours: list[str]
    counts: list[int]
    no_value: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    def class_of(self, value: float) -> int:
        """Index of the class holding `value`."""
        for i, upper in enumerate(self.breaks):
            if value <= upper:
                return i
        return len(self.breaks) - 1

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, one entry per class."""
        lowers = [self.lower, *self.breaks[:-1]]
        return {
            "method": self.method,
            "k": self.k,
            "palette": self.palette,
            "breaks": self.breaks,
            "colours": self.colours,
            "note": self.note,
            "classes": [
                {"lower": lo, "upper": up, "colour": c, "count": n}
                for lo, up, c, n in zip(lowers, self.breaks, self.colours, self.counts, strict=True)
            ],
            "no_value": self.no_value,
        }


def palette_colours(palette: str, k: int) -> list[str]:
    """k ColorBrewer colours of the named scheme."""
    if palette not in SEQUENTIAL + DIVERGING:
        raise InvalidParameter(
            f"unknown palette {palette!r}; palettes: {', '.join(SEQUENTIAL + DIVERGING)}",
            parameter="palette",
        )
    if k < 3:  # ColorBrewer starts at 3 classes; take the ends of the 3-class scheme
        three = color_brewer(palette, 3)
        return [three[0], three[-1]][:k] if k == 2 else [three[-1]][:k]
    return list(color_brewer(palette, k))


def _classifier(values: np.ndarray, method: str, k: int, manual: list[float] | None) -> Any:
    if method == "quantiles":
        return mapclassify.Quantiles(values, k=k)
    if method == "equal_interval":
        return mapclassify.EqualInterval(values, k=k)
    if method == "natural_breaks":
        return mapclassify.FisherJenks(values, k=k)
    if not manual:
        raise InvalidParameter("manual classification needs breaks=", parameter="breaks")
    return mapclassify.UserDefined(values, bins=sorted(manual))


def _tidy_breaks(bins: list[float], low: float, high: float) -> list[float]:
    """Increasing upper bounds within the data's range, the last one being its maximum."""
    inside = sorted({b for b in bins if low <= b < high})
    return [*inside, high]


def classify(
    values: list[float],
    method: str,
    k: int,
    palette: str,
    manual: list[float] | None = None,
    no_value: dict[str, int] | None = None,
) -> Classification:
    """Classify the values; fewer distinct values than classes still gives a valid legend."""
    if method not in METHODS:
        raise InvalidParameter(
            f"unknown method {method!r}; methods: {', '.join(METHODS)}", parameter="method"
        )
    if not 3 <= k <= 7:
        raise InvalidParameter("k must be between 3 and 7", parameter="k")
    data = np.asarray(values, dtype=float)
    distinct = np.unique(data)
    note = None
    if len(distinct) == 0:
        return Classification(
            method, 0, palette, [], None, [], [], no_value or {}, "no unit has a value"
        )
    if len(distinct) < k and method != "manual":
        k, note = len(distinct), f"only {len(distinct)} distinct values: {len(distinct)} classes"
    if len(distinct) < 3 and method != "manual":
        bins = [float(v) for v in distinct]
    elif method == "std_mean":
        mean, sd = float(data.mean()), float(data.std())
        bins = [mean + m * sd for m in _SD_MULTIPLES[k]]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mapclassify warns when it merges classes
            bins = [float(b) for b in _classifier(data, method, k, manual).bins]
    low, high = float(data.min()), float(data.max())
    breaks = _tidy_breaks(bins, low, high)
    counts = np.bincount(np.searchsorted(breaks, data, side="left"), minlength=len(breaks)).tolist()
    if method == "std_mean" and len(breaks) < k:
        # the classes the data reach keep their colours: the mean's class stays the middle one
        colours = [palette_colours(palette, k)[i] for i in _classes_reached(bins, low, high)]
    else:
        colours = palette_colours(palette, len(breaks))
    if note is None and method in ("std_mean", "manual") and len(breaks) < len(bins) + 1:
        asked = len(bins) + 1
        note = (
            f"{asked - len(breaks)} of the {asked} classes lie outside the values "
            f"({low:g}–{high:g}) and are left out"
        )
    return Classification(
        method, len(breaks), palette, breaks, low, colours, counts, no_value or {}, note
    )


def _classes_reached(bins: list[float], low: float, high: float) -> list[int]:
    """Which of the classes that `bins` bound (class i ends at bins[i], the last at the
    maximum) hold values between low and high, in order."""
    reached = [i for i, b in enumerate(bins) if low <= b < high]
    above = next((i for i, b in enumerate(bins) if b >= high), len(bins))
    return [*reached, above]
