"""Escalation trees by severity and time of day in the tenant's zone, and the breach escalation chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchfloor.cases.escalation import (
    EscalationConfigError,
    EscalationError,
    EscalationTree,
    breach_escalation,
    chain_length,
    default_tree,
    tree_from_config,
    who_to_call,
)
from watchfloor.cases.models import Incident
from watchfloor.cases.soc import SocRoster, load_roster
from watchfloor.core.types import TenantId
from watchfloor.storage.tenants import Contact
from watchfloor.triage.models import RiskScore

EXAMPLE = Path(__file__).resolve().parents[2] / "content" / "soc" / "roster.example.yml"
CLINIC = TenantId("clinic")
CONTACTS = (
    Contact(
        name="Erin IT", email="erin@clinic.example", role="IT lead", escalation_order=2, phone="+49 30 2"
    ),
    Contact(
        name="Dana Ops",
        email="dana@clinic.example",
        role="practice manager",
        escalation_order=1,
        phone="+49 30 1",
    ),
    Contact(name="Max Owner", email="max@clinic.example", role="owner", escalation_order=3),
)
CONFIG: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "business_hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"},
    "severities": {
        "critical": {
            "business_hours": [{"contact": "Dana Ops", "channel": "phone", "wait_minutes": 10}],
            "after_hours": [
                {"contact": "erin@clinic.example", "channel": "sms", "wait_minutes": 5},
                {"contact": "dana ops", "channel": "phone", "wait_minutes": 20},
            ],
        },
        "low": {"any": [{"contact": "Max Owner", "channel": "email", "wait_minutes": 1440}]},
    },
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_incident(**overrides: Any) -> Incident:
    created = utc("2026-01-07T09:00")
    values: dict[str, Any] = {
        "id": "inc-7",
        "tenant_id": CLINIC,
        "title": "Ransomware precursor",
        "state": "acknowledged",
        "severity": "critical",
        "risk": RiskScore(score=90),
        "created_at": created,
        "updated_at": created,
        "first_event_at": created - timedelta(minutes=5),
    }
    values.update(overrides)
    return Incident(**values)


@pytest.fixture(scope="module")
def tree() -> EscalationTree:
    return tree_from_config(CLINIC, CONFIG, CONTACTS)


@pytest.fixture(scope="module")
def roster() -> SocRoster:
    return load_roster(EXAMPLE)


def names(steps: Any) -> list[str]:
    return [s.name for s in steps]


# -- trees -------------------------------------------------------------------------------------------
def test_default_tree_orders_contacts_and_picks_channels_by_severity() -> None:
    tree = default_tree(CLINIC, CONTACTS)
    at = utc("2026-01-07T10:00")
    critical = who_to_call(tree, "critical", at)
    assert names(critical) == ["Dana Ops", "Erin IT", "Max Owner"]
    assert [s.channel for s in critical] == ["phone", "phone", "email"]  # Max has no phone
    assert [s.address for s in critical] == ["+49 30 1", "+49 30 2", "max@clinic.example"]
    assert {s.wait_minutes for s in critical} == {15}
    medium = who_to_call(tree, "medium", utc("2026-01-10T03:00"))
    assert [s.channel for s in medium] == ["email"] * 3
    assert {s.wait_minutes for s in medium} == {120}
    assert who_to_call(default_tree(CLINIC, ()), "critical", at) == ()


@pytest.mark.parametrize(
    ("instant", "band", "expected"),
    [
        ("2026-01-07T09:00", "business_hours", ["Dana Ops"]),  # Wednesday 10:00 CET
        ("2026-01-07T17:30", "after_hours", ["Erin IT", "Dana Ops"]),  # 18:30 CET
        ("2026-01-07T06:30", "after_hours", ["Erin IT", "Dana Ops"]),  # 07:30 CET: before opening
        ("2026-07-08T06:30", "business_hours", ["Dana Ops"]),  # same UTC time in summer: 08:30 CEST
        ("2026-07-08T16:00", "after_hours", ["Erin IT", "Dana Ops"]),  # 18:00 CEST: closed (half-open)
        ("2026-01-10T10:00", "after_hours", ["Erin IT", "Dana Ops"]),  # Saturday
    ],
)
def test_who_to_call_by_time_of_day_in_tenant_zone(
    tree: EscalationTree, instant: str, band: str, expected: list[str]
) -> None:
    assert tree.band_at(utc(instant)) == band
    assert names(who_to_call(tree, "critical", utc(instant))) == expected


def test_configured_and_default_severities(tree: EscalationTree) -> None:
    night = utc("2026-01-07T22:00")
    after = who_to_call(tree, "critical", night)
    assert [(s.channel, s.wait_minutes) for s in after] == [("sms", 5), ("phone", 20)]
    low = who_to_call(tree, "low", night)
    assert names(low) == ["Max Owner"]
    assert low == who_to_call(tree, "low", utc("2026-01-07T10:00"))  # `any` covers both bands
    # high is not configured: the default steps (everyone, phone where possible, 30 min)
    high = who_to_call(tree, "high", night)
    assert names(high) == ["Dana Ops", "Erin IT", "Max Owner"]
    assert {s.wait_minutes for s in high} == {30}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone": "Mars/Base"}, "escalation.timezone: unknown IANA time zone"),
        ({"colour": "red"}, "escalation.colour: unknown key"),
        (
            {"business_hours": {"start": "18:00", "end": "08:00"}},
            "escalation.business_hours: end must be after",
        ),
        ({"business_hours": {"start": "8am"}}, "escalation.business_hours.start: '8am' is not a local time"),
        ({"severities": {"urgent": {"any": []}}}, "escalation.severities.urgent: not a severity"),
        ({"severities": {"high": {"weekend": []}}}, "escalation.severities.high.weekend: bands are"),
        ({"severities": {"high": {"any": []}}}, "escalation.severities.high.any: must be a non-empty list"),
        (
            {"severities": {"high": {"any": [{"contact": "Nobody"}]}}},
            "escalation.severities.high.any[0].contact: 'Nobody' is not a contact of the tenant",
        ),
        (
            {"severities": {"high": {"any": [{"contact": "Max Owner", "channel": "phone"}]}}},
            "contact 'Max Owner' has no phone number for phone",
        ),
        (
            {"severities": {"high": {"any": [{"contact": "Dana Ops", "channel": "pigeon"}]}}},
            "any[0].channel: 'pigeon' is not one of phone, email, sms",
        ),
        (
            {"severities": {"high": {"any": [{"contact": "Dana Ops", "wait_minutes": -1}]}}},
            "any[0].wait_minutes: must be a whole number",
        ),
    ],
)
def test_invalid_configs_name_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(EscalationConfigError) as info:
        tree_from_config(CLINIC, change, CONTACTS)
    assert message in info.value.message
    assert info.value.code == "config.escalation_invalid"
    assert info.value.location is not None
    assert info.value.location.tenant == CLINIC


# -- breach chain ------------------------------------------------------------------------------------
def test_breach_chain_order(tree: EscalationTree, roster: SocRoster) -> None:
    at = utc("2026-01-07T09:00")  # Wednesday, EMEA on shift, clinic business hours
    incident = make_incident()
    steps = []
    done = 0
    while True:
        action = breach_escalation(incident, roster, tree, at, done)
        steps.append(action)
        if action.kind == "exhausted":
            break
        done = action.next_step
    assert [s.kind for s in steps] == [
        "analyst_tier",
        "analyst_tier",
        "duty_manager",
        "customer_contact",
        "exhausted",
    ]
    assert [s.to_tier for s in steps[:2]] == ["T2", "T3"]
    assert steps[0].candidates == ("emil", "frieda")  # on-duty T2+ for the clinic
    assert "escalate the queue T1 -> T2" in steps[0].reason
    assert [m.id for m in steps[2].duty_managers] == ["dm-emea"]
    assert steps[2].channel == "phone"
    assert "+49 30 5550 0100" in steps[2].reason
    contact = steps[3].contact
    assert contact is not None
    assert contact.name == "Dana Ops"
    assert steps[3].wait_minutes == 10
    assert "customer contact 1 of 1 (business hours)" in steps[3].reason
    assert steps[-1].wait_minutes is None
    assert chain_length(tree, "critical", at) == 4


def test_after_hours_chain_reaches_the_after_hours_contacts(tree: EscalationTree, roster: SocRoster) -> None:
    night = utc("2026-01-07T23:00")  # APAC on shift; clinic after hours
    incident = make_incident()
    manager = breach_escalation(incident, roster, tree, night, 2)
    assert [m.id for m in manager.duty_managers] == ["dm-apac"]
    first = breach_escalation(incident, roster, tree, night, 3)
    second = breach_escalation(incident, roster, tree, night, 4)
    assert first.contact is not None
    assert second.contact is not None
    assert (first.contact.name, first.channel) == ("Erin IT", "sms")
    assert (second.contact.name, second.channel) == ("Dana Ops", "phone")
    assert breach_escalation(incident, roster, tree, night, 5).kind == "exhausted"


def test_tier_steps_already_reached_are_skipped(tree: EscalationTree, roster: SocRoster) -> None:
    at = utc("2026-01-07T09:00")
    at_t2 = breach_escalation(make_incident(queue_tier="T2"), roster, tree, at, 0)
    assert (at_t2.step, at_t2.to_tier) == (1, "T3")
    assert at_t2.skipped == ("step 0: queue is already at T2",)
    at_t3 = breach_escalation(make_incident(queue_tier="T3"), roster, tree, at, 0)
    assert at_t3.kind == "duty_manager"
    assert at_t3.next_step == 3


def test_nobody_on_duty_is_said(tree: EscalationTree, roster: SocRoster) -> None:
    saturday = utc("2026-01-10T12:00")
    action = breach_escalation(make_incident(), roster.without_region("emea"), tree, saturday, 0)
    assert action.candidates == ()
    assert "nobody of T2+ is on duty for the tenant" in action.reason


def test_breach_escalation_refuses_closed_merged_and_foreign(tree: EscalationTree, roster: SocRoster) -> None:
    at = utc("2026-01-07T09:00")
    with pytest.raises(EscalationError, match="closed_true_positive"):
        breach_escalation(make_incident(state="closed_true_positive"), roster, tree, at, 0)
    with pytest.raises(EscalationError, match="merged into inc-1"):
        breach_escalation(make_incident(merged_into="inc-1"), roster, tree, at, 0)
    with pytest.raises(EscalationError, match="tenant clinic's") as info:
        breach_escalation(make_incident(tenant_id=TenantId("bakery")), roster, tree, at, 0)
    assert info.value.code == "cases.escalation_invalid"
    with pytest.raises(EscalationError, match="negative"):
        breach_escalation(make_incident(), roster, tree, at, -1)
