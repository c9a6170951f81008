"""Queue ranking, routing rules (tenant scope, tier, skills, load) and the shift hand-off."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.cases.models import Incident, TimelineEntry
from watchfloor.cases.routing import (
    QueueItem,
    format_seconds,
    rank,
    required_skills,
    route,
    shift_handoff,
)
from watchfloor.cases.soc import SocRoster, load_roster, roster_from_mapping
from watchfloor.core.types import SEVERITIES, TenantId
from watchfloor.triage.models import Entity, RiskScore

EXAMPLE = Path(__file__).resolve().parents[2] / "content" / "soc" / "roster.example.yml"
CLINIC = TenantId("clinic")
BAKERY = TenantId("bakery")
FLORIST = TenantId("florist")
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday


def make_incident(**overrides: Any) -> Incident:
    values: dict[str, Any] = {
        "id": "inc-1",
        "tenant_id": CLINIC,
        "title": "Suspicious PowerShell",
        "state": "new",
        "severity": "high",
        "risk": RiskScore(score=60),
        "created_at": NOW - timedelta(minutes=30),
        "updated_at": NOW - timedelta(minutes=30),
        "first_event_at": NOW - timedelta(minutes=35),
    }
    values.update(overrides)
    return Incident(**values)


def item(remaining: float | None = 600.0, **overrides: Any) -> QueueItem:
    return QueueItem(incident=make_incident(**overrides), sla_remaining_seconds=remaining)


def analyst(aid: str, tier: str, **extra: Any) -> dict[str, Any]:
    return {"id": aid, "name": aid.title(), "tier": tier, "region": "hq", **extra}


def roster_of(*analysts: dict[str, Any]) -> SocRoster:
    return roster_from_mapping(
        {
            "partners": {"nightwatch": {"name": "Nightwatch", "tenants": ["clinic"]}},
            "regions": {
                "hq": {
                    "timezone": "UTC",
                    "shifts": {
                        "always": {
                            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                            "start": "00:00",
                            "end": "24:00",
                        }
                    },
                }
            },
            "analysts": list(analysts),
        }
    )


@pytest.fixture(scope="module")
def soc() -> SocRoster:
    return roster_of(
        analyst("tina", "T1", skills=["windows"]),
        analyst("tim", "T1", skills=["linux"]),
        analyst("tom", "T2", skills=["windows", "aws"]),
        analyst("tess", "T3", skills=["windows", "linux"]),
        analyst("pat", "T1", employer="nightwatch", skills=["windows", "linux"]),
    )


# -- ranking -----------------------------------------------------------------------------------------
def test_rank_breached_then_least_remaining_then_severity_then_age() -> None:
    old = NOW - timedelta(hours=3)
    items = [
        item(None, id="no-target", severity="critical"),
        item(900, id="low-900", severity="low"),
        item(900, id="crit-900", severity="critical"),
        item(900, id="crit-900-old", severity="critical", created_at=old),
        item(-60, id="breached-1m", severity="low"),
        item(-3600, id="breached-1h", severity="low"),
        item(0, id="due-now", severity="low"),
        item(300, id="low-300", severity="low"),
    ]
    order = [i.incident.id for i in rank(items, NOW)]
    assert order == [
        "breached-1h",
        "breached-1m",
        "due-now",
        "low-300",
        "crit-900-old",
        "crit-900",
        "low-900",
        "no-target",
    ]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-1e5, 1e5)), st.sampled_from(SEVERITIES), st.integers(0, 1000)
        ),
        max_size=12,
    )
)
def test_rank_puts_every_breached_item_first(specs: list[tuple[float | None, Any, int]]) -> None:
    items = [
        item(rem, id=f"i{n}", severity=sev, created_at=NOW - timedelta(minutes=age))
        for n, (rem, sev, age) in enumerate(specs)
    ]
    ranked = rank(items, NOW)
    flags = [i.breached for i in ranked]
    assert flags == sorted(flags, reverse=True)
    assert sorted(i.incident.id for i in ranked) == sorted(i.incident.id for i in items)


# -- skills ------------------------------------------------------------------------------------------
def test_required_skills_from_techniques_and_cloud_accounts() -> None:
    incident = make_incident(
        techniques=("T1059.001", "T1566.001", "T1003.001", "T9999"),
        entities=(Entity("cloud_account", "aws:123456789012"), Entity("host", "ws-17")),
    )
    assert required_skills(incident) == {"windows", "email", "aws"}
    assert required_skills(make_incident(techniques=("T1059.004",))) == {"linux"}
    assert required_skills(make_incident()) == frozenset()


# -- routing -----------------------------------------------------------------------------------------
def test_partner_never_gets_another_tenants_incident(soc: SocRoster) -> None:
    busy = {"tina": 5, "tim": 5, "tom": 5, "tess": 5}  # every in-house analyst full
    result = route([item(id="b1", tenant_id=BAKERY), item(id="c1", tenant_id=CLINIC)], soc, NOW, busy)
    by_id = {a.incident_id: a for a in result}
    assert by_id["c1"].analyst_id == "pat"
    assert by_id["b1"].analyst_id is None
    assert "max_concurrent" in by_id["b1"].reason


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([CLINIC, BAKERY, FLORIST]), st.sampled_from(["T1", "T2", "T3"])),
        max_size=25,
    )
)
def test_routing_respects_tenant_scope_tier_and_capacity(specs: list[tuple[TenantId, Any]]) -> None:
    soc = roster_of(
        analyst("tina", "T1", max_concurrent=2),
        analyst("tom", "T2", max_concurrent=2),
        analyst("tess", "T3", max_concurrent=1),
        analyst("pat", "T1", employer="nightwatch", max_concurrent=3),
        analyst("bea", "T2", tenants=["bakery"], max_concurrent=2),
    )
    items = [item(id=f"i{n}", tenant_id=t, queue_tier=q) for n, (t, q) in enumerate(specs)]
    result = route(items, soc, NOW)
    assert len(result) == len(items)
    tier_index = {"T1": 0, "T2": 1, "T3": 2}
    counts: dict[str, int] = {}
    incidents = {i.incident.id: i.incident for i in items}
    for assignment in result:
        if assignment.analyst_id is None:
            continue
        who = soc.analyst(assignment.analyst_id)
        assert who is not None
        incident = incidents[assignment.incident_id]
        assert who.may_work(incident.tenant_id)
        assert tier_index[who.tier] >= tier_index[incident.queue_tier]
        counts[who.id] = counts.get(who.id, 0) + 1
        assert counts[who.id] <= who.max_concurrent
        if who.id == "pat":
            assert incident.tenant_id == CLINIC


def test_tier_requirement(soc: SocRoster) -> None:
    t1_only = roster_of(analyst("tina", "T1"))
    [refused] = route([item(queue_tier="T2")], t1_only, NOW)
    assert refused.analyst_id is None
    assert refused.reason == "no on-duty analyst of tier T2 or above may work tenant clinic"
    [taken] = route([item(queue_tier="T3")], soc, NOW)
    assert taken.analyst_id == "tess"


def test_skills_win_over_load_and_lowest_tier_over_load(soc: SocRoster) -> None:
    linux = item(id="linux", techniques=("T1059.004",), tenant_id=BAKERY)
    [a] = route([linux], soc, NOW, {"tim": 3})
    assert a.analyst_id == "tim"
    assert a.matched_skills == {"linux"}
    assert "skills linux of linux" in a.reason
    # No skills asked: a T1 with load 3 still beats an idle T3 (seniors stay free for escalations)...
    [b] = route([item(tenant_id=BAKERY)], soc, NOW, {"tina": 3, "tim": 4})
    assert b.analyst_id == "tina"
    # ...unless asked to balance purely by load.
    load = {"tina": 3, "tim": 4, "tess": 1}
    [c] = route([item(tenant_id=BAKERY)], soc, NOW, load, prefer_lowest_tier=False)
    assert c.analyst_id == "tom"


def test_load_is_balanced_and_capacity_respected() -> None:
    soc = roster_of(analyst("tina", "T1", max_concurrent=2), analyst("tim", "T1", max_concurrent=2))
    items = [item(id=f"i{n}", remaining=100.0 * n) for n in range(5)]
    result = route(items, soc, NOW)
    assert [a.analyst_id for a in result] == ["tim", "tina", "tim", "tina", None]  # "tim" < "tina" on ties
    assert result[-1].reason == "all 2 eligible on-duty analyst(s) are at their max_concurrent"
    assert [a.analyst_id for a in route(items[:2], soc, NOW, {"tim": 1})] == ["tina", "tim"]


def test_assigned_items_are_skipped_and_closed_or_merged_are_refused(soc: SocRoster) -> None:
    items = [
        item(id="mine", assignee="tom"),
        item(id="merged", merged_into="inc-9"),
        item(id="closed", state="closed_false_positive"),
    ]
    result = {a.incident_id: a for a in route(items, soc, NOW)}
    assert set(result) == {"merged", "closed"}
    assert result["merged"].reason.startswith("merged into inc-9")
    assert result["closed"].analyst_id is None


def test_nobody_on_duty() -> None:
    soc = load_roster(EXAMPLE)
    saturday = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    [a] = route([item(tenant_id=FLORIST, queue_tier="T2")], soc.without_region("emea"), saturday)
    assert a.analyst_id is None
    assert a.reason == "no on-duty analyst may work tenant florist"


# -- hand-off ----------------------------------------------------------------------------------------
def test_shift_handoff_moves_open_work_to_the_next_region_with_a_note() -> None:
    soc = load_roster(EXAMPLE)
    change = datetime(2026, 1, 7, 14, 0, tzinfo=UTC)  # Wednesday: EMEA ends 15:00 CET, AMER began 08:00 EST
    t1_work = make_incident(
        id="inc-emea-1",
        tenant_id=BAKERY,
        state="investigating",
        severity="critical",
        assignee="dora",
        techniques=("T1566.001",),
        created_at=change - timedelta(hours=2),
    )
    t2_work = make_incident(id="inc-emea-2", state="acknowledged", assignee="emil", queue_tier="T2")
    staying = make_incident(id="inc-amer", assignee="ivan", state="investigating")
    closed = make_incident(id="inc-done", assignee="dora", state="closed_true_positive")
    manager_held = make_incident(id="inc-mgr", assignee="dm-emea", state="investigating")
    timeline = {
        "inc-emea-1": [
            TimelineEntry(
                incident_id="inc-emea-1",
                tenant_id=BAKERY,
                at=change - timedelta(minutes=50),
                actor="dora",
                kind="note",
                summary="dora noted: phishing mail reached 3 mailboxes",
            ),
            TimelineEntry(
                incident_id="inc-emea-1",
                tenant_id=BAKERY,
                at=change - timedelta(minutes=10),
                actor="dora",
                kind="evidence",
                summary="dora added the mail's sha256",
            ),
        ]
    }
    remaining = {"inc-emea-1": 1800.0, "inc-emea-2": -300.0}
    handoffs = shift_handoff(
        [t1_work, t2_work, staying, closed, manager_held],
        soc,
        change,
        timelines=timeline,
        sla_remaining=lambda inc: remaining.get(inc.id),
        load={"dora": 2, "emil": 1, "ivan": 1},
    )
    by_id = {h.incident_id: h for h in handoffs}
    assert set(by_id) == {"inc-emea-1", "inc-emea-2"}
    assert [h.incident_id for h in handoffs] == ["inc-emea-2", "inc-emea-1"]  # breached first
    first = by_id["inc-emea-1"]
    assert first.from_analyst == "dora"
    assert first.to_analyst == "hana"  # AMER T1 allowed for the bakery, with the email skill (gus is not)
    assert first.details["to_region"] == "amer"
    assert "investigating" in first.note
    assert "critical" in first.note
    assert "SLA: 30m left." in first.note
    assert "dora (evidence): dora added the mail's sha256" in first.note
    assert "Next step: contain the threat or resolve it" in first.note
    assert "NOT been notified" in first.note
    assert "SLA: breached 5m ago." in by_id["inc-emea-2"].note
    assert by_id["inc-emea-2"].to_analyst == "ivan"  # the only AMER T2
    entry = first.entry()
    assert entry.kind == "handoff"
    assert entry.actor == "system"
    assert entry.at == change
    assert entry.details["to"] == "hana"


def test_handoff_back_to_queue_when_nobody_can_take_it() -> None:
    soc = load_roster(EXAMPLE)
    friday_evening = datetime(2026, 1, 9, 22, 0, tzinfo=UTC)  # AMER has left; EMEA weekend starts
    t3_work = make_incident(id="inc-t3", tenant_id=FLORIST, assignee="jade", queue_tier="T3")
    lawfirm = make_incident(
        id="inc-law", tenant_id=TenantId("lawfirm-ms"), assignee="gus", state="acknowledged"
    )
    result = {h.incident_id: h for h in shift_handoff([t3_work, lawfirm], soc, friday_evening)}
    assert result["inc-t3"].to_analyst == "wanda"
    assert result["inc-law"].to_analyst == "wolf"  # a T2 takes T1 work when no T1 is on
    manila_only = soc.without_region("emea")
    [lost] = shift_handoff([t3_work], manila_only, friday_evening)
    assert lost.to_analyst is None
    assert "the queue (nobody on duty can take it)" in lost.note
    assert "no on-duty analyst may work tenant florist" in lost.reason
    assert "no SLA target running" in lost.note
    assert "no timeline entries" in lost.note
    assert lost.entry().details["to"] is None


def test_format_seconds() -> None:
    assert format_seconds(5400) == "1h30m"
    assert format_seconds(-300) == "-5m"
    assert format_seconds(42) == "42s"
    assert format_seconds(90061) == "1d1h1m"
    assert format_seconds(0) == "0s"


def test_queue_item_skills_override() -> None:
    override = replace(item(techniques=("T1059.004",)), skills=frozenset({"aws"}))
    assert override.needed_skills == {"aws"}
