"""Case work over storage: what the API and CLI call to work incidents, and the SLA sweeper.

Every operation takes the `Actor` doing it, checks the tenant scope and the permission table on the server
(`cases.permissions`), runs the pure decision (`cases.lifecycle`, `cases.sla`, `cases.escalation`, ...)
under the incident's row lock (`IncidentRepository.modify`), and stores the incident, its timeline entries
and one audit entry per entry in that one transaction. The triage stage is told about every change
(`observer`), so grouping sees closures, merges and suppressions at once.

`sweep(now)` is the SLA engine's tick: warnings and breaches for every open incident (once each, in
`sla_events`, with a timeline entry), the breach escalation chain (next analyst tier, duty manager, the
customer's contacts in order; one `escalations` row per step, the next step only after the previous
step's wait), queue routing of unassigned work to on-duty analysts, and shift hand-offs.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watchfloor.cases import lifecycle
from watchfloor.cases.escalation import (
    EscalationConfigError,
    EscalationStep,
    EscalationTree,
    tree_from_config,
    who_to_call,
)
from watchfloor.cases.lifecycle import DEFAULT_POLICY, IncidentPolicy, TransitionOutcome
from watchfloor.cases.metrics import GroupBy, MetricRow, Period, compute
from watchfloor.cases.models import Actor, Evidence, Incident, Note, TimelineEntry
from watchfloor.cases.permissions import CaseError, PermissionDeniedError, authorize
from watchfloor.cases.routing import Assignment, QueueItem, rank, route
from watchfloor.cases.sla import (
    CreditStatement,
    SlaStatus,
    credits_for,
    sla_status,
    sla_statuses,
)
from watchfloor.cases.soc import SocRoster, actor_for
from watchfloor.cases.tiers import ServiceTier, TierCatalog
from watchfloor.cases.workload import AnalystWorkload, open_load, workload
from watchfloor.core.errors import Location
from watchfloor.core.types import (
    CLOSED_STATES,
    INCIDENT_STATES,
    AnalystTier,
    IncidentState,
    Severity,
    SlaMetric,
    TenantId,
)
from watchfloor.storage.database import Database
from watchfloor.storage.errors import NotFoundError
from watchfloor.storage.incidents import (
    Change,
    TenantSettings,
)
from watchfloor.triage.alerts import with_status
from watchfloor.triage.conditions import closing_reason, suppression_from_alert
from watchfloor.triage.models import Alert, Suppression

log = logging.getLogger(__name__)

OPEN_STATES: Final = tuple(s for s in INCIDENT_STATES if s not in CLOSED_STATES)
DEFAULT_TIER: Final = "standard"
OPERATOR: Final = Actor(id="operator", role="mssp_admin")


class UnknownActorError(CaseError):
    """The named actor is not in the SOC roster."""

    code = "cases.unknown_actor"


class SettingsInvalidError(CaseError):
    """A tenant's case settings (time zone, escalation tree, contract) do not validate."""

    code = "cases.settings_invalid"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueRow:
    incident: Incident
    sla: SlaStatus | None  # the nearest running SLA clock, None when no target runs
    suggested: str | None  # the analyst routing would pick now (None: nobody fits, see `reason`)
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepResult:
    sla_events: int
    escalations: int
    assigned: int
    handoffs: int


class CaseService:
    """Incident work for the API, CLI and SLA sweeper (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        tiers: TierCatalog,
        *,
        roster: SocRoster | None = None,
        policy: IncidentPolicy = DEFAULT_POLICY,
        observer: Callable[[Incident], None] | None = None,
        alert_observer: Callable[[Alert, Suppression | None], None] | None = None,
        suppressions_changed: Callable[[TenantId], None] | None = None,
        auto_route: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self.db = db
        self.tiers = tiers
        self.roster = roster
        self.policy = policy
        self._observer = observer
        self._alert_observer = alert_observer
        self._suppressions_changed = suppressions_changed
        self.auto_route = auto_route
        self.clock = clock

    # -- who -----------------------------------------------------------------------------------------
    def actor(self, actor_id: str | None) -> Actor:
        """The operator (no id), else the roster's analyst or duty manager of that id."""
        if not actor_id or actor_id == OPERATOR.id:
            return OPERATOR
        if self.roster is not None:
            analyst = self.roster.analyst(actor_id)
            if analyst is not None:
                return actor_for(analyst)
            for manager in self.roster.duty_managers:
                if manager.id == actor_id:
                    return Actor(id=manager.id, role="soc_manager")
        msg = f"no analyst or duty manager {actor_id!r} in the SOC roster"
        raise UnknownActorError(
            msg, location=Location(path=self.roster.path if self.roster else "<no roster>")
        )

    # -- tenants' contracts ------------------------------------------------------------------------
    def tier_of(self, tenant: TenantId) -> ServiceTier:
        """The tenant's service tier; a tier name the catalog lacks falls back to `standard` (logged)."""
        record = self.db.tenants.get(tenant)
        name = record.tier if record is not None else DEFAULT_TIER
        if name not in self.tiers:
            log.warning("tenant %s: unknown service tier %r, using %s", tenant, name, DEFAULT_TIER)
            name = DEFAULT_TIER if DEFAULT_TIER in self.tiers else self.tiers.names[0]
        return self.tiers.get(name)

    def timezone_of(self, tenant: TenantId) -> str:
        return self.db.settings.get(tenant).timezone

    def escalation_tree(self, tenant: TenantId) -> EscalationTree:
        settings = self.db.settings.get(tenant)
        record = self.db.tenants.get(tenant)
        contacts = record.contacts if record is not None else ()
        config = dict(settings.escalation)
        config.setdefault("timezone", settings.timezone)
        return tree_from_config(tenant, config, contacts)

    def case_settings(self, actor: Actor, tenant: TenantId) -> TenantSettings:
        """The tenant's time zone, escalation tree configuration and contract."""
        authorize(actor, "view", tenant)
        return self.db.settings.get(tenant)

    def put_case_settings(
        self,
        actor: Actor,
        tenant: TenantId,
        *,
        timezone: str | None = None,
        escalation: Mapping[str, Any] | None = None,
        contract: Mapping[str, Any] | None = None,
    ) -> TenantSettings:
        """Change the given parts (None keeps them), validated before anything is stored: an IANA time
        zone, an escalation tree whose contacts are the tenant's (`cases.escalation.tree_from_config`), and
        a contract with `monthly_fee_minor` (integer minor units >= 0) and an ISO 4217 `currency`."""
        authorize(actor, "manage_tenant", tenant)
        where = Location(tenant=tenant, path="case-settings")
        current = self.db.settings.get(tenant)
        zone = current.timezone if timezone is None else timezone
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsInvalidError(f"unknown IANA time zone {zone!r}", location=where) from None
        tree = dict(current.escalation if escalation is None else escalation)
        record = self.db.tenants.get(tenant)
        contacts = record.contacts if record else ()
        try:
            tree_from_config(tenant, {"timezone": zone, **tree}, contacts, location=where)
        except EscalationConfigError as exc:
            raise SettingsInvalidError(exc.message, location=where) from None
        terms = dict(current.contract if contract is None else contract)
        unknown = sorted(set(terms) - {"monthly_fee_minor", "currency", "reference"})
        fee = terms.get("monthly_fee_minor", 0)
        currency = terms.get("currency", "EUR")
        if unknown:
            allowed = "monthly_fee_minor, currency, reference"
            msg = f"contract: unknown key(s) {', '.join(unknown)} (allowed: {allowed})"
            raise SettingsInvalidError(msg, location=where)
        if isinstance(fee, bool) or not isinstance(fee, int) or fee < 0:
            msg = f"contract.monthly_fee_minor must be a whole number of minor units >= 0, got {fee!r}"
            raise SettingsInvalidError(msg, location=where)
        if not (
            isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper()
        ):
            msg = f"contract.currency must be an ISO 4217 code such as EUR or USD, got {currency!r}"
            raise SettingsInvalidError(msg, location=where)
        settings = TenantSettings(tenant_id=tenant, timezone=zone, escalation=tree, contract=terms)
        self.db.settings.put(settings, actor=actor.id)
        return settings

    def escalation_plan(
        self, actor: Actor, tenant: TenantId, severity: Severity, at: datetime | None = None
    ) -> tuple[str, tuple[EscalationStep, ...]]:
        """The tenant's band at `at` (business or after hours, its time zone) and whom to call, in order."""
        authorize(actor, "view", tenant)
        moment = at or self.clock()
        tree = self.escalation_tree(tenant)
        return tree.band_at(moment), who_to_call(tree, severity, moment)

    # -- reading -------------------------------------------------------------------------------------
    def incident(self, actor: Actor, tenant: TenantId, incident_id: str) -> Incident:
        authorize(actor, "view", tenant, incident_id=incident_id)
        return self.db.incidents.get(tenant, incident_id)

    def incidents(
        self,
        actor: Actor,
        tenant: TenantId | None = None,
        *,
        states: Collection[IncidentState] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 500,
    ) -> list[Incident]:
        """Incidents the actor may see: one tenant (checked), or every tenant in its scope."""
        if tenant is not None:
            authorize(actor, "view", tenant)
            scope: Collection[TenantId] | None = [tenant]
        else:
            scope = None if actor.all_tenants else sorted(actor.tenants)
        return self.db.incidents.list(
            scope, states=states, created_since=since, created_until=until, limit=limit
        )

    def timeline(self, actor: Actor, tenant: TenantId, incident_id: str) -> list[TimelineEntry]:
        self.incident(actor, tenant, incident_id)
        return self.db.incidents.timeline(tenant, incident_id)

    def notes(self, actor: Actor, tenant: TenantId, incident_id: str) -> list[Note]:
        self.incident(actor, tenant, incident_id)
        customer = actor.role in ("customer_admin", "customer_viewer")
        return [
            n for n in self.db.incidents.notes(tenant, incident_id) if n.visible_to_customer or not customer
        ]

    def evidence(self, actor: Actor, tenant: TenantId, incident_id: str) -> list[Evidence]:
        self.incident(actor, tenant, incident_id)
        return self.db.incidents.evidence(tenant, incident_id)

    def alerts(
        self, actor: Actor, tenant: TenantId, *, incident_id: str | None = None, limit: int = 200
    ) -> list[Alert]:
        authorize(actor, "view", tenant, incident_id=incident_id)
        return self.db.alerts.list(tenant, incident_id=incident_id, limit=limit)

    def sla(
        self, actor: Actor, tenant: TenantId, incident_id: str, now: datetime | None = None
    ) -> tuple[SlaStatus, ...]:
        incident = self.incident(actor, tenant, incident_id)
        return sla_statuses(
            incident, self.tier_of(tenant), now or self.clock(), tenant_timezone=self.timezone_of(tenant)
        )

    # -- changing ------------------------------------------------------------------------------------
    def _modify(
        self, actor: Actor, tenant: TenantId, incident_id: str, change: Callable[[Incident], Change]
    ) -> Change:
        # scope first: an actor outside the tenant learns nothing and writes nothing (not even the
        # audit of a refused attempt) on another tenant's incident
        authorize(actor, "view", tenant, incident_id=incident_id)
        result = self.db.incidents.modify(tenant, incident_id, change, actor=actor.id)
        self._observe(result.incident)
        return result

    def _observe(self, incident: Incident) -> None:
        if self._observer is not None:
            self._observer(incident)

    def _moved(self, alerts: Sequence[Alert]) -> None:
        """Alerts now on another incident (merge, split): their repeats must follow them there."""
        if self._alert_observer is not None:
            for alert in alerts:
                self._alert_observer(alert, None)

    def transition(
        self,
        actor: Actor,
        tenant: TenantId,
        incident_id: str,
        to_state: IncidentState,
        *,
        reason: str = "",
        closure_reason: str | None = None,
        now: datetime | None = None,
    ) -> TransitionOutcome:
        """Ask the policy; a rejection or delay is stored as a timeline entry (the audit of the attempt)
        and returned, not raised: the caller shows `outcome.verdict.reason`."""
        at = now or self.clock()
        outcomes: list[TransitionOutcome] = []

        def change(incident: Incident) -> Change:
            outcome = lifecycle.transition(
                incident,
                to_state,
                actor,
                at,
                reason=reason,
                closure_reason=closure_reason,
                policy=self.policy,
            )
            outcomes.append(outcome)
            return Change(incident=outcome.incident, timeline=outcome.entries)

        self._modify(actor, tenant, incident_id, change)
        return outcomes[0]

    def assign(
        self,
        actor: Actor,
        tenant: TenantId,
        incident_id: str,
        analyst_id: str | None,
        *,
        now: datetime | None = None,
    ) -> Incident:
        at = now or self.clock()
        if analyst_id is not None and self.roster is not None:
            analyst = self.roster.analyst(analyst_id)
            if analyst is None or not analyst.may_work(tenant):
                msg = f"{analyst_id!r} is not a roster analyst who may work tenant {tenant}"
                raise CaseError(
                    msg,
                    location=Location(tenant=tenant, path=f"incident/{incident_id}"),
                    code="cases.assign_invalid",
                )

        def change(incident: Incident) -> Change:
            changed, entries = lifecycle.assign(incident, analyst_id, actor, at)
            return Change(incident=changed, timeline=entries)

        return self._modify(actor, tenant, incident_id, change).incident

    def escalate(
        self,
        actor: Actor,
        tenant: TenantId,
        incident_id: str,
        to_tier: AnalystTier,
        reason: str,
        *,
        now: datetime | None = None,
    ) -> Incident:
        at = now or self.clock()

        def change(incident: Incident) -> Change:
            changed, entries = lifecycle.escalate(incident, to_tier, actor, at, reason)
            return Change(incident=changed, timeline=entries)

        return self._modify(actor, tenant, incident_id, change).incident

    def notify_customer(
        self, actor: Actor, tenant: TenantId, incident_id: str, channel: str, *, now: datetime | None = None
    ) -> Incident:
        at = now or self.clock()

        def change(incident: Incident) -> Change:
            changed, entries = lifecycle.record_customer_notification(incident, actor, at, channel)
            return Change(incident=changed, timeline=entries)

        return self._modify(actor, tenant, incident_id, change).incident

    def add_note(
        self,
        actor: Actor,
        tenant: TenantId,
        incident_id: str,
        text: str,
        *,
        visible_to_customer: bool = False,
        now: datetime | None = None,
    ) -> Note:
        at = now or self.clock()
        notes: list[Note] = []

        def change(incident: Incident) -> Change:
            note, entry = lifecycle.add_note(
                incident, actor, text, at, visible_to_customer=visible_to_customer
            )
            notes.append(note)
            return Change(incident=incident, timeline=(entry,), notes=(note,))

        self._modify(actor, tenant, incident_id, change)
        return notes[0]

    def add_evidence(
        self,
        actor: Actor,
        tenant: TenantId,
        incident_id: str,
        *,
        kind: str,
        reference: str,
        description: str,
        now: datetime | None = None,
    ) -> Evidence:
        at = now or self.clock()
        found: list[Evidence] = []

        def change(incident: Incident) -> Change:
            item, entry = lifecycle.add_evidence(
                incident, actor, at, kind=kind, reference=reference, description=description
            )
            found.append(item)
            return Change(incident=incident, timeline=(entry,), evidence=(item,))

        self._modify(actor, tenant, incident_id, change)
        return found[0]

    def merge(
        self,
        actor: Actor,
        tenant: TenantId,
        target_id: str,
        source_ids: Sequence[str],
        *,
        now: datetime | None = None,
    ) -> Incident:
        """Fold the sources into the target; their alerts now point at the target."""
        at = now or self.clock()
        authorize(actor, "merge", tenant, incident_id=target_id)
        moved = {s: self.db.alerts.list(tenant, incident_id=s, limit=100_000) for s in source_ids}

        def change(current: Sequence[Incident]) -> list[tuple[Change, bool]]:
            target, sources = current[0], current[1:]
            result = lifecycle.merge(target, sources, actor, at)
            by_incident: dict[str, list[TimelineEntry]] = defaultdict(list)
            for entry in result.entries:
                by_incident[entry.incident_id].append(entry)
            alerts = tuple(replace(a, incident_id=target.id) for s in source_ids for a in moved[s])
            out = [
                (Change(incident=result.target, timeline=tuple(by_incident[target.id]), alerts=alerts), False)
            ]
            out += [(Change(incident=s, timeline=tuple(by_incident[s.id])), False) for s in result.sources]
            return out

        results = self.db.incidents.modify_many(tenant, [target_id, *source_ids], change, actor=actor.id)
        for result, _new in results:
            self._observe(result.incident)
        self._moved(results[0][0].alerts)
        return results[0][0].incident

    def split(
        self,
        actor: Actor,
        tenant: TenantId,
        incident_id: str,
        alert_ids: Sequence[str],
        *,
        now: datetime | None = None,
    ) -> tuple[Incident, Incident]:
        """Move some alerts to a new incident (linked both ways); (remaining, new)."""
        at = now or self.clock()
        authorize(actor, "split", tenant, incident_id=incident_id)
        alerts = [self.db.alerts.get(tenant, a) for a in dict.fromkeys(alert_ids)]
        material = "\x1f".join([*sorted(alert_ids), at.isoformat()])  # a later re-split gets a new id
        digest = hashlib.blake2b(material.encode(), digest_size=4).hexdigest()
        new_id = f"{incident_id}-s{digest}"

        def change(current: Sequence[Incident]) -> list[tuple[Change, bool]]:
            result = lifecycle.split(current[0], alert_ids, new_id, actor, at, alerts=alerts)
            first, second = result.entries
            return [
                (Change(incident=result.remaining, timeline=(first,)), False),
                (Change(incident=result.new, timeline=(second,), alerts=result.alerts), True),
            ]

        results = self.db.incidents.modify_many(tenant, [incident_id], change, actor=actor.id)
        for result, _new in results:
            self._observe(result.incident)
        self._moved(results[1][0].alerts)
        return results[0][0].incident, results[1][0].incident

    def link(
        self, actor: Actor, tenant: TenantId, a_id: str, b_id: str, *, now: datetime | None = None
    ) -> Incident:
        at = now or self.clock()

        def change(current: Sequence[Incident]) -> list[tuple[Change, bool]]:
            first, second = (current[0], current[1]) if current[0].id == a_id else (current[1], current[0])
            result = lifecycle.link(first, second, actor, at)
            return [
                (Change(incident=result.a, timeline=result.entries[:1]), False),
                (Change(incident=result.b, timeline=result.entries[1:]), False),
            ]

        authorize(actor, "link", tenant, incident_id=a_id)
        results = self.db.incidents.modify_many(tenant, [a_id, b_id], change, actor=actor.id)
        for result, _new in results:
            self._observe(result.incident)
        return results[0][0].incident

    # -- suppressions --------------------------------------------------------------------------------
    def suppress_from_alert(
        self,
        actor: Actor,
        tenant: TenantId,
        alert_id: str,
        fields: Sequence[str],
        *,
        reason: str,
        expires_at: datetime | None = None,
        scope_rule: bool = True,
        now: datetime | None = None,
    ) -> Suppression:
        """One step: a suppression from this alert's values, stored (audited), and the alert closed by it;
        the alert's incident gets a `suppression_created` timeline entry."""
        at = now or self.clock()
        authorize(actor, "suppress", tenant)
        alert = self.db.alerts.get(tenant, alert_id)
        event: dict[str, Any] = {}
        if alert.detection_ids:
            try:
                event = dict(self.db.detections.get(tenant, alert.detection_ids[0]).event)
            except NotFoundError:
                event = {}
        suppression = suppression_from_alert(
            alert,
            event,
            fields,
            author=actor.id,
            reason=reason,
            expires_at=expires_at,
            now=at,
            scope_rule=scope_rule,
        )
        if any(s.id == suppression.id for s in self.db.suppressions.list(tenant)):
            msg = f"alert {alert_id} is already suppressed by {suppression.id} (same author, fields and time)"
            raise CaseError(
                msg,
                location=Location(tenant=tenant, path=f"alerts/{alert_id}"),
                code="cases.suppression_exists",
            )
        stored = self.db.suppressions.create(suppression, actor=actor.id)
        closed = with_status(alert, "suppressed", closed_reason=closing_reason(stored))
        if alert.incident_id is not None:
            entry = TimelineEntry(
                incident_id=alert.incident_id,
                tenant_id=tenant,
                at=at,
                actor=actor.id,
                kind="suppression_created",
                summary=f"{actor.id} suppressed alert {alert.id} ({alert.rule_title}): {stored.reason}",
                details={"suppression_id": stored.id, "alert_id": alert.id},
            )
            closed = replace(closed, incident_id=alert.incident_id)
            self._modify(
                actor,
                tenant,
                alert.incident_id,
                lambda incident: Change(incident=incident, timeline=(entry,), alerts=(closed,)),
            )
        else:
            self.db.alerts.upsert_many(tenant, [closed])
        if self._suppressions_changed is not None:
            self._suppressions_changed(tenant)
        if self._alert_observer is not None:
            self._alert_observer(closed, stored)
        return stored

    def disable_suppression(
        self, actor: Actor, tenant: TenantId, suppression_id: str, *, reason: str
    ) -> None:
        authorize(actor, "suppress", tenant)
        self.db.suppressions.disable(tenant, suppression_id, actor=actor.id, reason=reason)
        if self._suppressions_changed is not None:
            self._suppressions_changed(tenant)

    def suppressions(self, actor: Actor, tenant: TenantId) -> list[Suppression]:
        authorize(actor, "view", tenant)
        return self.db.suppressions.list(tenant)

    # -- queue, metrics, credits, workload -------------------------------------------------------------
    def terms(self) -> Callable[[TenantId], tuple[ServiceTier, str]]:
        """Tenant -> (service tier, time zone), each tenant read once: for one operation over many
        incidents (queue, metrics, the sweep), not kept across operations (settings change)."""
        seen: dict[TenantId, tuple[ServiceTier, str]] = {}

        def lookup(tenant: TenantId) -> tuple[ServiceTier, str]:
            found = seen.get(tenant)
            if found is None:
                found = seen[tenant] = (self.tier_of(tenant), self.timezone_of(tenant))
            return found

        return lookup

    def nearest_sla(
        self,
        incident: Incident,
        now: datetime,
        terms: Callable[[TenantId], tuple[ServiceTier, str]] | None = None,
    ) -> SlaStatus | None:
        """The running clock with the least time remaining (breached ones first)."""
        tier, zone = (terms or self.terms())(incident.tenant_id)
        running = [
            s
            for s in sla_statuses(incident, tier, now, tenant_timezone=zone)
            if s.remaining_seconds is not None and s.state in ("running", "warning", "breached", "paused")
        ]
        return min(running, key=lambda s: s.remaining_seconds or 0.0, default=None)

    def queue(
        self, actor: Actor, now: datetime | None = None, *, tenant: TenantId | None = None
    ) -> list[QueueRow]:
        """Open incidents the actor may see, in routing order, with the analyst routing would pick."""
        at = now or self.clock()
        open_ = [
            i for i in self.incidents(actor, tenant, states=OPEN_STATES, limit=None) if i.merged_into is None
        ]
        terms = self.terms()
        nearest = {i.id: self.nearest_sla(i, at, terms) for i in open_}
        items = [QueueItem(incident=i, sla_remaining_seconds=remaining_seconds(nearest[i.id])) for i in open_]
        picks: dict[str, Assignment] = {}
        if self.roster is not None:
            load = open_load(open_)
            picks = {a.incident_id: a for a in route(items, self.roster, at, load)}
        rows = []
        for item in rank(items, at):
            incident = item.incident
            pick = picks.get(incident.id)
            reason = (
                f"assigned to {incident.assignee}"
                if incident.assignee
                else (pick.reason if pick else "no roster")
            )
            rows.append(
                QueueRow(
                    incident=incident,
                    sla=nearest[incident.id],
                    suggested=incident.assignee or (pick.analyst_id if pick else None),
                    reason=reason,
                )
            )
        return rows

    def met(
        self,
        incident: Incident,
        metric: SlaMetric,
        terms: Callable[[TenantId], tuple[ServiceTier, str]] | None = None,
    ) -> bool | None:
        """Whether the incident met its `metric` target (None: no target, or still running)."""
        tier, zone = (terms or self.terms())(incident.tenant_id)
        status = sla_status(incident, metric, tier, self.clock(), tenant_timezone=zone)
        if status.state == "met":
            return True
        if status.state in ("missed", "breached"):
            return False
        return None

    def metrics(
        self,
        actor: Actor,
        *,
        tenant: TenantId | None = None,
        group_by: GroupBy | None = None,
        period: Period = "month",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[MetricRow]:
        """MTTD/MTTT/MTTA/MTTN/MTTC/MTTR and SLA attainment (`docs/metrics.md`) over incidents created in
        [since, until), grouped by tenant, tier, analyst or period."""
        found = self.incidents(actor, tenant, since=since, until=until, limit=None)
        terms = self.terms()  # per tenant, not per incident and metric
        return compute(
            found,
            group_by=group_by,
            period=period,
            tier_of=lambda tenant_id: terms(tenant_id)[0].name,
            met=lambda incident, metric: self.met(incident, metric, terms),
        )

    def credits(self, actor: Actor, tenant: TenantId, month_start: datetime) -> CreditStatement:
        """The month's SLA credits under the tenant's tier and contract (`contract.monthly_fee_minor`)."""
        authorize(actor, "view", tenant)
        start = month_start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
        breaches = [e for e in self.db.sla.events(tenant, since=start, until=end) if e.kind == "sla_breached"]
        fee = int(self.db.settings.get(tenant).contract.get("monthly_fee_minor", 0))
        return credits_for(breaches, self.tier_of(tenant), fee)

    def workload(self, actor: Actor, start: datetime, end: datetime) -> list[AnalystWorkload]:
        """Workload and occupancy per roster analyst over [start, end) (managers and admins)."""
        if actor.role not in ("mssp_admin", "soc_manager"):
            raise PermissionDeniedError(
                f"{actor.id} may not see SOC workload",
                location=Location(path="soc/workload"),
                code="cases.permission_denied",
            )
        if self.roster is None:
            return []
        incidents = self.db.incidents.list(None, states=OPEN_STATES, limit=None)  # only open load is counted
        entries = self.db.incidents.timeline_between(None, start, end)
        return workload(entries, incidents, self.roster, start, end)

    # -- the SLA engine's tick -----------------------------------------------------------------------
    def sweep(self, now: datetime | None = None) -> SweepResult:
        """Warnings, breaches, breach escalation, routing and hand-offs as of `now` (idempotent); see
        `server.sla_sweeper`."""
        from watchfloor.server.sla_sweeper import SlaSweeper

        return SlaSweeper(self).sweep(now)


def remaining_seconds(status: SlaStatus | None) -> float | None:
    return None if status is None else status.remaining_seconds
