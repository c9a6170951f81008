"""Working sessions from the timeline, handling minutes, occupancy against the shifts, open load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.cases.models import Incident, TimelineEntry
from watchfloor.cases.soc import SocRoster, roster_from_mapping
from watchfloor.cases.workload import open_load, sessions, workload, workload_by_shift
from watchfloor.core.types import TenantId
from watchfloor.triage.models import RiskScore

CLINIC = TenantId("clinic")
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
DAY = datetime(2026, 1, 7, tzinfo=UTC)  # Wednesday


def hm(text: str) -> datetime:
    hours, minutes = text.split(":")
    return DAY + timedelta(hours=int(hours), minutes=int(minutes))


def act(actor: str, incident: str, when: str, kind: Any = "note") -> TimelineEntry:
    return TimelineEntry(
        incident_id=incident, tenant_id=CLINIC, at=hm(when), actor=actor, kind=kind, summary=f"{actor} {kind}"
    )


def make_incident(**overrides: Any) -> Incident:
    values: dict[str, Any] = {
        "id": "inc-1",
        "tenant_id": CLINIC,
        "title": "t",
        "state": "investigating",
        "severity": "medium",
        "risk": RiskScore(score=40),
        "created_at": DAY,
        "updated_at": DAY,
        "first_event_at": DAY,
    }
    values.update(overrides)
    return Incident(**values)


@pytest.fixture(scope="module")
def roster() -> SocRoster:
    """ann: 08:00-16:00 UTC weekdays; bo: weekends only."""
    return roster_from_mapping(
        {
            "regions": {
                "utc": {
                    "timezone": "UTC",
                    "shifts": {
                        "day": {
                            "days": ["mon", "tue", "wed", "thu", "fri"],
                            "start": "08:00",
                            "end": "16:00",
                        },
                        "weekend": {"days": ["sat", "sun"], "start": "08:00", "end": "16:00"},
                    },
                }
            },
            "analysts": [
                {"id": "ann", "name": "Ann", "tier": "T1", "region": "utc", "shifts": ["day"]},
                {"id": "bo", "name": "Bo", "tier": "T2", "region": "utc", "shifts": ["weekend"]},
            ],
        }
    )


def test_sessions_split_at_gaps_and_have_a_floor() -> None:
    entries = [
        act("ann", "inc-1", "10:00"),
        act("ann", "inc-1", "10:10"),
        act("ann", "inc-1", "10:40"),  # 30 min gap: same session (split only when more than 30)
        act("ann", "inc-1", "11:11"),  # 31 min: new session, a single action -> 5 min
        act("system", "inc-1", "10:05", "sla_warning"),
        act("ann", "inc-2", "10:20"),
    ]
    found = sessions(entries)
    assert [(s.incident_id, s.start, s.end, s.actions) for s in found] == [
        ("inc-1", hm("10:00"), hm("10:40"), 3),
        ("inc-2", hm("10:20"), hm("10:25"), 1),
        ("inc-1", hm("11:11"), hm("11:16"), 1),
    ]
    assert sessions(entries, analysts=frozenset({"bo"})) == []
    assert len(sessions(entries, gap_seconds=3600)) == 2
    with pytest.raises(ValueError, match="negative"):
        sessions(entries, gap_seconds=-1)


def test_workload_handling_busy_occupancy_and_overtime(roster: SocRoster) -> None:
    entries = [
        act("ann", "inc-1", "09:00"),
        act("ann", "inc-1", "10:00"),  # 60 min gap: two sessions, 09:00-09:05 and 10:00-10:30
        act("ann", "inc-1", "10:30"),
        act("ann", "inc-2", "10:15"),  # concurrent with inc-1: 10:15-10:45
        act("ann", "inc-2", "10:45"),
        act("ann", "inc-3", "17:00"),  # after the shift: 17:00-17:20
        act("ann", "inc-3", "17:20"),
    ]
    incidents = [
        make_incident(id="inc-1", assignee="ann"),
        make_incident(id="inc-2", assignee="ann", state="closed_true_positive"),
        make_incident(id="inc-3", assignee="ann", merged_into="inc-1"),
        make_incident(id="inc-4", assignee="bo", state="new"),
    ]
    ann, bo = workload(entries, incidents, roster, DAY, DAY + timedelta(days=1))
    assert ann.analyst_id == "ann"
    assert ann.incidents_handled == 3
    assert ann.actions == 7
    assert ann.handling_minutes == pytest.approx(5 + 30 + 30 + 20)
    assert ann.busy_minutes == pytest.approx(5 + 45 + 20)  # 10:00-10:45 once
    assert ann.on_duty_minutes == pytest.approx(480)
    assert ann.off_shift_minutes == pytest.approx(20)
    assert ann.occupancy == pytest.approx(50 / 480)
    assert ann.open_load == 1  # inc-2 closed, inc-3 merged
    assert (bo.on_duty_minutes, bo.occupancy, bo.open_load, bo.incidents_handled) == (0, None, 1, 0)


def test_sessions_are_clipped_to_the_period(roster: SocRoster) -> None:
    entries = [act("ann", "inc-1", "09:50"), act("ann", "inc-1", "10:20")]
    [ann, _] = workload(entries, [], roster, hm("10:00"), hm("11:00"))
    assert ann.handling_minutes == pytest.approx(20)
    assert ann.on_duty_minutes == pytest.approx(60)
    assert ann.occupancy == pytest.approx(20 / 60)
    with pytest.raises(ValueError, match="end after"):
        workload(entries, [], roster, hm("11:00"), hm("10:00"))


def test_workload_by_shift_gives_whole_shift_rows(roster: SocRoster) -> None:
    entries = [act("ann", "inc-1", "09:00"), act("ann", "inc-1", "09:30"), act("bo", "inc-1", "09:00")]
    rows = workload_by_shift(entries, [], roster, DAY, DAY + timedelta(days=4))  # Wed..Sat
    assert [(r.analyst_id, r.start) for r in rows] == [
        ("ann", hm("08:00")),
        ("ann", hm("08:00") + timedelta(days=1)),
        ("ann", hm("08:00") + timedelta(days=2)),
        ("bo", hm("08:00") + timedelta(days=3)),
    ]
    first = rows[0]
    assert first.end == hm("16:00")
    assert first.shift == "utc"
    assert first.occupancy == pytest.approx(30 / 480)
    assert rows[1].occupancy == 0
    # bo's Wednesday action is outside any of his shifts: it shows in no shift row
    assert rows[3].incidents_handled == 0
    # a period starting mid-shift still yields the whole shift
    [mid] = workload_by_shift(entries, [], roster, hm("12:00"), hm("13:00"))
    assert (mid.start, mid.end) == (hm("08:00"), hm("16:00"))


def test_open_load() -> None:
    incidents = [
        make_incident(id="a", assignee="ann"),
        make_incident(id="b", assignee="ann", state="awaiting_customer"),
        make_incident(id="c", assignee="ann", state="closed_false_positive"),
        make_incident(id="d"),
    ]
    assert open_load(incidents) == {"ann": 2}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ann", "bo", "system"]),
            st.sampled_from(["i1", "i2", "i3"]),
            st.integers(0, 1439),
        ),
        max_size=30,
    )
)
def test_workload_invariants(roster: SocRoster, specs: list[tuple[str, str, int]]) -> None:
    entries = [
        TimelineEntry(
            incident_id=inc,
            tenant_id=CLINIC,
            at=DAY + timedelta(minutes=m),
            actor=who,
            kind="note",
            summary="x",
        )
        for who, inc, m in specs
    ]
    for row in workload(entries, [], roster, DAY, DAY + timedelta(days=1)):
        assert row.busy_minutes <= row.handling_minutes + 1e-9
        assert 0 <= row.off_shift_minutes <= row.busy_minutes + 1e-9
        if row.occupancy is not None:
            assert 0 <= row.occupancy <= 1
            assert row.occupancy * row.on_duty_minutes + row.off_shift_minutes == pytest.approx(
                row.busy_minutes
            )
        assert row.incidents_handled <= 3
