"""Leaf matchers: one closure per field test. Each takes an EvalContext and returns a bool."""

from __future__ import annotations

import functools
import ipaddress
import operator
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from watchfloor.core.errors import RuleUnsupportedError
from watchfloor.detect.sigma.values import (
    EvalContext,
    Matcher,
    Names,
    scalars,
    to_datetime,
    to_number,
    to_text,
)

if TYPE_CHECKING:
    from watchfloor.detect.sigma.compiler import StringPattern

TextTest = Callable[[str], bool]


def _any_text(_text: str) -> bool:
    return True


def _string_test(patterns: Sequence[StringPattern], cased: bool) -> TextTest | None:
    """A test over one text (already folded as `cased` says) for every pattern of that casing."""
    selected = [p for p in patterns if p.cased == cased]
    if not selected:
        return None
    if any(p.kind == "any" for p in selected):
        return _any_text
    eq = frozenset(p.text for p in selected if p.kind == "eq")
    starts = tuple(p.text for p in selected if p.kind == "startswith")
    ends = tuple(p.text for p in selected if p.kind == "endswith")
    contains = tuple(p.text for p in selected if p.kind == "contains")
    regexes = tuple(p.regex for p in selected if p.kind == "regex" and p.regex is not None)
    # Long lists of non-ASCII needles (emoji, homoglyphs): no needle can occur unless one of their
    # first characters does, which one C-level set test over the text decides.
    firsts: frozenset[str] | None = None
    if len(contains) > 16 and all(n and not n[0].isascii() for n in contains):
        firsts = frozenset(n[0] for n in contains)

    def test(text: str) -> bool:
        if text in eq:
            return True
        if starts and text.startswith(starts):
            return True
        if ends and text.endswith(ends):
            return True
        if firsts is None or not firsts.isdisjoint(text):
            for needle in contains:
                if needle in text:
                    return True
        return any(rx.fullmatch(text) for rx in regexes)

    return test


def string_any(names: Names, patterns: Sequence[StringPattern]) -> Matcher:
    """True when any text of the field matches any pattern (OR)."""
    folded = _string_test(patterns, cased=False)
    exact = _string_test(patterns, cased=True)
    if exact is None and folded is not None:
        fold_only = folded

        def match_folded(ctx: EvalContext) -> bool:
            return any(fold_only(low) for _orig, low in ctx.texts(names))

        return match_folded

    def match(ctx: EvalContext) -> bool:
        return _any_pair(ctx.texts(names), folded, exact)

    return match


def _any_pair(pairs: Sequence[tuple[str, str]], folded: TextTest | None, exact: TextTest | None) -> bool:
    """Any (original, lower-cased) text passes the case-folded or the exact test."""
    for orig, low in pairs:
        if folded is not None and folded(low):
            return True
        if exact is not None and exact(orig):
            return True
    return False


def keyword_any(patterns: Sequence[StringPattern]) -> Matcher:
    """Full-text: any text anywhere in the event matches any pattern.

    Plain `contains` needles (the usual keyword) are searched once in all texts joined by NUL,
    which no needle contains, so a needle cannot span two texts.
    """
    joined_needles = tuple(
        p.text for p in patterns if p.kind == "contains" and not p.cased and "\0" not in p.text
    )
    rest = [p for p in patterns if not (p.kind == "contains" and not p.cased and "\0" not in p.text)]
    folded = _string_test(rest, cased=False)
    exact = _string_test(rest, cased=True)

    def match(ctx: EvalContext) -> bool:
        if joined_needles:
            text = ctx.joined_lower_text()
            for needle in joined_needles:
                if needle in text:
                    return True
        if folded is None and exact is None:
            return False
        return _any_pair(ctx.all_texts(), folded, exact)

    return match


def _any_scalar(names: Names, test: Callable[[object], bool]) -> Matcher:
    """True when the field is present and `test` holds for its value or any element of its list."""

    def match(ctx: EvalContext) -> bool:
        present, value = ctx.value(names)
        return present and any(test(item) for item in scalars(value))

    return match


def number_eq(names: Names, number: int | float) -> Matcher:
    """Numeric equality with numbers and numeral strings; other texts compare as text."""
    as_text = str(number).lower()

    def test(item: object) -> bool:
        parsed = to_number(item)
        if parsed is not None:
            return parsed == number
        text = to_text(item)
        return text is not None and text.lower() == as_text

    return _any_scalar(names, test)


def is_null(names: Names) -> Matcher:
    def match(ctx: EvalContext) -> bool:
        present, value = ctx.value(names)
        return not present or value is None

    return match


def exists(names: Names, wanted: bool) -> Matcher:
    def match(ctx: EvalContext) -> bool:
        present, value = ctx.value(names)
        return (present and value is not None) == wanted

    return match


_FLAG_BITS = {"IGNORECASE": re.IGNORECASE, "MULTILINE": re.MULTILINE, "DOTALL": re.DOTALL}


def regex_flags(pattern: str, flags: set[str]) -> re.Pattern[str]:
    bits = 0
    for flag in flags:
        bits |= _FLAG_BITS[flag]
    try:
        return re.compile(pattern, bits)
    except re.error as exc:
        raise RuleUnsupportedError(f"regular expression {pattern!r} does not compile: {exc}") from exc


def regex(names: Names, compiled: re.Pattern[str]) -> Matcher:
    search = compiled.search

    def match(ctx: EvalContext) -> bool:
        return any(search(orig) is not None for orig, _low in ctx.texts(names))

    return match


def keyword_regex(compiled: re.Pattern[str]) -> Matcher:
    search = compiled.search

    def match(ctx: EvalContext) -> bool:
        return any(search(orig) is not None for orig, _low in ctx.all_texts())

    return match


@functools.lru_cache(maxsize=8192)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parsed address or None; cached because logs repeat the same few addresses."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def cidr(names: Names, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> Matcher:
    """Any text of the field is an address inside any of `networks` (same IP version)."""
    ranges = tuple(
        (net.version, int(net.network_address), int(net.network_address) | int(net.hostmask))
        for net in networks
    )

    def match(ctx: EvalContext) -> bool:
        for orig, _low in ctx.texts(names):
            address = _ip(orig)
            if address is None:
                continue
            version, value = address.version, int(address)
            for net_version, low, high in ranges:
                if version == net_version and low <= value <= high:
                    return True
        return False

    return match


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "LT": operator.lt,
    "LTE": operator.le,
    "GT": operator.gt,
    "GTE": operator.ge,
}


def compare(names: Names, op: str, number: int | float) -> Matcher:
    if op not in _COMPARE:
        raise RuleUnsupportedError(f"unsupported comparison {op}")
    compare_to = _COMPARE[op]

    def test(item: object) -> bool:
        parsed = to_number(item)
        return parsed is not None and compare_to(parsed, number)

    return _any_scalar(names, test)


def fieldref(names: Names, other: Names, starts_with: bool, ends_with: bool) -> Matcher:
    """Case-insensitive comparison of a field with another field of the same event."""
    relation: Callable[[str, str], bool]
    if starts_with and ends_with:
        relation = operator.contains
    elif starts_with:
        relation = str.startswith
    elif ends_with:
        relation = str.endswith
    else:
        relation = operator.eq

    def match(ctx: EvalContext) -> bool:
        theirs = ctx.texts(other)
        return any(relation(low, ref) for _o1, low in ctx.texts(names) for _o2, ref in theirs)

    return match


_TIME_PARTS: dict[str, Callable[[datetime], int]] = {
    "minute": lambda moment: moment.minute,
    "hour": lambda moment: moment.hour,
    "day": lambda moment: moment.day,
    "week": lambda moment: moment.isocalendar().week,
    "month": lambda moment: moment.month,
    "year": lambda moment: moment.year,
}


def timestamp_part(names: Names, part: str, number: int | float) -> Matcher:
    extract = _TIME_PARTS[part]

    def test(item: object) -> bool:
        moment = to_datetime(item)
        return moment is not None and extract(moment) == number

    return _any_scalar(names, test)
