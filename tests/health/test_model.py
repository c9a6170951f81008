"""The pure parts: source names, hour arithmetic, the EWMA baseline, tier thresholds (Hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.health.model import (
    DEFAULT_TIER_THRESHOLDS,
    HOUR,
    HOURS_PER_WEEK,
    SOURCE_NAME_MAX,
    Baseline,
    HealthThresholds,
    TierThresholds,
    epoch_hour,
    from_epoch_hour,
    hour_of_week,
    hour_start,
    source_name,
)
from watchfloor.normalize.model import SourceKey

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - Hypothesis bounds are naive
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC) | offsets,
)
counts = st.integers(min_value=0, max_value=1_000_000)


# -- source names ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "envelope", "expected"),
    [
        (SourceKey("windows", "security", 4625), "hec:ab12cd34", "windows/security"),
        (
            SourceKey("windows", "microsoft-windows-sysmon/operational", 1),
            "file:/x/Sysmon.evtx",
            "windows/microsoft-windows-sysmon/operational",
        ),
        (SourceKey("okta", "okta"), "hec:ab12cd34", "okta/okta"),
        (SourceKey("aws", "cloudtrail"), "bulk:logs", "aws/cloudtrail"),
        (SourceKey("linux", "auth"), "syslog:udp:10.0.0.5", "linux/auth"),
        (SourceKey("windows", ""), "hec:x", "windows"),
        (None, "syslog:udp:10.0.0.5", "syslog:udp:10.0.0.5"),
        (None, "  ", "unknown"),
    ],
)
def test_source_names_are_what_an_operator_recognises(
    key: SourceKey | None, envelope: str, expected: str
) -> None:
    assert source_name(key, envelope) == expected


def test_source_names_are_capped() -> None:
    assert len(source_name(None, "x" * 1000)) == SOURCE_NAME_MAX


# -- hours -----------------------------------------------------------------------------------------
@given(instants)
def test_hour_start_truncates_to_the_utc_hour(at: datetime) -> None:
    start = hour_start(at)
    assert start.tzinfo is UTC
    assert (start.minute, start.second, start.microsecond) == (0, 0, 0)
    assert start <= at < start + HOUR
    assert from_epoch_hour(epoch_hour(at)) == start


@given(instants, st.integers(min_value=-500, max_value=500))
def test_hour_of_week_repeats_every_168_hours_and_steps_by_one(at: datetime, weeks: int) -> None:
    bucket = hour_of_week(at)
    assert 0 <= bucket < HOURS_PER_WEEK
    assert hour_of_week(at + timedelta(weeks=weeks)) == bucket
    assert hour_of_week(at + HOUR) == (bucket + 1) % HOURS_PER_WEEK


def test_hour_of_week_is_counted_in_utc_from_monday() -> None:
    assert hour_of_week(datetime(2026, 12, 7, 0, 0, tzinfo=UTC)) == 0  # Monday
    assert hour_of_week(datetime(2026, 12, 7, 9, 59, 59, tzinfo=UTC)) == 9
    assert hour_of_week(datetime(2026, 12, 13, 23, 30, tzinfo=UTC)) == 167  # Sunday
    # 01:30 on Monday at UTC+2 is 23:30 on Sunday UTC.
    assert hour_of_week(datetime(2026, 12, 7, 1, 30, tzinfo=timezone(timedelta(hours=2)))) == 167


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        hour_start(datetime(2026, 12, 7, 9, 0))  # noqa: DTZ001


# -- baseline --------------------------------------------------------------------------------------
@given(instants, st.lists(counts, min_size=1, max_size=30), st.floats(min_value=0.01, max_value=1.0))
def test_a_bucket_stays_between_the_smallest_and_largest_observation(
    at: datetime, observed: list[int], alpha: float
) -> None:
    baseline = Baseline(alpha=alpha)
    for week, events in enumerate(observed):
        baseline = baseline.fold(at + timedelta(weeks=week), events)
    value = baseline.expected(at)
    assert value is not None
    assert min(observed) - 1e-6 <= value <= max(observed) + 1e-6
    assert baseline.samples(at) == len(observed)


@given(instants, counts, st.integers(min_value=1, max_value=20))
def test_a_constant_volume_is_its_own_baseline(at: datetime, events: int, weeks: int) -> None:
    baseline = Baseline().fold_many([(at + timedelta(weeks=w), events) for w in range(weeks)])
    assert baseline.expected(at) == pytest.approx(events)


@given(instants, counts, counts)
def test_the_formula(at: datetime, first: int, second: int) -> None:
    baseline = Baseline().fold(at, first)
    assert baseline.expected(at) == first
    after = baseline.fold(at + timedelta(weeks=1), second).expected(at)
    assert after == pytest.approx(0.7 * first + 0.3 * second)


@given(instants, counts)
def test_folding_one_hour_leaves_the_other_167_alone(at: datetime, events: int) -> None:
    baseline = Baseline().fold(at, events)
    assert sum(1 for m in baseline.means if m is not None) == 1
    assert baseline.expected(at + HOUR) is None
    assert baseline.expected(at + timedelta(weeks=1)) == events


def test_monday_nine_is_compared_with_monday_nine() -> None:
    monday_nine = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    baseline = Baseline().fold(monday_nine, 500).fold(monday_nine + timedelta(days=1), 5)
    assert baseline.expected(monday_nine + timedelta(weeks=3, minutes=30)) == 500
    assert baseline.expected(monday_nine + timedelta(days=1)) == 5


@given(st.lists(st.tuples(st.integers(0, HOURS_PER_WEEK * 3), counts), max_size=40))
def test_baselines_survive_json(observations: list[tuple[int, int]]) -> None:
    start = datetime(2026, 12, 7, tzinfo=UTC)
    baseline = Baseline().fold_many([(start + h * HOUR, n) for h, n in observations])
    again = Baseline.from_json(baseline.to_json())
    assert again.weeks == baseline.weeks
    for mine, theirs in zip(baseline.means, again.means, strict=True):
        assert (mine is None) == (theirs is None)
        if mine is not None and theirs is not None:
            assert theirs == pytest.approx(mine, abs=1e-4)


def test_empty_or_foreign_baseline_documents_are_empty_baselines() -> None:
    assert Baseline.from_json({}) == Baseline()
    assert Baseline.from_json(None) == Baseline()
    assert Baseline.from_json({"version": 99, "means": [], "weeks": []}) == Baseline()


# -- thresholds ------------------------------------------------------------------------------------
@given(instants, st.integers(min_value=1, max_value=10_000))
def test_silent_is_strictly_beyond_the_threshold(last_seen: datetime, minutes: int) -> None:
    tier = TierThresholds(silent_after_minutes=minutes, low_volume_ratio=0.3)
    at_threshold = last_seen + timedelta(minutes=minutes)
    assert not tier.is_silent(last_seen, at_threshold)
    assert tier.is_silent(last_seen, at_threshold + timedelta(microseconds=1))
    assert not tier.is_silent(last_seen, last_seen)


def _trusted(expected: float, weeks: int = 2) -> tuple[Baseline, datetime]:
    hour = datetime(2026, 12, 7, 9, tzinfo=UTC)
    baseline = Baseline().fold_many([(hour + timedelta(weeks=w), 0) for w in range(weeks - 1)])
    means = list(baseline.means)
    means[hour_of_week(hour)] = expected
    weeks_list = list(baseline.weeks)
    weeks_list[hour_of_week(hour)] = weeks
    return Baseline(tuple(means), tuple(weeks_list)), hour


@given(st.integers(min_value=20, max_value=100_000), st.sampled_from([0.2, 0.3, 0.5]))
def test_low_volume_is_strictly_below_the_ratio(expected: int, ratio: float) -> None:
    tier = TierThresholds(silent_after_minutes=60, low_volume_ratio=ratio)
    baseline, hour = _trusted(float(expected))
    boundary = ratio * expected
    below = int(boundary) - 1 if boundary == int(boundary) else int(boundary)
    assert tier.is_low(below, baseline, hour)
    if boundary == int(boundary):
        assert not tier.is_low(int(boundary), baseline, hour)
    assert not tier.is_low(int(boundary) + 1, baseline, hour)


def test_low_volume_needs_a_trustworthy_baseline() -> None:
    tier = TierThresholds(silent_after_minutes=60, low_volume_ratio=0.5, min_baseline_events_per_hour=20)
    small, hour = _trusted(19.9)
    assert not tier.is_low(0, small, hour)  # too few events expected to judge
    young, hour = _trusted(1000, weeks=1)
    assert not tier.is_low(0, young, hour)  # learnt over one week only
    assert not tier.is_low(0, Baseline(), hour)  # never observed
    off = TierThresholds(silent_after_minutes=60, low_volume_ratio=0.0)
    trusted, hour = _trusted(1000)
    assert not off.is_low(0, trusted, hour)
    assert tier.is_low(0, trusted, hour)


def test_default_tiers_get_stricter_as_they_cost_more() -> None:
    essentials, standard, premium = (
        DEFAULT_TIER_THRESHOLDS[t] for t in ("essentials", "standard", "premium")
    )
    assert essentials.silent_after_minutes == 240
    assert standard.silent_after_minutes == 120
    assert premium.silent_after_minutes == 60
    assert essentials.low_volume_ratio < standard.low_volume_ratio < premium.low_volume_ratio
    assert HealthThresholds().for_tier("unheard-of") == standard


def test_thresholds_from_configuration_merge_over_the_defaults() -> None:
    limits = HealthThresholds.from_mapping(
        {"premium": {"silent_after_minutes": 30}, "gold": {"low_volume_ratio": 0.6}}
    )
    assert limits.for_tier("premium").silent_after_minutes == 30
    assert limits.for_tier("premium").low_volume_ratio == 0.5
    assert limits.for_tier("gold").silent_after_minutes == 120  # from `standard`
    assert limits.for_tier("gold").low_volume_ratio == 0.6
    with pytest.raises(ValueError, match="unknown threshold settings"):
        HealthThresholds.from_mapping({"premium": {"silent_after": 30}})
    with pytest.raises(ValueError, match="silent_after_minutes"):
        HealthThresholds.from_mapping({"premium": {"silent_after_minutes": 0}})
    with pytest.raises(ValueError, match="default tier"):
        HealthThresholds.from_mapping({"default_tier": "gold"})
