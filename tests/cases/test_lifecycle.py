"""The incident lifecycle: every state change goes through the policy; operations return timeline entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.cases.conftest import BAKERY, CLINIC, T0, AlertFactory, IncidentFactory
from watchfloor.cases.lifecycle import (
    TRANSITIONS,
    Accept,
    Delay,
    IncidentPolicy,
    LifecycleConfig,
    Reject,
    TransitionOutcome,
    TransitionRequest,
    TransitionRule,
    Verdict,
    acknowledge,
    action_for,
    add_evidence,
    add_note,
    assign,
    attach_alert,
    escalate,
    link,
    merge,
    record_customer_notification,
    split,
    transition,
)
from watchfloor.cases.models import SYSTEM, Actor, Incident, TimelineEntry
from watchfloor.cases.permissions import CaseError, PermissionDeniedError, allowed
from watchfloor.core.types import (
    INCIDENT_STATES,
    SEVERITIES,
    IncidentState,
    Severity,
    TenantId,
    severity_rank,
)
from watchfloor.triage.models import Entity, RiskScore


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def walk(
    incident: Incident, steps: Sequence[tuple[IncidentState, Actor, float]], *, closure: str = "done"
) -> Incident:
    """Drive `incident` through `steps` (to_state, actor, minutes after T0); each must be accepted."""
    for to_state, actor, at in steps:
        outcome = transition(incident, to_state, actor, minutes(at), closure_reason=closure)
        assert outcome.accepted, (to_state, outcome.verdict)
        incident = outcome.incident
    return incident


def kinds(outcome: TransitionOutcome) -> list[str]:
    return [e.kind for e in outcome.entries]


# -- the happy path and milestones --------------------------------------------------------------------
def test_full_lifecycle_sets_each_milestone_once(
    incident_p1_new: Incident, t1_analyst: Actor, t2_analyst: Actor
) -> None:
    acked = acknowledge(incident_p1_new, t1_analyst, minutes(4))
    assert acked.accepted
    assert kinds(acked) == ["state_changed"]
    inc = acked.incident
    assert (inc.state, inc.acknowledged_at, inc.acknowledged_by, inc.assignee) == (
        "acknowledged",
        minutes(4),
        "tina",
        "tina",
    )
    assert inc.triaged_at is None
    inc = walk(inc, [("investigating", t1_analyst, 10), ("contained", t2_analyst, 30)])
    assert (inc.triaged_at, inc.contained_at) == (minutes(10), minutes(30))
    inc, _ = record_customer_notification(inc, t2_analyst, minutes(35), "phone")
    inc = walk(
        inc, [("investigating", t2_analyst, 40), ("contained", t2_analyst, 50), ("resolved", t2_analyst, 60)]
    )
    assert inc.contained_at == minutes(30)  # the second containment does not move the milestone
    assert inc.resolved_at == minutes(60)
    inc = walk(inc, [("closed_true_positive", t2_analyst, 60 + 24 * 60)], closure="reimaged ws-17")
    assert inc.state == "closed_true_positive"
    assert inc.closed_at == minutes(60 + 24 * 60)
    assert inc.closure_reason == "reimaged ws-17"
    assert inc.updated_at == inc.closed_at


def test_acknowledge_keeps_an_existing_assignee(incident_new: Incident, t1_partner: Actor) -> None:
    outcome = acknowledge(replace(incident_new, assignee="tom"), t1_partner, minutes(2))
    assert outcome.accepted
    assert outcome.incident.assignee == "tom"
    assert outcome.incident.acknowledged_by == "pat"


def test_state_changed_entry_says_who_what_and_why(incident_new: Incident, t1_analyst: Actor) -> None:
    outcome = transition(
        incident_new,
        "closed_false_positive",
        t1_analyst,
        minutes(3),
        reason="admin script",
        closure_reason="known backup job",
    )
    (entry,) = outcome.entries
    assert (entry.incident_id, entry.tenant_id, entry.at, entry.actor, entry.kind) == (
        "inc-1",
        CLINIC,
        minutes(3),
        "tina",
        "state_changed",
    )
    assert entry.summary == "tina: new -> closed_false_positive: admin script"
    assert entry.details["closure_reason"] == "known backup job"


def test_false_positive_straight_from_new_counts_as_acknowledgement(
    incident_new: Incident, t1_analyst: Actor
) -> None:
    inc = walk(incident_new, [("closed_false_positive", t1_analyst, 3)])
    assert (inc.acknowledged_at, inc.acknowledged_by, inc.closed_at, inc.triaged_at) == (
        minutes(3),
        "tina",
        minutes(3),
        minutes(3),
    )


# -- rejections ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("to_state", "why"),
    [
        ("resolved", "no transition from new to resolved"),
        ("closed_true_positive", "no transition from new to closed_true_positive"),
        ("new", "already new"),
    ],
)
def test_graph_rejects_other_moves(
    incident_new: Incident, soc_manager: Actor, to_state: IncidentState, why: str
) -> None:
    outcome = transition(incident_new, to_state, soc_manager, minutes(1), closure_reason="x")
    assert isinstance(outcome.verdict, Reject)
    assert why in outcome.verdict.reason
    assert outcome.rule == "EnforceTransitionGraph"
    assert outcome.incident is incident_new
    (entry,) = outcome.entries
    assert entry.kind == "transition_rejected"
    assert entry.details["rule"] == "EnforceTransitionGraph"


def test_every_listed_edge_leads_to_a_state() -> None:
    assert set(TRANSITIONS) == set(INCIDENT_STATES)
    for source, targets in TRANSITIONS.items():
        assert source not in targets
        assert targets <= set(INCIDENT_STATES)


def test_partner_cannot_contain_even_from_a_valid_state(
    incident_new: Incident, t1_partner: Actor, t1_analyst: Actor
) -> None:
    inc = walk(incident_new, [("acknowledged", t1_partner, 1), ("investigating", t1_analyst, 2)])
    outcome = transition(inc, "contained", t1_partner, minutes(3))
    assert isinstance(outcome.verdict, Reject)
    assert outcome.rule == "AuthorizeTransition"
    assert "partner_analyst" in outcome.verdict.reason
    assert outcome.incident.state == "investigating"


def test_partner_cannot_touch_another_tenant(incident_bakery: Incident, t1_partner: Actor) -> None:
    outcome = acknowledge(incident_bakery, t1_partner, minutes(1))
    assert isinstance(outcome.verdict, Reject)
    assert "tenant bakery is outside its tenants" in outcome.verdict.reason
    assert outcome.incident.acknowledged_at is None


@pytest.mark.parametrize(
    "actor_name", ["t1_analyst", "t1_partner", "customer_viewer_clinic", "customer_admin_clinic"]
)
def test_who_may_not_contain(
    incident_new: Incident, t2_analyst: Actor, actor_name: str, request: pytest.FixtureRequest
) -> None:
    inc = walk(incident_new, [("acknowledged", t2_analyst, 1), ("investigating", t2_analyst, 2)])
    outcome = transition(inc, "contained", request.getfixturevalue(actor_name), minutes(3))
    assert outcome.rule == "AuthorizeTransition"


def test_closing_needs_a_reason(incident_new: Incident, t1_analyst: Actor) -> None:
    for reason in (None, "", "   "):
        outcome = transition(
            incident_new, "closed_false_positive", t1_analyst, minutes(1), closure_reason=reason
        )
        assert outcome.rule == "RequireClosureReason"


def test_critical_false_positive_needs_t2_review(
    incident_p1_open: Incident, t1_analyst: Actor, t2_analyst: Actor
) -> None:
    outcome = transition(
        incident_p1_open, "closed_false_positive", t1_analyst, minutes(9), closure_reason="fp"
    )
    assert outcome.rule == "ReviewCriticalFalsePositives"
    assert isinstance(outcome.verdict, Reject)
    assert "needs T2+ review" in outcome.verdict.reason
    assert transition(
        incident_p1_open, "closed_false_positive", t2_analyst, minutes(9), closure_reason="fp"
    ).accepted


def test_t1_closes_a_medium_false_positive(incident_new: Incident, t1_analyst: Actor) -> None:
    assert transition(
        incident_new, "closed_false_positive", t1_analyst, minutes(1), closure_reason="fp"
    ).accepted


def test_high_incidents_resolve_only_after_the_customer_was_told(
    make_incident: IncidentFactory, t2_analyst: Actor
) -> None:
    inc = walk(
        make_incident(severity="high"), [("acknowledged", t2_analyst, 1), ("investigating", t2_analyst, 2)]
    )
    outcome = transition(inc, "resolved", t2_analyst, minutes(10))
    assert outcome.rule == "NotifyCustomerBeforeResolving"
    assert isinstance(outcome.verdict, Reject)
    assert "notify the customer first" in outcome.verdict.reason
    notified, entries = record_customer_notification(inc, t2_analyst, minutes(11), "email")
    assert [e.kind for e in entries] == ["customer_notified"]
    assert transition(notified, "resolved", t2_analyst, minutes(12)).accepted
    low = walk(
        make_incident(severity="low"), [("acknowledged", t2_analyst, 1), ("investigating", t2_analyst, 2)]
    )
    assert transition(low, "resolved", t2_analyst, minutes(3)).accepted


def test_closing_a_resolved_critical_incident_is_delayed_for_the_watch(
    incident_p1_open: Incident, t2_analyst: Actor
) -> None:
    inc = walk(incident_p1_open, [("investigating", t2_analyst, 10), ("contained", t2_analyst, 20)])
    inc, _ = record_customer_notification(inc, t2_analyst, minutes(21), "phone")
    inc = walk(inc, [("resolved", t2_analyst, 60)])
    early = transition(inc, "closed_true_positive", t2_analyst, minutes(120), closure_reason="remediated")
    assert isinstance(early.verdict, Delay)
    assert early.verdict.until == minutes(60 + 24 * 60)
    assert early.rule == "WatchBeforeClosing"
    assert early.incident is inc
    (entry,) = early.entries
    assert entry.kind == "transition_delayed"
    assert entry.details["until"] == minutes(60 + 24 * 60).isoformat()
    on_time = transition(
        inc, "closed_true_positive", t2_analyst, early.verdict.until, closure_reason="remediated"
    )
    assert on_time.accepted


def test_the_watch_is_configurable(incident_p1_open: Incident, t2_analyst: Actor) -> None:
    inc = walk(incident_p1_open, [("investigating", t2_analyst, 10)])
    inc, _ = record_customer_notification(inc, t2_analyst, minutes(11), "phone")
    inc = walk(inc, [("resolved", t2_analyst, 12)])
    policy = IncidentPolicy.core(LifecycleConfig(close_watch_seconds=0))
    assert transition(
        inc, "closed_true_positive", t2_analyst, minutes(12), closure_reason="ok", policy=policy
    ).accepted


# -- customer pauses ----------------------------------------------------------------------------------
def test_awaiting_customer_opens_and_closes_pauses(
    incident_new: Incident, t1_analyst: Actor, t2_analyst: Actor
) -> None:
    inc = walk(incident_new, [("acknowledged", t1_analyst, 1), ("awaiting_customer", t1_analyst, 5)])
    assert inc.pauses == ((minutes(5), None),)
    inc = walk(inc, [("investigating", t1_analyst, 65), ("awaiting_customer", t1_analyst, 70)])
    assert inc.pauses == ((minutes(5), minutes(65)), (minutes(70), None))
    inc = walk(inc, [("contained", t2_analyst, 90)])
    assert inc.pauses == ((minutes(5), minutes(65)), (minutes(70), minutes(90)))
    assert inc.contained_at == minutes(90)


def test_customer_confirms_a_false_positive_while_we_wait(incident_new: Incident, t1_analyst: Actor) -> None:
    inc = walk(incident_new, [("acknowledged", t1_analyst, 1), ("awaiting_customer", t1_analyst, 5)])
    inc = walk(inc, [("closed_false_positive", t1_analyst, 30)], closure="customer: planned admin login")
    assert inc.pauses == ((minutes(5), minutes(30)),)


# -- reopen -------------------------------------------------------------------------------------------
def test_reopen_within_the_window(incident_new: Incident, t1_analyst: Actor, t2_analyst: Actor) -> None:
    closed = walk(incident_new, [("closed_false_positive", t1_analyst, 3)], closure="benign")
    outcome = transition(closed, "investigating", t2_analyst, minutes(3 * 24 * 60), reason="came back")
    assert outcome.accepted
    assert kinds(outcome) == ["state_changed", "reopened"]
    assert outcome.incident.closure_reason is None
    assert outcome.incident.closed_at == minutes(3)  # a milestone: kept
    again = walk(
        outcome.incident, [("closed_false_positive", t2_analyst, 3 * 24 * 60 + 5)], closure="really benign"
    )
    assert again.closed_at == minutes(3)
    assert again.closure_reason == "really benign"


def test_reopen_after_the_window_asks_for_a_new_incident(
    incident_new: Incident, t1_analyst: Actor, t2_analyst: Actor
) -> None:
    closed = walk(incident_new, [("closed_false_positive", t1_analyst, 3)])
    outcome = transition(closed, "investigating", t2_analyst, minutes(3) + timedelta(days=7, seconds=1))
    assert outcome.rule == "ReopenWithinWindow"
    assert isinstance(outcome.verdict, Reject)
    assert "open a new incident" in outcome.verdict.reason
    assert transition(closed, "investigating", t2_analyst, minutes(3) + timedelta(days=7)).accepted


def test_t1_may_not_reopen(incident_new: Incident, t1_analyst: Actor) -> None:
    closed = walk(incident_new, [("closed_false_positive", t1_analyst, 3)])
    assert transition(closed, "investigating", t1_analyst, minutes(10)).rule == "AuthorizeTransition"


# -- the policy machinery -----------------------------------------------------------------------------
class _RefuseEverything(TransitionRule):
    def evaluate(self, request: TransitionRequest) -> Verdict:
        return Reject(reason=f"frozen for {request.actor.id}")


class _DelayAcknowledgement(TransitionRule):
    TO_STATES = frozenset({"acknowledged"})

    def evaluate(self, request: TransitionRequest) -> Verdict:
        return Delay(reason="wait", until=request.now + timedelta(minutes=1))


def test_first_non_accepting_rule_decides(incident_new: Incident, t1_analyst: Actor) -> None:
    config = LifecycleConfig()
    delay_first = IncidentPolicy((_DelayAcknowledgement(config), _RefuseEverything(config)))
    outcome = acknowledge(incident_new, t1_analyst, minutes(1), policy=delay_first)
    assert isinstance(outcome.verdict, Delay)
    assert outcome.rule == "_DelayAcknowledgement"
    # the delaying rule does not match this transition, so the next one decides
    outcome = transition(incident_new, "closed_false_positive", t1_analyst, minutes(1), policy=delay_first)
    assert outcome.verdict == Reject(reason="frozen for tina")
    assert (
        IncidentPolicy(())
        .apply(
            TransitionRequest(
                incident=incident_new, to_state="acknowledged", actor=t1_analyst, now=minutes(1)
            )
        )
        .verdict
        == Accept()
    )


def test_naive_time_is_refused(incident_new: Incident, t1_analyst: Actor) -> None:
    with pytest.raises(CaseError) as caught:
        acknowledge(incident_new, t1_analyst, datetime(2026, 12, 4, 9, 0))  # noqa: DTZ001 - the point of the test
    assert caught.value.code == "cases.naive_time"
    assert "tenant=clinic incident/inc-1" in str(caught.value)


# -- operations ---------------------------------------------------------------------------------------
def test_assign_self_service_and_by_t2(incident_new: Incident, t1_analyst: Actor, t2_analyst: Actor) -> None:
    mine, entries = assign(incident_new, "tina", t1_analyst, minutes(1))
    assert mine.assignee == "tina"
    assert [e.kind for e in entries] == ["assigned"]
    with pytest.raises(PermissionDeniedError, match="'assign'"):
        assign(incident_new, "tom", t1_analyst, minutes(1))
    dropped, _ = assign(mine, None, t1_analyst, minutes(2))
    assert dropped.assignee is None
    theirs, _ = assign(incident_new, "tina", t2_analyst, minutes(1))
    assert theirs.assignee == "tina"
    same, none = assign(theirs, "tina", t2_analyst, minutes(2))
    assert (same, none) == (theirs, ())


def test_escalate_raises_the_tier_and_returns_it_to_the_queue(
    incident_new: Incident, t1_partner: Actor, t2_analyst: Actor
) -> None:
    inc = acknowledge(incident_new, t1_partner, minutes(1)).incident
    assert inc.assignee == "pat"
    escalated, (entry,) = escalate(inc, "T2", t1_partner, minutes(4), "lateral movement, above T1")
    assert (escalated.queue_tier, escalated.assignee, escalated.triaged_at) == ("T2", None, minutes(4))
    assert entry.kind == "escalated"
    assert entry.details["assignee"] == "pat"
    with pytest.raises(CaseError, match="is at T2") as caught:
        escalate(escalated, "T1", t2_analyst, minutes(5), "back down")
    assert caught.value.code == "cases.escalation_invalid"
    with pytest.raises(CaseError, match="needs a reason"):
        escalate(escalated, "T3", t2_analyst, minutes(5), " ")


def test_partner_cannot_escalate_another_tenants_incident(
    incident_bakery: Incident, t1_partner: Actor
) -> None:
    with pytest.raises(PermissionDeniedError, match="tenant bakery"):
        escalate(incident_bakery, "T2", t1_partner, minutes(1), "help")


def test_customer_notification_is_recorded_once(
    incident_p1_open: Incident, t2_analyst: Actor, t1_partner: Actor
) -> None:
    first, _ = record_customer_notification(incident_p1_open, t2_analyst, minutes(10), "phone")
    second, (entry,) = record_customer_notification(first, t2_analyst, minutes(50), "email")
    assert second.notified_at == minutes(10)
    assert entry.details == {"channel": "email", "first": False}
    with pytest.raises(PermissionDeniedError):
        record_customer_notification(incident_p1_open, t1_partner, minutes(10), "phone")


def test_notes(
    incident_new: Incident, t1_partner: Actor, customer_admin_clinic: Actor, customer_viewer_clinic: Actor
) -> None:
    note, entry = add_note(incident_new, t1_partner, "Checked EDR: parent is winword.exe\nmore", minutes(2))
    assert (note.author, note.visible_to_customer, note.tenant_id) == ("pat", False, CLINIC)
    assert entry.summary == "pat noted: Checked EDR: parent is winword.exe"
    customer_note, _ = add_note(incident_new, customer_admin_clinic, "Alice was travelling", minutes(3))
    assert customer_note.visible_to_customer
    with pytest.raises(PermissionDeniedError):
        add_note(incident_new, customer_viewer_clinic, "hello", minutes(3))
    with pytest.raises(CaseError, match="needs text"):
        add_note(incident_new, t1_partner, "  ", minutes(3))


def test_evidence(incident_new: Incident, t2_analyst: Actor, t2_bakery_only: Actor) -> None:
    sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    evidence, entry = add_evidence(
        incident_new, t2_analyst, minutes(2), kind="file", reference=sha, description="dropped payload"
    )
    assert (evidence.kind, evidence.reference, evidence.incident_id) == ("file", sha, "inc-1")
    assert entry.kind == "evidence"
    assert entry.details == {"kind": "file", "reference": sha}
    with pytest.raises(PermissionDeniedError):
        add_evidence(incident_new, t2_bakery_only, minutes(2), kind="file", reference=sha, description="x")


# -- alerts -------------------------------------------------------------------------------------------
def test_attach_alert_to_an_open_incident(incident_new: Incident, make_alert: AlertFactory) -> None:
    alert = make_alert(at=T0 - timedelta(minutes=30))
    result = attach_alert(incident_new, alert, minutes(5))
    inc = result.incident
    assert result.attached
    assert not result.reopened
    assert inc.alert_ids == ("inc-1-a1", "al-2")
    assert inc.entities == (Entity("host", "ws-17"), Entity("user", "alice"))
    assert inc.techniques == ("T1059.001", "T1003.001")
    assert inc.tactics == ("execution", "credential-access")
    assert (inc.severity, inc.risk.score) == ("high", 80)
    assert inc.first_event_at == T0 - timedelta(minutes=30)
    assert inc.state == "new"
    assert (result.alert.incident_id, result.alert.status) == ("inc-1", "incident")
    assert [e.kind for e in result.entries] == ["alert_attached"]
    again = attach_alert(inc, alert, minutes(6))
    assert (again.incident, again.entries, again.attached) == (inc, (), True)


def test_attach_never_lowers_severity_or_risk(incident_p1_open: Incident, make_alert: AlertFactory) -> None:
    result = attach_alert(incident_p1_open, make_alert(severity="low", risk=RiskScore(score=5)), minutes(9))
    assert (result.incident.severity, result.incident.risk.score) == ("critical", 40)


def test_attach_reopens_a_recently_closed_incident(
    incident_new: Incident, t1_analyst: Actor, make_alert: AlertFactory
) -> None:
    closed = walk(incident_new, [("closed_false_positive", t1_analyst, 3)])
    result = attach_alert(closed, make_alert(), minutes(60))
    assert result.attached
    assert result.reopened
    assert result.incident.state == "investigating"
    assert [e.kind for e in result.entries] == ["alert_attached", "state_changed", "reopened"]
    assert result.entries[1].actor == "system"


def test_attach_to_a_long_closed_incident_is_refused(
    incident_new: Incident, t1_analyst: Actor, make_alert: AlertFactory
) -> None:
    closed = walk(incident_new, [("closed_false_positive", t1_analyst, 3)])
    result = attach_alert(closed, make_alert(), minutes(3) + timedelta(days=8))
    assert not result.attached
    assert result.incident is closed
    assert result.alert.incident_id is None
    assert result.reason is not None
    assert "open a new incident" in result.reason
    assert [e.kind for e in result.entries] == ["transition_rejected"]


def test_attach_checks_the_tenant(incident_new: Incident, make_alert: AlertFactory) -> None:
    with pytest.raises(CaseError) as caught:
        attach_alert(incident_new, make_alert(tenant_id=BAKERY), minutes(1))
    assert caught.value.code == "cases.tenant_mismatch"


# -- merge, split, link -------------------------------------------------------------------------------
def test_merge_folds_sources_into_the_target(
    make_incident: IncidentFactory, make_alert: AlertFactory, t2_analyst: Actor, t1_analyst: Actor
) -> None:
    target = make_incident("inc-1")
    other = make_incident(
        "inc-2",
        severity="high",
        at=T0 - timedelta(hours=1),
        linked=("inc-9",),
        entities=(Entity("ip", "10.0.0.5"),),
    )
    waiting = walk(
        make_incident("inc-3"), [("acknowledged", t1_analyst, 1), ("awaiting_customer", t1_analyst, 2)]
    )
    result = merge(target, [other, waiting], t2_analyst, minutes(10))
    assert result.target.alert_ids == ("inc-1-a1", "inc-2-a1", "inc-3-a1")
    assert result.target.severity == "high"
    assert result.target.first_event_at == other.first_event_at
    assert Entity("ip", "10.0.0.5") in result.target.entities
    assert result.target.linked == ("inc-9",)
    assert [s.merged_into for s in result.sources] == ["inc-1", "inc-1"]
    assert [s.state for s in result.sources] == ["new", "awaiting_customer"]  # state kept
    assert [(e.incident_id, e.kind) for e in result.entries] == [
        ("inc-1", "merged"),
        ("inc-2", "merged"),
        ("inc-3", "merged"),
    ]
    refused = transition(result.sources[0], "acknowledged", t2_analyst, minutes(11))
    assert refused.rule == "MergedIncidentsStayPut"
    assert attach_alert(result.sources[0], make_alert("al-9"), minutes(11)).attached is False
    with pytest.raises(CaseError, match="merged into inc-1"):
        escalate(result.sources[0], "T3", t2_analyst, minutes(11), "x")


def test_merge_refusals(
    make_incident: IncidentFactory, t2_analyst: Actor, t1_analyst: Actor, t1_partner: Actor
) -> None:
    target, other = make_incident("inc-1"), make_incident("inc-2")
    with pytest.raises(PermissionDeniedError):
        merge(target, [other], t1_analyst, minutes(1))
    with pytest.raises(PermissionDeniedError):
        merge(target, [other], t1_partner, minutes(1))
    with pytest.raises(CaseError, match="tenant bakery"):
        merge(target, [make_incident("inc-b", tenant_id=BAKERY)], t2_analyst, minutes(1))
    with pytest.raises(CaseError, match="distinct other incidents"):
        merge(target, [target], t2_analyst, minutes(1))
    closed = walk(target, [("closed_false_positive", t2_analyst, 1)])
    with pytest.raises(CaseError, match="merge into an open one"):
        merge(closed, [other], t2_analyst, minutes(2))


def test_split_moves_alerts_to_a_linked_incident(
    make_incident: IncidentFactory, make_alert: AlertFactory, t2_analyst: Actor
) -> None:
    inc = make_incident(alert_ids=("a1", "a2", "a3"), severity="critical")
    inc = walk(inc, [("acknowledged", t2_analyst, 1), ("investigating", t2_analyst, 2)])
    moved = make_alert("a3", severity="low", risk=RiskScore(score=10), entities=(Entity("host", "srv-2"),))
    result = split(inc, ["a3"], "inc-9", t2_analyst, minutes(20), alerts=[moved])
    assert result.remaining.alert_ids == ("a1", "a2")
    assert result.remaining.linked == ("inc-9",)
    new = result.new
    assert (new.id, new.state, new.alert_ids, new.linked) == ("inc-9", "acknowledged", ("a3",), ("inc-1",))
    assert (new.created_at, new.acknowledged_at, new.triaged_at) == (inc.created_at, minutes(1), minutes(2))
    assert (new.severity, new.risk.score, new.entities) == ("low", 10, (Entity("host", "srv-2"),))
    assert new.pauses == ()
    assert [a.incident_id for a in result.alerts] == ["inc-9"]
    assert [(e.incident_id, e.kind) for e in result.entries] == [("inc-1", "split"), ("inc-9", "split")]
    unacked = split(make_incident(alert_ids=("a1", "a2")), ["a2"], "inc-8", t2_analyst, minutes(1))
    assert unacked.new.state == "new"
    assert unacked.new.entities == inc.entities  # copied when the alerts are not given


@pytest.mark.parametrize(
    ("alert_ids", "new_id"),
    [(["a1", "a2"], "inc-9"), (["zz"], "inc-9"), ([], "inc-9"), (["a1", "zz"], "inc-9"), (["a1"], "inc-1")],
)
def test_split_refusals(
    make_incident: IncidentFactory, t2_analyst: Actor, alert_ids: list[str], new_id: str
) -> None:
    with pytest.raises(CaseError) as caught:
        split(make_incident(alert_ids=("a1", "a2")), alert_ids, new_id, t2_analyst, minutes(1))
    assert caught.value.code == "cases.split_invalid"


def test_link_both_ways_and_idempotent(
    make_incident: IncidentFactory, t1_analyst: Actor, t1_partner: Actor
) -> None:
    a, b = make_incident("inc-1"), make_incident("inc-2")
    result = link(a, b, t1_analyst, minutes(1))
    assert (result.a.linked, result.b.linked) == (("inc-2",), ("inc-1",))
    assert [e.kind for e in result.entries] == ["linked", "linked"]
    assert link(result.a, result.b, t1_analyst, minutes(2)).entries == ()
    with pytest.raises(PermissionDeniedError):
        link(a, b, t1_partner, minutes(1))
    with pytest.raises(CaseError, match="itself"):
        link(a, a, t1_analyst, minutes(1))
    with pytest.raises(CaseError) as caught:
        link(a, make_incident("inc-b", tenant_id=BAKERY), t1_analyst, minutes(1))
    assert caught.value.code == "cases.tenant_mismatch"


# -- properties: random work by random actors ---------------------------------------------------------
PARTNER = Actor(
    id="pat", role="partner_analyst", tier="T1", employer="nightwatch", tenants=frozenset({CLINIC})
)
ACTORS = (
    PARTNER,
    Actor(id="tina", role="analyst", tier="T1"),
    Actor(id="tom", role="analyst", tier="T2"),
    Actor(id="tess", role="analyst", tier="T3"),
    Actor(id="bob", role="analyst", tier="T2", tenants=frozenset({BAKERY})),
    Actor(id="mia", role="soc_manager"),
    Actor(id="cv", role="customer_viewer", tenants=frozenset({CLINIC})),
    Actor(id="ca", role="customer_admin", tenants=frozenset({CLINIC})),
    SYSTEM,
)
MILESTONES = (
    "triaged_at",
    "acknowledged_at",
    "acknowledged_by",
    "notified_at",
    "contained_at",
    "resolved_at",
    "closed_at",
)


def _check_pauses(incident: Incident) -> None:
    pauses = incident.pauses
    for index, (start, end) in enumerate(pauses):
        following = pauses[index + 1] if index + 1 < len(pauses) else None
        if end is None:
            assert following is None, "only the last pause may be open"
        else:
            assert start <= end
            if following is not None:
                assert end <= following[0], "pauses overlap or are out of order"
    is_open = bool(pauses) and pauses[-1][1] is None
    assert is_open == (incident.state == "awaiting_customer")


def _check_step(before: Incident, after: Incident, entries: Sequence[TimelineEntry], actor: Actor) -> None:
    changed = before.state != after.state
    state_changes = [e for e in entries if e.kind == "state_changed"]
    assert len(state_changes) == (1 if changed else 0)
    if changed:
        assert after.state in TRANSITIONS[before.state]
        (entry,) = state_changes
        assert (entry.details["from_state"], entry.details["to_state"]) == (before.state, after.state)
        by = SYSTEM if entry.actor == SYSTEM.id else actor
        assert allowed(by, action_for(before.state, after.state), after.tenant_id)
        if entry.actor == PARTNER.id:
            assert after.state != "contained"
            assert after.tenant_id in PARTNER.tenants
    assert after.state in INCIDENT_STATES
    for name in MILESTONES:
        if getattr(before, name) is not None:
            assert getattr(after, name) == getattr(before, name), f"{name} moved"
    if after.state in ("closed_true_positive", "closed_false_positive"):
        assert after.closure_reason
    _check_pauses(after)
    assert all(e.tenant_id == after.tenant_id for e in entries)


@settings(max_examples=120, deadline=None)
@given(data=st.data(), severity=st.sampled_from(SEVERITIES), tenant=st.sampled_from((CLINIC, BAKERY)))
def test_random_work_keeps_every_invariant(
    data: st.DataObject,
    severity: Severity,
    tenant: TenantId,
    make_incident: IncidentFactory,
    make_alert: AlertFactory,
) -> None:
    incident = make_incident(severity=severity, tenant_id=tenant)
    now = T0
    reached = {incident.state}
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        now += timedelta(minutes=data.draw(st.integers(0, 3 * 24 * 60), label="wait"))
        actor = data.draw(st.sampled_from((*ACTORS, PARTNER, PARTNER)), label="actor")  # partner: 1 in 4
        op = data.draw(
            st.sampled_from(["move", "move", "move", "any", "notify", "alert", "escalate"]), label="op"
        )
        before = incident
        entries: tuple[TimelineEntry, ...] = ()
        if op in ("move", "any"):
            targets = sorted(TRANSITIONS[incident.state]) if op == "move" else list(INCIDENT_STATES)
            to_state = data.draw(st.sampled_from(targets), label="to")
            closure = data.draw(st.sampled_from([None, "", "benign admin", "host reimaged"]), label="closure")
            outcome = transition(incident, to_state, actor, now, closure_reason=closure)
            assert len(outcome.entries) >= 1
            if not outcome.accepted:
                assert outcome.incident is before
                assert [e.kind for e in outcome.entries] in (["transition_rejected"], ["transition_delayed"])
            incident, entries = outcome.incident, outcome.entries
        elif op == "alert":
            alert = make_alert(
                f"al-{len(incident.alert_ids)}",
                tenant_id=tenant,
                severity=data.draw(st.sampled_from(SEVERITIES), label="alert severity"),
            )
            result = attach_alert(incident, alert, now)
            incident, entries = result.incident, result.entries
            assert result.attached == (alert.id in incident.alert_ids)
            assert severity_rank(incident.severity) >= severity_rank(before.severity)
        else:
            try:
                if op == "notify":
                    incident, entries = record_customer_notification(incident, actor, now, "phone")
                else:
                    incident, entries = escalate(incident, "T3", actor, now, "needs senior eyes")
            except CaseError:
                assert incident is before
        _check_step(before, incident, entries, actor)
        reached.add(incident.state)
        for (
            probe
        ) in INCIDENT_STATES:  # whatever the partner asks for next, it never contains or crosses tenants
            outcome = transition(incident, probe, PARTNER, now, closure_reason="probe")
            if outcome.accepted:
                assert probe != "contained"
                assert incident.tenant_id in PARTNER.tenants
    for state in sorted(reached):
        event(f"reached {state}")  # coverage, shown by --hypothesis-show-statistics


def test_automated_containment_of_a_new_incident_counts_for_time_to_contain_not_acknowledge(
    incident_new: Incident, t2_analyst: Actor
) -> None:
    """A playbook isolates a host at 3 a.m. before anyone looked: contained_at is set (time to contain), but
    the acknowledge clock runs on until a person acts, and that person's first move acknowledges."""
    contained = transition(incident_new, "contained", SYSTEM, minutes(4), reason="playbook isolated ws-17")
    assert contained.accepted
    inc = contained.incident
    assert (inc.state, inc.contained_at) == ("contained", minutes(4))
    assert (inc.acknowledged_at, inc.acknowledged_by, inc.triaged_at) == (None, None, None)
    worked = transition(inc, "investigating", t2_analyst, minutes(20), reason="looking at the process tree")
    assert worked.accepted
    assert (worked.incident.acknowledged_at, worked.incident.acknowledged_by) == (minutes(20), t2_analyst.id)
    assert worked.incident.triaged_at == minutes(20)
    assert worked.incident.contained_at == minutes(4)  # never moves
