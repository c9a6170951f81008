"""Case worlds: two tenants (clinic, bakery), the SOC's actors, and incidents built up through the policy.

`incident_new` -> `incident_p1_new` -> `incident_p1_open` (critical, acknowledged by a T2 through the policy:
tests never assign `state` directly). Actors and factories are session-scoped (they are frozen values) so
Hypothesis tests can use them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watchfloor.cases.lifecycle import acknowledge
from watchfloor.cases.models import Actor, Incident
from watchfloor.core.types import RuleId, Severity, TenantId
from watchfloor.triage.models import Alert, Entity, RiskScore

CLINIC = TenantId("clinic")
BAKERY = TenantId("bakery")
T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)

IncidentFactory = Callable[..., Incident]
AlertFactory = Callable[..., Alert]


@pytest.fixture(scope="session")
def t0() -> datetime:
    return T0


@pytest.fixture(scope="session")
def t1_partner() -> Actor:
    """Outsourced T1 of partner 'nightwatch', assigned the clinic only."""
    return Actor(
        id="pat", role="partner_analyst", tier="T1", employer="nightwatch", tenants=frozenset({CLINIC})
    )


@pytest.fixture(scope="session")
def t1_analyst() -> Actor:
    return Actor(id="tina", role="analyst", tier="T1")


@pytest.fixture(scope="session")
def t2_analyst() -> Actor:
    return Actor(id="tom", role="analyst", tier="T2")


@pytest.fixture(scope="session")
def t3_analyst() -> Actor:
    return Actor(id="tess", role="analyst", tier="T3")


@pytest.fixture(scope="session")
def t2_bakery_only() -> Actor:
    """An in-house T2 whose account is scoped to the bakery."""
    return Actor(id="bob", role="analyst", tier="T2", tenants=frozenset({BAKERY}))


@pytest.fixture(scope="session")
def soc_manager() -> Actor:
    return Actor(id="mia", role="soc_manager")


@pytest.fixture(scope="session")
def mssp_admin() -> Actor:
    return Actor(id="root", role="mssp_admin")


@pytest.fixture(scope="session")
def customer_viewer_clinic() -> Actor:
    return Actor(id="cv", role="customer_viewer", employer="clinic", tenants=frozenset({CLINIC}))


@pytest.fixture(scope="session")
def customer_admin_clinic() -> Actor:
    return Actor(id="ca", role="customer_admin", employer="clinic", tenants=frozenset({CLINIC}))


@pytest.fixture(scope="session")
def make_incident() -> IncidentFactory:
    def make(
        id: str = "inc-1",
        tenant_id: TenantId = CLINIC,
        severity: Severity = "medium",
        at: datetime = T0,
        **overrides: Any,
    ) -> Incident:
        values: dict[str, Any] = {
            "id": id,
            "tenant_id": tenant_id,
            "title": f"Suspicious PowerShell on ws-17 ({id})",
            "state": "new",
            "severity": severity,
            "risk": RiskScore(score=40),
            "created_at": at,
            "updated_at": at,
            "first_event_at": at - timedelta(minutes=3),
            "alert_ids": (f"{id}-a1",),
            "entities": (Entity("host", "ws-17"),),
            "techniques": ("T1059.001",),
            "tactics": ("execution",),
        }
        values.update(overrides)
        return Incident(**values)

    return make


@pytest.fixture(scope="session")
def make_alert() -> AlertFactory:
    def make(
        id: str = "al-2",
        tenant_id: TenantId = CLINIC,
        severity: Severity = "high",
        at: datetime = T0,
        **overrides: Any,
    ) -> Alert:
        values: dict[str, Any] = {
            "id": id,
            "tenant_id": tenant_id,
            "dedup_key": f"rule-x|host:ws-17|{id}",
            "rule_id": RuleId("rule-x"),
            "rule_title": "Credential dumping via LSASS access",
            "rule_author": "watchfloor",
            "severity": severity,
            "first_seen": at,
            "last_seen": at,
            "count": 1,
            "entities": (Entity("host", "ws-17"), Entity("user", "alice")),
            "techniques": ("T1003.001",),
            "tactics": ("credential-access",),
            "detection_ids": (1,),
            "risk": RiskScore(score=80),
        }
        values.update(overrides)
        return Alert(**values)

    return make


@pytest.fixture
def incident_new(make_incident: IncidentFactory) -> Incident:
    """A medium incident for the clinic, just opened by triage."""
    return make_incident()


@pytest.fixture
def incident_bakery(make_incident: IncidentFactory) -> Incident:
    return make_incident("inc-b1", tenant_id=BAKERY)


@pytest.fixture
def incident_p1_new(make_incident: IncidentFactory) -> Incident:
    return make_incident("inc-p1", severity="critical")


@pytest.fixture
def incident_p1_open(incident_p1_new: Incident, t2_analyst: Actor) -> Incident:
    """The critical clinic incident, acknowledged by a T2 five minutes in (through the policy)."""
    outcome = acknowledge(incident_p1_new, t2_analyst, T0 + timedelta(minutes=5))
    assert outcome.accepted, outcome.verdict
    return outcome.incident
