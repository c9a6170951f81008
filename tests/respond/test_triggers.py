"""Triggers: each condition, why a trigger does not match, and the ordering of matching playbooks; Hypothesis
properties for severity monotonicity and ATT&CK sub-technique prefixes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.cases.models import Incident
from watchfloor.core.types import INCIDENT_STATES, SEVERITIES, RuleId, Severity, TenantId, severity_rank
from watchfloor.respond.playbooks import ActionStep, Playbook
from watchfloor.respond.triggers import Trigger, matching_playbooks, technique_matches
from watchfloor.triage.models import Alert, RiskScore

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
CLINIC = TenantId("clinic")
BAKERY = TenantId("bakery")


def incident(**kw: Any) -> Incident:
    base: dict[str, Any] = {
        "id": "inc-1",
        "tenant_id": CLINIC,
        "title": "t",
        "state": "new",
        "severity": "high",
        "risk": RiskScore(score=70),
        "created_at": T0,
        "updated_at": T0,
        "first_event_at": T0,
        "alert_ids": ("al-1",),
        "techniques": ("T1059.001",),
        "tactics": ("execution",),
    }
    return Incident(**{**base, **kw})


def alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {
        "id": "al-1",
        "tenant_id": CLINIC,
        "dedup_key": "k",
        "rule_id": RuleId("office-encoded-ps"),
        "rule_title": "r",
        "rule_author": "a",
        "severity": "high",
        "first_seen": T0,
        "last_seen": T0,
        "count": 1,
        "entities": (),
        "techniques": ("T1566.001",),
        "tactics": ("initial-access",),
        "detection_ids": (1,),
        "risk": RiskScore(score=70),
    }
    return Alert(**{**base, **kw})


def playbook(pid: str, trigger: Trigger, *, enabled: bool = True) -> Playbook:
    step = ActionStep(id="tell", kind="notify", action="notify.slack")
    return Playbook(
        id=pid,
        name=pid,
        version=1,
        description="d",
        author="Watchfloor project",
        trigger=trigger,
        steps=(step,),
        enabled=enabled,
    )


# -- conditions one by one -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("trigger", "kw", "why"),
    [
        (Trigger(severity_at_least="critical"), {}, "severity high is below critical"),
        (
            Trigger(techniques=("T1003",)),
            {},
            "none of the techniques T1003 (incident has T1059.001, T1566.001)",
        ),
        (Trigger(techniques=("T1059.003",)), {}, "none of the techniques T1059.003"),
        (Trigger(all_techniques=("T1059", "T1110")), {}, "lacks the techniques T1110"),
        (Trigger(tactics=("impact",)), {}, "none of the tactics impact"),
        (Trigger(rule_ids=("other-rule",)), {}, "no alert from the rules other-rule"),
        (
            Trigger(techniques=("T1059",), tenants_exclude=frozenset({CLINIC})),
            {},
            "tenant clinic is excluded",
        ),
        (
            Trigger(techniques=("T1059",), tenants_include=frozenset({BAKERY})),
            {},
            "tenant clinic is not among bakery",
        ),
        (
            Trigger(techniques=("T1059",), tiers=frozenset({"premium"})),
            {},
            "service tier unknown is not among",
        ),
        (
            Trigger(techniques=("T1059",), tiers=frozenset({"premium"})),
            {"tier": "basic"},
            "service tier basic is not among premium",
        ),
        (
            Trigger(techniques=("T1059",), states=frozenset({"investigating"})),
            {},
            "state new is not among investigating",
        ),
    ],
)
def test_each_condition_says_why_it_fails(trigger: Trigger, kw: dict[str, Any], why: str) -> None:
    reasons = trigger.mismatches(incident(), alerts=[alert()], **kw)
    assert len(reasons) == 1
    assert why in reasons[0]
    assert not trigger.matches(incident(), alerts=[alert()], **kw)


@pytest.mark.parametrize(
    ("trigger", "kw"),
    [
        (Trigger(severity_at_least="high"), {}),
        (Trigger(severity_at_least="low"), {}),
        (Trigger(techniques=("T1059",)), {}),
        (Trigger(techniques=("t1059.001",)), {}),  # compared upper-case
        (Trigger(techniques=("T1003", "T1566")), {}),  # the alert's technique counts
        (Trigger(all_techniques=("T1566.001", "T1059")), {}),
        (Trigger(tactics=("initial-access",)), {}),
        (Trigger(rule_ids=("office-encoded-ps", "x")), {}),
        (Trigger(techniques=("T1059",), tenants_include=frozenset({CLINIC})), {}),
        (Trigger(techniques=("T1059",), tenants_exclude=frozenset({BAKERY})), {}),
        (Trigger(techniques=("T1059",), tiers=frozenset({"premium", "standard"})), {"tier": "premium"}),
        (Trigger(techniques=("T1059",), states=frozenset({"new", "acknowledged"})), {}),
    ],
)
def test_matches(trigger: Trigger, kw: dict[str, Any]) -> None:
    assert trigger.mismatches(incident(), alerts=[alert()], **kw) == ()


def test_every_failed_condition_is_listed() -> None:
    trigger = Trigger(severity_at_least="critical", tactics=("impact",), tiers=frozenset({"premium"}))
    assert len(trigger.mismatches(incident())) == 3


def test_closed_incidents_match_only_when_asked() -> None:
    closed = incident(state="closed_true_positive")
    assert Trigger(techniques=("T1059",)).mismatches(closed) == (
        "the incident is closed (closed_true_positive)",
    )
    assert Trigger(techniques=("T1059",), states=frozenset({"closed_true_positive"})).matches(closed)
    assert Trigger(techniques=("T1059",)).matches(incident(state="resolved"))


def test_only_the_incidents_own_alerts_count() -> None:
    trigger = Trigger(rule_ids=("office-encoded-ps",))
    assert not trigger.matches(incident(alert_ids=()), alerts=[alert()])
    assert trigger.matches(incident(alert_ids=()), alerts=[alert(incident_id="inc-1")])
    assert not trigger.matches(incident(), alerts=[alert(tenant_id=BAKERY)])  # another tenant's alert
    assert not Trigger(tactics=("initial-access",)).matches(incident(), alerts=[alert(id="al-2")])


def test_trigger_checks_its_values() -> None:
    with pytest.raises(ValueError, match="not an ATT&CK technique"):
        Trigger(techniques=("T59",))
    with pytest.raises(ValueError, match="both included and excluded"):
        Trigger(tenants_include=frozenset({CLINIC}), tenants_exclude=frozenset({CLINIC}))
    assert Trigger(techniques=("T1059",), tactics=("x",)).conditions == 2
    assert Trigger(tiers=frozenset({"basic"})).conditions == 0


def test_matching_playbooks_order_and_enabled() -> None:
    low = playbook("b-low", Trigger(techniques=("T1059",), priority=-5))
    high = playbook("z-high", Trigger(techniques=("T1059",), priority=50))
    tie = playbook("a-tie", Trigger(techniques=("T1059",), priority=-5))
    off = playbook("off", Trigger(techniques=("T1059",), priority=99), enabled=False)
    other = playbook("other", Trigger(techniques=("T1490",), priority=99))
    found = matching_playbooks([low, high, tie, off, other], incident(), "premium", [alert()])
    assert [p.id for p in found] == ["z-high", "a-tie", "b-low"]
    assert matching_playbooks([], incident()) == []


def test_alerts_may_be_a_one_shot_iterable() -> None:
    a = playbook("a", Trigger(rule_ids=("office-encoded-ps",)))
    b = playbook("b", Trigger(tactics=("initial-access",)))
    found = matching_playbooks([a, b], incident(), None, iter([alert()]))
    assert [p.id for p in found] == ["a", "b"]


# -- properties ----------------------------------------------------------------------------------------------
severities = st.sampled_from(SEVERITIES)
parents = st.integers(min_value=1000, max_value=1999).map(lambda n: f"T{n}")
subs = st.integers(min_value=1, max_value=999).map(lambda n: f"{n:03d}")


@given(severities, severities, severities)
def test_raising_severity_never_unmatches(wanted: Severity, a: Severity, b: Severity) -> None:
    lower, higher = sorted((a, b), key=severity_rank)
    trigger = Trigger(severity_at_least=wanted)
    if trigger.matches(incident(severity=lower)):
        assert trigger.matches(incident(severity=higher))
    assert trigger.matches(incident(severity=higher)) == (severity_rank(higher) >= severity_rank(wanted))


@given(parents, subs, subs)
def test_technique_prefix_semantics(parent: str, sub: str, other: str) -> None:
    child = f"{parent}.{sub}"
    assert technique_matches(parent, child)
    assert technique_matches(parent, parent)
    assert technique_matches(child, child)
    assert not technique_matches(child, parent)  # a sub-technique never matches its parent
    assert technique_matches(f"{parent}.{other}", child) == (sub == other)
    assert not technique_matches(parent, f"{parent}0")  # T1059 does not match T10590
    assert Trigger(techniques=(parent,)).matches(incident(techniques=(child,), alert_ids=()))
    assert not Trigger(techniques=(child,)).matches(incident(techniques=(parent,), alert_ids=()))


@given(
    st.lists(parents, min_size=1, max_size=4),
    st.lists(parents, max_size=4),
    st.lists(parents, max_size=4),
)
def test_more_techniques_never_unmatch(wanted: list[str], have: list[str], more: list[str]) -> None:
    for trigger in (Trigger(techniques=tuple(wanted)), Trigger(all_techniques=tuple(wanted))):
        before = incident(techniques=tuple(have), alert_ids=())
        after = replace(before, techniques=(*have, *more))
        if trigger.matches(before):
            assert trigger.matches(after)


@given(
    st.sampled_from(["clinic", "bakery", "garage"]),
    st.frozensets(st.sampled_from(["clinic", "bakery", "garage"])),
)
def test_excluded_tenants_never_match(tenant: str, excluded: frozenset[str]) -> None:
    trigger = Trigger(techniques=("T1059",), tenants_exclude=excluded)
    assert trigger.matches(incident(tenant_id=TenantId(tenant))) == (tenant not in excluded)


@given(st.sampled_from(INCIDENT_STATES), st.lists(st.integers(min_value=-1000, max_value=1000), max_size=6))
def test_matches_are_sorted_and_a_subset(state: Any, priorities: list[int]) -> None:
    books = [playbook(f"p{i}", Trigger(techniques=("T1059",), priority=p)) for i, p in enumerate(priorities)]
    found = matching_playbooks(books, incident(state=state))
    assert all(p in books for p in found)
    assert [p.trigger.priority for p in found] == sorted((p.trigger.priority for p in found), reverse=True)
    assert len(found) == (0 if state.startswith("closed") else len(books))
