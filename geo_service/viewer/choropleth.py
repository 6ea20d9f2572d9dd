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
    note_vi: str | None = None
    # standard-deviation classes: the mean and SD their limits are measured in
    mean: float | None = None
    sd: float | None = None

    def class_of(self, value: float) -> int:
        """Index of the class holding `value`."""
        for i, upper in enumerate(self.breaks):
            if value <= upper:
                return i
        return len(self.breaks) - 1

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        """The JSON form, one entry per class (the note in `lang`, vi or en)."""
        # (no class at all when no unit has a value)
        lowers = [self.lower, *self.breaks[:-1]] if self.breaks else []
        sigma = {"mean": self.mean, "sd": self.sd} if self.mean is not None else {}
        return {
            **sigma,
            "method": self.method,
            "k": self.k,
            "palette": self.palette,
            "breaks": self.breaks,
            "colours": self.colours,
            "note": self.note_vi if lang == "vi" and self.note_vi else self.note,
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
    sigma: tuple[float | None, float | None] = (None, None)
    note_vi = None
    if len(distinct) == 0:
        return Classification(
            method,
            0,
            palette,
            [],
            None,
            [],
            [],
            no_value or {},
            "no unit has a value",
            "không đơn vị nào có giá trị",
        )
    if len(distinct) < k and method != "manual":
        k, note = len(distinct), f"only {len(distinct)} distinct values: {len(distinct)} classes"
        note_vi = f"chỉ có {len(distinct)} giá trị khác nhau: {len(distinct)} lớp"
    if len(distinct) < 3 and method != "manual":
        bins = [float(v) for v in distinct]
    elif method == "std_mean":
        mean, sd = float(data.mean()), float(data.std())
        bins = [mean + m * sd for m in _SD_MULTIPLES[k]]
        sigma = (mean, sd)
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
        note_vi = (
            f"{asked - len(breaks)} trong {asked} lớp nằm ngoài khoảng giá trị "
            f"({low:g}–{high:g}) nên được bỏ qua"
        )
    return Classification(
        method,
        len(breaks),
        palette,
        breaks,
        low,
        colours,
        counts,
        no_value or {},
        note,
        note_vi,
        *sigma,
    )


def _classes_reached(bins: list[float], low: float, high: float) -> list[int]:
    """Which of the classes that `bins` bound (class i ends at bins[i], the last at the
    maximum) hold values between low and high, in order."""
    reached = [i for i, b in enumerate(bins) if low <= b < high]
    above = next((i for i, b in enumerate(bins) if b >= high), len(bins))
    return [*reached, above]


def classify_change(
    values: list[float],
    k: int,
    palette: str,
    manual: list[float] | None = None,
    no_value: dict[str, int] | None = None,
) -> Classification:
    """Classes of a change, centred on zero for a diverging palette: decreases and increases
    split into quantiles each side (an odd k adds a middle class, the smallest 1/k of the
    changes around zero); classes keep their colours when one side has fewer or none."""
    if manual:
        return classify(values, "manual", k, palette, manual, no_value)
    if not 3 <= k <= 7:
        raise InvalidParameter("k must be between 3 and 7", parameter="k")
    data = np.asarray(values, dtype=float)
    if len(np.unique(data)) < 3:
        return classify(values, "quantiles", k, palette, None, no_value)
    side = k // 2
    middle = float(np.quantile(np.abs(data), 1 / k)) if k % 2 else 0.0
    below = data[data < -middle] if k % 2 else data[data < 0]
    above = data[data > middle] if k % 2 else data[data >= 0]
    colours_k = palette_colours(palette, k)
    classes: list[tuple[float, str]] = []  # (upper bound, colour), increasing
    if below.size:
        uppers = _side_uppers(below, side)
        # the decrease nearest zero takes the colour next to the middle
        classes += [(u, colours_k[side - len(uppers) + i]) for i, u in enumerate(uppers)]
    if k % 2 and np.any(np.abs(data) <= middle):
        classes.append((middle, colours_k[side]))
    if above.size:
        classes += [(u, colours_k[k - side + i]) for i, u in enumerate(_side_uppers(above, side))]
    breaks = [u for u, _ in classes]
    counts = np.bincount(np.searchsorted(breaks, data, side="left"), minlength=len(breaks)).tolist()
    return Classification(
        "change",
        len(breaks),
        palette,
        breaks,
        float(data.min()),
        [c for _, c in classes],
        counts,
        no_value or {},
    )


def _side_uppers(values: np.ndarray, n: int) -> list[float]:
    """Upper bounds of n quantile classes of the values (fewer when they coincide)."""
    uppers = [float(np.quantile(values, i / n)) for i in range(1, n)] + [float(values.max())]
    return sorted(set(uppers))
