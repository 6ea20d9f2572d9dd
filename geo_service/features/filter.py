"""OGC API – Features Part 3 filters: CQL2 text or JSON, read and checked into a typed tree
that `features.sql` turns into SQL (identifiers from the queryables, every value bound).

The text encoding is parsed by `cql2` (cql2-rs, a maintained parser that follows the
standard's grammar; pygeofilter 0.4's CQL2 text grammar lacks the standard's T_ functions,
open intervals and '' quoting) into CQL2 JSON; both encodings are then checked here against
the collection's queryables and their types. Every problem is an InvalidParameter naming
`filter` with its position: a character of the text, or a JSON pointer into the JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, NoReturn

import cql2
import shapely
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from geo_core.errors import InvalidParameter

MAX_CHARACTERS = 10_000  # (a filter travels in the URL)
MAX_NESTING = 32  # parentheses and prefix operators: the parser recurses on them
MAX_PREDICATES = 200
MAX_LIST = 1_000  # values of one IN list
MAX_VERTICES = 10_000  # of the geometries in a filter, together

LANGUAGES = ("cql2-text", "cql2-json", "cql-text")  # cql-text: the draft's name (GDAL sends it)

Kind = str  # "string", "number", "boolean", "instant", "geometry"


# ---- the checked tree ----


@dataclass(frozen=True)
class Prop:
    """A queryable property."""

    name: str
    kind: Kind


@dataclass(frozen=True)
class Value:
    """A literal: str, float, bool, an aware datetime, or a geometry's WKB (in filter-crs)."""

    value: Any
    kind: Kind


@dataclass(frozen=True)
class CaseI:
    """CASEI(…): a text compared without regard to case."""

    operand: Operand
    kind: Kind = "string"


Operand = Prop | Value | CaseI


@dataclass(frozen=True)
class Span:
    """A time: an instant (start is end) or an interval; None is an open end ('..')."""

    start: Operand | None
    end: Operand | None


@dataclass(frozen=True)
class Compare:
    """=, <>, <, <=, >, >= between two operands of one kind."""

    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Like:
    """A text against a LIKE pattern (% any text, _ one character, backslash escapes)."""

    value: Operand
    pattern: Operand


@dataclass(frozen=True)
class Between:
    """A number within [low, high]."""

    value: Operand
    low: Operand
    high: Operand


@dataclass(frozen=True)
class In:
    """An operand equal to one of a list."""

    value: Operand
    options: tuple[Operand, ...]


@dataclass(frozen=True)
class IsNull:
    """An operand without a value (a suppressed or unavailable indicator value included)."""

    operand: Operand


@dataclass(frozen=True)
class Not:
    """The negation of a condition."""

    condition: Condition


@dataclass(frozen=True)
class Combine:
    """`and` / `or` of conditions."""

    op: str
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Spatial:
    """S_INTERSECTS, S_WITHIN, … between two geometries."""

    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Temporal:
    """T_AFTER, T_INTERSECTS, … between two times."""

    op: str
    left: Span
    right: Span


@dataclass(frozen=True)
class Const:
    """TRUE or FALSE."""

    value: bool


Condition = Compare | Like | Between | In | IsNull | Not | Combine | Spatial | Temporal | Const


@dataclass(frozen=True)
class Filter:
    """A checked filter and the properties it reads."""

    condition: Condition
    properties: tuple[str, ...] = ()
    # the text and its language as the client sent them (a background job checks them again)
    source: tuple[str, str] = ("", "")


COMPARISONS = {"=", "<>", "<", "<=", ">", ">="}
SPATIAL = {
    "s_intersects",
    "s_disjoint",
    "s_contains",
    "s_within",
    "s_touches",
    "s_crosses",
    "s_overlaps",
    "s_equals",
}
TEMPORAL = {
    "t_after",
    "t_before",
    "t_contains",
    "t_disjoint",
    "t_during",
    "t_equals",
    "t_finishedby",
    "t_finishes",
    "t_intersects",
    "t_meets",
    "t_metby",
    "t_overlappedby",
    "t_overlaps",
    "t_startedby",
    "t_starts",
}
# how an operation is written in the text (for the position of a problem)
_TEXT_TOKENS = {"isNull": ("IS",), "<>": ("<>", "!="), "like": ("LIKE", "ILIKE")}


# ---- reading the text ----

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      |(?P<string>'(?:[^']|'')*')
      |(?P<quoted>"(?:[^"]|"")*")
      |(?P<word>[A-Za-z_][A-Za-z0-9_:.]*)
      |(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
      |(?P<op><=|>=|<>|!=|[=<>(),+\-*/%^\[\]])""",
    re.VERBOSE,
)
_PREFIX_AFTER = {"AND", "OR", "NOT", "BETWEEN", "IN", "LIKE", "ILIKE", "IS"}


def _ends_operand(previous: str | None) -> bool:
    """Whether the token before ends an operand, so that a minus after it subtracts; after
    anything else (an operator, another minus) it negates, and each negation is a level of
    the parser's recursion (thousands of them overflow cql2's stack: a segfault)."""
    if previous is None or previous in _PREFIX_AFTER:
        return False
    return previous in ("value", ")", "]") or previous[0].isalpha() or previous[0] == "_"


@dataclass
class _Text:
    """A CQL2 text's tokens (name, 1-based position), read before the parser sees it."""

    tokens: list[tuple[str, int]]
    rewritten: str  # ILIKE written as LIKE (same positions)
    ilike: list[bool]  # for each LIKE/ILIKE in order: whether it was ILIKE


def _fail(message: str, position: int | str | None) -> NoReturn:
    where = ""
    if isinstance(position, int):
        where = f" (at character {position})"
    elif isinstance(position, str):
        where = f" (at {position})"
    raise InvalidParameter(f"filter: {message}{where}", parameter="filter", position=position)


def _scan(text: str) -> _Text:
    """Tokens and positions; refuses what would make the parser recurse too deeply."""
    tokens: list[tuple[str, int]] = []
    ilike: list[bool] = []
    rewritten = list(text)
    stack: list[int] = []  # prefix operators before each open parenthesis
    run = 0  # prefix operators (NOT, unary minus) since the last operand
    previous: str | None = None
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            unclosed = text[pos] in "'\""
            _fail(
                "a quoted text is not closed" if unclosed else f"unexpected {text[pos]!r}", pos + 1
            )
        kind, token = match.lastgroup, match.group()
        upper = token.upper()
        if kind != "space":
            tokens.append((upper if kind in ("word", "op") else token, pos + 1))
        if kind == "word" and upper in ("LIKE", "ILIKE"):
            ilike.append(upper == "ILIKE")
            if upper == "ILIKE":
                rewritten[pos : pos + 5] = list(" LIKE")
        prefix = (kind == "word" and upper == "NOT") or (
            token == "-" and not _ends_operand(previous)
        )
        if prefix:
            run += 1
        elif token in ("(", "["):
            stack.append(run)
            run = 0
        elif token in (")", "]"):
            run = stack.pop() if stack else 0
        elif kind != "space":
            run = 0
        if len(stack) + sum(stack) + run > MAX_NESTING:
            _fail(f"nested more than {MAX_NESTING} deep", pos + 1)
        if kind != "space":
            previous = upper if kind in ("word", "op") else "value"
        pos = match.end()
    return _Text(tokens, "".join(rewritten), ilike)


_PARSE_POSITION = re.compile(r"-->\s*(\d+):(\d+)")


def _parse_text(text: str) -> tuple[Any, _Text]:
    """CQL2 text as CQL2 JSON (ILIKE becomes CASEI(a) LIKE CASEI(b))."""
    scanned = _scan(text)
    try:
        parsed = cql2.parse_text(scanned.rewritten).to_json()
    except (cql2.ParseError, ValueError) as exc:
        found = _PARSE_POSITION.search(str(exc))
        position = None
        if found:
            line, column = int(found.group(1)), int(found.group(2))
            position = sum(len(row) + 1 for row in text.split("\n")[: line - 1]) + column
        near = f" near {text[position - 1 : position + 19]!r}" if position else ""
        _fail(f"not valid CQL2 text{near}", position)
    if scanned.ilike:
        _mark_ilike(parsed, iter(scanned.ilike))
    return parsed, scanned


def _mark_ilike(node: Any, flags: Any) -> None:
    """Wrap both sides of each LIKE that was ILIKE in CASEI (LIKEs in text order: they
    cannot nest, so a walk over the arguments in order meets them as the text did)."""
    if isinstance(node, list):
        for item in node:
            _mark_ilike(item, flags)
        return
    if not isinstance(node, dict) or "op" not in node:
        return
    if node["op"] == "like" and next(flags, False):
        node["args"] = [{"op": "casei", "args": [arg]} for arg in node.get("args", [])]
        return
    _mark_ilike(node.get("args", []), flags)


def _json_depth(node: Any) -> int:
    """How deep a JSON value nests (without recursion)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _parse_json(text: str) -> Any:
    try:
        parsed = json.loads(text)
    except RecursionError:
        _fail(f"nested more than {MAX_NESTING} deep", "/")
    except json.JSONDecodeError as exc:
        _fail(f"not valid JSON: {exc.msg}", exc.pos + 1)
    if _json_depth(parsed) > 2 * MAX_NESTING + 8:  # (+ a geometry's coordinate arrays)
        _fail(f"nested more than {MAX_NESTING} deep", "/")
    if not isinstance(parsed, dict | bool):
        _fail("CQL2 JSON is an object such as {'op': '=', 'args': [...]}", "/")
    return parsed


# ---- checking ----


def _instant(text: Any, what: str, where: Callable[[str], NoReturn]) -> datetime:
    """A date or an RFC 3339 timestamp as an aware UTC datetime (a date at 00:00 UTC)."""
    try:
        if isinstance(text, str) and len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        if isinstance(text, str):
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        pass
    where(f"{text!r} is not a valid {what}")


class _Checker:
    """Walks CQL2 JSON into the checked tree."""

    def __init__(self, queryables: Mapping[str, Kind], text: _Text | None) -> None:
        self.queryables, self.text = queryables, text
        self.predicates = self.vertices = 0
        self.properties: list[str] = []
        # how many of each operation and property the walk has met so far: the walk meets
        # them in the order the text has them, so the n-th met is the n-th in the text
        self.met: Counter[str] = Counter()

    def meet(self, token: str) -> None:
        """Count an operation or a property the walk has reached."""
        self.met[token.upper()] += 1

    # where a problem is: a character of the text, or a JSON pointer
    def fail(self, message: str, path: tuple[Any, ...], *tokens: str) -> NoReturn:
        """Raise the 400 for a problem at `path` (in the text: where the first of `tokens`
        that the text has is, at the occurrence the walk has reached)."""
        if self.text is None:
            _fail(message, "/" + "/".join(str(p) for p in path))
        for token in tokens:
            position = self._occurrence(token)
            if position is not None:
                _fail(message, position)
        _fail(message, None)

    def _occurrence(self, token: str) -> int | None:
        """Where the text has `token` for the n-th time (n: as often as the walk met it; the
        last one if the text has fewer)."""
        assert self.text is not None
        spellings = {t.upper() for t in _TEXT_TOKENS.get(token, (token,))}
        found = [
            position for name, position in self.text.tokens if name.upper().strip('"') in spellings
        ]
        if not found:
            return None
        return found[min(max(self.met[token.upper()], 1), len(found)) - 1]

    def _reporter(self, path: tuple[Any, ...], token: str) -> Callable[[str], NoReturn]:
        def report(message: str) -> NoReturn:
            self.fail(message, path, token)

        return report

    def condition(self, node: Any, path: tuple[Any, ...]) -> Condition:
        """A boolean expression."""
        if isinstance(node, bool):
            return Const(node)
        if not isinstance(node, dict) or "op" not in node:
            self.fail("a condition is expected here, not a value", path)
        op, args = node["op"], node.get("args")
        if not isinstance(op, str) or not isinstance(args, list):
            self.fail("an operation needs 'op' (text) and 'args' (a list)", path)
        if op in ("and", "or"):
            if len(args) < 2:
                self.fail(f"{op.upper()} needs two conditions or more", path, op)
            return Combine(
                op, tuple(self.condition(a, (*path, "args", i)) for i, a in enumerate(args))
            )
        if op == "not":
            self._arity(op, args, 1, path)
            return Not(self.condition(args[0], (*path, "args", 0)))
        self.meet(op)
        self.predicates += 1
        if self.predicates > MAX_PREDICATES:
            self.fail(f"more than {MAX_PREDICATES} conditions", path, op)
        return self._predicate(op, args, path)

    def _predicate(self, op: str, args: list[Any], path: tuple[Any, ...]) -> Condition:
        operand = self._operands(args, path)
        if op in COMPARISONS:
            self._arity(op, args, 2, path)
            left, right = operand(0), operand(1)
            self._same_kind(op, left, right, path)
            if left.kind in ("geometry",) or (left.kind == "boolean" and op not in ("=", "<>")):
                self.fail(f"{left.kind} values cannot be compared with {op}", path, op)
            return Compare(op, left, right)
        if op == "like":
            self._arity(op, args, 2, path)
            value, pattern = operand(0), operand(1)
            for side in (value, pattern):
                self._kind(side, "string", "LIKE compares texts", path, "like")
            return Like(value, pattern)
        if op == "between":
            self._arity(op, args, 3, path)
            parts = [operand(i) for i in range(3)]
            for part in parts:
                self._kind(part, "number", "BETWEEN compares numbers", path, op)
            return Between(*parts)
        if op == "in":
            return self._in(args, path)
        if op == "isNull":
            self._arity(op, args, 1, path)
            return IsNull(operand(0))
        if op in SPATIAL:
            self._arity(op, args, 2, path)
            left, right = operand(0), operand(1)
            for side in (left, right):
                self._kind(side, "geometry", f"{op.upper()} compares geometries", path, op)
            return Spatial(op, left, right)
        if op in TEMPORAL:
            self._arity(op, args, 2, path)
            return Temporal(
                op,
                self._span(args[0], (*path, "args", 0), op),
                self._span(args[1], (*path, "args", 1), op),
            )
        if op in ("+", "-", "*", "/", "%", "^", "div"):
            self.fail("arithmetic is not supported in filters", path, op)
        self.fail(f"unknown or unsupported operation {op!r}", path, op)

    def _in(self, args: list[Any], path: tuple[Any, ...]) -> In:
        self._arity("in", args, 2, path)
        if not isinstance(args[1], list) or not args[1]:
            self.fail("IN needs a list of values", path, "in")
        if len(args[1]) > MAX_LIST:
            self.fail(f"an IN list holds at most {MAX_LIST} values", path, "in")
        value = self.operand(args[0], (*path, "args", 0))
        options = tuple(self.operand(item, (*path, "args", 1, i)) for i, item in enumerate(args[1]))
        for option in options:
            self._same_kind("IN", value, option, path)
        return In(value, options)

    def _operands(self, args: list[Any], path: tuple[Any, ...]) -> Callable[[int], Operand]:
        return lambda i: self.operand(args[i], (*path, "args", i))

    def _arity(self, op: str, args: list[Any], count: int, path: tuple[Any, ...]) -> None:
        if len(args) != count:
            self.fail(f"{op.upper()} takes {count} argument(s), not {len(args)}", path, op)

    def _kind(
        self, operand: Operand, kind: Kind, message: str, path: tuple[Any, ...], op: str
    ) -> None:
        if operand.kind != kind:
            self.fail(
                f"{message}; {_describe(operand)} is {operand.kind}", path, *_names(operand), op
            )

    def _same_kind(self, op: str, left: Operand, right: Operand, path: tuple[Any, ...]) -> None:
        if left.kind != right.kind:
            self.fail(
                f"{_describe(left)} ({left.kind}) cannot be compared with "
                f"{_describe(right)} ({right.kind})",
                path,
                *_names(left),
                *_names(right),
                op,
            )

    def operand(self, node: Any, path: tuple[Any, ...]) -> Operand:
        """A scalar: a property, a literal or CASEI(text)."""
        if isinstance(node, bool):
            return Value(node, "boolean")
        if isinstance(node, int | float):
            if not math.isfinite(node):
                self.fail("numbers must be finite", path)
            return Value(float(node), "number")
        if isinstance(node, str):
            return Value(node, "string")
        if node is None:
            self.fail("NULL is not a value to compare with: use IS NULL", path, "NULL")
        if isinstance(node, dict):
            return self._object(node, path)
        self.fail("a value or a property is expected here", path)

    def _object(self, node: dict[str, Any], path: tuple[Any, ...]) -> Operand:
        if "property" in node:
            return self.prop(node["property"], path)
        if "date" in node or "timestamp" in node:
            what = "date" if "date" in node else "timestamp"
            return Value(_instant(node[what], what, self._reporter(path, what)), "instant")
        if "bbox" in node or "type" in node:
            return Value(self._geometry(node, path), "geometry")
        op = node.get("op")
        if op == "casei":
            args = node.get("args")
            if not isinstance(args, list) or len(args) != 1:
                self.fail("CASEI takes one text", path, "casei")
            inner = self.operand(args[0], (*path, "args", 0))
            self._kind(inner, "string", "CASEI takes a text", path, "casei")
            return CaseI(inner)
        if op in ("+", "-", "*", "/", "%", "^", "div"):
            self.fail("arithmetic is not supported in filters", path, op)
        if isinstance(op, str):
            self.fail(f"unknown or unsupported function {op!r}", path, op)
        self.fail("a value or a property is expected here", path)

    def prop(self, name: Any, path: tuple[Any, ...]) -> Prop:
        """A queryable property, by name."""
        self.meet(str(name))
        if not isinstance(name, str) or name not in self.queryables:
            listed = ", ".join(self.queryables)
            self.fail(f"unknown property {name!r}; queryables: {listed}", path, str(name))
        if name not in self.properties:
            self.properties.append(name)
        return Prop(name, self.queryables[name])

    def _geometry(self, node: dict[str, Any], path: tuple[Any, ...]) -> bytes:
        """A GeoJSON geometry or a BBOX as WKB, its coordinates checked."""
        try:
            if "bbox" in node:
                numbers = node["bbox"]
                if not isinstance(numbers, list) or len(numbers) not in (4, 6):
                    raise ValueError("BBOX needs 4 (or 6) numbers")
                x0, y0, x1, y1 = (
                    (numbers[0], numbers[1], numbers[3], numbers[4])
                    if len(numbers) == 6
                    else numbers
                )
                geometry: BaseGeometry = box(float(x0), float(y0), float(x1), float(y1))
            else:
                geometry = shape(node)
        except (
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            IndexError,
            shapely.errors.GEOSException,  # (GEOS refuses it: a one-point line)
        ) as exc:
            self.fail(f"not a valid geometry: {exc}", path, "BBOX", "POINT", "POLYGON")
        coordinates = shapely.get_coordinates(geometry)
        self.vertices += len(coordinates)
        if self.vertices > MAX_VERTICES:
            self.fail(f"the filter's geometries have more than {MAX_VERTICES} positions", path)
        if geometry.is_empty or not all(math.isfinite(v) for v in coordinates.ravel()):
            self.fail("a geometry needs finite coordinates", path)
        return bytes(shapely.to_wkb(geometry))

    def _span(self, node: Any, path: tuple[Any, ...], op: str) -> Span:
        """An instant or an interval (with '..' for an open end)."""
        if isinstance(node, dict) and "interval" in node:
            ends = node["interval"]
            if not isinstance(ends, list) or len(ends) != 2:
                self.fail("INTERVAL takes a start and an end", path, "INTERVAL")
            start, end = (self._end(e, (*path, "interval", i)) for i, e in enumerate(ends))
            return Span(start, end)
        instant = self.operand(node, path)
        self._kind(instant, "instant", f"{op.upper()} compares times", path, op)
        return Span(instant, instant)

    def _end(self, node: Any, path: tuple[Any, ...]) -> Operand | None:
        if node == "..":
            return None
        if isinstance(node, str):
            instant = _instant(node, "date or timestamp", self._reporter(path, "INTERVAL"))
            return Value(instant, "instant")
        end = self.operand(node, path)
        self._kind(end, "instant", "an interval's ends are times", path, "INTERVAL")
        return end


def _describe(operand: Operand) -> str:
    if isinstance(operand, Prop):
        return f"property {operand.name!r}"
    if isinstance(operand, CaseI):
        return f"CASEI({_describe(operand.operand)})"
    if operand.kind == "geometry":
        return "a geometry"
    return f"the {operand.kind} {operand.value!r}"


def _names(operand: Operand) -> tuple[str, ...]:
    if isinstance(operand, Prop):
        return (operand.name,)
    if isinstance(operand, CaseI):
        return _names(operand.operand)
    return ()


def parse_filter(
    text: str,
    language: str,
    queryables: Mapping[str, Kind],
) -> Filter:
    """A filter in CQL2 text (also the draft's `cql-text`) or CQL2 JSON, checked against the
    queryables (property → kind); InvalidParameter names `filter` and where the problem is."""
    return _checked_filter(text, language, tuple(queryables.items()))


# A client pages through a selection with the same filter (GDAL asks for every page, QGIS for
# every view), so a checked filter is kept for its next pages: parsing and checking cost more
# than the page's SQL text. (A filter that fails raises, and nothing is kept.)
@lru_cache(maxsize=64)  # (at most 10,000 positions each: a few MB at worst)
def _checked_filter(text: str, language: str, queryables: tuple[tuple[str, Kind], ...]) -> Filter:
    if len(text) > MAX_CHARACTERS:
        _fail(f"is longer than {MAX_CHARACTERS:,} characters", MAX_CHARACTERS + 1)
    if not text.strip():
        _fail("is empty", 1)
    scanned: _Text | None = None
    if language == "cql2-json":
        parsed: Any = _parse_json(text)
    else:
        parsed, scanned = _parse_text(text)
    checker = _Checker(dict(queryables), scanned)
    condition = checker.condition(parsed, ())
    return Filter(condition, tuple(checker.properties), (text, language))


def geometries(condition: Condition) -> list[bytes]:
    """The WKB of every geometry literal in a condition."""
    found: list[bytes] = []
    stack: list[Any] = [condition]
    while stack:
        node = stack.pop()
        if isinstance(node, Value) and node.kind == "geometry":
            found.append(node.value)
        elif isinstance(node, Combine):
            stack.extend(node.parts)
        elif isinstance(node, Not):
            stack.append(node.condition)
        elif isinstance(node, Spatial | Compare):
            stack.extend((node.left, node.right))
    return found
