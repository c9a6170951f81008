"""One correlation window: the hits of one (tenant, correlation rule, group) and their aggregate.

Aggregates are kept incrementally where that is cheap (counts, distinct values, integer sums, the
sorted values for medians and percentiles); ordered temporal chains are recomputed per evaluation.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from itertools import combinations

from sigma.correlations import SigmaCorrelationConditionOperator, SigmaCorrelationType

from watchfloor.detect.sigma.correlation_compile import Plan, expr_holds

Number = int | float

_OPS = {
    SigmaCorrelationConditionOperator.GT: lambda a, b: a > b,
    SigmaCorrelationConditionOperator.GTE: lambda a, b: a >= b,
    SigmaCorrelationConditionOperator.LT: lambda a, b: a < b,
    SigmaCorrelationConditionOperator.LTE: lambda a, b: a <= b,
    SigmaCorrelationConditionOperator.EQ: lambda a, b: a == b,
    SigmaCorrelationConditionOperator.NEQ: lambda a, b: a != b,
}


@dataclass(slots=True)
class Entry:
    """One hit inside a window."""

    ts: float
    first_ts: float  # earliest event behind the hit (a chained correlation match spans a range)
    seq: int  # arrival order; breaks timestamp ties
    source: int  # position of the hit's rule in the correlation's rule list
    refs: tuple[str, ...]
    weight: int  # events behind the hit (1 for a base match)
    value: Hashable | None  # distinct key (value_count) or number (value_* types)


def _order(entry: Entry) -> tuple[float, int]:
    return (entry.ts, entry.seq)


def _ts(entry: Entry) -> float:
    return entry.ts


def percentile(values: list[Number], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); `values` sorted, non-empty."""
    rank = pct / 100.0 * (len(values) - 1)
    low = math.floor(rank)
    high = math.ceil(rank)
    return float(values[low]) + (float(values[high]) - float(values[low])) * (rank - low)


class Window:
    """Hits of one group, sorted by (timestamp, arrival), with running aggregates."""

    __slots__ = (
        "deadline",
        "distinct",
        "entries",
        "float_count",
        "floor",
        "int_total",
        "newest",
        "sources",
        "start",
        "values",
    )

    def __init__(self, start: float) -> None:
        self.entries: list[Entry] = []
        self.start = start  # first hit of a tumbling (close-evaluated) window
        self.newest = start
        self.floor = -math.inf  # hits older than this belong to a window already emitted
        self.deadline = math.nan
        self.sources: Counter[int] = Counter()
        self.distinct: Counter[Hashable] = Counter()
        self.values: list[Number] = []  # sorted numeric values
        self.int_total = 0
        self.float_count = 0

    def add(self, entry: Entry) -> None:
        insort(self.entries, entry, key=_order)
        self.newest = max(self.newest, entry.ts)
        self._count(entry, 1)

    def evict_before(self, cutoff: float) -> None:
        cut = bisect_left(self.entries, cutoff, key=_ts)
        self.evict_oldest(cut)

    def evict_oldest(self, n: int) -> None:
        if n <= 0:
            return
        for entry in self.entries[:n]:
            self._count(entry, -1)
        del self.entries[:n]

    def clear(self) -> None:
        self.entries.clear()
        self.sources.clear()
        self.distinct.clear()
        self.values.clear()
        self.int_total = 0
        self.float_count = 0

    def _count(self, entry: Entry, sign: int) -> None:
        self.sources[entry.source] += sign
        if self.sources[entry.source] == 0:
            del self.sources[entry.source]
        value = entry.value
        if value is None:
            return
        if isinstance(value, int | float) and not isinstance(value, bool):
            if sign > 0:
                insort(self.values, value)
            else:
                del self.values[bisect_left(self.values, value)]
            if isinstance(value, int):
                self.int_total += sign * value
            else:
                self.float_count += sign
        else:
            self.distinct[value] += sign
            if self.distinct[value] == 0:
                del self.distinct[value]

    # -- evaluation -------------------------------------------------------------------------------

    def evaluate(self, plan: Plan) -> tuple[bool, Number | None]:
        """Whether the window satisfies the plan's condition, and the aggregate it was tested on."""
        if not self.entries:
            return False, None
        if plan.expr is not None:
            return self._extended(plan)
        value = self.aggregate(plan)
        assert plan.op is not None
        return bool(_OPS[plan.op](value, plan.threshold)), value

    def aggregate(self, plan: Plan) -> Number:
        kind = plan.kind
        if kind is SigmaCorrelationType.EVENT_COUNT:
            return len(self.entries)
        if kind is SigmaCorrelationType.VALUE_COUNT:
            return len(self.distinct)
        if kind is SigmaCorrelationType.TEMPORAL:
            return len(self.sources)
        if kind is SigmaCorrelationType.TEMPORAL_ORDERED:
            return self._longest_chain(len(plan.sources))
        if kind is SigmaCorrelationType.VALUE_SUM:
            return self._sum()
        if kind is SigmaCorrelationType.VALUE_AVG:
            return self._sum() / len(self.values)
        if kind is SigmaCorrelationType.VALUE_MEDIAN:
            return percentile(self.values, 50)
        assert plan.percentile is not None
        return percentile(self.values, plan.percentile)

    def _sum(self) -> Number:
        if self.float_count == 0:
            return self.int_total
        return math.fsum(self.values)

    def _longest_chain(self, n_sources: int) -> int:
        """Longest run of the listed rules, in list order, with non-decreasing timestamps.

        Hits with equal timestamps count as in order (sorted by rule position).
        """
        best = [0] * n_sources
        for entry in sorted(self.entries, key=lambda e: (e.ts, e.source)):
            i = entry.source
            best[i] = max(best[i], 1 + max(best[:i], default=0))
        return max(best, default=0)

    def _extended(self, plan: Plan) -> tuple[bool, Number | None]:
        assert plan.expr is not None
        present = frozenset(self.sources)
        if plan.kind is not SigmaCorrelationType.TEMPORAL_ORDERED:
            return expr_holds(plan.expr, present, present), len(present)
        if not expr_holds(plan.expr, present, present):
            return False, None  # positive references only get harder to satisfy with fewer rules
        times: dict[int, list[float]] = {}
        for entry in self.entries:
            times.setdefault(entry.source, []).append(entry.ts)  # entries are sorted by ts
        ordered = sorted(present)
        for size in range(len(ordered), -1, -1):
            for chosen in combinations(ordered, size):
                chosen_set = frozenset(chosen)
                if expr_holds(plan.expr, chosen_set, present) and _orderable(chosen, times):
                    return True, size
        return False, None


def _orderable(chosen: tuple[int, ...], times: dict[int, list[float]]) -> bool:
    """Whether one hit per chosen rule can be picked with non-decreasing timestamps in list order."""
    previous = -math.inf
    for source in chosen:
        stamps = times[source]
        at = bisect_left(stamps, previous)
        if at == len(stamps):
            return False
        previous = stamps[at]
    return True
