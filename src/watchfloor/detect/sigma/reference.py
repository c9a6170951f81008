"""A deliberately simple reference Sigma evaluator, written from the Sigma specification (v2.x).

It exists to check the fast engine: both must agree on every (rule, event) pair. It parses the rule dict
itself (no pySigma), evaluates one rule against one event's flattened native fields, and favours clarity
over speed. The semantics it implements are the project's decisions, written down in docs/sigma-semantics.md.

    rule = ReferenceRule.from_dict(yaml.safe_load(text))
    rule.matches(flat, binding.native_names)
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from watchfloor.core.errors import RuleError, RuleUnsupportedError
from watchfloor.detect.sigma.reference_condition import And, Ident, Node, Or, evaluate, parse_condition
from watchfloor.detect.sigma.reference_values import (
    FLAG_MODIFIERS,
    VALUE_MODIFIERS,
    Boolean,
    Cidr,
    Compare,
    Expansion,
    GlobPattern,
    Null,
    Number,
    Placeholders,
    Regex,
    RuleValue,
    Text,
    Wildcard,
    apply_modifier,
    as_text,
    describe,
    initial_value,
    number_text,
)

__all__ = ["ReferenceRule", "filter_applies"]


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
    def matches(self, value: Any, event: EventView, /) -> bool:
        """Does one event scalar (None for an absent field or a null value) match this rule value?"""
        ...


@dataclass(frozen=True, slots=True)
class TextMatcher:
    """Whole-value equality with wildcards; several patterns are alternatives (expanded values)."""

    patterns: tuple[GlobPattern, ...]

    def matches(self, value: Any, _event: EventView, /) -> bool:
        text = event_text(value)
        return text is not None and any(pattern.matches(text) for pattern in self.patterns)


@dataclass(frozen=True, slots=True)
class NumberMatcher:
    """A rule number: numeric equality with numbers and numeric strings, else text equality."""

    number: int | float
    cased: bool

    def matches(self, value: Any, _event: EventView, /) -> bool:
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
    def matches(self, value: Any, _event: EventView, /) -> bool:
        return value is None


@dataclass(frozen=True, slots=True)
class RegexMatcher:
    regex: re.Pattern[str]

    def matches(self, value: Any, _event: EventView, /) -> bool:
        text = event_text(value)
        return text is not None and self.regex.search(text) is not None


@dataclass(frozen=True, slots=True)
class CidrMatcher:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def matches(self, value: Any, _event: EventView, /) -> bool:
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

    def matches(self, value: Any, _event: EventView, /) -> bool:
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

    def matches(self, value: Any, event: EventView, /) -> bool:
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

    def matches(self, value: Any, event: EventView, /) -> bool:
        return any(alternative.matches(value, event) for alternative in self.alternatives)


def _finish(value: RuleValue, *, cased: bool, keyword: bool) -> ValueMatcher:
    """The matcher for one fully modified rule value."""
    if isinstance(value, Expansion):
        alternatives = [_finish(v, cased=cased, keyword=keyword) for v in value.values]
        if all(isinstance(a, TextMatcher) for a in alternatives):
            return TextMatcher(
                tuple(p for a in alternatives if isinstance(a, TextMatcher) for p in a.patterns)
            )
        return AnyMatcher(tuple(alternatives))
    if isinstance(value, Regex):
        if cased:
            raise RuleError("modifier 'cased' does not apply to 're' (case-sensitive unless 'i')")
        try:
            return RegexMatcher(re.compile(value.pattern, value.flags))
        except re.error as error:
            raise RuleError(f"invalid regular expression {value.pattern!r}: {error}") from None
    if keyword:
        if not isinstance(value, Text | Number | Boolean):
            raise RuleError(f"a keyword (a value without a field) must be a string, not {describe(value)}")
        parts = as_text(value, "keyword").parts
        if not (parts and parts[0] is Wildcard.ANY_RUN):
            parts = (Wildcard.ANY_RUN, *parts)
        if parts[-1] is not Wildcard.ANY_RUN:
            parts = (*parts, Wildcard.ANY_RUN)
        return TextMatcher((GlobPattern(parts, cased=cased),))
    if isinstance(value, Text):
        return TextMatcher((GlobPattern(value.parts, cased=cased),))
    if isinstance(value, Boolean):
        return TextMatcher((GlobPattern(("true" if value.value else "false",), cased=cased),))
    if isinstance(value, Number):
        return NumberMatcher(value.value, cased)
    if isinstance(value, Null):
        return NullMatcher()
    if isinstance(value, Cidr):
        return CidrMatcher(value.network)
    if isinstance(value, Compare):
        return CompareMatcher(value.op, value.number, value.part)
    return FieldRefMatcher(value.name, value.starts, value.ends, cased)


# --- detection items and search identifiers ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    """One `field|modifiers: values` pair (field None: keywords), with its values' link and negation."""

    kind: Literal["field", "keyword", "exists"]
    field: str | None
    matchers: tuple[ValueMatcher, ...] = ()
    exists: tuple[bool, ...] = ()
    all_of: bool = False
    negated: bool = False

    def matches(self, event: _Event) -> bool:
        results: Iterator[bool]
        if self.kind == "keyword":
            scalars = event.scalars()
            results = (any(m.matches(s, event) for s in scalars) for m in self.matchers)
        else:
            assert self.field is not None
            present, value = event.lookup(self.field)
            if self.kind == "exists":
                has_value = present and value is not None
                results = (has_value == wanted for wanted in self.exists)
            else:
                elements = list(event_elements(value)) if present else [None]
                results = (any(m.matches(e, event) for e in elements) for m in self.matchers)
        matched = all(results) if self.all_of else any(results)
        return matched != self.negated


@dataclass(frozen=True, slots=True)
class _AllOf:
    children: tuple[_Detection, ...]

    def matches(self, event: _Event) -> bool:
        return all(child.matches(event) for child in self.children)


@dataclass(frozen=True, slots=True)
class _AnyOf:
    children: tuple[_Detection, ...]

    def matches(self, event: _Event) -> bool:
        return any(child.matches(event) for child in self.children)


_Detection = _Item | _AllOf | _AnyOf
_SCALARS = (str, int, float, bool, type(None))


def _compile_item(key: str | None, raw: Any, placeholders: Placeholders | None) -> _Item:
    field, *modifiers = (key or "").split("|")
    for modifier in modifiers:
        if modifier not in VALUE_MODIFIERS and modifier not in FLAG_MODIFIERS:
            raise RuleUnsupportedError(f"unknown modifier '{modifier}'")
    raws = raw if isinstance(raw, list) else [raw]
    if any(isinstance(r, list | Mapping) for r in raws):
        raise RuleError("values must be scalars or a list of scalars")
    all_of, negated, cased = "all" in modifiers, "neq" in modifiers, "cased" in modifiers
    if "exists" in modifiers:
        others = [m for m in modifiers if m not in ("exists", "all", "neq")]
        if not field or others or not raws or not all(isinstance(r, bool) for r in raws):
            raise RuleError("'exists' needs a field, a boolean value and no other value modifier")
        return _Item("exists", field, exists=tuple(raws), all_of=all_of, negated=negated)
    values = [initial_value(r, regex="re" in modifiers, expand="expand" in modifiers) for r in raws]
    if not values:  # `field: []` is null, as pySigma reads it
        values = [Null()]
    applied: list[str] = []
    for modifier in modifiers:
        if modifier in FLAG_MODIFIERS:
            continue
        values = [apply_modifier(modifier, value, applied, placeholders) for value in values]
        applied.append(modifier)
    keyword = not field
    matchers = tuple(_finish(v, cased=cased, keyword=keyword) for v in values)
    return _Item("keyword" if keyword else "field", field or None, matchers, all_of=all_of, negated=negated)


def _compile_detection(definition: Any, placeholders: Placeholders | None) -> _Detection:
    """A search identifier's definition: a map is AND of its items, a list OR of its elements; a list of
    plain values (or one plain value) is one keyword item."""
    if isinstance(definition, Mapping):
        if not definition:
            raise RuleError("empty map")
        items: list[_Detection] = []
        for key, raw in definition.items():
            try:
                items.append(_compile_item(None if key is None else str(key), raw, placeholders))
            except RuleError as error:
                raise type(error)(f"item {key!r}: {error.message}") from None
        return items[0] if len(items) == 1 else _AllOf(tuple(items))
    if isinstance(definition, list):
        if not definition:
            raise RuleError("empty list")
        if all(isinstance(element, _SCALARS) for element in definition):
            return _compile_item(None, definition, placeholders)
        return _AnyOf(tuple(_compile_detection(element, placeholders) for element in definition))
    if isinstance(definition, _SCALARS):
        return _compile_item(None, definition, placeholders)
    raise RuleError(f"unsupported definition type {type(definition).__name__}")


# --- events -------------------------------------------------------------------------------------------


def _same_name(sigma_field: str) -> tuple[str, ...]:
    return (sigma_field,)


class _Event:
    """One event's flattened native fields, looked up through the Sigma-to-native field names."""

    __slots__ = ("_field_names", "_flat", "_lowered", "_scalars")

    def __init__(self, flat: Mapping[str, Any], field_names: Callable[[str], tuple[str, ...]]) -> None:
        self._flat = flat
        self._field_names = field_names
        self._lowered: dict[str, str] | None = None
        self._scalars: list[Any] | None = None

    def lookup(self, sigma_field: str) -> tuple[bool, Any]:
        """For each native name in order: the exact key, else the first key equal ignoring case."""
        for native in self._field_names(sigma_field):
            if native in self._flat:
                return True, self._flat[native]
            if self._lowered is None:
                self._lowered = {}
                for name in self._flat:
                    if isinstance(name, str):
                        self._lowered.setdefault(name.lower(), name)
            key = self._lowered.get(native.lower())
            if key is not None:
                return True, self._flat[key]
        return False, None

    def scalars(self) -> list[Any]:
        """Every value of the event that keyword search looks at: scalars, list elements included."""
        if self._scalars is None:
            self._scalars = [
                element
                for value in self._flat.values()
                for element in event_elements(value)
                if event_text(element) is not None
            ]
        return self._scalars


# --- rules and filters --------------------------------------------------------------------------------


def _conditions(raw: Any, names: Sequence[str], scope: int) -> Node:
    """A condition string, or a list of them (OR-linked)."""
    texts = raw if isinstance(raw, list) else [raw]
    if not texts or not all(isinstance(text, str) for text in texts):
        raise RuleError("condition must be a string or a non-empty list of strings")
    nodes = [parse_condition(text, names, scope=scope) for text in texts]
    return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))


def _compile_section(
    section: Mapping[Any, Any], skip: frozenset[str], placeholders: Placeholders | None, scope: int
) -> tuple[dict[tuple[int, str], _Detection], Node]:
    """Search identifiers and condition of a rule's `detection` (or a filter's `filter`) section."""
    detections: dict[tuple[int, str], _Detection] = {}
    names: list[str] = []
    for key, definition in section.items():
        name = str(key)
        if name in skip:
            continue
        try:
            detections[scope, name] = _compile_detection(definition, placeholders)
        except RuleError as error:
            raise type(error)(f"search identifier {name!r}: {error.message}") from None
        names.append(name)
    if "condition" not in section:
        raise RuleError("missing condition")
    return detections, _conditions(section["condition"], names, scope)


def filter_applies(sigma_filter: Mapping[str, Any], rule: Mapping[str, Any]) -> bool:
    """Does a Sigma filter document apply to a rule?

    Its logsource must contain the rule's (each of category/product/service it names is equal, ignoring
    case; no logsource contains all), and `filter.rules` must name the rule by id, name or title (ignoring
    case), or be `any` or an empty list.
    """
    section = sigma_filter.get("filter")
    if not isinstance(section, Mapping):
        raise RuleError("a Sigma filter needs a 'filter' map")
    logsource = sigma_filter.get("logsource") or {}
    rule_logsource = rule.get("logsource") or {}
    if not isinstance(logsource, Mapping) or not isinstance(rule_logsource, Mapping):
        raise RuleError("logsource must be a map")
    for attribute in ("category", "product", "service"):
        wanted = logsource.get(attribute)
        if wanted is not None and str(wanted).lower() != str(rule_logsource.get(attribute)).lower():
            return False
    targets = section.get("rules")
    if isinstance(targets, str) and targets.lower() == "any":
        return True
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list):
        raise RuleError("filter.rules must be 'any', a rule id/name/title or a list of them")
    if not targets:
        return True
    names = {str(rule.get(attribute)).lower() for attribute in ("id", "name", "title") if rule.get(attribute)}
    return any(str(target).lower() in names for target in targets)


def _compile_rule(
    rule: Mapping[str, Any], placeholders: Placeholders | None, filters: Sequence[Mapping[str, Any]]
) -> tuple[dict[tuple[int, str], _Detection], Node]:
    """Search identifiers (keyed by scope and name) and the condition of a rule with its filters applied."""
    if "correlation" in rule:
        raise RuleUnsupportedError("correlation rules span several events; not evaluated here")
    if "detection" not in rule and "filter" in rule:
        raise RuleError("this is a Sigma filter, not a rule: pass it in filters=")
    detection = rule.get("detection")
    if not isinstance(detection, Mapping):
        raise RuleError("missing or invalid 'detection' map")
    detections, condition = _compile_section(detection, frozenset({"condition"}), placeholders, 0)
    for scope, sigma_filter in enumerate(filters, start=1):
        if not filter_applies(sigma_filter, rule):
            continue
        try:
            filter_detections, filter_condition = _compile_section(
                sigma_filter["filter"], frozenset({"condition", "rules"}), placeholders, scope
            )
        except RuleError as error:
            name = sigma_filter.get("id") or sigma_filter.get("title")
            raise type(error)(f"filter {name!r}: {error.message}") from None
        detections.update(filter_detections)
        condition = And((condition, filter_condition))  # spec: the filter's condition is ANDed
    return detections, condition


class ReferenceRule:
    """One Sigma rule, compiled for reference evaluation against one event at a time."""

    __slots__ = ("_condition", "_detections", "id", "title")

    def __init__(
        self, *, rule_id: str, title: str, condition: Node, detections: Mapping[tuple[int, str], _Detection]
    ) -> None:
        self.id = rule_id
        self.title = title
        self._condition = condition
        self._detections = dict(detections)

    @classmethod
    def from_dict(
        cls,
        rule: Mapping[str, Any],
        *,
        placeholders: Mapping[str, Sequence[str]] | None = None,
        filters: Sequence[Mapping[str, Any]] = (),
    ) -> ReferenceRule:
        """Compile a parsed rule; each filter that applies to it adds `and <filter condition>`
        (Sigma meta-filters: the filter's own condition says what to keep, e.g. `not selection`).

        Raises RuleError (invalid), RuleUnsupportedError (valid but not evaluable here, e.g. correlation
        rules) or PlaceholderError (`expand` without a value for a placeholder).
        """
        if not isinstance(rule, Mapping):
            raise RuleError(f"a rule must be a map, not {type(rule).__name__}")
        rule_id, title = str(rule.get("id") or ""), str(rule.get("title") or "")
        try:
            detections, condition = _compile_rule(rule, placeholders, filters)
        except RuleError as error:
            raise type(error)(f"rule {rule_id or '?'} ({title or 'untitled'}): {error.message}") from None
        return cls(rule_id=rule_id, title=title, condition=condition, detections=detections)

    def matches(
        self, flat: Mapping[str, Any], field_names: Callable[[str], tuple[str, ...]] = _same_name
    ) -> bool:
        """Does the event (flattened native fields) match? `field_names` maps a Sigma field to native ones."""
        event = _Event(flat, field_names)

        def leaf(identifier: Ident) -> bool:
            return self._detections[identifier.scope, identifier.name].matches(event)

        return evaluate(self._condition, leaf)

    def __repr__(self) -> str:
        return f"ReferenceRule(id={self.id!r}, title={self.title!r})"
