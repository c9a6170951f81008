"""Sigma correlation rules evaluated over a stream of base-rule matches.

The fast engine matches single events against base rules; this engine consumes those matches, per
tenant and in (roughly) timestamp order, and emits a `CorrelationMatch` when a correlation holds.
All types pySigma 2.0.1 models are supported: event_count, value_count, temporal, temporal_ordered,
value_sum, value_avg, value_percentile, value_median, plus extended (boolean) conditions for the
temporal types and correlations that reference other correlations (chains).

Semantics (decisions the specification leaves open):

- State is kept per tenant: every window is keyed by (tenant, correlation rule, group-by values), so
  two tenants never combine. Time is event time (`BaseMatch.timestamp`); each tenant has its own
  watermark, the newest timestamp seen for it.
- Grouping: group-by values are read from `BaseMatch.fields` under the field name the rule's
  aliases map the group-by name to for that base rule (else the group-by name itself), and compared
  as text (`5` and `"5"` are one group). A match missing a group-by value, the condition field, or
  (value_sum/avg/percentile/median) a numeric value is not counted for that correlation.
- Windows are inclusive: hits belong together when their timestamps differ by at most `timespan`.
- gt, gte, eq (and extended conditions without `not`) are evaluated on arrival over the sliding
  window [newest - timespan, newest] of the group. When the condition holds, one match is emitted
  with every hit in the window; the group's window is then cleared, so the next match needs fresh
  hits (no re-emission for the same window). Hits older than the last emission are dropped.
- lt, lte, neq (and extended conditions with `not`) can only be decided when the window is over:
  these groups use tumbling windows that start at the group's first hit and cover `timespan`. The
  window closes when a later hit of the same group falls outside it, when the tenant's watermark
  passes its end plus the allowed lateness, or on `flush()`; only then is the condition evaluated.
  A group that never had a hit cannot match (a count of zero has no group values).
- temporal counts distinct referenced rules in the window; temporal_ordered the longest run of the
  listed rules in list order by event timestamp (equal timestamps count as in order). The default
  condition pySigma sets (gte: number of rules) therefore means "all of them" / "all, in order".
  Extended conditions test rule presence in the window; for temporal_ordered the rules referenced
  positively must be matched by hits in list order, and `not x` means no hit of x in the window.
- percentile uses linear interpolation between closest ranks; median is the 50th percentile.
- Out-of-order input: a hit more than the allowed lateness (default: the rule's timespan) behind
  the tenant's watermark is dropped, as is a hit older than its open window (sliding: older than
  newest - timespan; tumbling: before the window's start). Windows expire, and their memory is
  freed, once the watermark passes their end plus the allowed lateness. For input in timestamp
  order the results are exact; `counters(tenant)` reports what was dropped. `advance_to()` moves a
  tenant's clock without a match (a heartbeat), so idle windows close and lt matches come out.
- Memory: a window holds at most `max_window_events` hits (the oldest are dropped and counted as
  discarded_overflow); a match lists at most `max_event_refs` event refs, `event_count` has them all.
- Chains: a correlation match feeds the correlations that reference it as one hit at its
  `last_timestamp`, with its group values as fields (chained hits are never dropped as late).
  A referencing correlation may only group by (or aggregate) the inner correlation's group-by.
- `generate`: a base (or correlation) rule's own matches are emitted when no correlation references
  it, or when at least one referencing correlation sets `generate: true` (pySigma instead disables
  output if any referencing correlation lacks it; we prefer not to lose detections).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from itertools import count
from typing import Any
from uuid import UUID

from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from watchfloor.detect.sigma.correlation_compile import VALUE_TYPES, Mode, Node, Plan, compile_rules
from watchfloor.detect.sigma.correlation_window import Entry, Number, Window

MAX_EVENT_REFS = 1000
MAX_WINDOW_EVENTS = 100_000

GroupKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseMatch:
    """A base rule matched an event (produced by the fast engine)."""

    tenant: str
    rule_id: str  # the base rule's id
    rule_name: str | None  # the base rule's `name` field, if any
    event_ref: str  # opaque id of the event ("source:record"), carried into correlation matches
    timestamp: float  # epoch seconds (UTC)
    fields: Mapping[str, Any]  # resolved values of the fields the correlation needs (needed_fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrelationMatch:
    """A correlation rule held for one group of one tenant."""

    tenant: str
    rule_id: str
    rule_title: str
    level: str
    group: tuple[tuple[str, str], ...]  # group-by field -> value
    first_timestamp: float
    last_timestamp: float
    event_refs: tuple[str, ...]  # events that made the match, in timestamp order, capped
    value: float | int | None  # the aggregate (count, distinct count, sum, ...)
    event_count: int = 0  # events that made the match; event_refs holds at most MAX_EVENT_REFS


@dataclass(frozen=True, slots=True)
class _Hit:
    node: Node
    ts: float
    first_ts: float
    refs: tuple[str, ...]
    weight: int
    fields: Mapping[str, Any]
    chained: bool


@dataclass(slots=True)
class _Tenant:
    watermark: float = -math.inf
    windows: dict[tuple[int, GroupKey], Window] = field(default_factory=dict)
    heap: list[tuple[float, int, int, GroupKey]] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)


class CorrelationEngine:
    """Streams base-rule matches through compiled correlation rules, per tenant."""

    def __init__(
        self,
        rules: Sequence[SigmaCorrelationRule],
        base_rules: Sequence[SigmaRule],
        *,
        allowed_lateness_seconds: float | None = None,
        max_window_events: int = MAX_WINDOW_EVENTS,
        max_event_refs: int = MAX_EVENT_REFS,
    ) -> None:
        """Resolve references by id or name; raises RuleError (with the rule's location) when one
        cannot be resolved, and RuleUnsupportedError for chains this engine cannot evaluate."""
        self._plans, self._order = compile_rules(rules, base_rules)
        self._lateness = allowed_lateness_seconds
        self._max_window_events = max_window_events
        self._max_event_refs = max_event_refs
        self._seq = count()
        self._tenants: dict[str, _Tenant] = {}

        self._base_ids: dict[str, Node] = {}
        self._base_names: dict[str, Node] = {}
        for i, rule in enumerate(base_rules):
            if rule.id is not None:
                self._base_ids.setdefault(str(rule.id), ("base", i))
            if rule.name:
                self._base_names.setdefault(rule.name, ("base", i))
        self._consumers: dict[Node, list[Plan]] = {}
        for j in self._order:
            for node in self._plans[j].sources:
                self._consumers.setdefault(node, []).append(self._plans[j])
        self._needed: dict[Node, tuple[str, ...]] = {}
        for node, plans in self._consumers.items():
            names: dict[str, None] = {}
            for plan in plans:
                feed = plan.feeds[node]
                names.update(dict.fromkeys(feed.group_fields + feed.value_fields))
            self._needed[node] = tuple(names)

    # -- what the fast engine asks --------------------------------------------------------------

    def _base_node(self, rule_id: str, rule_name: str | None = None) -> Node | None:
        node = self._base_ids.get(rule_id)
        if node is None:
            try:
                node = self._base_ids.get(str(UUID(rule_id)))
            except ValueError:
                node = self._base_names.get(rule_id)
        if node is None and rule_name:
            node = self._base_names.get(rule_name)
        return node

    def needed_fields(self, base_rule_id: str) -> tuple[str, ...]:
        """Sigma field names a base match of this rule must carry (group-by after aliases, value field)."""
        node = self._base_node(base_rule_id)
        return self._needed.get(node, ()) if node is not None else ()

    def is_referenced(self, base_rule_id: str) -> bool:
        node = self._base_node(base_rule_id)
        return node is not None and node in self._consumers

    def emits_base(self, base_rule_id: str) -> bool:
        """Whether the base rule's own matches are output (see `generate` in the module docstring)."""
        node = self._base_node(base_rule_id)
        return node is None or self._emits(node)

    def _emits(self, node: Node) -> bool:
        plans = self._consumers.get(node)
        return not plans or any(plan.generate for plan in plans)

    # -- streaming ----------------------------------------------------------------------------

    def feed(self, match: BaseMatch) -> list[CorrelationMatch]:
        """Consume one base match; returns the correlation matches it (or the time it reached) completed."""
        out: list[CorrelationMatch] = []
        state = self._tenant(match.tenant)
        state.counters["received"] += 1
        if not math.isfinite(match.timestamp):
            state.counters["discarded_invalid_timestamp"] += 1
            return out
        if match.timestamp > state.watermark:
            state.watermark = match.timestamp
            self._sweep(match.tenant, state, out)
        node = self._base_node(match.rule_id, match.rule_name)
        if node is None or node not in self._consumers:
            state.counters["discarded_unreferenced"] += 1
            return out
        hit = _Hit(node, match.timestamp, match.timestamp, (match.event_ref,), 1, match.fields, False)
        self._dispatch(match.tenant, state, hit, out)
        return out

    def advance_to(self, tenant: str, timestamp: float) -> list[CorrelationMatch]:
        """Tell the engine a tenant's event time reached `timestamp` (a heartbeat with no match):
        expired windows close, so lt/lte/neq matches are emitted without waiting for more input."""
        out: list[CorrelationMatch] = []
        state = self._tenant(tenant)
        if timestamp > state.watermark:
            state.watermark = timestamp
            self._sweep(tenant, state, out)
        return out

    def flush(self) -> list[CorrelationMatch]:
        """End of input: close every open window (evaluating lt/lte/neq) and free all state."""
        out: list[CorrelationMatch] = []
        for tenant in sorted(self._tenants):
            state = self._tenants[tenant]
            for j in self._order:  # referenced correlations first, so chained hits are seen
                plan = self._plans[j]
                keys = sorted(
                    (key for key in state.windows if key[0] == j),
                    key=lambda k: (state.windows[k].start, k[1]),
                )
                for wkey in keys:
                    win = state.windows.pop(wkey)
                    if plan.mode is Mode.CLOSE:
                        self._close(tenant, state, plan, wkey[1], win, out)
            state.heap.clear()
        return out

    def state_size(self, tenant: str) -> int:
        """Open windows plus the hits they hold for a tenant (0 once everything expired)."""
        state = self._tenants.get(tenant)
        if state is None:
            return 0
        return sum(1 + len(win.entries) for win in state.windows.values())

    def counters(self, tenant: str) -> dict[str, int]:
        """received, emitted and discarded_<reason> counts for a tenant."""
        state = self._tenants.get(tenant)
        return dict(state.counters) if state is not None else {}

    # -- internals ----------------------------------------------------------------------------

    def _tenant(self, tenant: str) -> _Tenant:
        state = self._tenants.get(tenant)
        if state is None:
            state = self._tenants[tenant] = _Tenant()
        return state

    def _lateness_for(self, plan: Plan) -> float:
        return plan.span if self._lateness is None else self._lateness

    def _sweep(self, tenant: str, state: _Tenant, out: list[CorrelationMatch]) -> None:
        heap = state.heap
        while heap and heap[0][0] < state.watermark:
            deadline, _, j, key = heappop(heap)
            win = state.windows.get((j, key))
            if win is None or win.deadline != deadline:
                continue  # superseded by a later deadline
            del state.windows[(j, key)]
            plan = self._plans[j]
            if plan.mode is Mode.CLOSE:
                self._close(tenant, state, plan, key, win, out)

    def _dispatch(self, tenant: str, state: _Tenant, hit: _Hit, out: list[CorrelationMatch]) -> None:
        for plan in self._consumers.get(hit.node, ()):
            self._accept(tenant, state, plan, hit, out)

    def _accept(
        self, tenant: str, state: _Tenant, plan: Plan, hit: _Hit, out: list[CorrelationMatch]
    ) -> None:
        feed = plan.feeds[hit.node]
        group: list[tuple[str, str]] = []
        for name, field_name in zip(plan.group_by, feed.group_fields, strict=True):
            raw = hit.fields.get(field_name)
            if raw is None:
                state.counters["discarded_missing_field"] += 1
                return
            group.append((name, _text(raw)))
        key = tuple(group)
        found, value = self._value(plan, feed.value_fields, hit.fields)
        if not found:
            state.counters["discarded_missing_field"] += 1
            return
        lateness = self._lateness_for(plan)
        if not hit.chained and hit.ts < state.watermark - lateness:
            state.counters["discarded_late"] += 1
            return
        wkey = (plan.index, key)
        win = state.windows.get(wkey)
        if plan.mode is Mode.CLOSE and win is not None and hit.ts > win.start + plan.span:
            del state.windows[wkey]
            self._close(tenant, state, plan, key, win, out)
            win = None
        if win is None:
            win = state.windows[wkey] = Window(hit.ts)
        elif hit.ts < win.floor or hit.ts < (
            win.newest - plan.span if plan.mode is Mode.ARRIVAL else win.start
        ):
            state.counters["discarded_late"] += 1
            return
        entry = Entry(hit.ts, hit.first_ts, next(self._seq), feed.source, hit.refs, hit.weight, value)
        win.add(entry)
        if plan.mode is Mode.ARRIVAL:
            win.evict_before(win.newest - plan.span)
        overflow = len(win.entries) - self._max_window_events
        if overflow > 0:
            win.evict_oldest(overflow)
            state.counters["discarded_overflow"] += overflow
        if plan.mode is Mode.CLOSE:
            self._schedule(state, plan, key, win, win.start + plan.span + lateness)
            return
        self._schedule(state, plan, key, win, win.newest + plan.span + lateness)
        ok, aggregate = win.evaluate(plan)
        if ok:
            match = self._match(tenant, plan, key, win, aggregate)
            win.clear()
            win.floor = win.newest
            self._emit(tenant, state, plan, match, out)

    @staticmethod
    def _value(plan: Plan, names: tuple[str, ...], fields: Mapping[str, Any]) -> tuple[bool, Hashable | None]:
        """(found, value): the condition field's number (value_* types) or text (value_count)."""
        if not names:
            return True, None
        raws = [fields.get(name) for name in names]
        if any(raw is None for raw in raws):
            return False, None
        if plan.kind in VALUE_TYPES:
            number = _number(raws[0])
            return number is not None, number
        texts = tuple(_text(raw) for raw in raws)
        return True, (texts[0] if len(texts) == 1 else texts)

    def _schedule(self, state: _Tenant, plan: Plan, key: GroupKey, win: Window, deadline: float) -> None:
        if deadline != win.deadline:
            win.deadline = deadline
            heappush(state.heap, (deadline, next(self._seq), plan.index, key))

    def _close(
        self, tenant: str, state: _Tenant, plan: Plan, key: GroupKey, win: Window, out: list[CorrelationMatch]
    ) -> None:
        ok, aggregate = win.evaluate(plan)
        if ok:
            self._emit(tenant, state, plan, self._match(tenant, plan, key, win, aggregate), out)

    def _match(
        self, tenant: str, plan: Plan, key: GroupKey, win: Window, aggregate: Number | None
    ) -> CorrelationMatch:
        refs: list[str] = []
        for entry in win.entries:
            room = self._max_event_refs - len(refs)
            if room <= 0:
                break
            refs.extend(entry.refs[:room])
        return CorrelationMatch(
            tenant=tenant,
            rule_id=plan.rule_id,
            rule_title=plan.title,
            level=plan.level,
            group=key,
            first_timestamp=min(entry.first_ts for entry in win.entries),
            last_timestamp=max(entry.ts for entry in win.entries),
            event_refs=tuple(refs),
            value=aggregate,
            event_count=sum(entry.weight for entry in win.entries),
        )

    def _emit(
        self, tenant: str, state: _Tenant, plan: Plan, match: CorrelationMatch, out: list[CorrelationMatch]
    ) -> None:
        node: Node = ("corr", plan.index)
        if self._emits(node):
            out.append(match)
            state.counters["emitted"] += 1
        if node in self._consumers:
            hit = _Hit(
                node,
                match.last_timestamp,
                match.first_timestamp,
                match.event_refs,
                match.event_count,
                dict(match.group),
                True,
            )
            self._dispatch(tenant, state, hit, out)


def _text(value: object) -> str:
    """Group-by and distinct values compare as text: 5, 5.0 and "5" are one value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return "[" + ",".join(_text(item) for item in value) + "]"
    return str(value)


def _number(value: object) -> Number | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


__all__ = [
    "MAX_EVENT_REFS",
    "BaseMatch",
    "CorrelationEngine",
    "CorrelationMatch",
]
