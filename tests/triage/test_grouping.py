"""Grouping decisions: attach within the window, reopen recent closures, ATT&CK progression, isolation."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.core.types import RuleId, Severity, TenantId
from watchfloor.triage.grouping import (
    GroupingError,
    GroupingPolicy,
    IncidentIndex,
    IncidentRef,
    decide,
    grouping_keys,
    incident_id_for,
)
from watchfloor.triage.models import Alert, Entity, RiskScore

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CLINIC = TenantId("clinic")
BAKERY = TenantId("bakery")
WS17 = Entity("host", "ws-17")
WS18 = Entity("host", "ws-18")
JDOE = Entity("user", "jdoe")


def alert(
    name: str = "a1",
    *,
    at: datetime = T0,
    entities: tuple[Entity, ...] = (WS17, JDOE),
    severity: Severity = "high",
    risk: int = 50,
    tactics: tuple[str, ...] = ("execution",),
    techniques: tuple[str, ...] = ("T1059.001",),
    tenant: TenantId = CLINIC,
) -> Alert:
    return Alert(
        id=f"al-{name}",
        tenant_id=tenant,
        dedup_key=f"r|{name}|w",
        rule_id=RuleId("r"),
        rule_title="Rule",
        rule_author="",
        severity=severity,
        first_seen=at,
        last_seen=at,
        count=1,
        entities=entities,
        techniques=techniques,
        tactics=tactics,
        detection_ids=(1,),
        risk=RiskScore(score=risk),
    )


def ref(
    incident_id: str,
    *,
    keys: tuple[Entity, ...] = (WS17,),
    last: datetime = T0,
    closed_at: datetime | None = None,
    tactics: tuple[str, ...] = (),
    techniques: tuple[str, ...] = (),
    tenant: TenantId = CLINIC,
) -> IncidentRef:
    return IncidentRef(
        id=incident_id,
        tenant_id=tenant,
        entity_keys=frozenset(grouping_keys(keys)),
        techniques=frozenset(techniques),
        tactics=frozenset(tactics),
        last_activity=last,
        closed_at=closed_at,
    )


def index_with(*refs: IncidentRef, tenant: TenantId = CLINIC) -> IncidentIndex:
    index = IncidentIndex(tenant)
    for item in refs:
        index.upsert(item)
    return index


def test_a_shared_host_within_the_window_attaches() -> None:
    index = index_with(ref("inc-1", last=T0 - timedelta(hours=5)))
    decision = decide(alert(entities=(WS17,)), index, T0)
    assert decision.action == "attach"
    assert decision.incident_id == "inc-1"
    assert decision.shared == ("host:ws-17",)
    assert decision.reason.startswith("shares host ws-17 with incident inc-1, last active 5 h before")


def test_outside_the_window_a_new_incident() -> None:
    index = index_with(ref("inc-1", last=T0 - timedelta(hours=25)))
    decision = decide(alert(), index, T0)
    assert decision.action == "create"
    assert decision.incident_id == incident_id_for(alert())
    assert "outside the grouping or reopen windows" in decision.reason


def test_alerts_sharing_nothing_never_merge() -> None:
    index = index_with(ref("inc-1", keys=(WS18, Entity("user", "other"))))
    decision = decide(alert(entities=(WS17, JDOE, Entity("file", "c:\\x"))), index, T0)
    assert decision.action == "create"
    assert "no open or recently closed incident shares its entities" in decision.reason


def test_files_and_hashes_do_not_group() -> None:
    index = IncidentIndex(CLINIC)
    shared_file = (Entity("file", "c:\\windows\\system32\\cmd.exe"), Entity("hash", "abc"))
    first = alert("a1", entities=shared_file)
    index.apply(decide(first, index, T0), first, T0)
    decision = decide(alert("a2", entities=shared_file), index, T0)
    assert decision.action == "create"
    assert "no host, user, IP, process or cloud account" in decision.reason


def test_reopen_a_closed_incident_within_seven_days() -> None:
    closed = ref("inc-1", closed_at=T0 - timedelta(days=6), techniques=("T1059.001",))
    decision = decide(alert(), index_with(closed), T0)
    assert decision.action == "reopen"
    assert decision.incident_id == "inc-1"
    assert "the same technique (T1059.001)" in decision.reason
    assert "closed 6 d ago" in decision.reason


def test_no_reopen_after_seven_days_or_for_different_activity() -> None:
    old = ref("inc-1", closed_at=T0 - timedelta(days=8), techniques=("T1059.001",))
    assert decide(alert(), index_with(old), T0).action == "create"
    other = ref("inc-2", closed_at=T0 - timedelta(days=1), techniques=("T1003.001",))
    assert decide(alert(), index_with(other), T0).action == "create"


def test_an_open_incident_wins_over_a_closed_one() -> None:
    index = index_with(
        ref("inc-closed", closed_at=T0 - timedelta(hours=1), techniques=("T1059.001",)),
        ref("inc-open", last=T0 - timedelta(hours=2)),
    )
    assert decide(alert(), index, T0).incident_id == "inc-open"


def test_attack_progression_beats_recency() -> None:
    index = index_with(
        ref("inc-story", last=T0 - timedelta(hours=6), tactics=("initial-access", "execution")),
        ref("inc-later", last=T0 - timedelta(minutes=10), tactics=("impact",)),
    )
    decision = decide(alert(tactics=("lateral-movement",)), index, T0)
    assert decision.incident_id == "inc-story"
    assert "ATT&CK progression: initial-access, execution then lateral-movement" in decision.reason
    assert "chosen among 2 open incidents" in decision.reason


def test_without_progression_the_most_recent_wins() -> None:
    index = index_with(
        ref("inc-old", last=T0 - timedelta(hours=6)),
        ref("inc-new", last=T0 - timedelta(minutes=10)),
    )
    assert decide(alert(tactics=()), index, T0).incident_id == "inc-new"


def test_low_alerts_do_not_open_incidents_alone() -> None:
    index = IncidentIndex(CLINIC)
    quiet = decide(alert(severity="low", risk=30), index, T0)
    assert quiet.action == "none"
    assert quiet.incident_id is None
    assert "kept as an alert" in quiet.reason
    assert decide(alert(severity="low", risk=60), index, T0).action == "create"
    index.upsert(ref("inc-1"))
    assert decide(alert(severity="low", risk=30), index, T0).action == "attach"


def test_policy_thresholds_are_configurable() -> None:
    index = IncidentIndex(CLINIC, policy=GroupingPolicy(min_severity="high", min_risk_alone=90))
    assert decide(alert(severity="medium", risk=80), index, T0).action == "none"
    assert decide(alert(severity="high", risk=10), index, T0).action == "create"


def test_suppressed_and_already_attached_alerts() -> None:
    index = index_with(ref("inc-1"))
    closed = replace(alert(), status="suppressed", closed_reason="suppressed by sup-1 (ana): backups")
    decision = decide(closed, index, T0)
    assert (decision.action, decision.reason) == ("none", "suppressed by sup-1 (ana): backups")
    attached = replace(alert(), status="incident", incident_id="inc-1")
    again = decide(attached, index, T0)
    assert (again.action, again.incident_id) == ("none", "inc-1")
    assert decide(attached, index, T0) is again  # made once per incident


def test_an_alert_whose_incident_closed_reopens_it() -> None:
    index = index_with(ref("inc-1", closed_at=T0 - timedelta(hours=1), techniques=("T1059.001",)))
    attached = replace(alert(), status="incident", incident_id="inc-1")
    decision = decide(attached, index, T0)
    assert (decision.action, decision.incident_id) == ("reopen", "inc-1")


def test_tenants_never_group() -> None:
    clinic = index_with(ref("inc-1"))
    with pytest.raises(GroupingError, match="tenant bakery"):
        decide(alert(tenant=BAKERY), clinic, T0)
    with pytest.raises(GroupingError):
        clinic.upsert(ref("inc-2", tenant=BAKERY))
    bakery = IncidentIndex(BAKERY)
    assert decide(alert(tenant=BAKERY), bakery, T0).action == "create"


def test_apply_records_decisions() -> None:
    index = IncidentIndex(CLINIC)
    first = alert("a1", entities=(WS17,), tactics=("initial-access",))
    created = decide(first, index, T0)
    index.apply(created, first, T0)
    assert created.incident_id is not None
    second = alert("a2", at=T0 + timedelta(hours=1), entities=(WS17, JDOE), tactics=("execution",))
    attached = decide(second, index, T0)
    index.apply(attached, second, T0)
    stored = index.get(created.incident_id)
    assert stored is not None
    assert stored.entity_keys == {"host:ws-17", "user:jdoe"}
    assert stored.tactics == {"initial-access", "execution"}
    assert stored.last_activity == T0 + timedelta(hours=1)
    third = alert("a3", entities=(JDOE, WS18))  # reached through the user the second alert brought
    assert decide(third, index, T0).incident_id == created.incident_id
    index.close(created.incident_id, T0 + timedelta(hours=2))
    assert decide(third, index, T0 + timedelta(hours=3)).action == "reopen"


def test_incident_ids() -> None:
    first = alert("a1")
    assert re.fullmatch(r"inc-clinic-[0-9a-f]{12}", incident_id_for(first))
    assert incident_id_for(first) == incident_id_for(alert("a1", at=T0 + timedelta(days=1)))
    assert incident_id_for(first) != incident_id_for(alert("a2"))


def test_process_keys_do_not_crowd_out_users() -> None:
    index = IncidentIndex(CLINIC, policy=GroupingPolicy(max_entity_keys=6, max_keys_per_kind=2))
    first = alert("a1", entities=(WS17,))
    created = decide(first, index, T0)
    index.apply(created, first, T0)
    for n in range(10):
        more = alert(f"p{n}", entities=(WS17, Entity("process", f"p-{n}")))
        index.apply(decide(more, index, T0), more, T0)
    late = alert("late", entities=(WS17, JDOE))
    index.apply(decide(late, index, T0), late, T0)
    stored = index.get(created.incident_id or "")
    assert stored is not None
    assert sum(key.startswith("process:") for key in stored.entity_keys) == 2
    assert "user:jdoe" in stored.entity_keys


def test_entity_keys_per_incident_are_bounded() -> None:
    index = IncidentIndex(CLINIC, policy=GroupingPolicy(max_entity_keys=3))
    first = alert("a1", entities=(WS17,))
    created = decide(first, index, T0)
    index.apply(created, first, T0)
    many = alert("a2", entities=(WS17, *(Entity("user", f"u{n}") for n in range(10))))
    index.apply(decide(many, index, T0), many, T0)
    stored = index.get(created.incident_id or "")
    assert stored is not None
    assert len(stored.entity_keys) == 3


@given(count=st.integers(1, 60), hours=st.lists(st.integers(0, 200), min_size=1, max_size=60))
def test_the_index_is_bounded(count: int, hours: list[int]) -> None:
    index = IncidentIndex(CLINIC, policy=GroupingPolicy(max_refs=10))
    for n in range(count):
        at = T0 + timedelta(hours=hours[n % len(hours)])
        index.upsert(ref(f"inc-{n}", keys=(Entity("host", f"h{n}"),), last=at), at)
    assert len(index) <= 10
    assert index.prune(T0 + timedelta(days=30)) >= 0
    assert len(index) <= 10


def test_prune_drops_stale_incidents() -> None:
    index = index_with(
        ref("inc-open-old", last=T0 - timedelta(days=3)),
        ref("inc-open-new", last=T0),
        ref("inc-closed-old", closed_at=T0 - timedelta(days=8)),
        ref("inc-closed-new", closed_at=T0 - timedelta(days=1)),
    )
    assert index.prune(T0) == 2
    assert {r.id for r in index} == {"inc-open-new", "inc-closed-new"}
