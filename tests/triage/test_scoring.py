"""Risk scores: named factors, clamping, monotone in criticality and intel; rarity over a sliding window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.core.errors import ConfigError
from watchfloor.core.types import RULE_LEVELS, RuleId, RuleLevel, TenantId
from watchfloor.triage.models import DetectionInput, Entity
from watchfloor.triage.scoring import CRITICALITIES, RarityTracker, ScoreWeights, score

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CLINIC = TenantId("clinic")
HOST = Entity("host", "ws-17")
USER = Entity("user", "jdoe")


def inp(level: RuleLevel = "high", tags: tuple[str, ...] = ("attack.execution",)) -> DetectionInput:
    return DetectionInput(
        tenant_id=CLINIC,
        detection_id=1,
        rule_id=RuleId("r-1"),
        rule_title="Rule",
        rule_level=level,
        tags=tags,
        event_time=T0,
        matched_at=T0,
        entities=(HOST, USER),
    )


def risk(
    level: RuleLevel = "high",
    *,
    criticality: dict[Entity, str] | None = None,
    vertical: str = "general",
    rarity: float = 0.0,
    intel_hits: int = 0,
    confidence: str | None = "stable",
    tags: tuple[str, ...] = ("attack.execution",),
) -> int:
    return score(
        inp(level, tags),
        criticality=criticality or {},
        vertical=vertical,
        rarity=rarity,
        intel_hits=intel_hits,
        confidence=confidence,
    ).score


def test_factors_are_named_and_explained() -> None:
    result = score(
        inp("critical", ("attack.exfiltration",)),
        criticality={HOST: "critical"},
        vertical="healthcare",
        rarity=1.0,
        intel_hits=1,
        confidence="stable",
    )
    by_name = {f.name: f for f in result.factors}
    assert list(by_name) == ["rule_level", "confidence", "asset_criticality", "intel", "vertical", "rarity"]
    assert by_name["rule_level"].points == 60
    assert by_name["asset_criticality"].detail == "host ws-17 is critical in the tenant's inventory"
    assert by_name["intel"].points == 10
    assert "exfiltration" in by_name["vertical"].detail
    assert result.score == 100  # 60 + 10 + 20 + 10 + 8 + 10 = 118, clamped


def test_score_is_the_rounded_sum_below_the_clamp() -> None:
    result = score(
        inp("medium"), criticality={}, vertical="general", rarity=0.5, intel_hits=0, confidence="experimental"
    )
    assert result.score == round(sum(f.points for f in result.factors)) == 35  # 30 + 0 + 0 + 0 + 0 + 5


def test_unknown_status_and_unknown_criticality_labels() -> None:
    assert risk(confidence=None) == risk(confidence="whatever") == 45 + 3
    assert risk(criticality={HOST: "vip"}) == risk()


def test_vertical_weighting_only_for_sensitive_verticals_and_tactics() -> None:
    theft = ("attack.collection",)
    assert risk(vertical="healthcare", tags=theft) == risk(vertical="general", tags=theft) + 8
    assert risk(vertical="Legal", tags=theft) == risk(vertical="general", tags=theft) + 8
    assert risk(vertical="healthcare", tags=("attack.discovery",)) == risk(tags=("attack.discovery",))


_LEVEL = st.sampled_from(RULE_LEVELS)
_CRIT = st.sampled_from(CRITICALITIES)
_RARITY = st.floats(min_value=0, max_value=1)
_STATUS = st.sampled_from(["stable", "test", "experimental", None])


@given(
    level=_LEVEL,
    rarity=_RARITY,
    hits=st.integers(0, 50),
    status=_STATUS,
    vertical=st.sampled_from(["general", "healthcare"]),
)
def test_score_stays_within_0_and_100(
    level: RuleLevel, rarity: float, hits: int, status: str | None, vertical: str
) -> None:
    value = risk(level, rarity=rarity, intel_hits=hits, confidence=status, vertical=vertical)
    assert 0 <= value <= 100


@given(level=_LEVEL, low=_CRIT, high=_CRIT, rarity=_RARITY, hits=st.integers(0, 5), other=_CRIT)
def test_raising_criticality_never_lowers_the_score(
    level: RuleLevel, low: str, high: str, rarity: float, hits: int, other: str
) -> None:
    low, high = sorted((low, high), key=CRITICALITIES.index)
    before = risk(level, criticality={HOST: low, USER: other}, rarity=rarity, intel_hits=hits)
    after = risk(level, criticality={HOST: high, USER: other}, rarity=rarity, intel_hits=hits)
    assert after >= before
    assert risk(level, criticality={HOST: low}, rarity=rarity) >= risk(level, rarity=rarity)


@given(level=_LEVEL, fewer=st.integers(0, 10), more=st.integers(0, 10), rarity=_RARITY, crit=_CRIT)
def test_more_intel_hits_never_lower_the_score(
    level: RuleLevel, fewer: int, more: int, rarity: float, crit: str
) -> None:
    fewer, more = sorted((fewer, more))
    table = {HOST: crit}
    assert risk(level, criticality=table, rarity=rarity, intel_hits=more) >= risk(
        level, criticality=table, rarity=rarity, intel_hits=fewer
    )


@given(a=_LEVEL, b=_LEVEL, rarity=_RARITY)
def test_a_higher_rule_level_never_lowers_the_score(a: RuleLevel, b: RuleLevel, rarity: float) -> None:
    low, high = sorted((a, b), key=RULE_LEVELS.index)
    assert risk(high, rarity=rarity) >= risk(low, rarity=rarity)


def test_weights_refuse_non_monotone_criticality_and_negative_points() -> None:
    with pytest.raises(ConfigError, match="criticality_points"):
        ScoreWeights(criticality_points={"low": 10, "medium": 5, "high": 12, "critical": 20})
    with pytest.raises(ConfigError, match="intel_points_per_hit"):
        ScoreWeights(intel_points_per_hit=-1)
    with pytest.raises(ConfigError, match="level_points"):
        ScoreWeights(level_points={"low": 1})


def test_custom_weights_are_used() -> None:
    heavy = ScoreWeights(intel_points_per_hit=40, intel_max_points=40)
    result = score(
        inp(), criticality={}, vertical="general", rarity=0, intel_hits=1, confidence="stable", weights=heavy
    )
    assert result.score == 45 + 10 + 40


# -- rarity ----------------------------------------------------------------------------------------
def test_rarity_falls_as_a_rule_dominates_and_new_rules_read_rare() -> None:
    tracker = RarityTracker(min_total=10)
    first = tracker.observe(CLINIC, "noisy", T0)
    assert first == pytest.approx(0.9)  # 1 hit judged against min_total
    for n in range(99):
        tracker.observe(CLINIC, "noisy", T0 + timedelta(seconds=n))
    assert tracker.rarity(CLINIC, "noisy") == 0.0
    assert tracker.observe(CLINIC, "rare", T0 + timedelta(minutes=5)) == pytest.approx(1 - 1 / 101)
    assert tracker.rarity(TenantId("other"), "noisy") == 1.0  # tenants never share counts


def test_rarity_window_slides() -> None:
    tracker = RarityTracker(window_seconds=3 * 3600, bucket_seconds=3600, min_total=1)
    for _ in range(10):
        tracker.observe(CLINIC, "noisy", T0)
    assert tracker.rarity(CLINIC, "noisy") == 0.0
    later = T0 + timedelta(hours=3)
    assert tracker.observe(CLINIC, "other", later) == 0.0  # the only rule left in the window
    assert tracker.rarity(CLINIC, "noisy") == 1.0
    assert tracker.size(CLINIC) == (1, 1)


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 200 * 3600)), max_size=300))
def test_rarity_memory_is_bounded(hits: list[tuple[int, int]]) -> None:
    tracker = RarityTracker(window_seconds=24 * 3600, bucket_seconds=3600, max_rules=8)
    for rule, offset in sorted(hits, key=lambda h: h[1]):
        value = tracker.observe(CLINIC, f"rule-{rule}", T0 + timedelta(seconds=offset))
        assert 0.0 <= value <= 1.0
    buckets, keys = tracker.size(CLINIC)
    assert buckets <= 24
    assert keys <= 9  # max_rules plus the overflow key


def test_out_of_order_hits_count_in_the_newest_bucket() -> None:
    tracker = RarityTracker(window_seconds=2 * 3600, bucket_seconds=3600, min_total=1)
    tracker.observe(CLINIC, "a", T0 + timedelta(hours=1))
    tracker.observe(CLINIC, "b", T0)  # older: counted now, expires with the newest bucket
    assert tracker.size(CLINIC) == (1, 2)
    tracker.observe(CLINIC, "c", T0 + timedelta(hours=3))
    assert tracker.size(CLINIC) == (1, 1)
