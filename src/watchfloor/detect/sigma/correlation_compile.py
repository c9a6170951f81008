"""Compile pySigma correlation rules into the plans the correlation engine evaluates.

Resolution of rule references (by id or `name`), field aliases, the evaluation mode of each
condition and the extended (boolean) temporal conditions live here; `correlation.py` holds the
streaming state. Every error names the rule file (and line, when pySigma knows it).
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TypeAlias
from uuid import UUID

from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionItem,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)
from sigma.rule import SigmaRule, SigmaRuleBase

from watchfloor.core.errors import Location, RuleError, RuleUnsupportedError
from watchfloor.core.types import RULE_LEVELS, RuleLevel, rule_level

# A node is a rule that produces hits: ("base", i) for base_rules[i], ("corr", j) for rules[j].
Node: TypeAlias = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Ref:
    """Extended condition leaf: the rule at this position of the correlation's rule list."""

    source: int


@dataclass(frozen=True, slots=True)
class Not:
    arg: Expr


@dataclass(frozen=True, slots=True)
class And:
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    args: tuple[Expr, ...]


Expr: TypeAlias = "Ref | Not | And | Or"

VALUE_TYPES = frozenset(
    {
        SigmaCorrelationType.VALUE_SUM,
        SigmaCorrelationType.VALUE_AVG,
        SigmaCorrelationType.VALUE_PERCENTILE,
        SigmaCorrelationType.VALUE_MEDIAN,
    }
)
TEMPORAL_TYPES = frozenset({SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED})

# Ordered extended conditions try subsets of the matched rules; keep that search small.
MAX_ORDERED_EXTENDED_RULES = 12


class Mode(enum.Enum):
    """When a group's window is evaluated."""

    ARRIVAL = "arrival"  # after every hit (gt, gte, eq; extended conditions without `not`)
    CLOSE = "close"  # once, when the window closes (lt, lte, neq; extended conditions with `not`)


_CLOSE_OPS = frozenset(
    {
        SigmaCorrelationConditionOperator.LT,
        SigmaCorrelationConditionOperator.LTE,
        SigmaCorrelationConditionOperator.NEQ,
    }
)


@dataclass(frozen=True, slots=True)
class Feed:
    """How hits of one referenced rule feed one correlation."""

    source: int  # position of the referenced rule in the correlation's rule list
    group_fields: tuple[str, ...]  # field read for each group-by entry (aliases resolved)
    value_fields: tuple[str, ...]  # field(s) read for the condition field (aliases resolved)


@dataclass(slots=True)
class Plan:
    """One correlation rule, ready to evaluate."""

    index: int
    rule: SigmaCorrelationRule
    rule_id: str
    title: str
    level: RuleLevel
    kind: SigmaCorrelationType
    span: float
    group_by: tuple[str, ...]
    mode: Mode
    op: SigmaCorrelationConditionOperator | None
    threshold: float
    percentile: int | None
    expr: Expr | None
    sources: tuple[Node, ...]
    feeds: dict[Node, Feed] = field(default_factory=dict)
    generate: bool = False


def location_of(rule: SigmaRuleBase, needle: str | None = None) -> Location:
    """The rule's file, and the line of `needle` in its document when pySigma knows no line."""
    source = rule.source
    if source is None:
        return Location()
    line = source.line
    if line is None and needle:
        line = _line_in_file(source.path, rule.title, needle)
    return Location(path=str(source.path), line=line)


def _line_in_file(path: Path, title: str, needle: str) -> int | None:
    """1-based line of `needle` as a whole token, searched from the rule's `title:` line on.

    Only used to place errors: pySigma does not track lines inside multi-document files.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    token = re.compile(rf"(?<![\w.-]){re.escape(needle)}(?![\w.-])")
    start = next((i for i, text in enumerate(lines) if text.startswith("title:") and title in text), 0)
    for index in chain(range(start, len(lines)), range(start)):
        if token.search(lines[index]):
            return index + 1
    return None


def rule_key(rule: SigmaRuleBase) -> str:
    """The id Watchfloor uses for a rule: its UUID, else its name, else its title."""
    if rule.id is not None:
        return str(rule.id)
    return rule.name or rule.title


def describe(rule: SigmaRuleBase) -> str:
    return f"correlation rule {rule.title!r}"


class Resolver:
    """Finds base and correlation rules by id (any UUID spelling) or by `name`."""

    def __init__(self, base_rules: Sequence[SigmaRule], rules: Sequence[SigmaCorrelationRule]) -> None:
        self._by_ref: dict[str, list[Node]] = {}
        for kind, group in (("base", base_rules), ("corr", rules)):
            for i, rule in enumerate(group):
                node: Node = (kind, i)
                if rule.id is not None:
                    self._add(str(rule.id), node)
                if rule.name:
                    self._add(rule.name, node)

    def _add(self, ref: str, node: Node) -> None:
        nodes = self._by_ref.setdefault(ref, [])
        if node not in nodes:
            nodes.append(node)

    def find(self, ref: str) -> list[Node]:
        with contextlib.suppress(ValueError):
            ref = str(UUID(ref))
        return self._by_ref.get(ref, [])

    def resolve(self, ref: str, owner: SigmaCorrelationRule) -> Node:
        nodes = self.find(ref)
        if not nodes:
            msg = f"{describe(owner)} references unknown rule {ref!r}: no rule has this id or name"
            raise RuleError(msg, location=location_of(owner, ref))
        if len(nodes) > 1:
            msg = f"{describe(owner)} references {ref!r}, which names more than one rule"
            raise RuleError(msg, location=location_of(owner, ref))
        return nodes[0]


def _references(rule: SigmaCorrelationRule) -> list[str]:
    if rule.rules is not None:
        return [ref.reference for ref in rule.rules]
    if isinstance(rule.condition, SigmaExtendedCorrelationCondition):
        return rule.condition.get_referenced_rules()
    return []


def _compile_expr(item: CorrelationConditionItem | SigmaRuleReference, index: Mapping[str, int]) -> Expr:
    if isinstance(item, SigmaRuleReference):
        return Ref(index[item.reference])
    args = tuple(_compile_expr(arg, index) for arg in item.args)
    if isinstance(item, CorrelationConditionNOT):
        return Not(args[0])
    if isinstance(item, CorrelationConditionAND):
        return And(args)
    if isinstance(item, CorrelationConditionOR):
        return Or(args)
    msg = f"unknown correlation condition node {type(item).__name__}"
    raise RuleUnsupportedError(msg)


def expr_has_not(expr: Expr) -> bool:
    if isinstance(expr, Ref):
        return False
    if isinstance(expr, Not):
        return True
    return any(expr_has_not(sub) for sub in expr.args)


def expr_holds(expr: Expr, chosen: frozenset[int], present: frozenset[int], positive: bool = True) -> bool:
    """Evaluate an extended condition.

    A reference under an even number of `not`s is true when its rule is in `chosen` (for ordered
    correlations: the rules whose hits form the ordered chain); under an odd number it tests `present`
    (any hit of the rule in the window), so `not b` means "no b in the window at all".
    """
    if isinstance(expr, Ref):
        return expr.source in (chosen if positive else present)
    if isinstance(expr, Not):
        return not expr_holds(expr.arg, chosen, present, not positive)
    if isinstance(expr, And):
        return all(expr_holds(sub, chosen, present, positive) for sub in expr.args)
    return any(expr_holds(sub, chosen, present, positive) for sub in expr.args)


def _level(rule: SigmaRuleBase) -> RuleLevel | None:
    return rule_level(str(rule.level)) if rule.level is not None else None


def compile_rules(
    rules: Sequence[SigmaCorrelationRule], base_rules: Sequence[SigmaRule]
) -> tuple[list[Plan], list[int]]:
    """Compile every correlation rule; returns the plans and an order with referenced rules first."""
    resolver = Resolver(base_rules, rules)
    plans = [_compile_one(j, rule, resolver) for j, rule in enumerate(rules)]
    order = _topological(plans)
    _check_chains(plans)
    for j in order:  # inherit the highest referenced level when the correlation sets none
        plan = plans[j]
        if _level(plan.rule) is not None:
            continue
        best: RuleLevel = "informational"
        for kind, i in plan.sources:
            level = _level(base_rules[i]) if kind == "base" else plans[i].level
            if level is not None and RULE_LEVELS.index(level) > RULE_LEVELS.index(best):
                best = level
        plan.level = best
    return plans, order


def _compile_one(j: int, rule: SigmaCorrelationRule, resolver: Resolver) -> Plan:
    where = location_of(rule)
    refs = _references(rule)
    if not refs:
        raise RuleError(f"{describe(rule)} references no rules", location=where)
    sources: list[Node] = []
    for ref in refs:
        node = resolver.resolve(ref, rule)
        if node not in sources:
            sources.append(node)
    if ("corr", j) in sources:
        raise RuleError(f"{describe(rule)} references itself", location=where)
    source_index = {node: k for k, node in enumerate(sources)}

    cond = rule.condition
    op: SigmaCorrelationConditionOperator | None = None
    threshold = 0.0
    percentile: int | None = None
    expr: Expr | None = None
    value_fields: tuple[str, ...] = ()
    if isinstance(cond, SigmaExtendedCorrelationCondition):
        index = {ref: source_index[resolver.resolve(ref, rule)] for ref in cond.get_referenced_rules()}
        expr = _compile_expr(cond.parsed, index)
        if rule.type is SigmaCorrelationType.TEMPORAL_ORDERED and len(sources) > MAX_ORDERED_EXTENDED_RULES:
            msg = (
                f"{describe(rule)}: ordered extended conditions support at most "
                f"{MAX_ORDERED_EXTENDED_RULES} rules"
            )
            raise RuleUnsupportedError(msg, location=where)
        mode = Mode.CLOSE if expr_has_not(expr) else Mode.ARRIVAL
    else:
        assert isinstance(cond, SigmaCorrelationCondition)
        op = cond.op
        threshold = float(cond.count)
        mode = Mode.CLOSE if op in _CLOSE_OPS else Mode.ARRIVAL
        if rule.type is SigmaCorrelationType.VALUE_COUNT or rule.type in VALUE_TYPES:
            fieldref = cond.fieldref
            value_fields = (fieldref,) if isinstance(fieldref, str) else tuple(fieldref or ())
            if not value_fields:
                raise RuleError(f"{describe(rule)} needs condition.field", location=where)
            if rule.type in VALUE_TYPES and len(value_fields) != 1:
                raise RuleError(f"{describe(rule)} needs exactly one condition.field", location=where)
        if rule.type is SigmaCorrelationType.VALUE_PERCENTILE:
            percentile = cond.percentile
            if percentile is None or not 0 <= percentile <= 100:
                msg = f"{describe(rule)} needs condition.percentile between 0 and 100"
                raise RuleError(msg, location=where)

    plan = Plan(
        index=j,
        rule=rule,
        rule_id=rule_key(rule),
        title=rule.title,
        level=_level(rule) or "informational",
        kind=rule.type,
        span=float(rule.timespan.seconds),
        group_by=tuple(rule.group_by or ()),
        mode=mode,
        op=op,
        threshold=threshold,
        percentile=percentile,
        expr=expr,
        sources=tuple(sources),
        generate=rule.generate,
    )
    aliases = _aliases(rule, resolver)
    for node, k in source_index.items():
        mapping = aliases.get(node, {})
        plan.feeds[node] = Feed(
            source=k,
            group_fields=tuple(mapping.get(name, name) for name in plan.group_by),
            value_fields=tuple(mapping.get(name, name) for name in value_fields),
        )
    return plan


def _aliases(rule: SigmaCorrelationRule, resolver: Resolver) -> dict[Node, dict[str, str]]:
    """alias name -> field name, per referenced rule."""
    out: dict[Node, dict[str, str]] = {}
    for alias in rule.aliases:
        for ref, field_name in alias.mapping.items():
            nodes = resolver.find(ref.reference)
            if len(nodes) != 1:
                msg = (
                    f"{describe(rule)}: alias {alias.alias!r} "
                    f"maps an unknown or ambiguous rule {ref.reference!r}"
                )
                raise RuleError(msg, location=location_of(rule, ref.reference))
            out.setdefault(nodes[0], {})[alias.alias] = str(field_name)
    return out


def _topological(plans: Sequence[Plan]) -> list[int]:
    order: list[int] = []
    state: dict[int, int] = {}  # 1 = visiting, 2 = done

    def visit(j: int) -> None:
        if state.get(j) == 2:
            return
        if state.get(j) == 1:
            rule = plans[j].rule
            raise RuleError(f"{describe(rule)} is part of a reference cycle", location=location_of(rule))
        state[j] = 1
        for kind, i in plans[j].sources:
            if kind == "corr":
                visit(i)
        state[j] = 2
        order.append(j)

    for j in range(len(plans)):
        visit(j)
    return order


def _check_chains(plans: Sequence[Plan]) -> None:
    """A correlation fed by another correlation can only read that correlation's group-by values."""
    for plan in plans:
        for node, feed in plan.feeds.items():
            kind, i = node
            if kind != "corr":
                continue
            inner = plans[i]
            missing = [name for name in feed.group_fields + feed.value_fields if name not in inner.group_by]
            if missing:
                msg = (
                    f"{describe(plan.rule)} reads {', '.join(missing)} from correlation {inner.title!r}, "
                    f"which groups only by {', '.join(inner.group_by) or 'nothing'}"
                )
                raise RuleUnsupportedError(msg, location=location_of(plan.rule))
