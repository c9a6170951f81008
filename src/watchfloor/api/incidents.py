"""Case work: incidents, their alerts, timeline, notes and evidence; suppressions, the queue, SOC metrics,
SLA credits, analyst workload and the SLA engine's tick. Everything goes through `server.cases.CaseService`
(`ctx.cases`; None: every route here answers 503), which enforces the permission table and tenant scope.

Who acts: the operator token authenticates the request (the route guard); `X-Watchfloor-Actor: <id>` names
the SOC roster analyst or duty manager doing the work (`CaseService.actor`), else the operator (an
`mssp_admin`). An unknown id is 403 (`cases.unknown_actor`). Until the console brings per-analyst sign-in,
that header is the identity: the server still applies the named analyst's permissions and tenant scope.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, Body, Header, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchfloor.api.auth import ACTOR_HEADER
from watchfloor.api.context import DEFAULT_PAGE, MAX_PAGE, ApiContext, Limit, aware, capped
from watchfloor.api.problems import PROBLEM_MEDIA_TYPE, ApiProblem, Problem
from watchfloor.cases.lifecycle import AuthorizeTransition, Delay, Reject, TransitionOutcome
from watchfloor.cases.metrics import GroupBy, MetricRow, Period
from watchfloor.cases.models import Actor as CaseActor
from watchfloor.cases.models import Incident, Role, TimelineKind
from watchfloor.cases.permissions import PermissionDeniedError, actions_for
from watchfloor.cases.sla import SlaState
from watchfloor.core.types import AnalystTier, IncidentState, Severity, SlaMetric, TenantId
from watchfloor.triage.models import AlertStatus, ConditionOp, EntityKind

if TYPE_CHECKING:
    from watchfloor.server.cases import CaseService, QueueRow

MAX_WORKLOAD_DAYS: Final = 93
_SOC_WIDE_ROLES: Final[frozenset[Role]] = frozenset({"mssp_admin", "soc_manager"})

IncidentId = Annotated[str, Path(min_length=1, max_length=200, description="incident id, e.g. inc-clinic-…")]
ObjectId = Annotated[str, Path(min_length=1, max_length=200)]
ActorHeader = Annotated[
    str | None,
    Header(
        alias=ACTOR_HEADER,
        description="the SOC roster analyst or duty manager doing the work (default: the operator, an "
        "mssp_admin); their permissions and tenant scope apply",
    ),
]
Since = Annotated[datetime | None, Query(description="inclusive; naive means UTC")]
Until = Annotated[datetime | None, Query(description="exclusive; naive means UTC")]
TenantFilter = Annotated[str | None, Query(max_length=63, description="only this tenant")]
ShortText = Annotated[str, Field(max_length=2000)]
Ident = Annotated[str, Field(min_length=1, max_length=200)]


def _problem_doc(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}


_CASE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    403: _problem_doc(
        "the X-Watchfloor-Actor is not in the SOC roster (cases.unknown_actor), or the named actor may not "
        "do this here: tenant scope or the permission table (cases.permission_denied)"
    ),
    409: _problem_doc(
        "the incident policy rejected (cases.transition_rejected) or delayed (cases.transition_delayed) the "
        "transition, or the operation does not fit the incident (cases.merge_invalid, ...)"
    ),
    503: _problem_doc("case work is not enabled on this server (api.cases_disabled)"),
}


# -- output DTOs ------------------------------------------------------------------------------------------
class RiskFactorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    points: float
    detail: str


class RiskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    score: int = Field(description="0-100")
    factors: list[RiskFactorOut]


class EntityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: EntityKind
    value: str


class PauseOut(BaseModel):
    start: datetime
    end: datetime | None = Field(description="null while still awaiting the customer")


class IncidentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant_id: str
    title: str
    state: IncidentState
    severity: Severity
    risk: RiskOut
    created_at: datetime
    updated_at: datetime
    first_event_at: datetime
    alert_ids: list[str]
    entities: list[EntityOut]
    techniques: list[str]
    tactics: list[str]
    assignee: str | None
    queue_tier: AnalystTier
    triaged_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    notified_at: datetime | None
    contained_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    pauses: list[PauseOut]
    merged_into: str | None
    linked: list[str]
    closure_reason: str | None

    @field_validator("pauses", mode="before")
    @classmethod
    def _pause_pairs(cls, value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [{"start": p[0], "end": p[1]} if isinstance(p, tuple | list) else p for p in value]
        return value


class AlertOut(BaseModel):
    """An alert as analysts see it: the rule's title AND author (the Detection Rule License requires the
    author wherever matches are shown), and the risk score with its factors."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant_id: str
    rule_id: str
    rule_title: str
    rule_author: str
    severity: Severity
    first_seen: datetime
    last_seen: datetime
    count: int
    entities: list[EntityOut]
    techniques: list[str]
    tactics: list[str]
    detection_ids: list[int]
    risk: RiskOut
    status: AlertStatus
    incident_id: str | None
    closed_reason: str | None


class SlaStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    metric: SlaMetric
    severity: Severity
    state: SlaState
    target_seconds: int | None
    started_at: datetime
    achieved_at: datetime | None
    stopped_at: datetime | None
    elapsed_seconds: float
    remaining_seconds: float | None
    due_at: datetime | None
    paused: bool


class IncidentDetail(BaseModel):
    incident: IncidentOut
    sla: list[SlaStatusOut]
    alerts: list[AlertOut]
    allowed_actions: list[str] = Field(description="what the acting analyst may do in this tenant")


class TimelineEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    incident_id: str
    tenant_id: str
    at: datetime
    actor: str
    kind: TimelineKind
    summary: str
    details: dict[str, Any]


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    incident_id: str
    tenant_id: str
    at: datetime
    author: str
    text: str
    visible_to_customer: bool


class EvidenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    incident_id: str
    tenant_id: str
    at: datetime
    author: str
    kind: str
    reference: str
    description: str


class SplitOut(BaseModel):
    remaining: IncidentOut
    new: IncidentOut


class ConditionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    field: str
    op: ConditionOp
    value: str | list[str]


class SuppressionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant_id: str
    conditions: list[ConditionOut]
    rule_id: str | None
    reason: str
    author: str
    created_at: datetime
    expires_at: datetime | None
    enabled: bool


class QueueRowOut(BaseModel):
    incident_id: str
    tenant_id: str
    title: str
    severity: Severity
    state: IncidentState
    assignee: str | None
    queue_tier: AnalystTier
    created_at: datetime
    sla_metric: SlaMetric | None = Field(description="the running SLA clock with the least time left")
    sla_state: SlaState | None
    sla_remaining_seconds: float | None = Field(description="negative once breached")
    sla_due_at: datetime | None
    suggested: str | None = Field(description="the assignee, or the analyst routing would pick now")
    reason: str

    @classmethod
    def of(cls, row: QueueRow) -> QueueRowOut:
        incident, sla = row.incident, row.sla
        return cls(
            incident_id=incident.id,
            tenant_id=incident.tenant_id,
            title=incident.title,
            severity=incident.severity,
            state=incident.state,
            assignee=incident.assignee,
            queue_tier=incident.queue_tier,
            created_at=incident.created_at,
            sla_metric=sla.metric if sla else None,
            sla_state=sla.state if sla else None,
            sla_remaining_seconds=sla.remaining_seconds if sla else None,
            sla_due_at=sla.due_at if sla else None,
            suggested=row.suggested,
            reason=row.reason,
        )


class MetricStatsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    count: int
    mean: float | None
    median: float | None
    p90: float | None
    min: float | None
    max: float | None


class AttainmentOut(BaseModel):
    met: int
    missed: int
    excluded: int = Field(description="no target, or not decided yet")
    attainment_percent: float | None = Field(description="met / (met + missed) x 100; null when none decided")


class MetricRowOut(BaseModel):
    group_by: GroupBy | None
    group: str | None
    incidents: int
    metrics: dict[str, MetricStatsOut] = Field(description="mttd, mttt, mtta, mttn, mttc, mttr (seconds)")
    sla: dict[str, AttainmentOut] = Field(description="acknowledge, notify, contain")

    @classmethod
    def of(cls, row: MetricRow) -> MetricRowOut:
        sla: dict[str, AttainmentOut] = {}
        for metric, counts in row.sla.items():
            share = counts.share
            sla[metric] = AttainmentOut(
                met=counts.met,
                missed=counts.missed,
                excluded=counts.excluded,
                attainment_percent=None if share is None else share * 100.0,
            )
        return cls(
            group_by=row.group_by,
            group=row.group,
            incidents=row.incidents,
            metrics={name: MetricStatsOut.model_validate(value) for name, value in row.metrics.items()},
            sla=sla,
        )


class CreditLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    incident_id: str
    metric: SlaMetric
    severity: Severity
    breached_at: datetime
    percent_bp: int = Field(description="basis points of the monthly fee")
    amount_minor: int
    explanation: str


class CreditStatementOut(BaseModel):
    month: str = Field(description="YYYY-MM (UTC)")
    tenant_id: str
    tier: str
    currency: str | None = Field(description="from the tenant's contract settings, when set")
    monthly_fee_minor: int = Field(description="integer minor units (cents)")
    cap_minor: int
    lines: list[CreditLineOut]
    total_minor: int
    capped: bool


class AnalystWorkloadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    analyst_id: str
    start: datetime
    end: datetime
    shift: str | None
    incidents_handled: int
    actions: int
    handling_minutes: float
    busy_minutes: float
    on_duty_minutes: float
    off_shift_minutes: float
    occupancy: float | None
    open_load: int


class SweepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sla_events: int
    escalations: int
    assigned: int
    handoffs: int


# -- input DTOs -------------------------------------------------------------------------------------------
class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_state: IncidentState
    reason: ShortText = ""
    closure_reason: ShortText | None = Field(default=None, description="required to close")


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ShortText = ""


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    analyst_id: Ident | None = Field(description="a roster analyst who may work the tenant; null unassigns")


class EscalateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_tier: AnalystTier
    reason: ShortText


class NotifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=50, description="phone, email, portal, ...")


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=20_000)
    visible_to_customer: bool = False


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=40, description="event, detection, file, url, note")
    reference: str = Field(max_length=2000, description="event key, detection id, sha256, URL")
    description: ShortText = ""


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[Ident] = Field(min_length=1, max_length=50, description="incidents folded into this one")


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_ids: list[Ident] = Field(min_length=1, max_length=500, description="alerts moved to a new incident")


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other: Ident


class SuppressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fields: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=20, description="ECS names or alert.* fields whose values must match"
    )
    reason: str = Field(max_length=2000, description="shown on every alert it closes")
    expires_at: datetime | None = Field(default=None, description="naive means UTC")
    scope_rule: bool = Field(default=True, description="only alerts of this alert's rule")


class DisableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


# -- helpers ----------------------------------------------------------------------------------------------
class CaseSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(default=None, max_length=64, description="IANA, e.g. Europe/Berlin")
    escalation: dict[str, Any] | None = None
    contract: dict[str, Any] | None = None


class CaseSettingsOut(BaseModel):
    timezone: str
    escalation: dict[str, Any]
    contract: dict[str, Any]


class EscalationStepOut(BaseModel):
    name: str
    role: str
    channel: str
    address: str
    wait_minutes: int


class EscalationPlanOut(BaseModel):
    band: str
    steps: list[EscalationStepOut]


def _incident_out(incident: Incident) -> IncidentOut:
    return IncidentOut.model_validate(incident)


def _month_start(month: str | None, now: datetime) -> datetime:
    if month is None:
        return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1, tzinfo=UTC)


def _refused(outcome: TransitionOutcome, service: CaseService) -> ApiProblem:
    """The problem answering a rejected or delayed transition (the attempt is already on the timeline)."""
    verdict = outcome.verdict
    incident = outcome.incident
    extra: dict[str, Any] = {"rule": outcome.rule, "incident_id": incident.id, "state": incident.state}
    if isinstance(verdict, Delay):
        wait = max(0, math.ceil((verdict.until - service.clock()).total_seconds()))
        return ApiProblem(
            409,
            verdict.reason,
            code="cases.transition_delayed",
            extra={**extra, "until": verdict.until.astimezone(UTC).isoformat(), "retry_after": wait},
            headers={"Retry-After": str(wait)},
        )
    reason = verdict.reason if isinstance(verdict, Reject) else "the transition was refused"
    if outcome.rule == AuthorizeTransition.__name__:
        return ApiProblem(403, reason, code=PermissionDeniedError.code, extra=extra)
    return ApiProblem(409, reason, code="cases.transition_rejected", extra=extra)


def routes(router: APIRouter, ctx: ApiContext) -> None:
    def service() -> CaseService:
        if ctx.cases is None:
            raise ApiProblem(503, "case work is not enabled on this server", code="api.cases_disabled")
        return ctx.cases

    def who(header: str | None) -> CaseActor:
        """The acting analyst named by the header (the guard checked its shape), else the operator."""
        return service().actor(header.strip() if header else None)

    def visible(actor: CaseActor, tenant: str, incident_id: str) -> tuple[CaseService, TenantId, Incident]:
        """Tenant (404 unknown), scope and `view` permission (403), incident in that tenant (404), before
        any change: a scoped analyst learns nothing about, and writes nothing to, tenants outside it."""
        cases = service()
        tid = ctx.tenant_id(tenant)
        return cases, tid, cases.incident(actor, tid, incident_id)

    def transitioned(outcome: TransitionOutcome, cases: CaseService) -> IncidentOut:
        if not outcome.accepted:
            raise _refused(outcome, cases)
        return _incident_out(outcome.incident)

    tags = ["incidents"]
    common: dict[str, Any] = {"tags": tags, "responses": _CASE_RESPONSES}

    # -- reading ------------------------------------------------------------------------------------------
    @router.get("/incidents", **common)
    def list_all_incidents(
        x_watchfloor_actor: ActorHeader = None,
        state: Annotated[list[IncidentState] | None, Query(description="repeat for several")] = None,
        tenant: TenantFilter = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = DEFAULT_PAGE,
    ) -> list[IncidentOut]:
        """Incidents of every tenant in the actor's scope (or one `tenant`), oldest first."""
        actor = who(x_watchfloor_actor)
        tid = ctx.tenant_id(tenant) if tenant is not None else None
        found = service().incidents(
            actor, tid, states=state, since=aware(since), until=aware(until), limit=capped(limit)
        )
        return [_incident_out(i) for i in found]

    @router.get("/tenants/{tenant}/incidents", **common)
    def list_incidents(
        tenant: str,
        x_watchfloor_actor: ActorHeader = None,
        state: Annotated[list[IncidentState] | None, Query(description="repeat for several")] = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = DEFAULT_PAGE,
    ) -> list[IncidentOut]:
        """The tenant's incidents by creation time, oldest first."""
        actor = who(x_watchfloor_actor)
        found = service().incidents(
            actor,
            ctx.tenant_id(tenant),
            states=state,
            since=aware(since),
            until=aware(until),
            limit=capped(limit),
        )
        return [_incident_out(i) for i in found]

    @router.get("/tenants/{tenant}/incidents/{incident_id}", **common)
    def get_incident(
        tenant: str, incident_id: IncidentId, x_watchfloor_actor: ActorHeader = None
    ) -> IncidentDetail:
        """The incident, its SLA clocks as of now, and its alerts (rule title and author, risk factors)."""
        actor = who(x_watchfloor_actor)
        cases, tid, incident = visible(actor, tenant, incident_id)
        return IncidentDetail(
            incident=_incident_out(incident),
            sla=[SlaStatusOut.model_validate(s) for s in cases.sla(actor, tid, incident_id)],
            alerts=[
                AlertOut.model_validate(a)
                for a in cases.alerts(actor, tid, incident_id=incident_id, limit=MAX_PAGE)
            ],
            allowed_actions=sorted(actions_for(actor, tid)),
        )

    @router.get("/tenants/{tenant}/incidents/{incident_id}/timeline", **common)
    def get_timeline(
        tenant: str, incident_id: IncidentId, x_watchfloor_actor: ActorHeader = None
    ) -> list[TimelineEntryOut]:
        """Everything that happened to the incident, in order (rejected attempts included)."""
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        return [TimelineEntryOut.model_validate(e) for e in cases.timeline(actor, tid, incident_id)]

    @router.get("/tenants/{tenant}/incidents/{incident_id}/notes", **common)
    def get_notes(
        tenant: str, incident_id: IncidentId, x_watchfloor_actor: ActorHeader = None
    ) -> list[NoteOut]:
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        return [NoteOut.model_validate(n) for n in cases.notes(actor, tid, incident_id)]

    @router.get("/tenants/{tenant}/incidents/{incident_id}/evidence", **common)
    def get_evidence(
        tenant: str, incident_id: IncidentId, x_watchfloor_actor: ActorHeader = None
    ) -> list[EvidenceOut]:
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        return [EvidenceOut.model_validate(e) for e in cases.evidence(actor, tid, incident_id)]

    # -- changing -----------------------------------------------------------------------------------------
    @router.post("/tenants/{tenant}/incidents/{incident_id}/transition", **common)
    def transition(
        tenant: str, incident_id: IncidentId, body: TransitionIn, x_watchfloor_actor: ActorHeader = None
    ) -> IncidentOut:
        """Ask the incident policy. Accepted: 200 with the incident. Rejected: 409 `cases.transition_rejected`
        (403 `cases.permission_denied` when the permission table refused), detail = the rule's reason,
        `rule` = its name. Delayed: 409 `cases.transition_delayed` with `until`, `retry_after` and a
        `Retry-After` header. Refusals are recorded on the timeline either way."""
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        outcome = cases.transition(
            actor, tid, incident_id, body.to_state, reason=body.reason, closure_reason=body.closure_reason
        )
        return transitioned(outcome, cases)

    @router.post("/tenants/{tenant}/incidents/{incident_id}/acknowledge", **common)
    def acknowledge(
        tenant: str,
        incident_id: IncidentId,
        body: Annotated[AcknowledgeIn | None, Body()] = None,
        x_watchfloor_actor: ActorHeader = None,
    ) -> IncidentOut:
        """The transition to `acknowledged` (takes the incident when unassigned); answers like /transition."""
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        reason = body.reason if body is not None else ""
        return transitioned(cases.transition(actor, tid, incident_id, "acknowledged", reason=reason), cases)

    @router.post("/tenants/{tenant}/incidents/{incident_id}/assign", **common)
    def assign(
        tenant: str, incident_id: IncidentId, body: AssignIn, x_watchfloor_actor: ActorHeader = None
    ) -> IncidentOut:
        """Assign to a roster analyst who may work the tenant (taking it yourself needs only triage)."""
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        return _incident_out(cases.assign(actor, tid, incident_id, body.analyst_id))

    @router.post("/tenants/{tenant}/incidents/{incident_id}/escalate", **common)
    def escalate(
        tenant: str, incident_id: IncidentId, body: EscalateIn, x_watchfloor_actor: ActorHeader = None
    ) -> IncidentOut:
        """Raise the queue tier (the assignee is cleared: the higher tier's queue takes it)."""
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        return _incident_out(cases.escalate(actor, tid, incident_id, body.to_tier, body.reason))

    @router.post("/tenants/{tenant}/incidents/{incident_id}/notify", **common)
    def notify(
        tenant: str, incident_id: IncidentId, body: NotifyIn, x_watchfloor_actor: ActorHeader = None
    ) -> IncidentOut:
        """Record that the customer was told (the first time stops the notify SLA clock)."""
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        return _incident_out(cases.notify_customer(actor, tid, incident_id, body.channel))

    @router.post(
        "/tenants/{tenant}/incidents/{incident_id}/notes", status_code=status.HTTP_201_CREATED, **common
    )
    def add_note(
        tenant: str, incident_id: IncidentId, body: NoteIn, x_watchfloor_actor: ActorHeader = None
    ) -> NoteOut:
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        note = cases.add_note(
            actor, tid, incident_id, body.text, visible_to_customer=body.visible_to_customer
        )
        return NoteOut.model_validate(note)

    @router.post(
        "/tenants/{tenant}/incidents/{incident_id}/evidence", status_code=status.HTTP_201_CREATED, **common
    )
    def add_evidence(
        tenant: str, incident_id: IncidentId, body: EvidenceIn, x_watchfloor_actor: ActorHeader = None
    ) -> EvidenceOut:
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        item = cases.add_evidence(
            actor, tid, incident_id, kind=body.kind, reference=body.reference, description=body.description
        )
        return EvidenceOut.model_validate(item)

    @router.post("/tenants/{tenant}/incidents/{incident_id}/merge", **common)
    def merge(
        tenant: str, incident_id: IncidentId, body: MergeIn, x_watchfloor_actor: ActorHeader = None
    ) -> IncidentOut:
        """Fold `sources` (same tenant) into this incident; their alerts move here. 200 with this incident."""
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        return _incident_out(cases.merge(actor, tid, incident_id, body.sources))

    @router.post(
        "/tenants/{tenant}/incidents/{incident_id}/split", status_code=status.HTTP_201_CREATED, **common
    )
    def split(
        tenant: str, incident_id: IncidentId, body: SplitIn, x_watchfloor_actor: ActorHeader = None
    ) -> SplitOut:
        """Move some (not all) alerts to a new incident, linked both ways. 201 with both incidents."""
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        remaining, new = cases.split(actor, tid, incident_id, body.alert_ids)
        return SplitOut(remaining=_incident_out(remaining), new=_incident_out(new))

    @router.post("/tenants/{tenant}/incidents/{incident_id}/link", **common)
    def link(
        tenant: str, incident_id: IncidentId, body: LinkIn, x_watchfloor_actor: ActorHeader = None
    ) -> IncidentOut:
        """Relate another incident of the same tenant (both ways). 200 with this incident."""
        actor = who(x_watchfloor_actor)
        cases, tid, _ = visible(actor, tenant, incident_id)
        return _incident_out(cases.link(actor, tid, incident_id, body.other))

    # -- alerts and suppressions --------------------------------------------------------------------------
    @router.get("/tenants/{tenant}/alerts", tags=["alerts"], responses=_CASE_RESPONSES)
    def list_alerts(
        tenant: str,
        x_watchfloor_actor: ActorHeader = None,
        incident_id: Annotated[str | None, Query(max_length=200)] = None,
        limit: Limit = DEFAULT_PAGE,
    ) -> list[AlertOut]:
        """The tenant's alerts, newest (last seen) first; `incident_id` for one incident's."""
        actor = who(x_watchfloor_actor)
        found = service().alerts(actor, ctx.tenant_id(tenant), incident_id=incident_id, limit=capped(limit))
        return [AlertOut.model_validate(a) for a in found]

    @router.post(
        "/tenants/{tenant}/alerts/{alert_id}/suppress",
        status_code=status.HTTP_201_CREATED,
        tags=["alerts"],
        responses=_CASE_RESPONSES,
    )
    def suppress_alert(
        tenant: str, alert_id: ObjectId, body: SuppressIn, x_watchfloor_actor: ActorHeader = None
    ) -> SuppressionOut:
        """A suppression from this alert's values of `fields` (stored and audited); the alert is closed by
        it (status `suppressed`) and its incident's timeline says so. 400 when a field has no value."""
        actor = who(x_watchfloor_actor)
        cases = service()
        stored = cases.suppress_from_alert(
            actor,
            ctx.tenant_id(tenant),
            alert_id,
            body.fields,
            reason=body.reason,
            expires_at=aware(body.expires_at),
            scope_rule=body.scope_rule,
        )
        return SuppressionOut.model_validate(stored)

    @router.get("/tenants/{tenant}/suppressions", tags=["alerts"], responses=_CASE_RESPONSES)
    def list_suppressions(tenant: str, x_watchfloor_actor: ActorHeader = None) -> list[SuppressionOut]:
        """Every suppression of the tenant (disabled ones too), by id."""
        actor = who(x_watchfloor_actor)
        found = service().suppressions(actor, ctx.tenant_id(tenant))
        return [SuppressionOut.model_validate(s) for s in found]

    @router.delete(
        "/tenants/{tenant}/suppressions/{suppression_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["alerts"],
        responses=_CASE_RESPONSES,
    )
    def disable_suppression(
        tenant: str,
        suppression_id: ObjectId,
        body: Annotated[DisableIn | None, Body()] = None,
        reason: Annotated[str | None, Query(min_length=1, max_length=2000)] = None,
        x_watchfloor_actor: ActorHeader = None,
    ) -> Response:
        """Disable (not delete: it stays listed and audited) with a reason, in the body or `?reason=`."""
        actor = who(x_watchfloor_actor)
        why = body.reason if body is not None else reason
        if why is None or not why.strip():
            raise ApiProblem(
                422, "disabling a suppression needs a reason (body or ?reason=)", code="api.reason_required"
            )
        service().disable_suppression(actor, ctx.tenant_id(tenant), suppression_id, reason=why.strip())
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    # -- the SOC: queue, metrics, credits, workload, SLA sweep ---------------------------------------------
    @router.get("/queue", tags=["soc"], responses=_CASE_RESPONSES)
    def queue(x_watchfloor_actor: ActorHeader = None, tenant: TenantFilter = None) -> list[QueueRowOut]:
        """Open, unmerged incidents in the actor's scope in routing order (breached first, then the least
        SLA time left, severity, age), with the analyst routing would pick now."""
        actor = who(x_watchfloor_actor)
        tid = ctx.tenant_id(tenant) if tenant is not None else None
        return [QueueRowOut.of(row) for row in service().queue(actor, tenant=tid)]

    @router.get("/metrics/soc", tags=["soc"], responses=_CASE_RESPONSES)
    def soc_metrics(
        x_watchfloor_actor: ActorHeader = None,
        group_by: GroupBy | None = None,
        period: Period = "month",
        tenant: TenantFilter = None,
        since: Since = None,
        until: Until = None,
    ) -> list[MetricRowOut]:
        """MTTD/MTTT/MTTA/MTTN/MTTC/MTTR (wall-clock seconds) and SLA attainment over incidents created in
        [since, until), one row per group (`docs/metrics.md`), or one overall row without `group_by`."""
        actor = who(x_watchfloor_actor)
        tid = ctx.tenant_id(tenant) if tenant is not None else None
        rows = service().metrics(
            actor, tenant=tid, group_by=group_by, period=period, since=aware(since), until=aware(until)
        )
        return [MetricRowOut.of(row) for row in rows]

    @router.get("/tenants/{tenant}/credits", tags=["soc"], responses=_CASE_RESPONSES)
    def credits(
        tenant: str,
        x_watchfloor_actor: ActorHeader = None,
        month: Annotated[
            str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (UTC); default: now")
        ] = None,
    ) -> CreditStatementOut:
        """The SLA credits the month's breaches earn under the tenant's tier and contract."""
        actor = who(x_watchfloor_actor)
        cases = service()
        tid = ctx.tenant_id(tenant)
        start = _month_start(month, cases.clock())
        statement = cases.credits(actor, tid, start)
        currency = ctx.db.settings.get(tid).contract.get("currency")
        return CreditStatementOut(
            month=start.strftime("%Y-%m"),
            tenant_id=tid,
            tier=statement.tier,
            currency=str(currency) if currency is not None else None,
            monthly_fee_minor=statement.monthly_fee_minor,
            cap_minor=statement.cap_minor,
            lines=[CreditLineOut.model_validate(line) for line in statement.lines],
            total_minor=statement.total_minor,
            capped=statement.capped,
        )

    @router.get("/tenants/{tenant}/case-settings", tags=["soc"], responses=_CASE_RESPONSES)
    def get_case_settings(tenant: str, x_watchfloor_actor: ActorHeader = None) -> CaseSettingsOut:
        """The tenant's time zone (business hours, escalation bands), escalation tree and contract."""
        actor = who(x_watchfloor_actor)
        found = service().case_settings(actor, ctx.tenant_id(tenant))
        return CaseSettingsOut(
            timezone=found.timezone, escalation=dict(found.escalation), contract=dict(found.contract)
        )

    @router.put("/tenants/{tenant}/case-settings", tags=["soc"], responses=_CASE_RESPONSES)
    def put_case_settings(
        tenant: str, body: CaseSettingsIn, x_watchfloor_actor: ActorHeader = None
    ) -> CaseSettingsOut:
        """Change the given parts (omitted ones stay); validated, audited. MSSP admins only. The escalation
        tree format is in `src/watchfloor/cases/escalation.py` (contacts by name or e-mail)."""
        actor = who(x_watchfloor_actor)
        found = service().put_case_settings(
            actor,
            ctx.tenant_id(tenant),
            timezone=body.timezone,
            escalation=body.escalation,
            contract=body.contract,
        )
        return CaseSettingsOut(
            timezone=found.timezone, escalation=dict(found.escalation), contract=dict(found.contract)
        )

    @router.get("/tenants/{tenant}/escalation", tags=["soc"], responses=_CASE_RESPONSES)
    def escalation_plan(
        tenant: str,
        severity: Severity = "high",
        at: Annotated[datetime | None, Query(description="default: now; naive means UTC")] = None,
        x_watchfloor_actor: ActorHeader = None,
    ) -> EscalationPlanOut:
        """Whom to call for the tenant, in order, for `severity` at `at` (the tenant's local time band)."""
        actor = who(x_watchfloor_actor)
        band, steps = service().escalation_plan(actor, ctx.tenant_id(tenant), severity, aware(at))
        return EscalationPlanOut(
            band=band,
            steps=[
                EscalationStepOut(
                    name=step.name,
                    role=step.role,
                    channel=step.channel,
                    address=step.address,
                    wait_minutes=step.wait_minutes,
                )
                for step in steps
            ],
        )

    @router.get("/soc/workload", tags=["soc"], responses=_CASE_RESPONSES)
    def soc_workload(
        x_watchfloor_actor: ActorHeader = None, since: Since = None, until: Until = None
    ) -> list[AnalystWorkloadOut]:
        """Workload and occupancy per roster analyst over [since, until) (default: the last 24 hours; at
        most 93 days). Duty managers and the operator only."""
        actor = who(x_watchfloor_actor)
        cases = service()
        end = aware(until) or cases.clock()
        start = aware(since) or end - timedelta(days=1)
        if not start < end or end - start > timedelta(days=MAX_WORKLOAD_DAYS):
            raise ApiProblem(
                400,
                f"since must be before until, at most {MAX_WORKLOAD_DAYS} days apart",
                code="api.invalid_range",
            )
        return [AnalystWorkloadOut.model_validate(w) for w in cases.workload(actor, start, end)]

    @router.post("/sla/sweep", tags=["soc"], responses=_CASE_RESPONSES)
    def sla_sweep(x_watchfloor_actor: ActorHeader = None) -> SweepOut:
        """Run the SLA engine's tick now (the server also runs it on a timer): warnings and breaches,
        breach escalation, queue routing and shift hand-offs. Idempotent. Duty managers and the operator."""
        actor = who(x_watchfloor_actor)
        if actor.role not in _SOC_WIDE_ROLES:
            raise ApiProblem(
                403,
                f"{actor.id} ({actor.role}) may not run the SLA sweep: duty managers and the operator only",
                code=PermissionDeniedError.code,
            )
        return SweepOut.model_validate(service().sweep())
