"""MTT* metrics and SLA attainment: hand-computed examples and properties of the grouping."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.cases.metrics import (
    METRICS,
    attainment,
    compute,
    duration_seconds,
    period_start,
    stats,
)
from watchfloor.cases.models import Incident
from watchfloor.core.types import SlaMetric, TenantId
from watchfloor.triage.models import RiskScore

CLINIC = TenantId("clinic")
BAKERY = TenantId("bakery")
T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # Wednesday
MIN = 60.0


def make_incident(**overrides: Any) -> Incident:
    created = overrides.pop("created_at", T0)
    values: dict[str, Any] = {
        "id": "inc-1",
        "tenant_id": CLINIC,
        "title": "t",
        "state": "investigating",
        "severity": "high",
        "risk": RiskScore(score=50),
        "created_at": created,
        "updated_at": created,
        "first_event_at": created,
    }
    values.update(overrides)
    return Incident(**values)


def after(minutes: float, base: datetime = T0) -> datetime:
    return base + timedelta(minutes=minutes)


@pytest.fixture
def incidents() -> list[Incident]:
    return [
        make_incident(
            id="a",
            first_event_at=after(-10),
            triaged_at=after(12),
            acknowledged_at=after(5),
            acknowledged_by="tina",
            notified_at=after(30),
            contained_at=after(60),
            resolved_at=after(240),
            closed_at=after(240 + 24 * 60),
            state="closed_true_positive",
        ),
        make_incident(
            id="b",
            first_event_at=after(-2),
            acknowledged_at=after(15),
            acknowledged_by="tom",
            triaged_at=after(20),
            state="closed_false_positive",
            contained_at=None,
        ),
        make_incident(
            id="c",
            tenant_id=BAKERY,
            first_event_at=after(-30),
            acknowledged_at=after(10),
            assignee="tina",
            notified_at=after(90),
            pauses=((after(20), after(80)),),  # awaiting the customer: still counted (wall clock)
        ),
        make_incident(id="m", merged_into="a", acknowledged_at=after(1), first_event_at=after(-100)),
    ]


def test_definitions_are_data() -> None:
    by_name = {m.name: m for m in METRICS}
    assert [m.name for m in METRICS] == ["mttd", "mttt", "mtta", "mttn", "mttc", "mttr"]
    assert (by_name["mttd"].start, by_name["mttd"].end) == ("first_event_at", "created_at")
    assert by_name["mttr"].end == "resolved_at"
    assert not by_name["mttc"].include_false_positives
    assert by_name["mtta"].include_false_positives


def test_hand_computed_overall(incidents: list[Incident]) -> None:
    [row] = compute(incidents)
    assert row.group is None
    assert row.incidents == 3  # the merged one is not counted
    mtta = row.metrics["mtta"]
    assert (mtta.count, mtta.mean, mtta.median, mtta.p90) == (3, 10 * MIN, 10 * MIN, 15 * MIN)
    assert (mtta.min, mtta.max) == (5 * MIN, 15 * MIN)
    mttd = row.metrics["mttd"]
    assert (mttd.count, mttd.mean) == (3, 14 * MIN)  # (10 + 2 + 30) / 3, merged excluded
    mttt = row.metrics["mttt"]
    assert (mttt.count, mttt.mean, mttt.median) == (2, 16 * MIN, 16 * MIN)  # median of two: their mean
    mttn = row.metrics["mttn"]
    assert (mttn.count, mttn.mean) == (2, 60 * MIN)  # pauses are not subtracted
    mttc = row.metrics["mttc"]
    assert (mttc.count, mttc.mean) == (1, 60 * MIN)  # only the contained one
    mttr = row.metrics["mttr"]
    assert (mttr.count, mttr.mean) == (1, 240 * MIN)  # resolved_at, not closed_at
    assert row.sla == {}


def test_false_positives_count_for_ack_not_for_contain() -> None:
    fp = make_incident(state="closed_false_positive", acknowledged_at=after(3), contained_at=after(9))
    assert duration_seconds(fp, "mtta") == 3 * MIN
    assert duration_seconds(fp, "mttc") is None
    merged = make_incident(merged_into="x", acknowledged_at=after(3))
    assert duration_seconds(merged, "mtta") is None
    skewed = make_incident(first_event_at=after(5))  # event stamped after the incident opened
    assert duration_seconds(skewed, "mttd") == 0.0


def test_empty_stats() -> None:
    empty = stats([])
    assert empty.count == 0
    assert empty.mean is None
    assert empty.p90 is None
    [row] = compute([])
    assert row.metrics["mtta"].count == 0


def test_p90_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert stats(values).p90 == 9.0
    assert stats([*values, 11.0]).p90 == 10.0
    assert stats([7.0]).p90 == 7.0


def test_grouping(incidents: list[Incident]) -> None:
    by_tenant = {r.group: r for r in compute(incidents, "tenant")}
    assert set(by_tenant) == {"bakery", "clinic"}
    assert by_tenant["clinic"].incidents == 2
    assert by_tenant["clinic"].metrics["mtta"].mean == 10 * MIN
    tiers = {"clinic": "premium", "bakery": "basic"}
    by_tier = compute(incidents, "tier", tier_of=lambda t: tiers[t])
    assert [r.group for r in by_tier] == ["basic", "premium"]
    by_analyst = {r.group: r.metrics["mtta"].count for r in compute(incidents, "analyst")}
    assert by_analyst == {"tina": 2, "tom": 1, "unassigned": 0}  # c has an assignee; m is merged
    with pytest.raises(ValueError, match="tier_of"):
        compute(incidents, "tier")


def test_periods() -> None:
    sunday_night = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    monday = datetime(2026, 11, 30, 0, 30, tzinfo=UTC)
    assert period_start(sunday_night, "week") == date(2026, 11, 23)
    assert period_start(monday, "week") == date(2026, 11, 30)
    assert period_start(monday, "month") == date(2026, 11, 1)
    assert period_start(monday, "day") == date(2026, 11, 30)
    rows = compute(
        [make_incident(id="x", created_at=sunday_night), make_incident(id="y", created_at=monday)],
        "period",
        period="week",
    )
    assert [(r.group, r.incidents) for r in rows] == [("2026-11-23", 1), ("2026-11-30", 1)]
    [month] = compute([make_incident(created_at=sunday_night), make_incident(created_at=monday)], "period")
    assert month.group == "2026-11-01"


def test_sla_attainment(incidents: list[Incident]) -> None:
    outcomes: dict[tuple[str, SlaMetric], bool | None] = {
        ("a", "acknowledge"): True,
        ("b", "acknowledge"): False,
        ("c", "acknowledge"): True,
        ("m", "acknowledge"): False,  # merged: never asked
        ("a", "contain"): True,
    }
    calls: list[str] = []

    def met(incident: Incident, metric: SlaMetric) -> bool | None:
        calls.append(incident.id)
        return outcomes.get((incident.id, metric))

    [row] = compute(incidents, met=met)
    ack = row.sla["acknowledge"]
    assert (ack.met, ack.missed, ack.excluded) == (2, 1, 0)
    assert ack.share == pytest.approx(2 / 3)
    assert row.sla["contain"].share == 1.0
    assert row.sla["notify"].share is None
    assert row.sla["notify"].excluded == 3
    assert "m" not in calls
    assert attainment([], "notify", met).share is None


# -- properties ------------------------------------------------------------------------------------------
durations = st.floats(min_value=0, max_value=30 * 86_400, allow_nan=False)


@st.composite
def random_incident(draw: st.DrawFn) -> Incident:
    n = draw(st.integers(0, 10**6))
    created = T0 + timedelta(seconds=draw(st.integers(0, 90 * 86_400)))

    def maybe() -> datetime | None:
        return draw(st.none() | durations.map(lambda s: created + timedelta(seconds=s)))

    return make_incident(
        id=f"i{n}",
        tenant_id=draw(st.sampled_from([CLINIC, BAKERY, TenantId("florist")])),
        state=draw(st.sampled_from(["investigating", "closed_false_positive", "closed_true_positive"])),
        created_at=created,
        first_event_at=created - timedelta(seconds=draw(durations)),
        acknowledged_at=maybe(),
        acknowledged_by=draw(st.sampled_from([None, "tina", "tom"])),
        contained_at=maybe(),
        notified_at=maybe(),
        resolved_at=maybe(),
        merged_into=draw(st.sampled_from([None, None, None, "i0"])),
    )


@settings(max_examples=80, deadline=None)
@given(st.lists(durations, min_size=1, max_size=40))
def test_mean_median_p90_lie_between_min_and_max(values: list[float]) -> None:
    result = stats(values)
    assert result.min is not None
    assert result.max is not None
    for value in (result.mean, result.median, result.p90):
        assert value is not None
        assert result.min <= value <= result.max
    assert result.count == len(values)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(random_incident(), max_size=25),
    st.sampled_from(["tenant", "tier", "analyst", "period"]),
    st.sampled_from(["day", "week", "month"]),
)
def test_groups_partition_the_total(incidents: list[Incident], group_by: Any, period: Any) -> None:
    [total] = compute(incidents)
    rows = compute(
        incidents, group_by, period=period, tier_of=lambda t: "premium" if t == CLINIC else "basic"
    )
    assert sum(r.incidents for r in rows) == total.incidents
    for metric in total.metrics:
        assert sum(r.metrics[metric].count for r in rows) == total.metrics[metric].count
    assert [r.group for r in rows] == sorted(r.group or "" for r in rows)


@settings(max_examples=60, deadline=None)
@given(st.lists(random_incident(), max_size=25), st.randoms(use_true_random=False))
def test_attainment_is_a_share(incidents: list[Incident], rng: Any) -> None:
    choices: list[bool | None] = [True, False, None]
    [row] = compute(incidents, met=lambda _i, _m: rng.choice(choices))
    for result in row.sla.values():
        assert result.met + result.missed + result.excluded == row.incidents
        if result.share is not None:
            assert 0.0 <= result.share <= 1.0
