"""The frozen records of case work: incidents, their timeline, notes and evidence, and who acts on them.

An incident's state changes only through `cases.lifecycle.IncidentPolicy`; nothing assigns `state` directly.
The SLA milestones (`acknowledged_at`, `notified_at`, `contained_at`, ...) are set by the same policy, so the
metrics in `cases.metrics` read them straight from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from watchfloor.core.types import AnalystTier, IncidentState, Severity, TenantId
from watchfloor.triage.models import Entity, RiskScore

Role = Literal[
    "mssp_admin",
    "soc_manager",
    "analyst",  # in-house analyst, with an AnalystTier
    "partner_analyst",  # outsourced T1: triage, annotate, escalate for its partner's tenants only
    "customer_admin",
    "customer_viewer",
    "system",  # the pipeline, the SLA engine, playbooks
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who is doing something. Permissions come from `cases.permissions`, never from the caller's say-so.

    `tenants`: the tenants this actor may see (empty = all, only for MSSP roles and `system`);
    customers always have exactly one.
    """

    id: str
    role: Role
    tier: AnalystTier | None = None
    employer: str = "in-house"  # or the outsourced partner's id
    tenants: frozenset[TenantId] = frozenset()

    @property
    def all_tenants(self) -> bool:
        return self.role in ("mssp_admin", "soc_manager", "system") or (
            self.role == "analyst" and not self.tenants
        )


SYSTEM = Actor(id="system", role="system")


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    id: str
    tenant_id: TenantId
    title: str
    state: IncidentState
    severity: Severity
    risk: RiskScore
    created_at: datetime  # the SLA clocks start here
    updated_at: datetime
    first_event_at: datetime  # earliest event time among its alerts (time to detect starts here)
    alert_ids: tuple[str, ...] = ()
    entities: tuple[Entity, ...] = ()
    techniques: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()
    assignee: str | None = None  # analyst id
    queue_tier: AnalystTier = "T1"  # the tier that should work it now (escalation raises it)
    # Milestones, set once by the lifecycle policy (the first time each is reached).
    triaged_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    notified_at: datetime | None = None
    contained_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    # Time spent awaiting the customer: (start, end or None while still waiting). SLA clocks pause here.
    pauses: tuple[tuple[datetime, datetime | None], ...] = ()
    merged_into: str | None = None
    linked: tuple[str, ...] = ()  # related incidents (not merged)
    closure_reason: str | None = None


TimelineKind = Literal[
    "created",
    "alert_attached",
    "state_changed",
    "transition_rejected",
    "transition_delayed",
    "assigned",
    "note",
    "evidence",
    "escalated",
    "customer_notified",
    "sla_warning",
    "sla_breached",
    "merged",
    "split",
    "linked",
    "reopened",
    "handoff",
    "suppression_created",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEntry:
    """Everything that happens to an incident, in order: who, what, when."""

    incident_id: str
    tenant_id: TenantId
    at: datetime
    actor: str
    kind: TimelineKind
    summary: str  # one sentence for the analyst and the customer report
    details: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    incident_id: str
    tenant_id: TenantId
    at: datetime
    author: str
    text: str
    visible_to_customer: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """A pointer to something that supports a conclusion: an event, a file hash, a screenshot's digest."""

    incident_id: str
    tenant_id: TenantId
    at: datetime
    author: str
    kind: str  # event, detection, file, url, note
    reference: str  # detection id, event key, sha256, URL
    description: str
