"""Values of the reference Sigma evaluator: Sigma strings, wildcards and event-value conversions.

Written from the Sigma specification for clarity, not speed; the differential tests hold the fast engine to it.
The semantics are documented in docs/sigma-semantics.md. Nothing here imports pySigma.
"""

from __future__ import annotations

import enum
import ipaddress
import operator
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


class Wildcard(enum.Enum):
    """An unescaped wildcard of a Sigma string."""

    ANY_RUN = "*"  # any run of characters, including the empty one
    ANY_ONE = "?"  # exactly one character


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A `%name%` placeholder of a value modified with `expand`."""

    name: str


Part = str | Wildcard | Placeholder
"""A Sigma string is a tuple of parts: literal text, wildcards and (with `expand`) placeholders."""

_SPECIAL = {"*": Wildcard.ANY_RUN, "?": Wildcard.ANY_ONE}
_ESCAPABLE = "*?\\"


def parse_sigma_string(raw: str, *, placeholders: bool = False) -> tuple[Part, ...]:
    """Parse a Sigma string value into parts (spec "Escaping").

    `\\*`, `\\?` and `\\\\` are the escaped characters; a backslash before any other character (or at the
    end) is a literal backslash. With `placeholders` (the `expand` modifier), `%name%` is a placeholder
    (name non-empty, without `%`, `\\`, `*`, `?`) and `\\%` is a literal percent sign.
    """
    parts: list[Part] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            parts.append("".join(text))
            text.clear()

    i = 0
    while i < len(raw):
        char = raw[i]
        following = raw[i + 1] if i + 1 < len(raw) else ""
        if char == "\\" and following and following in _ESCAPABLE:
            text.append(following)
            i += 2
        elif char == "\\" and placeholders and following == "%":
            text.append("%")
            i += 2
        elif char in _SPECIAL:
            flush()
            parts.append(_SPECIAL[char])
            i += 1
        elif char == "%" and placeholders:
            end = raw.find("%", i + 1)
            name = raw[i + 1 : end] if end > i + 1 else ""
            if name and not any(c in name for c in "\\*?"):
                flush()
                parts.append(Placeholder(name))
                i = end + 1
            else:
                text.append("%")
                i += 1
        else:
            text.append(char)
            i += 1
    flush()
    return tuple(parts)


def normalize_parts(parts: tuple[Part, ...] | list[Part]) -> tuple[Part, ...]:
    """Merge adjacent literal parts and drop empty ones."""
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if merged and isinstance(merged[-1], str):
                merged[-1] = merged[-1] + part
                continue
        merged.append(part)
    return tuple(merged)


def has_wildcards(parts: tuple[Part, ...]) -> bool:
    return any(isinstance(part, Wildcard) for part in parts)


def has_placeholders(parts: tuple[Part, ...]) -> bool:
    return any(isinstance(part, Placeholder) for part in parts)


class _Segment:
    """A run of characters between two `*`: literal characters and `?` (stored as None)."""

    __slots__ = ("chars", "length", "plain")

    def __init__(self, chars: list[str | None]) -> None:
        self.chars: tuple[str | None, ...] = tuple(chars)
        self.length = len(chars)
        self.plain: str | None = None if None in chars else "".join(c for c in chars if c is not None)

    def at(self, text: str, start: int) -> bool:
        """Does the segment match text[start:start + length]? (The caller checks the length fits.)"""
        if self.plain is not None:
            return text.startswith(self.plain, start)
        if start + self.length > len(text):
            return False
        return all(c is None or text[start + k] == c for k, c in enumerate(self.chars))

    def find(self, text: str, start: int, stop: int) -> int:
        """The leftmost position p, start <= p and p + length <= stop, where the segment matches; else -1."""
        if self.plain is not None:
            return text.find(self.plain, start, stop)
        for position in range(start, stop - self.length + 1):
            if self.at(text, position):
                return position
        return -1


class GlobPattern:
    """A Sigma string with wildcards, matched against a whole text.

    The pattern is split at `*` into segments S0 * S1 * ... * Sk. A text matches when it starts with S0,
    ends with Sk, and S1..S(k-1) occur in order in between; placing each middle segment at its leftmost
    occurrence is always sufficient. Without `*` the text must have the segment's length and match it.
    Case-insensitive patterns compare `str.lower()` of both sides.
    """

    __slots__ = ("cased", "segments")

    def __init__(self, parts: tuple[Part, ...], *, cased: bool) -> None:
        self.cased = cased
        segments: list[_Segment] = []
        current: list[str | None] = []
        for part in parts:
            if part is Wildcard.ANY_RUN:
                segments.append(_Segment(current))
                current = []
            elif part is Wildcard.ANY_ONE:
                current.append(None)
            elif isinstance(part, str):
                current.extend(part if cased else part.lower())
            else:
                raise TypeError(f"unexpanded placeholder {part!r} in a pattern")
        segments.append(_Segment(current))
        self.segments: tuple[_Segment, ...] = tuple(segments)

    def matches(self, text: str) -> bool:
        if not self.cased:
            text = text.lower()
        if len(self.segments) == 1:
            only = self.segments[0]
            return len(text) == only.length and only.at(text, 0)
        head, *middle, tail = self.segments
        end = len(text) - tail.length
        if end < head.length or not head.at(text, 0) or not tail.at(text, end):
            return False
        position = head.length
        for segment in middle:
            found = segment.find(text, position, end)
            if found < 0:
                return False
            position = found + segment.length
        return True


# --- event values -------------------------------------------------------------------------------------

_NUMERIC = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def event_elements(value: Any) -> Iterator[Any]:
    """The scalars of an event value: a list (or tuple) yields its elements, recursively."""
    if isinstance(value, list | tuple):
        for element in value:
            yield from event_elements(element)
    else:
        yield value


def event_text(value: Any) -> str | None:
    """An event scalar as text, or None when it never matches a string (None, a mapping)."""
    if value is None or isinstance(value, Mapping):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(float(value))
    return str(value)


def event_number(value: Any) -> int | float | None:
    """An event scalar as a number: int/float (not bool) or a decimal numeric string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _NUMERIC.fullmatch(value):
        return int(value) if _INTEGER.fullmatch(value) else float(value)
    return None


def number_text(number: int | float) -> str:
    """A rule number as text (integral numbers have no fraction: 4688.0 -> "4688")."""
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)


def event_timestamp(value: Any) -> datetime | None:
    """An event scalar as a UTC datetime: an ISO-8601 string (naive = UTC) or a datetime; else None."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


TIME_PARTS = ("minute", "hour", "day", "week", "month", "year")


def time_part(moment: datetime, part: str) -> int:
    if part == "minute":
        return moment.minute
    if part == "hour":
        return moment.hour
    if part == "day":
        return moment.day
    if part == "week":
        return moment.isocalendar().week
    if part == "month":
        return moment.month
    if part == "year":
        return moment.year
    raise ValueError(f"unknown time part {part!r}")


# --- matchers: one rule value against one event scalar ------------------------------------------------


class EventView(Protocol):
    """What a matcher may ask of the event besides the value under test (field references)."""

    def lookup(self, sigma_field: str) -> tuple[bool, Any]:
        """(present, value) of a Sigma field in the event."""
        ...


class ValueMatcher(Protocol):
    def matches(self, value: Any, event: EventView) -> bool:
        """Does one event scalar (None for an absent field or a null value) match this rule value?"""
        ...


@dataclass(frozen=True, slots=True)
class TextMatcher:
    """Whole-value equality with wildcards; several patterns are alternatives (expanded values)."""

    patterns: tuple[GlobPattern, ...]

    def matches(self, value: Any, event: EventView) -> bool:
        text = event_text(value)
        return text is not None and any(pattern.matches(text) for pattern in self.patterns)


@dataclass(frozen=True, slots=True)
class NumberMatcher:
    """A rule number: numeric equality with numbers and numeric strings, else text equality."""

    number: int | float
    cased: bool

    def matches(self, value: Any, event: EventView) -> bool:
        number = event_number(value)
        if number is not None:
            return number == self.number
        text = event_text(value)
        if text is None:
            return False
        expected = number_text(self.number)
        return text == expected if self.cased else text.lower() == expected.lower()


@dataclass(frozen=True, slots=True)
class NullMatcher:
    def matches(self, value: Any, event: EventView) -> bool:
        return value is None


@dataclass(frozen=True, slots=True)
class RegexMatcher:
    regex: re.Pattern[str]

    def matches(self, value: Any, event: EventView) -> bool:
        text = event_text(value)
        return text is not None and self.regex.search(text) is not None


@dataclass(frozen=True, slots=True)
class CidrMatcher:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def matches(self, value: Any, event: EventView) -> bool:
        if not isinstance(value, str):
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return address.version == self.network.version and address in self.network


_COMPARE = {
    "eq": operator.eq,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


@dataclass(frozen=True, slots=True)
class CompareMatcher:
    """lt/lte/gt/gte on numbers, optionally of a time part extracted from a timestamp."""

    op: str
    number: int | float
    part: str | None = None

    def matches(self, value: Any, event: EventView) -> bool:
        actual: int | float | None
        if self.part is None:
            actual = event_number(value)
        else:
            moment = event_timestamp(value)
            actual = None if moment is None else time_part(moment, self.part)
        return actual is not None and bool(_COMPARE[self.op](actual, self.number))


@dataclass(frozen=True, slots=True)
class FieldRefMatcher:
    """Compare with the value(s) of another field of the same event, as text."""

    field: str
    starts: bool  # the referenced value may be followed by anything (startswith / contains)
    ends: bool  # the referenced value may be preceded by anything (endswith / contains)
    cased: bool

    def matches(self, value: Any, event: EventView) -> bool:
        text = event_text(value)
        if text is None:
            return False
        present, other = event.lookup(self.field)
        if not present:
            return False
        if not self.cased:
            text = text.lower()
        for element in event_elements(other):
            reference = event_text(element)
            if reference is None:
                continue
            if not self.cased:
                reference = reference.lower()
            if self.starts and self.ends:
                found = reference in text
            elif self.starts:
                found = text.startswith(reference)
            elif self.ends:
                found = text.endswith(reference)
            else:
                found = text == reference
            if found:
                return True
        return False


@dataclass(frozen=True, slots=True)
class AnyMatcher:
    """OR of alternatives produced by one rule value (windash, base64offset, expand)."""

    alternatives: tuple[ValueMatcher, ...]

    def matches(self, value: Any, event: EventView) -> bool:
        return any(alternative.matches(value, event) for alternative in self.alternatives)
