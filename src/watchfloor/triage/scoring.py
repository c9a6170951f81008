"""Risk scores 0-100 with their factors shown, and the per-tenant rarity of rules.

`score` adds named, non-negative points (each a `RiskFactor` with a sentence for the analyst) and clamps the
sum to 0-100. With the default `ScoreWeights`:

| factor | points |
|---|---|
| rule_level | informational 5, low 15, medium 30, high 45, critical 60 |
| confidence: Sigma `status` | stable 10, test 5, experimental 0, deprecated/unsupported 0, else 3 |
| asset_criticality: highest in inventory | low 0, medium 5, high 12, critical 20 |
| intel: indicator hits on the event | 10 per hit, at most 20 |
| vertical: see below | 8 |
| rarity: `RarityTracker` | 10 x rarity |

Vertical weighting: healthcare, legal and finance tenants get the vertical points when the alert has a
data-theft or extortion tactic (collection, credential-access, exfiltration, impact); other verticals never.

A critical rule on a critical asset with intel hits reaches 100; an experimental low rule on an unknown
laptop stays near 20. Criticality and intel points never decrease with a higher level or more hits
(`ScoreWeights` checks this), so raising either never lowers a score (tests/triage/test_scoring.py).

Rarity is per tenant and per *rule* (not rule + entity): the share of the tenant's recent rule hits that
this rule has, over a sliding window of hourly buckets (7 days by default). Keying on rule + entity would
dilute the share by the number of hosts and call a rule firing on all 40 laptops "rare" on each. A tenant
with few hits is judged against `min_total` hits, so the first hits of a new tenant read as rare; rarity
only ever raises a score, which is the safe side after a restart (the tracker starts empty).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from watchfloor.core.errors import ConfigError
from watchfloor.core.types import RULE_LEVELS, RuleLevel, TenantId
from watchfloor.triage.entities import attack_of
from watchfloor.triage.models import DetectionInput, Entity, RiskFactor, RiskScore

__all__ = ["CRITICALITIES", "RarityTracker", "ScoreWeights", "score"]

CRITICALITIES: Final[tuple[str, ...]] = ("low", "medium", "high", "critical")
_DATA_THEFT: Final = frozenset({"collection", "credential-access", "exfiltration", "impact"})


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ScoreWeights:
    """Points per factor (see the module docstring for what the defaults mean). Compared by identity:
    scores are cached per weights object."""

    level_points: Mapping[RuleLevel, float] = field(
        default_factory=lambda: MappingProxyType(
            {"informational": 5.0, "low": 15.0, "medium": 30.0, "high": 45.0, "critical": 60.0}
        )
    )
    confidence_points: Mapping[str, float] = field(
        default_factory=lambda: _frozen(
            {"stable": 10, "test": 5, "experimental": 0, "deprecated": 0, "unsupported": 0}
        )
    )
    unknown_confidence_points: float = 3
    criticality_points: Mapping[str, float] = field(
        default_factory=lambda: _frozen({"low": 0, "medium": 5, "high": 12, "critical": 20})
    )
    intel_points_per_hit: float = 10
    intel_max_points: float = 20
    vertical_points: float = 8
    vertical_tactics: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType(
            {"healthcare": _DATA_THEFT, "legal": _DATA_THEFT, "finance": _DATA_THEFT}
        )
    )
    rarity_max_points: float = 10

    def __post_init__(self) -> None:
        for level in RULE_LEVELS:
            if level not in self.level_points:
                raise ConfigError(f"ScoreWeights.level_points: missing level {level!r}")
        previous = -1.0
        for name in CRITICALITIES:
            points = self.criticality_points.get(name)
            if points is None or points < previous:
                msg = f"ScoreWeights.criticality_points: {name!r} must be set and >= the level below it"
                raise ConfigError(msg)
            previous = points
        numbers = {
            "intel_points_per_hit": self.intel_points_per_hit,
            "intel_max_points": self.intel_max_points,
            "vertical_points": self.vertical_points,
            "rarity_max_points": self.rarity_max_points,
            "unknown_confidence_points": self.unknown_confidence_points,
        }
        for name, value in numbers.items():
            if value < 0:
                raise ConfigError(f"ScoreWeights.{name}: must be >= 0, not {value}")


DEFAULT_WEIGHTS: Final = ScoreWeights()

_CACHE_MAX: Final = 16384
_cache: dict[tuple[object, ...], RiskScore] = {}


def score(
    inp: DetectionInput,
    *,
    criticality: Mapping[Entity, str],
    vertical: str,
    rarity: float,
    intel_hits: int,
    confidence: str | None,
    tactics: tuple[str, ...] | None = None,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> RiskScore:
    """The risk of one detection, 0-100, with one factor per row of the module docstring's table.

    `criticality` maps entities (normalized, as in `inp.entities`) to low/medium/high/critical; labels it
    does not know count as unknown. `tactics` defaults to the ATT&CK tactics of `inp.tags`.
    """
    crit_level, crit_entity = _criticality(inp.entities, criticality, weights)
    if tactics is None:
        tactics = attack_of(inp.tags)[1]
    theft: tuple[str, ...] = ()
    if tactics:
        sensitive = weights.vertical_tactics.get(vertical.lower())
        if sensitive:
            theft = tuple(t for t in tactics if t in sensitive)
    rarity = round(min(max(rarity, 0.0), 1.0), 2)  # shown as whole percents: the cache key needs no more
    hits = min(max(intel_hits, 0), 1000)
    status = confidence.lower() if confidence else None
    key = (
        weights,
        inp.rule_level,
        status,
        crit_level,
        crit_entity,
        vertical,
        theft,
        hits,
        rarity,
    )
    cached = _cache.get(key)
    if cached is not None:
        return cached
    factors = (
        _level_factor(inp.rule_level, weights),
        _confidence_factor(status, weights),
        _criticality_factor(crit_level, crit_entity, weights),
        _intel_factor(hits, weights),
        _vertical_factor(vertical, theft, weights),
        RiskFactor(
            name="rarity",
            points=round(rarity * weights.rarity_max_points, 1),
            detail=f"{round((1 - rarity) * 100)}% of this tenant's recent detections come from this rule",
        ),
    )
    total = sum(f.points for f in factors)
    result = RiskScore(score=min(100, max(0, round(total))), factors=factors)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[key] = result
    return result


_tables: dict[int, tuple[Mapping[Entity, str], dict[tuple[str, str], str], frozenset[str]]] = {}


def _table(criticality: Mapping[Entity, str]) -> tuple[dict[tuple[str, str], str], frozenset[str]]:
    """The inventory keyed by (kind, value) tuples, and its kinds; built once per mapping object (the
    mapping is kept in the cache, so its id cannot be reused while cached). Entity's generated
    __hash__ is a Python call; tuple hashes are not."""
    found = _tables.get(id(criticality))
    if found is not None and found[0] is criticality:
        return found[1], found[2]
    table: dict[tuple[str, str], str] = {(e.kind, e.value): label for e, label in criticality.items()}
    kinds = frozenset(kind for kind, _ in table)
    if len(_tables) >= 1024:
        _tables.clear()
    _tables[id(criticality)] = (criticality, table, kinds)
    return table, kinds


def _criticality(
    entities: tuple[Entity, ...], criticality: Mapping[Entity, str], weights: ScoreWeights
) -> tuple[str | None, str]:
    """The highest known criticality among the entities, and the entity that has it."""
    if not criticality:
        return None, ""
    table, kinds = _table(criticality)
    best: str | None = None
    best_points = -1.0
    who = ""
    points_of = weights.criticality_points
    for entity in entities:
        kind = entity.kind
        if kind not in kinds:
            continue
        label = table.get((kind, entity.value))
        if label is None:
            continue
        points = points_of.get(label)
        if points is not None and points > best_points:
            best, best_points, who = label, points, f"{kind} {entity.value}"
    return best, who


def _level_factor(level: RuleLevel, weights: ScoreWeights) -> RiskFactor:
    detail = f"the rule's level is {level}"
    return RiskFactor(name="rule_level", points=weights.level_points[level], detail=detail)


def _confidence_factor(status: str | None, weights: ScoreWeights) -> RiskFactor:
    points = weights.confidence_points.get(status) if status else None
    if points is None:
        detail = "the rule's status is unknown" if not status else f"the rule's status {status!r} is unknown"
        return RiskFactor(name="confidence", points=weights.unknown_confidence_points, detail=detail)
    return RiskFactor(name="confidence", points=points, detail=f"the rule's status is {status}")


def _criticality_factor(level: str | None, who: str, weights: ScoreWeights) -> RiskFactor:
    if level is None:
        detail = "no entity of this alert is in the tenant's asset inventory"
        return RiskFactor(name="asset_criticality", points=0, detail=detail)
    detail = f"{who} is {level} in the tenant's inventory"
    return RiskFactor(name="asset_criticality", points=weights.criticality_points[level], detail=detail)


def _intel_factor(hits: int, weights: ScoreWeights) -> RiskFactor:
    points = min(hits * weights.intel_points_per_hit, weights.intel_max_points)
    if hits == 0:
        return RiskFactor(name="intel", points=0, detail="no threat-intel indicator matched the event")
    plural = "indicator" if hits == 1 else "indicators"
    return RiskFactor(name="intel", points=points, detail=f"{hits} threat-intel {plural} matched the event")


def _vertical_factor(vertical: str, theft: tuple[str, ...], weights: ScoreWeights) -> RiskFactor:
    if not theft:
        return RiskFactor(name="vertical", points=0, detail=f"no extra weight for the {vertical} vertical")
    detail = f"{vertical} tenants are weighted up for {', '.join(theft)}"
    return RiskFactor(name="vertical", points=weights.vertical_points, detail=detail)


# -- rarity ----------------------------------------------------------------------------------------
class _TenantCounts:
    __slots__ = ("buckets", "total", "totals")

    def __init__(self) -> None:
        self.buckets: deque[tuple[int, dict[str, int]]] = deque()
        self.totals: dict[str, int] = {}
        self.total = 0


class RarityTracker:
    """Per tenant, how many hits each rule had over a sliding window; `rarity = 1 - share`.

    Memory is bounded: at most `window_seconds / bucket_seconds` buckets per tenant and `max_rules` rule
    keys per tenant (further rules are counted together under one overflow key). Hits older than the
    newest bucket (out-of-order times) count in the newest bucket.
    """

    __slots__ = ("_bucket", "_max_rules", "_min_total", "_nbuckets", "_tenants")

    OVERFLOW: Final = "<other rules>"

    def __init__(
        self,
        *,
        window_seconds: int = 7 * 86400,
        bucket_seconds: int = 3600,
        max_rules: int = 4096,
        min_total: int = 20,
    ) -> None:
        if bucket_seconds <= 0 or window_seconds < bucket_seconds:
            raise ConfigError("RarityTracker: need 0 < bucket_seconds <= window_seconds")
        if max_rules < 1 or min_total < 1:
            raise ConfigError("RarityTracker: max_rules and min_total must be >= 1")
        self._bucket = bucket_seconds
        self._nbuckets = window_seconds // bucket_seconds
        self._max_rules = max_rules
        self._min_total = min_total
        self._tenants: dict[TenantId, _TenantCounts] = {}

    def observe(self, tenant: TenantId, rule_id: str, at: datetime) -> float:
        """Count one hit of `rule_id` at `at`; the rule's rarity for the tenant, this hit included."""
        counts = self._tenants.get(tenant)
        if counts is None:
            counts = self._tenants[tenant] = _TenantCounts()
        bucket = int(at.timestamp()) // self._bucket
        buckets = counts.buckets
        if not buckets or bucket > buckets[-1][0]:
            buckets.append((bucket, {}))
            oldest = bucket - self._nbuckets
            while buckets[0][0] <= oldest:
                self._expire(counts, buckets.popleft()[1])
        totals = counts.totals
        key = rule_id if rule_id in totals or len(totals) < self._max_rules else self.OVERFLOW
        current = buckets[-1][1]
        current[key] = current.get(key, 0) + 1
        totals[key] = count = totals.get(key, 0) + 1
        counts.total += 1
        return 1.0 - count / max(counts.total, self._min_total)

    def rarity(self, tenant: TenantId, rule_id: str) -> float:
        """The rule's rarity for the tenant now, without counting a hit (1.0 for a rule never seen)."""
        counts = self._tenants.get(tenant)
        if counts is None:
            return 1.0
        count = counts.totals.get(rule_id, 0)
        return 1.0 - count / max(counts.total, self._min_total)

    def _expire(self, counts: _TenantCounts, bucket: dict[str, int]) -> None:
        totals = counts.totals
        for key, n in bucket.items():
            left = totals[key] - n
            if left:
                totals[key] = left
            else:
                del totals[key]
            counts.total -= n

    def size(self, tenant: TenantId) -> tuple[int, int]:
        """(buckets, rule keys) held for the tenant, for tests and metrics."""
        counts = self._tenants.get(tenant)
        return (0, 0) if counts is None else (len(counts.buckets), len(counts.totals))
