"""Rule values of the reference Sigma evaluator: Sigma strings, wildcard patterns and value modifiers.

Written from the Sigma specification for clarity, not speed; the semantics are in docs/sigma-semantics.md.
Nothing here imports pySigma. Modifiers turn each YAML value into a RuleValue, which reference.py turns into
a matcher.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from watchfloor.core.errors import PlaceholderError, RuleError, RuleUnsupportedError


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


def number_text(number: int | float) -> str:
    """A rule number as text (integral numbers have no fraction: 4688.0 -> "4688")."""
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)


TIME_PARTS = ("minute", "hour", "day", "week", "month", "year")

Placeholders = Mapping[str, Sequence[str]]

# --- rule values and their modifiers ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class Number:
    value: int | float


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool


@dataclass(frozen=True, slots=True)
class Null:
    pass


@dataclass(frozen=True, slots=True)
class Regex:
    pattern: str
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Cidr:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    number: int | float
    part: str | None = None


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str
    starts: bool = False
    ends: bool = False


@dataclass(frozen=True, slots=True)
class Expansion:
    """Values one rule value expanded into (windash, base64offset, expand): always OR-linked."""

    values: tuple[RuleValue, ...]


RuleValue = Text | Number | Boolean | Null | Regex | Cidr | Compare | FieldRef | Expansion

FLAG_MODIFIERS = frozenset({"all", "neq", "cased"})
_REGEX_FLAGS = {
    "i": re.IGNORECASE,
    "ignorecase": re.IGNORECASE,
    "m": re.MULTILINE,
    "multiline": re.MULTILINE,
    "s": re.DOTALL,
    "dotall": re.DOTALL,
}
_COMPARE_MODIFIERS = frozenset({"lt", "lte", "gt", "gte"})
_ENCODINGS = {"wide": "utf-16le", "utf16le": "utf-16le", "utf16be": "utf-16be", "utf16": "utf-16le"}
VALUE_MODIFIERS = frozenset(
    {"contains", "startswith", "endswith", "windash", "base64", "base64offset", "re", "cidr"}
    | {"fieldref", "expand", "exists"}
    | set(_REGEX_FLAGS)
    | _COMPARE_MODIFIERS
    | set(_ENCODINGS)
    | set(TIME_PARTS)
)
_WINDASH_AT = re.compile(r"\B[-/]\b")
_WINDASH_CHARS = ("-", "/", "\u2013", "\u2014", "\u2015")  # hyphen, slash, en dash, em dash, horizontal bar
_WINDASH_MAX = 3
_UTF8_BOM = "\ufeff".encode()


def describe(value: RuleValue) -> str:
    names = {
        Text: "a string",
        Number: "a number",
        Boolean: "a boolean",
        Null: "null",
        Regex: "a regular expression",
        Cidr: "a CIDR network",
        Compare: "a comparison",
        FieldRef: "a field reference",
        Expansion: "expanded values",
    }
    return names[type(value)]


def initial_value(raw: Any, *, regex: bool, expand: bool) -> RuleValue:
    """A YAML scalar as a rule value. Under `re` a string is kept raw (no wildcard or escape parsing)."""
    if raw is None:
        return Null()
    if isinstance(raw, bool):
        return Boolean(raw)
    if isinstance(raw, int):
        return Number(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise RuleError(f"invalid number {raw!r}")
        return Number(int(raw) if raw.is_integer() else raw)
    if isinstance(raw, str):
        if regex:
            return Text((raw,) if raw else ())
        return Text(parse_sigma_string(raw, placeholders=expand))
    raise RuleError(f"unsupported value type {type(raw).__name__} ({raw!r}); quote it to make it a string")


def as_text(value: RuleValue, modifier: str) -> Text:
    """Numbers and booleans become their text when a string modifier applies to them."""
    if isinstance(value, Text):
        return value
    if isinstance(value, Number):
        return Text((number_text(value.value),))
    if isinstance(value, Boolean):
        return Text(("true" if value.value else "false",))
    raise RuleError(f"modifier '{modifier}' does not apply to {describe(value)}")


def _plain(value: RuleValue, modifier: str) -> str:
    """A string value that must be plain: no wildcards or placeholders."""
    parts = as_text(value, modifier).parts
    if has_wildcards(parts) or has_placeholders(parts):
        raise RuleError(f"modifier '{modifier}' needs a plain value without wildcards or placeholders")
    return "".join(part for part in parts if isinstance(part, str))


def _windash(parts: tuple[Part, ...]) -> Expansion:
    """Each '-' or '/' that starts a word (pySigma: regex \\B[-/]\\b per literal part) -> 5 alternatives."""
    template: list[Part | None] = []  # None marks a dash to expand
    for part in parts:
        if not isinstance(part, str):
            template.append(part)
            continue
        last = 0
        for match in _WINDASH_AT.finditer(part):
            template.extend((part[last : match.start()], None))
            last = match.end()
        template.append(part[last:])
    dashes = sum(1 for piece in template if piece is None)
    if dashes > _WINDASH_MAX:
        raise RuleError(f"windash expands at most {_WINDASH_MAX} dashes in one value, found {dashes}")
    variants: list[RuleValue] = []
    for choice in itertools.product(_WINDASH_CHARS, repeat=dashes):
        chosen = iter(choice)
        variant = [next(chosen) if piece is None else piece for piece in template]
        variants.append(Text(normalize_parts(variant)))
    return Expansion(tuple(variants))


def _base64_input(value: RuleValue, modifier: str, applied: Sequence[str]) -> bytes:
    """Bytes that base64 encodes: the UTF-8 of the text; after `utf16` its BOM is written as FF FE."""
    data = _plain(value, modifier).encode("utf-8")
    if "utf16" in applied and data.startswith(_UTF8_BOM):
        data = b"\xff\xfe" + data[len(_UTF8_BOM) :]
    return data


def base64_offsets(data: bytes) -> tuple[str, str, str]:
    """The three base64 forms of `data` at byte offsets 0, 1 and 2 of a longer encoded text.

    Each keeps only the characters fully determined by `data`: the characters that also encode the
    preceding padding bytes (0, 2 or 3 of them) and the trailing partial character with its '=' are cut.
    """
    forms: list[str] = []
    for shift in range(3):
        encoded = base64.b64encode(b" " * shift + data).decode("ascii")
        start = (0, 2, 3)[shift]
        cut = (0, 3, 2)[(len(data) + shift) % 3]
        forms.append(encoded[start : len(encoded) - cut])
    return forms[0], forms[1], forms[2]


def _encode_wide(parts: tuple[Part, ...], modifier: str) -> Text:
    """pySigma's chain: each literal part encoded to UTF-16 and read back as UTF-8 text (so base64 sees
    the UTF-16 bytes); wildcards stay wildcards. `utf16` prepends a byte order mark."""
    if has_placeholders(parts):
        raise RuleUnsupportedError(f"modifier '{modifier}' before 'expand' cannot encode a placeholder")
    encoded: list[Part] = ["\ufeff"] if modifier == "utf16" else []
    for part in parts:
        if isinstance(part, str):
            try:
                encoded.append(part.encode(_ENCODINGS[modifier]).decode("utf-8"))
            except UnicodeDecodeError:
                raise RuleUnsupportedError(
                    f"modifier '{modifier}' only supports characters whose UTF-16 bytes are valid UTF-8 "
                    f"(e.g. ASCII): {part!r}"
                ) from None
        else:
            encoded.append(part)
    return Text(normalize_parts(encoded))


def _expand(parts: tuple[Part, ...], placeholders: Placeholders | None) -> RuleValue:
    """Replace each %name% with each of its values (Sigma strings: wildcards allowed); all combinations."""
    if not has_placeholders(parts):
        return Text(parts)
    choices: list[list[tuple[Part, ...]]] = []
    for part in parts:
        if not isinstance(part, Placeholder):
            choices.append([(part,)])
            continue
        if placeholders is None or part.name not in placeholders:
            raise PlaceholderError(f"no value for placeholder %{part.name}% (modifier 'expand')")
        values = placeholders[part.name]
        values = [values] if isinstance(values, str) else list(values)
        choices.append([parse_sigma_string(str(v)) for v in values])
    variants: list[RuleValue] = [
        Text(normalize_parts([piece for chosen in combination for piece in chosen]))
        for combination in itertools.product(*choices)
    ]
    return Expansion(tuple(variants))


def apply_modifier(
    modifier: str, value: RuleValue, applied: Sequence[str], placeholders: Placeholders | None
) -> RuleValue:
    """Apply one value modifier (never a flag modifier) to one value."""
    if isinstance(value, Expansion) and modifier not in ("re", "cidr", "fieldref"):
        return Expansion(tuple(apply_modifier(modifier, v, applied, placeholders) for v in value.values))
    if modifier in ("contains", "startswith", "endswith"):
        if isinstance(value, Regex):  # re.search is unanchored already: nothing to add
            return value
        if isinstance(value, FieldRef):
            return replace(
                value,
                starts=value.starts or modifier != "endswith",
                ends=value.ends or modifier != "startswith",
            )
        parts = as_text(value, modifier).parts
        if modifier != "startswith" and not (parts and parts[0] is Wildcard.ANY_RUN):
            parts = (Wildcard.ANY_RUN, *parts)
        if modifier != "endswith" and not (parts and parts[-1] is Wildcard.ANY_RUN):
            parts = (*parts, Wildcard.ANY_RUN)
        return Text(parts)
    if modifier == "windash":
        return _windash(as_text(value, modifier).parts)
    if modifier == "base64":
        data = _base64_input(value, modifier, applied)
        return Text(normalize_parts([base64.b64encode(data).decode("ascii")]))
    if modifier == "base64offset":
        forms = base64_offsets(_base64_input(value, modifier, applied))
        return Expansion(tuple(Text((form,) if form else ()) for form in forms))
    if modifier in _ENCODINGS:
        return _encode_wide(as_text(value, modifier).parts, modifier)
    if modifier == "re":
        if applied:
            raise RuleError(f"modifier 're' must come before value modifiers, not after {list(applied)}")
        return Regex(_plain_regex(value))
    if modifier in _REGEX_FLAGS:
        if not isinstance(value, Regex):
            raise RuleError(f"modifier '{modifier}' only follows 're'")
        return Regex(value.pattern, value.flags | _REGEX_FLAGS[modifier])
    if modifier == "cidr":
        if applied:
            raise RuleError(f"modifier 'cidr' must come before value modifiers, not after {list(applied)}")
        text = _plain(value, modifier) if isinstance(value, Text) else ""
        try:
            return Cidr(ipaddress.ip_network(text))
        except ValueError as error:
            raise RuleError(f"invalid CIDR network {text!r}: {error}") from None
    if modifier in _COMPARE_MODIFIERS:
        if isinstance(value, Number):
            return Compare(modifier, value.value)
        if isinstance(value, Compare) and value.op == "eq":
            return Compare(modifier, value.number, value.part)
        raise RuleError(f"modifier '{modifier}' needs a number, not {describe(value)}")
    if modifier in TIME_PARTS:
        if isinstance(value, Number):
            return Compare("eq", int(value.value), modifier)
        if isinstance(value, Compare) and value.part is None:
            return Compare(value.op, int(value.number), modifier)
        raise RuleError(f"modifier '{modifier}' needs a number, not {describe(value)}")
    if modifier == "fieldref":
        return FieldRef(_plain(value, modifier))
    if modifier == "expand":
        if isinstance(value, Regex):
            raise RuleUnsupportedError("placeholders in regular expressions are not supported")
        return _expand(as_text(value, modifier).parts, placeholders)
    raise RuleUnsupportedError(f"unknown modifier '{modifier}'")  # pragma: no cover - checked earlier


def _plain_regex(value: RuleValue) -> str:
    if isinstance(value, Number | Boolean):
        return _plain(value, "re")
    if not isinstance(value, Text):
        raise RuleError(f"modifier 're' needs a string, not {describe(value)}")
    return "".join(part for part in value.parts if isinstance(part, str))
