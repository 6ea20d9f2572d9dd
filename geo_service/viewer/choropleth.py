"""Class breaks for choropleth maps (mapclassify) with ColorBrewer palettes (via branca)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import mapclassify
import numpy as np
from branca.utilities import color_brewer

from geo_core.errors import InvalidParameter
from geo_service.viewer.natural_breaks import fisher_jenks_bins

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
    # the lower limit of each class, where it is not the limit of the class below (a change
    # map's classes either side of zero)
    lowers: list[float] | None = None

    def class_of(self, value: float) -> int:
        """Index of the class holding `value`."""
        for i, upper in enumerate(self.breaks):
            if value <= upper:
                return i
        return len(self.breaks) - 1

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        """The JSON form, one entry per class (the note in `lang`, vi or en)."""
        # (no class at all when no unit has a value)
        lowers: list[float | None] = list(self.lowers or ()) or (
            [self.lower, *self.breaks[:-1]] if self.breaks else []
        )
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


class Shortfall(Enum):
    """Why a classification has fewer classes than were asked for."""

    DISTINCT = "distinct"  # fewer distinct values than classes
    TIES = "ties"  # tied values: several class limits fall on the same value
    OUTSIDE = "outside"  # fixed limits (σ bands, manual) beyond the values
    NO_DECREASE = "no_decrease"  # a change map with no decrease: no class below zero
    NO_INCREASE = "no_increase"  # a change map with no increase: no class above zero
    SMALL_DECREASES = "small_decreases"  # every decrease within the middle class
    SMALL_INCREASES = "small_increases"  # every increase within the middle class
    SIDES = "sides"  # a change map's sides have too few distinct values for their classes


def number_text(value: float, lang: str) -> str:
    """A number as `:g` gives it (six significant digits), written the language's way:
    1.234,5 in Vietnamese, 1,234.5 in English (a note sits in a page of that language)."""
    if not value or not math.isfinite(value):
        return f"{value:g}"
    digits = max(0, 5 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.translate(_VI_MARKS) if lang == "vi" else text


_VI_MARKS = str.maketrans(",.", ".,")


def fewer_classes_note(
    asked: int,
    got: int,
    why: Shortfall,
    low: float = 0.0,
    high: float = 0.0,
    distinct: int = 0,
) -> tuple[str, str]:
    """The legend's note, in English and Vietnamese, when fewer classes than asked are made:
    the one wording for every map (choropleth, change map, export)."""
    reasons = {
        Shortfall.DISTINCT: (
            f"there are only {number_text(distinct, 'en')} distinct values",
            f"chỉ có {number_text(distinct, 'vi')} giá trị khác nhau",
        ),
        Shortfall.TIES: (
            "many units share the same values, so some class limits coincide",
            "nhiều đơn vị có cùng giá trị nên một số ngưỡng lớp trùng nhau",
        ),
        Shortfall.OUTSIDE: (
            f"{asked - got} of the {asked} classes lie outside the values "
            f"({number_text(low, 'en')}–{number_text(high, 'en')}) and are left out",
            f"{asked - got} trong {asked} lớp nằm ngoài khoảng giá trị "
            f"({number_text(low, 'vi')}–{number_text(high, 'vi')}) nên được bỏ qua",
        ),
        Shortfall.NO_DECREASE: (
            "no unit decreased, so the classes below zero are left out",
            "không đơn vị nào giảm nên các lớp dưới 0 được bỏ qua",
        ),
        Shortfall.NO_INCREASE: (
            "no unit increased, so the classes above zero are left out",
            "không đơn vị nào tăng nên các lớp trên 0 được bỏ qua",
        ),
        Shortfall.SMALL_DECREASES: (
            "every decrease lies within the middle class around zero, so the classes below "
            "it are left out",
            "mọi mức giảm đều nằm trong lớp giữa quanh 0 nên các lớp phía dưới được bỏ qua",
        ),
        Shortfall.SMALL_INCREASES: (
            "every increase lies within the middle class around zero, so the classes above "
            "it are left out",
            "mọi mức tăng đều nằm trong lớp giữa quanh 0 nên các lớp phía trên được bỏ qua",
        ),
        Shortfall.SIDES: (
            "the decreases or increases have too few distinct values for their classes",
            "phần giảm hoặc phần tăng có quá ít giá trị khác nhau cho số lớp của nó",
        ),
    }
    en, vi = reasons[why]
    return (
        f"{asked} classes asked for, only {got} possible: {en}",
        f"{asked} lớp được yêu cầu, chỉ có {got} lớp: {vi}",
    )


# Standard-deviation classes describe values spread roughly symmetrically about their mean;
# beyond this skewness (Bulmer's "highly skewed") a few extreme units stretch the σ bands
# and most units share one class (a normal spread puts 68 % within ±1σ: a full class alone
# says nothing)
SKEWNESS_LIMIT = 1.0


def skewness(values: list[float]) -> float:
    """The sample skewness (third standardised moment) of the values; 0 when they are equal."""
    data = np.asarray(values, dtype=float)
    if data.size < 3:
        return 0.0
    centred = data - data.mean()
    m2 = float(np.mean(centred**2))
    return float(np.mean(centred**3)) / m2**1.5 if m2 > 0 else 0.0


def skew_advice(values: list[float], result: Classification, lang: str) -> dict[str, str] | None:
    """For standard-deviation classes of highly skewed values (as a density's long tail is),
    the advice to classify by quantiles instead, in `lang`, naming how many units share the
    fullest class: statistical cartography advises σ classes for roughly symmetric values."""
    total = sum(result.counts)
    if result.method != "std_mean" or total < 10 or abs(skewness(values)) <= SKEWNESS_LIMIT:
        return None
    n, of = number_text(max(result.counts), lang), number_text(total, lang)
    text = {
        "en": f"The values are skewed: {n} of {of} units fall in one class. Standard "
        "deviation classes suit values spread evenly about their mean; quantiles or natural "
        "breaks show the differences between these units.",
        "vi": f"Số liệu phân bố lệch: {n}/{of} đơn vị nằm trong cùng một lớp. Phân lớp "
        "theo độ lệch chuẩn hợp với số liệu phân bố đều quanh trung bình; phân vị hoặc ngắt "
        "tự nhiên thể hiện rõ hơn khác biệt giữa các đơn vị này.",
    }
    return {"text": text["vi" if lang == "vi" else "en"], "method": "quantiles"}


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


def _bins(values: np.ndarray, method: str, k: int, manual: list[float] | None) -> np.ndarray:
    if method == "quantiles":
        return np.asarray(mapclassify.Quantiles(values, k=k).bins)
    if method == "equal_interval":
        return np.asarray(mapclassify.EqualInterval(values, k=k).bins)
    if method == "natural_breaks":
        return fisher_jenks_bins(values, k)
    if not manual:
        raise InvalidParameter("manual classification needs breaks=", parameter="breaks")
    return np.asarray(mapclassify.UserDefined(values, bins=sorted(manual)).bins)


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
    note: str | None = None
    note_vi: str | None = None
    sigma: tuple[float | None, float | None] = (None, None)
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
    asked = k
    k = min(k, len(distinct)) if method != "manual" else k
    if len(distinct) < 3 and method != "manual":
        bins = [float(v) for v in distinct]
    elif method == "std_mean":
        mean, sd = float(data.mean()), float(data.std())
        bins = [mean + m * sd for m in _SD_MULTIPLES[k]]
        sigma = (mean, sd)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mapclassify warns when it merges classes
            bins = [float(b) for b in _bins(data, method, k, manual)]
    low, high = float(data.min()), float(data.max())
    breaks = _tidy_breaks(bins, low, high)
    counts = np.bincount(np.searchsorted(breaks, data, side="left"), minlength=len(breaks)).tolist()
    if method == "std_mean" and len(breaks) < k:
        # the classes the data reach keep their colours: the mean's class stays the middle one
        colours = [palette_colours(palette, k)[i] for i in _classes_reached(bins, low, high)]
    else:
        colours = palette_colours(palette, len(breaks))
    if method == "manual" and len(breaks) < len(bins) + 1:
        note, note_vi = fewer_classes_note(len(bins) + 1, len(breaks), Shortfall.OUTSIDE, low, high)
    elif method != "manual" and len(breaks) < asked:
        if len(distinct) < asked:
            why = Shortfall.DISTINCT
        else:  # σ bands the values never reach, or quantiles etc. merged on tied values
            why = Shortfall.OUTSIDE if method == "std_mean" else Shortfall.TIES
        note, note_vi = fewer_classes_note(asked, len(breaks), why, low, high, len(distinct))
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
    method: str = "quantiles",
) -> Classification:
    """Classes of a change on a diverging palette, split at zero whatever the method: the
    decreases are classified among themselves and take the colours below the palette's
    middle, the increases likewise above it, so no class holds both a decrease and an
    increase. An odd k adds a middle class around zero (the smallest 1/k of the changes, or
    one standard deviation either side); with an even k or manual limits, zero is a limit and
    a zero change sits with the increases. Classes keep their colours when a side has fewer."""
    if method not in METHODS:
        raise InvalidParameter(
            f"unknown method {method!r}; methods: {', '.join(METHODS)}", parameter="method"
        )
    if not 3 <= k <= 7:
        raise InvalidParameter("k must be between 3 and 7", parameter="k")
    data = np.asarray(values, dtype=float)
    if method == "manual" or manual:
        if not manual:
            raise InvalidParameter("manual classification needs breaks=", parameter="breaks")
        return _manual_change(data, manual, palette, no_value)
    if data.size == 0:
        return classify(values, "quantiles", k, palette, None, no_value)
    side = k // 2
    # the spread around zero, not around the mean: a change's σ bands are measured from 0
    sd = float(np.sqrt(np.mean(data**2)))
    middle = _middle(data, k, method, sd) if k % 2 else None
    if middle is None:
        below, above, centre = data[data < 0], data[data >= 0], data[:0]
    elif middle > 0:
        inside = (data > -middle) & (data <= middle)
        below, above, centre = data[data <= -middle], data[data > middle], data[inside]
    else:
        below, above, centre = data[data < 0], data[data > 0], data[data == 0]
    decreases = _side_classes(below, side, k, method, sd, negative=True)
    increases = _side_classes(above, side, k, method, sd, negative=False)
    if middle and decreases:
        # (the decreases end where the middle class starts: the legend's limits meet)
        decreases[-1] = (-middle, decreases[-1][1])
    colours = palette_colours(palette, k)
    classes = [(u, colours[side - 1 - rank]) for u, rank in decreases]
    if centre.size:
        classes.append((middle or 0.0, colours[side]))
    classes += [(u, colours[k - side + rank]) for u, rank in increases]
    lowers = _lowers(data, len(decreases), middle if centre.size else None, classes)
    result = _change_classification("change", palette, data, classes, lowers, no_value)
    if len(classes) < k:
        why = _change_shortfall(data, k, method, bool(decreases), bool(increases))
        low, high = float(data.min()), float(data.max())
        distinct = len(np.unique(data))
        result.note, result.note_vi = fewer_classes_note(k, len(classes), why, low, high, distinct)
    return result


def _change_shortfall(
    data: np.ndarray, k: int, method: str, decreases: bool, increases: bool
) -> Shortfall:
    """Why a change map has fewer classes than asked: the first reason a planner can act on."""
    distinct = len(np.unique(data))
    if distinct > 1 and not decreases:
        return Shortfall.NO_DECREASE if data.min() >= 0 else Shortfall.SMALL_DECREASES
    if distinct > 1 and not increases:
        return Shortfall.NO_INCREASE if data.max() <= 0 else Shortfall.SMALL_INCREASES
    if distinct < k:
        return Shortfall.DISTINCT
    return Shortfall.OUTSIDE if method == "std_mean" else Shortfall.SIDES


def _middle(data: np.ndarray, k: int, method: str, sd: float) -> float:
    """Half the width of the middle class of an odd k (0: it holds only the zeros)."""
    if len(np.unique(data)) < 3:
        return 0.0
    if method == "std_mean":
        return sd
    return float(np.quantile(np.abs(data), 1 / k))


def _side_bins(
    x: np.ndarray, n: int, k: int, method: str, sd: float, negative: bool
) -> list[float]:
    """Inner class limits of n classes of one side's values (without its outer end)."""
    if n <= 1:
        return []
    if method == "std_mean":
        edge = 1 if k % 2 else 0  # (±1σ bounds the middle class of an odd k)
        return [m * sd for m in _SD_MULTIPLES[k] if (m < -edge if negative else m > edge)]
    distinct = np.unique(x)
    if len(distinct) <= n:
        return [float(v) for v in distinct[:-1]]
    if method == "equal_interval":
        lo, hi = float(x.min()), float(x.max())
        return [lo + (hi - lo) * i / n for i in range(1, n)]
    if method == "natural_breaks":
        return [float(b) for b in fisher_jenks_bins(x, n)[:-1]]
    return [float(np.quantile(x, i / n)) for i in range(1, n)]


def _side_classes(
    x: np.ndarray, n: int, k: int, method: str, sd: float, negative: bool
) -> list[tuple[float, int]]:
    """(upper limit, rank away from zero) of the classes of one side, increasing."""
    if x.size == 0:
        return []
    bins = sorted(set(_side_bins(x, n, k, method, sd, negative)))
    return _ranked(x, bins, negative, by_band=method == "std_mean")


def _ranked(
    x: np.ndarray, bins: list[float], negative: bool, by_band: bool
) -> list[tuple[float, int]]:
    """The classes `bins` make of one side's values, each with its rank away from zero: by
    the band it lies in (fixed limits: σ multiples, manual), or by position."""
    lo, hi = float(x.min()), float(x.max())
    uppers = [*(b for b in bins if lo <= b < hi), hi]
    if by_band:
        ranks = [sum(b >= u if negative else b < u for b in bins) for u in uppers]
    else:
        ranks = [len(uppers) - 1 - i if negative else i for i in range(len(uppers))]
    return list(zip(uppers, ranks, strict=True))


def _lowers(
    data: np.ndarray, n_below: int, middle: float | None, classes: list[tuple[float, str]]
) -> list[float]:
    """The lower limit of each class: zero (or the middle class's) between the sides."""
    lowers: list[float] = []
    for i in range(len(classes)):
        if i == 0:
            lowers.append(float(data.min()) if n_below else _first_lower(data, middle))
        elif i == n_below and middle is not None:
            lowers.append(0.0 - middle)  # (not −0.0)
        elif i == n_below + (middle is not None):
            lowers.append(middle if middle is not None else 0.0)
        else:
            lowers.append(classes[i - 1][0])
    return lowers


def _first_lower(data: np.ndarray, middle: float | None) -> float:
    """Lower limit of the first class when there are no decreases."""
    if middle is not None:
        return min(-middle, float(data.min()))
    return min(0.0, float(data.min()))


def _manual_change(
    data: np.ndarray, manual: list[float], palette: str, no_value: dict[str, int] | None
) -> Classification:
    """Manual limits of a change: zero is always a limit (the limits either side give the
    classes of that side; a limit at 0 is implied), each side coloured by its bands."""
    if data.size == 0:
        return classify([], "manual", 3, palette, manual, no_value)
    negative = sorted({b for b in manual if b < 0})
    positive = sorted({b for b in manual if b > 0})
    n = max(len(negative), len(positive)) + 1  # classes a side may have
    below, above = data[data < 0], data[data >= 0]
    decreases = _ranked(below, negative, True, by_band=True) if below.size else []
    increases = _ranked(above, positive, False, by_band=True) if above.size else []
    colours = palette_colours(palette, 2 * n)
    classes = [(u, colours[n - 1 - rank]) for u, rank in decreases]
    classes += [(u, colours[n + rank]) for u, rank in increases]
    lowers = _lowers(data, len(decreases), None, classes)
    return _change_classification("manual", palette, data, classes, lowers, no_value)


def _change_classification(
    method: str,
    palette: str,
    data: np.ndarray,
    classes: list[tuple[float, str]],
    lowers: list[float],
    no_value: dict[str, int] | None,
) -> Classification:
    breaks = [u for u, _ in classes]
    counts = np.bincount(np.searchsorted(breaks, data, side="left"), minlength=len(breaks)).tolist()
    return Classification(
        method,
        len(breaks),
        palette,
        breaks,
        lowers[0],
        [c for _, c in classes],
        counts,
        no_value or {},
        lowers=lowers,
    )
