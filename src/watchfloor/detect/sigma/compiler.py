"""Compile a pySigma rule, for one logsource binding, into a matcher closure and a literal gate.

The closure evaluates the postprocessed condition tree pySigma builds (AND/OR/NOT over
field=value and keyword leaves). OR-siblings that test the same field with plain string
patterns are merged into one leaf (set lookup, str.startswith/endswith with tuples), which is
where most of the speed comes from on SigmaHQ's long value lists.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.modifiers import SigmaCaseSensitiveModifier
from sigma.rule import SigmaDetectionItem, SigmaRule
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from watchfloor.core.errors import PlaceholderError, RuleUnsupportedError
from watchfloor.detect.sigma import leaves
from watchfloor.detect.sigma.prefilter import GateExpr, gate_and, gate_or, gate_text
from watchfloor.detect.sigma.regex_literals import regex_gate
from watchfloor.detect.sigma.values import Matcher, Names
from watchfloor.normalize.model import Binding

EventIds = frozenset[int] | None
Placeholders = Mapping[str, Sequence[str]]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A matcher, the literals it needs (gate) and the EventIDs it can match (None: any)."""

    matcher: Matcher
    gate: GateExpr
    event_ids: EventIds = None


def ids_and(children: Sequence[EventIds]) -> EventIds:
    """AND: every child's set is necessary, so their intersection is."""
    known = [c for c in children if c is not None]
    if not known:
        return None
    result = known[0]
    for other in known[1:]:
        result = result & other
    return result


def ids_or(children: Sequence[EventIds]) -> EventIds:
    """OR: the union, unless a child can match any EventID."""
    result: set[int] = set()
    for child in children:
        if child is None:
            return None
        result |= child
    return frozenset(result)


@dataclass(frozen=True, slots=True)
class StringPattern:
    """A Sigma string reduced to a kind: eq / startswith / endswith / contains / any / regex."""

    kind: str
    text: str  # lower-cased unless cased
    cased: bool
    regex: re.Pattern[str] | None = None

    @property
    def gate(self) -> GateExpr:
        """Every literal stretch is needed (NUL separates the stretches of a wildcard pattern)."""
        return None if self.kind == "any" else gate_text(self.text)


def item_is_cased(cond: Any) -> bool:
    """Does the detection item behind a condition leaf carry `cased`? pySigma drops the cased type
    on values that windash/base64/wide produced; the modifier still applies to the whole item."""
    node = getattr(cond, "parent", None)
    while node is not None and not isinstance(node, SigmaDetectionItem):
        node = getattr(node, "parent", None)
    return node is not None and SigmaCaseSensitiveModifier in node.modifiers


def string_pattern(value: SigmaString, *, cased: bool = False) -> StringPattern:
    parts = list(value.s)
    cased = cased or isinstance(value, SigmaCasedString)
    fold: Callable[[str], str] = (lambda s: s) if cased else str.lower
    if parts and all(p is SpecialChars.WILDCARD_MULTI for p in parts):
        return StringPattern("any", "", cased)
    lead = bool(parts) and parts[0] is SpecialChars.WILDCARD_MULTI
    trail = len(parts) > 1 and parts[-1] is SpecialChars.WILDCARD_MULTI
    middle = parts[1 if lead else 0 : len(parts) - 1 if trail else len(parts)]
    if all(isinstance(p, str) for p in middle):
        text = fold("".join(p for p in middle if isinstance(p, str)))
        kind = {(False, False): "eq", (True, False): "endswith", (False, True): "startswith"}.get(
            (lead, trail), "contains"
        )
        return StringPattern(kind, text, cased)
    pieces: list[str] = []
    literal_parts: list[str] = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            pieces.append(".*")
            literal_parts.append("\0")
        elif part is SpecialChars.WILDCARD_SINGLE:
            pieces.append(".")
            literal_parts.append("\0")
        elif isinstance(part, str):
            pieces.append(re.escape(fold(part)))
            literal_parts.append(fold(part))
        else:
            raise RuleUnsupportedError(f"unexpected string part {part!r}")
    compiled = re.compile("".join(pieces), re.DOTALL)
    return StringPattern("regex", "".join(literal_parts), cased, compiled)


def expand_placeholders(value: SigmaString, placeholders: Placeholders | None) -> list[SigmaString]:
    """Replace %name% placeholders by the tenant's values (each value may carry wildcards)."""
    names = [p.name for p in value.s if isinstance(p, Placeholder)]
    if not names:
        return [value]
    if placeholders is None:
        raise PlaceholderError(f"placeholder %{names[0]}% needs a per-tenant value")
    choices: list[Sequence[str]] = []
    for name in names:
        values = placeholders.get(name)
        if not values:
            raise PlaceholderError(f"placeholder %{name}% has no value for this tenant")
        choices.append(values)
    out: list[SigmaString] = []
    for combo in itertools.product(*choices):
        it = iter(combo)
        result = SigmaString("")
        for part in value.s:
            if isinstance(part, Placeholder):
                result = result + SigmaString(next(it))
            else:
                result = result + part
        out.append(
            SigmaCasedString.from_sigma_string(result) if isinstance(value, SigmaCasedString) else result
        )
    return out


EVENT_ID: Names = ("EventID",)


def parse_conditions(rule: SigmaRule) -> list[Any]:
    """pySigma's postprocessed condition trees of a rule (each parse deep-copies: do it once per rule)."""
    return [cond.parse() for cond in rule.detection.parsed_condition]


class RuleCompiler:
    """Compiles one rule for one binding; field names resolve through the binding.

    Besides the matcher it derives what routing and the prefilter need: the gate (literals a match
    needs) and the EventIDs a match needs. The latter only for the System EventID field, whose
    value classify() puts in the source key: a plain decimal equality on it is exact.
    """

    def __init__(self, binding: Binding, placeholders: Placeholders | None = None) -> None:
        self.binding = binding
        self.placeholders = placeholders

    def names(self, field: str) -> Names:
        return self.binding.native_names(field)

    def compile_rule(self, rule: SigmaRule) -> Compiled:
        return self.compile_trees(parse_conditions(rule))

    def compile_trees(self, trees: Sequence[Any]) -> Compiled:
        """Compile condition trees from parse_conditions (read only, so one parse serves every binding)."""
        branches = [self.node(tree) for tree in trees]
        compiled = branches[0] if len(branches) == 1 else self._or(branches)
        if self.binding.conditions:
            checks = [
                Compiled(leaves.string_any((name,), [StringPattern("eq", value.lower(), False)]), None)
                for name, value in self.binding.conditions.items()
            ]
            compiled = self._and([*checks, compiled])
        return compiled

    def node(self, cond: Any) -> Compiled:
        if isinstance(cond, ConditionAND):
            return self._and([self.node(a) for a in cond.args])
        if isinstance(cond, ConditionOR):
            return self._or_merged(list(cond.args))
        if isinstance(cond, ConditionNOT):
            inner = self.node(cond.args[0]).matcher
            return Compiled(lambda ctx: not inner(ctx), None)
        if isinstance(cond, ConditionFieldEqualsValueExpression):
            return self.field_leaf(cond.field, cond.value, cased=item_is_cased(cond))
        if isinstance(cond, ConditionValueExpression):
            return self.keyword_leaf(cond.value)
        raise RuleUnsupportedError(f"unsupported condition element {type(cond).__name__}")

    @staticmethod
    def _and(children: list[Compiled]) -> Compiled:
        matchers = tuple(c.matcher for c in children)
        gate = gate_and([c.gate for c in children])
        ids = ids_and([c.event_ids for c in children])
        if len(matchers) == 2:
            first, second = matchers
            return Compiled(lambda ctx: first(ctx) and second(ctx), gate, ids)
        return Compiled(lambda ctx: all(m(ctx) for m in matchers), gate, ids)

    @staticmethod
    def _or(children: list[Compiled]) -> Compiled:
        matchers = tuple(c.matcher for c in children)
        gate = gate_or(c.gate for c in children)
        ids = ids_or([c.event_ids for c in children])
        if len(matchers) == 1:
            return Compiled(matchers[0], gate, ids)
        return Compiled(lambda ctx: any(m(ctx) for m in matchers), gate, ids)

    def _or_merged(self, args: list[Any]) -> Compiled:
        """OR with same-field plain-string leaves merged into one set/tuple test per field."""
        groups: dict[Names, list[StringPattern]] = {}
        networks: dict[Names, list[Any]] = {}
        others: list[Compiled] = []
        for arg in args:
            is_leaf = isinstance(arg, ConditionFieldEqualsValueExpression)
            if is_leaf and isinstance(arg.value, SigmaCIDRExpression):
                networks.setdefault(self.names(arg.field), []).append(arg.value.network)
                continue
            patterns = self._plain_patterns(arg)
            if patterns is None:
                others.append(self.node(arg))
            else:
                groups.setdefault(self.names(arg.field), []).extend(patterns)
        others.extend(Compiled(leaves.cidr(names, nets), None) for names, nets in networks.items())
        merged = [
            Compiled(
                leaves.string_any(names, patterns),
                gate_or(p.gate for p in patterns),
                self._string_ids(names, patterns),
            )
            for names, patterns in groups.items()
        ]
        return self._or([*merged, *others])

    @staticmethod
    def _string_ids(names: Names, patterns: Sequence[StringPattern]) -> EventIds:
        if names != EVENT_ID or not patterns:
            return None
        if all(p.kind == "eq" and p.text.isascii() and p.text.isdigit() for p in patterns):
            return frozenset(int(p.text) for p in patterns)
        return None

    def _plain_patterns(self, cond: Any) -> list[StringPattern] | None:
        if not isinstance(cond, ConditionFieldEqualsValueExpression):
            return None
        values = cond.value.values if isinstance(cond.value, SigmaExpansion) else [cond.value]
        if not all(type(v) in (SigmaString, SigmaCasedString) for v in values):
            return None
        out: list[StringPattern] = []
        cased = item_is_cased(cond)
        for value in values:
            assert isinstance(value, SigmaString)
            out.extend(string_pattern(v, cased=cased) for v in expand_placeholders(value, self.placeholders))
        return out

    def field_leaf(self, field: str, value: Any, *, cased: bool = False) -> Compiled:
        names = self.names(field)
        if isinstance(value, SigmaExpansion):
            return self._or([self.field_leaf(field, v, cased=cased) for v in value.values])
        if isinstance(value, SigmaString):
            patterns = [string_pattern(v, cased=cased) for v in expand_placeholders(value, self.placeholders)]
            return Compiled(
                leaves.string_any(names, patterns),
                gate_or(p.gate for p in patterns),
                self._string_ids(names, patterns),
            )
        if isinstance(value, SigmaTimestampPart):
            return Compiled(
                leaves.timestamp_part(names, value.timestamp_part.name.lower(), value.number), None
            )
        if isinstance(value, SigmaNumber):
            number = value.number
            ids: EventIds = None
            if names == EVENT_ID and isinstance(number, int) and not isinstance(number, bool):
                ids = frozenset((number,))
            return Compiled(leaves.number_eq(names, number), None, ids)
        if isinstance(value, SigmaNull):
            return Compiled(leaves.is_null(names), None)
        if isinstance(value, SigmaExists):
            return Compiled(leaves.exists(names, bool(value.exists)), None)
        if isinstance(value, SigmaBool):
            return Compiled(
                leaves.string_any(names, [StringPattern("eq", str(bool(value)).lower(), False)]), None
            )
        if isinstance(value, SigmaRegularExpression):
            flags = {f.name for f in value.flags}
            compiled = leaves.regex_flags(str(value.regexp), flags)
            return Compiled(leaves.regex(names, compiled), regex_gate(str(value.regexp), flags))
        if isinstance(value, SigmaCIDRExpression):
            return Compiled(leaves.cidr(names, [value.network]), None)
        if isinstance(value, SigmaCompareExpression):
            return Compiled(leaves.compare(names, value.op.name, value.number.number), None)
        if isinstance(value, SigmaFieldReference):
            return Compiled(
                leaves.fieldref(names, self.names(value.field), value.starts_with, value.ends_with), None
            )
        raise RuleUnsupportedError(f"field {field!r}: unsupported value type {type(value).__name__}")

    def keyword_leaf(self, value: Any) -> Compiled:
        if isinstance(value, SigmaExpansion):
            return self._or([self.keyword_leaf(v) for v in value.values])
        if isinstance(value, SigmaNumber):
            value = SigmaString(str(value.number))
        if isinstance(value, SigmaString):
            text_value: SigmaString = value
            patterns: list[StringPattern] = []
            for expanded in expand_placeholders(text_value, self.placeholders):
                wrapped = expanded
                if not wrapped.startswith(SpecialChars.WILDCARD_MULTI):
                    wrapped = SpecialChars.WILDCARD_MULTI + wrapped
                if not wrapped.endswith(SpecialChars.WILDCARD_MULTI):
                    wrapped = wrapped + SpecialChars.WILDCARD_MULTI
                if isinstance(expanded, SigmaCasedString):
                    wrapped = SigmaCasedString.from_sigma_string(wrapped)
                patterns.append(string_pattern(wrapped))
            return Compiled(leaves.keyword_any(patterns), gate_or(p.gate for p in patterns))
        if isinstance(value, SigmaRegularExpression):
            flags = {f.name for f in value.flags}
            compiled = leaves.regex_flags(str(value.regexp), flags)
            return Compiled(leaves.keyword_regex(compiled), regex_gate(str(value.regexp), flags))
        raise RuleUnsupportedError(f"unsupported keyword value type {type(value).__name__}")
