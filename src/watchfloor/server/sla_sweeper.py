"""The SLA engine's tick over storage: `SlaSweeper(cases).sweep(now)`, run by the server every
`sla_interval_seconds` and by `watchfloor sla sweep` / `POST /api/v1/sla/sweep`.

For every open incident: SLA warnings and breaches (stored once per incident, metric and kind, each with a
timeline entry); while a clock stays breached, the breach escalation chain (next analyst tier, the duty
manager, then the customer's contacts in order; one `escalations` row per step, the next step only after the
previous step's wait); then hand-offs of work held by analysts going off shift and routing of unassigned work
to on-duty analysts. Idempotent: a second sweep at the same time records nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfoNotFoundError

from sqlalchemy import Connection

from watchfloor.cases import lifecycle
from watchfloor.cases.escalation import (
    EscalationConfigError,
    EscalationTree,
    breach_escalation,
    default_tree,
)
from watchfloor.cases.models import SYSTEM, Incident, TimelineEntry
from watchfloor.cases.permissions import CaseError
from watchfloor.cases.routing import QueueItem, route, shift_handoff
from watchfloor.cases.sla import SlaEvent, evaluate_sla, sla_statuses
from watchfloor.cases.soc import SocRoster, on_duty
from watchfloor.cases.tiers import ServiceTier
from watchfloor.cases.workload import open_load
from watchfloor.core.types import CLOSED_STATES, SlaMetric, TenantId
from watchfloor.server.cases import OPEN_STATES, CaseService, SweepResult, remaining_seconds
from watchfloor.storage.incidents import (
    Change,
    SlaEventRecord,
    next_escalation_step,
    record_escalation,
    record_sla_event,
)

log = logging.getLogger(__name__)


class SlaSweeper:
    """One tick of the SLA engine over the case service's database (see the module docstring)."""

    def __init__(self, cases: CaseService) -> None:
        self.cases = cases

    def sweep(self, now: datetime | None = None) -> SweepResult:
        """Warnings, breaches, breach escalation, routing and hand-offs as of `now` (idempotent)."""
        at = now or self.cases.clock()
        open_ = [
            i
            for i in self.cases.db.incidents.list(None, states=OPEN_STATES, limit=None)
            if i.merged_into is None
        ]
        by_tenant: dict[TenantId, list[Incident]] = defaultdict(list)
        for incident in open_:
            by_tenant[incident.tenant_id].append(incident)
        events = escalations = 0
        for tenant, incidents in by_tenant.items():
            tier, zone = self.cases.tier_of(tenant), self.cases.timezone_of(tenant)
            emitted = self.cases.db.sla.emitted(tenant, [i.id for i in incidents])
            tree = self._tree_or_default(tenant, zone) if self.cases.roster is not None else None
            for incident in incidents:
                already = frozenset(
                    (cast("SlaMetric", m), k) for m, k in emitted.get(incident.id, frozenset())
                )
                due = evaluate_sla(incident, tier, at, already, tenant_timezone=zone)
                breached = any(k == "sla_breached" for _m, k in already) or any(
                    e.kind == "sla_breached" for e in due
                )
                if not due and not (breached and tree is not None):
                    continue
                counts = self._sla_tick(incident, tier, zone, due, tree if breached else None, at)
                events += counts[0]
                escalations += counts[1]
        assigned = handoffs = 0
        if self.cases.roster is not None and self.cases.auto_route:
            assigned, handoffs = self._route(at)
        return SweepResult(sla_events=events, escalations=escalations, assigned=assigned, handoffs=handoffs)

    def _tree_or_default(self, tenant: TenantId, zone: str) -> EscalationTree:
        """The tenant's tree; when its stored configuration no longer validates (a contact it names was
        removed since), the default tree over its contacts, logged, so the sweep goes on for everyone."""
        try:
            return self.cases.escalation_tree(tenant)
        except EscalationConfigError as exc:
            log.warning("tenant %s: escalation tree invalid, using the default order: %s", tenant, exc)
            record = self.cases.db.tenants.get(tenant)
            try:
                return default_tree(tenant, record.contacts if record else (), timezone=zone)
            except (ZoneInfoNotFoundError, ValueError):
                return default_tree(tenant, record.contacts if record else ())

    def _sla_tick(
        self,
        incident: Incident,
        tier: ServiceTier,
        zone: str,
        due: Sequence[SlaEvent],
        tree: EscalationTree | None,
        at: datetime,
    ) -> tuple[int, int]:
        counts = [0, 0]
        roster = self.cases.roster

        def change(connection: Connection, current: Incident) -> Change | None:
            entries: list[TimelineEntry] = []
            changed = current
            for event in due:
                record = SlaEventRecord(
                    tenant_id=event.tenant_id,
                    incident_id=event.incident_id,
                    metric=event.metric,
                    kind=event.kind,
                    at=event.at,
                    severity=event.severity,
                    target_seconds=event.target_seconds,
                )
                if record_sla_event(connection, record, recorded_at=at):
                    counts[0] += 1
                    entries.append(
                        TimelineEntry(
                            incident_id=current.id,
                            tenant_id=current.tenant_id,
                            at=event.at,
                            actor=SYSTEM.id,
                            kind=event.kind,
                            summary=event.summary,
                            details={
                                "metric": event.metric,
                                "target_seconds": event.target_seconds,
                                "tier": tier.name,
                            },
                        )
                    )
            if (
                tree is not None
                and roster is not None
                and current.state not in CLOSED_STATES
                and self._still_breached(current, tier, zone, at)
            ):
                changed, more = self._escalate_step(connection, changed, roster, tree, at, counts)
                entries.extend(more)
            if not entries:
                return None
            return Change(incident=changed, timeline=tuple(entries))

        result = self.cases.db.incidents.modify_on(incident.tenant_id, incident.id, change, actor=SYSTEM.id)
        if result is not None:
            self.cases._observe(result.incident)
        return counts[0], counts[1]

    @staticmethod
    def _still_breached(incident: Incident, tier: ServiceTier, zone: str, at: datetime) -> bool:
        """Some clock is over its target and its milestone is still not reached: once the analyst
        acknowledges, notifies or contains, that clock stops ("missed") and the chain stops with it."""
        return any(s.state == "breached" for s in sla_statuses(incident, tier, at, tenant_timezone=zone))

    def _escalate_step(
        self,
        connection: Connection,
        incident: Incident,
        roster: SocRoster,
        tree: EscalationTree,
        at: datetime,
        counts: list[int],
    ) -> tuple[Incident, list[TimelineEntry]]:
        """Take the next breach-escalation step when the previous step's wait has passed."""
        taken = next_escalation_step(connection, incident.tenant_id, incident.id)
        if taken:
            rows = self.cases.db.sla.escalations(incident.tenant_id, incident.id)
            last = rows[-1] if rows else None
            if last is not None:
                previous = breach_escalation(incident, roster, tree, last["at"], int(last["step"]))
                if previous.wait_minutes is None:
                    return incident, []  # the chain is exhausted
                if at < last["at"] + timedelta(minutes=previous.wait_minutes):  # UTCDateTime: aware
                    return incident, []
        action = breach_escalation(incident, roster, tree, at, taken)
        if action.kind == "exhausted":
            return incident, []
        target = {
            "analyst_tier": action.to_tier or "",
            "duty_manager": ", ".join(m.id for m in action.duty_managers) or "duty manager",
            "customer_contact": action.contact.name if action.contact else "",
        }[action.kind]
        if not record_escalation(
            connection,
            tenant_id=incident.tenant_id,
            incident_id=incident.id,
            step=action.step,
            target=target,
            channel=action.channel or "queue",
            reason=action.reason,
            at=at,
        ):
            return incident, []
        counts[1] += 1
        if action.kind == "analyst_tier" and action.to_tier is not None:
            changed, entries = lifecycle.escalate(incident, action.to_tier, SYSTEM, at, action.reason)
            return changed, list(entries)
        entry = TimelineEntry(
            incident_id=incident.id,
            tenant_id=incident.tenant_id,
            at=at,
            actor=SYSTEM.id,
            kind="escalated",
            summary=action.reason,
            details={"step": action.step, "kind": action.kind, "target": target, "channel": action.channel},
        )
        return incident, [entry]

    def _route(self, at: datetime) -> tuple[int, int]:
        """Hand off work held by analysts going off shift, then assign unassigned open work."""
        roster = self.cases.roster
        assert roster is not None
        open_ = [
            i
            for i in self.cases.db.incidents.list(None, states=OPEN_STATES, limit=None)
            if i.merged_into is None
        ]
        load = open_load(open_)
        terms = self.cases.terms()
        nearest = {i.id: remaining_seconds(self.cases.nearest_sla(i, at, terms)) for i in open_}
        handoffs = 0
        on_shift = {a.id for a in on_duty(roster, at)}
        held = [
            i
            for i in open_
            if i.assignee is not None and i.assignee not in on_shift and roster.analyst(i.assignee)
        ]
        if held:
            timelines = {i.id: self.cases.db.incidents.timeline(i.tenant_id, i.id)[-5:] for i in held}
            for handoff in shift_handoff(
                held, roster, at, timelines=timelines, sla_remaining=lambda i: nearest.get(i.id), load=load
            ):
                entry = handoff.entry()
                target = handoff.to_analyst

                def change(
                    incident: Incident, entry: TimelineEntry = entry, target: str | None = target
                ) -> Change:
                    if incident.assignee != entry.details["from"]:
                        return Change(incident=incident)  # someone moved it meanwhile
                    return Change(
                        incident=replace(incident, assignee=target, updated_at=max(at, incident.updated_at)),
                        timeline=(entry,),
                    )

                self.cases._modify(SYSTEM, handoff.tenant_id, handoff.incident_id, change)
                handoffs += 1
        if handoffs:  # assignees moved: route from what is stored now
            open_ = [
                i
                for i in self.cases.db.incidents.list(None, states=OPEN_STATES, limit=None)
                if i.merged_into is None
            ]
        items = [QueueItem(incident=i, sla_remaining_seconds=nearest.get(i.id)) for i in open_]
        assigned = 0
        for pick in route(items, roster, at, open_load(open_)):
            if pick.analyst_id is None:
                continue
            try:
                self.cases.assign(SYSTEM, pick.tenant_id, pick.incident_id, pick.analyst_id, now=at)
            except CaseError as exc:
                log.info("routing %s to %s refused: %s", pick.incident_id, pick.analyst_id, exc)
                continue
            assigned += 1
        return assigned, handoffs
