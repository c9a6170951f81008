"""Incidents with their timeline, notes and evidence; SLA events and escalations; per-tenant case settings.

Changing an incident is read-modify-write under a row lock: `IncidentRepository.modify(tenant, id, change)`
runs `change(incident)` (a pure function from `watchfloor.cases`) inside one transaction that locks the row
(`SELECT ... FOR UPDATE` on PostgreSQL, the single writer on SQLite), stores the new incident with its
timeline entries, and writes an audit entry per timeline entry. No business rules live here.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Connection, bindparam, func, insert, select, tuple_, update

from watchfloor.cases.models import Evidence, Incident, Note, TimelineEntry, TimelineKind
from watchfloor.core.types import AnalystTier, IncidentState, Severity, SlaMetric, TenantId
from watchfloor.storage.alerts import entities_from, entities_json, risk_from, risk_json, upsert_alerts
from watchfloor.storage.audit import NewAuditEntry, append_audit, append_audit_many
from watchfloor.storage.engine import Store, dialect_insert
from watchfloor.storage.errors import NotFoundError, where
from watchfloor.storage.schema import (
    escalations,
    incident_evidence,
    incident_notes,
    incident_timeline,
    incidents,
    sla_events,
    tenant_settings,
)
from watchfloor.storage.tenants import require_tenant
from watchfloor.triage.models import Alert


# -- row <-> record -----------------------------------------------------------------------------------
def _pauses_json(pauses: Iterable[tuple[datetime, datetime | None]]) -> list[list[str | None]]:
    return [[start.isoformat(), end.isoformat() if end is not None else None] for start, end in pauses]


def _pauses_from(data: Iterable[Sequence[str | None]]) -> tuple[tuple[datetime, datetime | None], ...]:
    out: list[tuple[datetime, datetime | None]] = []
    for start, end in data:
        assert start is not None
        out.append((datetime.fromisoformat(start), datetime.fromisoformat(end) if end is not None else None))
    return tuple(out)


def _incident_values(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "tenant_id": incident.tenant_id,
        "title": incident.title,
        "state": incident.state,
        "severity": incident.severity,
        "risk": risk_json(incident.risk),
        "risk_score": incident.risk.score,
        "created_at": incident.created_at,
        "updated_at": incident.updated_at,
        "first_event_at": incident.first_event_at,
        "alert_ids": list(incident.alert_ids),
        "entities": entities_json(incident.entities),
        "techniques": list(incident.techniques),
        "tactics": list(incident.tactics),
        "assignee": incident.assignee,
        "queue_tier": incident.queue_tier,
        "triaged_at": incident.triaged_at,
        "acknowledged_at": incident.acknowledged_at,
        "acknowledged_by": incident.acknowledged_by,
        "notified_at": incident.notified_at,
        "contained_at": incident.contained_at,
        "resolved_at": incident.resolved_at,
        "closed_at": incident.closed_at,
        "pauses": _pauses_json(incident.pauses),
        "merged_into": incident.merged_into,
        "linked": list(incident.linked),
        "closure_reason": incident.closure_reason,
    }


def _incident(row: Mapping[Any, Any]) -> Incident:
    return Incident(
        id=row["id"],
        tenant_id=TenantId(row["tenant_id"]),
        title=row["title"],
        state=cast("IncidentState", row["state"]),
        severity=cast("Severity", row["severity"]),
        risk=risk_from(row["risk"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        first_event_at=row["first_event_at"],
        alert_ids=tuple(row["alert_ids"]),
        entities=entities_from(row["entities"]),
        techniques=tuple(row["techniques"]),
        tactics=tuple(row["tactics"]),
        assignee=row["assignee"],
        queue_tier=cast("AnalystTier", row["queue_tier"]),
        triaged_at=row["triaged_at"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        notified_at=row["notified_at"],
        contained_at=row["contained_at"],
        resolved_at=row["resolved_at"],
        closed_at=row["closed_at"],
        pauses=_pauses_from(row["pauses"]),
        merged_into=row["merged_into"],
        linked=tuple(row["linked"]),
        closure_reason=row["closure_reason"],
    )


def _timeline_values(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "tenant_id": entry.tenant_id,
        "incident_id": entry.incident_id,
        "at": entry.at,
        "actor": entry.actor,
        "kind": entry.kind,
        "summary": entry.summary,
        "details": dict(entry.details),
    }


def _timeline(row: Mapping[Any, Any]) -> TimelineEntry:
    return TimelineEntry(
        incident_id=row["incident_id"],
        tenant_id=TenantId(row["tenant_id"]),
        at=row["at"],
        actor=row["actor"],
        kind=cast("TimelineKind", row["kind"]),
        summary=row["summary"],
        details=dict(row["details"]),
    )


def _check_tenant(tenant_id: TenantId, what: str, owner: str) -> None:
    if owner != tenant_id:
        msg = f"{what} belongs to tenant {owner!r}, not {tenant_id!r}"
        raise ValueError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """What a `modify` callback returns: the new incident and what to record about the change."""

    incident: Incident
    timeline: tuple[TimelineEntry, ...] = ()
    notes: tuple[Note, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    alerts: tuple[Alert, ...] = ()  # alerts whose incident link or status changed with it
    audit_action: str | None = None  # e.g. incident.transition; None: one audit entry per timeline entry
    audit_details: Mapping[str, Any] = field(default_factory=dict)


def write_change(connection: Connection, store: Store, change: Change, *, actor: str, new: bool) -> None:
    """Persist a `Change` on `connection` (the caller's transaction)."""
    write_changes(connection, store, [(change, new)], actor=actor)


_UPDATE_COLUMNS: Final = tuple(
    c.name for c in incidents.columns if c.name not in ("tenant_id", "id", "version")
)
_UPDATES: dict[str, Any] = {}


def _update_statement(connection: Connection) -> Any:
    """One UPDATE for many incidents (executemany), built once per dialect."""
    name = connection.dialect.name
    statement = _UPDATES.get(name)
    if statement is None:
        statement = _UPDATES[name] = (
            update(incidents)
            .where(
                incidents.c.tenant_id == bindparam("w_tenant_id"),
                incidents.c.id == bindparam("w_id"),
            )
            .values(
                {"version": incidents.c.version + 1}
                | {c: bindparam(f"v_{c}", type_=incidents.c[c].type) for c in _UPDATE_COLUMNS}
            )
        )
    return statement


def write_changes(
    connection: Connection, store: Store, items: Sequence[tuple[Change, bool]], *, actor: str
) -> None:
    """Persist several `Change`s (`True` = a new incident) on `connection`, one statement per table: the
    triage stage writes a batch's incidents this way. Every row's tenant is checked against its incident's."""
    created: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    alerts_by_tenant: dict[TenantId, list[Alert]] = {}
    audits: list[NewAuditEntry] = []
    now = store.now()
    for change, new in items:
        incident = change.incident
        tenant_id = incident.tenant_id
        values = _incident_values(incident)
        if new:
            created.append({"version": 1, **values})
        else:
            row = {"w_tenant_id": tenant_id, "w_id": incident.id}
            row.update({f"v_{c}": values[c] for c in _UPDATE_COLUMNS if c in values})
            updated.append(row)
        for entry in change.timeline:
            _check_tenant(tenant_id, f"timeline entry for {entry.incident_id}", entry.tenant_id)
            timeline.append(_timeline_values(entry))
        for note in change.notes:
            _check_tenant(tenant_id, "note", note.tenant_id)
            connection.execute(
                insert(incident_notes).values(
                    tenant_id=tenant_id,
                    incident_id=note.incident_id,
                    at=note.at,
                    author=note.author,
                    text=note.text,
                    visible_to_customer=int(note.visible_to_customer),
                )
            )
        for item in change.evidence:
            _check_tenant(tenant_id, "evidence", item.tenant_id)
            connection.execute(
                insert(incident_evidence).values(
                    tenant_id=tenant_id,
                    incident_id=item.incident_id,
                    at=item.at,
                    author=item.author,
                    kind=item.kind,
                    reference=item.reference,
                    description=item.description,
                )
            )
        if change.alerts:
            alerts_by_tenant.setdefault(tenant_id, []).extend(change.alerts)
        if change.audit_action is not None:
            audits.append(
                NewAuditEntry(
                    at=now,
                    actor=actor,
                    action=change.audit_action,
                    tenant_id=tenant_id,
                    object_type="incident",
                    object_id=incident.id,
                    details=dict(change.audit_details),
                )
            )
        else:
            audits.extend(
                NewAuditEntry(
                    at=now,
                    actor=entry.actor,
                    action=f"incident.{entry.kind}",
                    tenant_id=tenant_id,
                    object_type="incident",
                    object_id=entry.incident_id,
                    details={"summary": entry.summary, **dict(entry.details)},
                )
                for entry in change.timeline
            )
    if created:
        connection.execute(insert(incidents), created)
    if updated:
        result = connection.execute(_update_statement(connection), updated)
        if result.rowcount not in (-1, len(updated)):
            missing = [row["w_id"] for row in updated]
            first = updated[0]
            raise NotFoundError(
                f"no incident among {missing[:5]!r} to update",
                location=where(first["w_tenant_id"], "incidents", first["w_id"]),
            )
    if timeline:
        connection.execute(insert(incident_timeline), timeline)
    if alerts_by_tenant:  # each list was checked against its incident's tenant: one statement for all
        unique = {a.id: a for batch in alerts_by_tenant.values() for a in batch}
        upsert_alerts(connection, None, list(unique.values()))
    append_audit_many(connection, audits)


class IncidentRepository:
    """Incidents per tenant; every change in one locked transaction with its timeline and audit entries."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, change: Change, *, actor: str) -> Incident:
        with self._store.write() as connection:
            require_tenant(connection, change.incident.tenant_id, active=False)
            write_change(connection, self._store, change, actor=actor, new=True)
        return change.incident

    def modify(
        self, tenant_id: TenantId, incident_id: str, change: Callable[[Incident], Change], *, actor: str
    ) -> Change:
        """Lock the incident, apply `change` to it, store the result. Exceptions roll everything back."""
        with self._store.write() as connection:
            current = self._locked(connection, tenant_id, incident_id)
            result = change(current)
            if result.incident.id != incident_id or result.incident.tenant_id != tenant_id:
                msg = "a change may not move an incident to another id or tenant"
                raise ValueError(msg)
            write_change(connection, self._store, result, actor=actor, new=False)
        return result

    def modify_many(
        self,
        tenant_id: TenantId,
        incident_ids: Sequence[str],
        change: Callable[[Sequence[Incident]], Sequence[tuple[Change, bool]]],
        *,
        actor: str,
    ) -> Sequence[tuple[Change, bool]]:
        """Lock several incidents (in id order), apply `change`, store each result (`True` = a new incident).

        For merge and split, which touch several incidents in one transaction.
        """
        with self._store.write() as connection:
            current = [self._locked(connection, tenant_id, i) for i in sorted(set(incident_ids))]
            by_id = {incident.id: incident for incident in current}
            results = change([by_id[i] for i in incident_ids])
            for result, new in results:
                _check_tenant(tenant_id, f"incident {result.incident.id}", result.incident.tenant_id)
                write_change(connection, self._store, result, actor=actor, new=new)
        return results

    def modify_on(
        self,
        tenant_id: TenantId,
        incident_id: str,
        change: Callable[[Connection, Incident], Change | None],
        *,
        actor: str,
    ) -> Change | None:
        """`modify` for changes that also write other tables (SLA events, escalations) on the same
        transaction: `change` gets the connection; None stores nothing (the other writes still commit)."""
        with self._store.write() as connection:
            current = self._locked(connection, tenant_id, incident_id)
            result = change(connection, current)
            if result is None:
                return None
            if result.incident.id != incident_id or result.incident.tenant_id != tenant_id:
                msg = "a change may not move an incident to another id or tenant"
                raise ValueError(msg)
            write_change(connection, self._store, result, actor=actor, new=False)
        return result

    def lock_versions(
        self, connection: Connection, keys: Collection[tuple[TenantId, str]]
    ) -> dict[tuple[TenantId, str], int]:
        """Lock the incidents named by (tenant, id) (in key order) and return their versions: a caller
        that cached an incident at that version may use its copy instead of reading it again."""
        if not keys:
            return {}
        query = (
            select(incidents.c.tenant_id, incidents.c.id, incidents.c.version)
            .where(tuple_(incidents.c.tenant_id, incidents.c.id).in_(sorted(keys)))
            .order_by(incidents.c.tenant_id, incidents.c.id)
            .with_for_update()
        )
        return {(TenantId(row.tenant_id), row.id): int(row.version) for row in connection.execute(query)}

    def locked(self, connection: Connection, tenant_id: TenantId, incident_id: str) -> Incident:
        """The incident, locked for the rest of the caller's write transaction (NotFoundError if absent)."""
        return self._locked(connection, tenant_id, incident_id)

    def _locked(self, connection: Connection, tenant_id: TenantId, incident_id: str) -> Incident:
        row = (
            connection.execute(
                select(incidents)
                .where(incidents.c.tenant_id == tenant_id, incidents.c.id == incident_id)
                .with_for_update()
            )
            .mappings()
            .one_or_none()
        )
        if row is None:
            raise NotFoundError(
                f"no incident {incident_id!r}", location=where(tenant_id, "incidents", incident_id)
            )
        return _incident(row)

    def get(self, tenant_id: TenantId, incident_id: str) -> Incident:
        with self._store.read() as connection:
            row = (
                connection.execute(
                    select(incidents).where(incidents.c.tenant_id == tenant_id, incidents.c.id == incident_id)
                )
                .mappings()
                .one_or_none()
            )
        if row is None:
            raise NotFoundError(
                f"no incident {incident_id!r}", location=where(tenant_id, "incidents", incident_id)
            )
        return _incident(row)

    def list(
        self,
        tenant_ids: Collection[TenantId] | None,
        *,
        states: Collection[IncidentState] | None = None,
        created_since: datetime | None = None,
        created_until: datetime | None = None,
        closed_since: datetime | None = None,
        limit: int | None = 500,
    ) -> builtins.list[Incident]:
        """Incidents of the given tenants (None: every tenant, for MSSP-wide views), oldest first;
        `closed_since` keeps those first closed at or after it."""
        query = select(incidents)
        if tenant_ids is not None:
            query = query.where(incidents.c.tenant_id.in_(sorted(tenant_ids)))
        if states is not None:
            query = query.where(incidents.c.state.in_(sorted(states)))
        if created_since is not None:
            query = query.where(incidents.c.created_at >= created_since)
        if created_until is not None:
            query = query.where(incidents.c.created_at < created_until)
        if closed_since is not None:
            query = query.where(incidents.c.closed_at >= closed_since)
        query = query.order_by(incidents.c.created_at, incidents.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._store.read() as connection:
            return [_incident(row) for row in connection.execute(query).mappings()]

    def count(self, tenant_id: TenantId, *, states: Collection[IncidentState] | None = None) -> int:
        query = select(func.count()).select_from(incidents).where(incidents.c.tenant_id == tenant_id)
        if states is not None:
            query = query.where(incidents.c.state.in_(sorted(states)))
        with self._store.read() as connection:
            return int(connection.execute(query).scalar_one())

    def timeline(self, tenant_id: TenantId, incident_id: str) -> builtins.list[TimelineEntry]:
        query = (
            select(incident_timeline)
            .where(incident_timeline.c.tenant_id == tenant_id, incident_timeline.c.incident_id == incident_id)
            .order_by(incident_timeline.c.id)
        )
        with self._store.read() as connection:
            return [_timeline(row) for row in connection.execute(query).mappings()]

    def timeline_between(
        self, tenant_ids: Collection[TenantId] | None, since: datetime, until: datetime
    ) -> builtins.list[TimelineEntry]:
        """Timeline entries of the given tenants in [since, until), for workload and metrics."""
        query = select(incident_timeline).where(
            incident_timeline.c.at >= since, incident_timeline.c.at < until
        )
        if tenant_ids is not None:
            query = query.where(incident_timeline.c.tenant_id.in_(sorted(tenant_ids)))
        with self._store.read() as connection:
            return [
                _timeline(row)
                for row in connection.execute(query.order_by(incident_timeline.c.id)).mappings()
            ]

    def notes(
        self, tenant_id: TenantId, incident_id: str, *, customer_view: bool = False
    ) -> builtins.list[Note]:
        query = select(incident_notes).where(
            incident_notes.c.tenant_id == tenant_id, incident_notes.c.incident_id == incident_id
        )
        if customer_view:
            query = query.where(incident_notes.c.visible_to_customer == 1)
        with self._store.read() as connection:
            rows = connection.execute(query.order_by(incident_notes.c.id)).mappings().all()
        return [
            Note(
                incident_id=row["incident_id"],
                tenant_id=TenantId(row["tenant_id"]),
                at=row["at"],
                author=row["author"],
                text=row["text"],
                visible_to_customer=bool(row["visible_to_customer"]),
            )
            for row in rows
        ]

    def evidence(self, tenant_id: TenantId, incident_id: str) -> builtins.list[Evidence]:
        query = select(incident_evidence).where(
            incident_evidence.c.tenant_id == tenant_id, incident_evidence.c.incident_id == incident_id
        )
        with self._store.read() as connection:
            rows = connection.execute(query.order_by(incident_evidence.c.id)).mappings().all()
        return [
            Evidence(
                incident_id=row["incident_id"],
                tenant_id=TenantId(row["tenant_id"]),
                at=row["at"],
                author=row["author"],
                kind=row["kind"],
                reference=row["reference"],
                description=row["description"],
            )
            for row in rows
        ]


# -- SLA events and escalations ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class SlaEventRecord:
    tenant_id: TenantId
    incident_id: str
    metric: SlaMetric
    kind: str  # sla_warning | sla_breached
    at: datetime
    severity: Severity
    target_seconds: int


def record_sla_event(connection: Connection, event: SlaEventRecord, *, recorded_at: datetime) -> bool:
    """Store the event unless already stored (per incident, metric and kind); True when it was new."""
    statement = (
        dialect_insert(connection, sla_events)
        .values(
            tenant_id=event.tenant_id,
            incident_id=event.incident_id,
            metric=event.metric,
            kind=event.kind,
            at=event.at,
            severity=event.severity,
            target_seconds=event.target_seconds,
            recorded_at=recorded_at,
        )
        .on_conflict_do_nothing()
        .returning(sla_events.c.incident_id)
    )
    return connection.execute(statement).first() is not None


class SlaRepository:
    """SLA warnings/breaches (once each per incident and metric) and the escalation steps taken."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def events(
        self,
        tenant_id: TenantId,
        *,
        incident_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> builtins.list[SlaEventRecord]:
        query = select(sla_events).where(sla_events.c.tenant_id == tenant_id)
        if incident_id is not None:
            query = query.where(sla_events.c.incident_id == incident_id)
        if since is not None:
            query = query.where(sla_events.c.at >= since)
        if until is not None:
            query = query.where(sla_events.c.at < until)
        with self._store.read() as connection:
            rows = connection.execute(query.order_by(sla_events.c.at)).mappings().all()
        return [
            SlaEventRecord(
                tenant_id=TenantId(row["tenant_id"]),
                incident_id=row["incident_id"],
                metric=cast("SlaMetric", row["metric"]),
                kind=row["kind"],
                at=row["at"],
                severity=cast("Severity", row["severity"]),
                target_seconds=int(row["target_seconds"]),
            )
            for row in rows
        ]

    def emitted(
        self, tenant_id: TenantId, incident_ids: Collection[str]
    ) -> dict[str, frozenset[tuple[str, str]]]:
        """incident id -> {(metric, kind)} already recorded, for the idempotent sweeper."""
        out: dict[str, set[tuple[str, str]]] = {i: set() for i in incident_ids}
        if not incident_ids:
            return {}
        query = select(sla_events.c.incident_id, sla_events.c.metric, sla_events.c.kind).where(
            sla_events.c.tenant_id == tenant_id, sla_events.c.incident_id.in_(sorted(incident_ids))
        )
        with self._store.read() as connection:
            for incident_id, metric, kind in connection.execute(query):
                out[incident_id].add((metric, kind))
        return {key: frozenset(value) for key, value in out.items()}

    def escalations(self, tenant_id: TenantId, incident_id: str) -> builtins.list[dict[str, Any]]:
        query = (
            select(escalations)
            .where(escalations.c.tenant_id == tenant_id, escalations.c.incident_id == incident_id)
            .order_by(escalations.c.step)
        )
        with self._store.read() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]


def record_escalation(
    connection: Connection,
    *,
    tenant_id: TenantId,
    incident_id: str,
    step: int,
    target: str,
    channel: str,
    reason: str,
    at: datetime,
) -> bool:
    """Store escalation step `step` of an incident once; True when it was new."""
    statement = (
        dialect_insert(connection, escalations)
        .values(
            tenant_id=tenant_id,
            incident_id=incident_id,
            step=step,
            target=target,
            channel=channel,
            reason=reason,
            at=at,
        )
        .on_conflict_do_nothing()
        .returning(escalations.c.id)
    )
    return connection.execute(statement).first() is not None


def next_escalation_step(connection: Connection, tenant_id: TenantId, incident_id: str) -> int:
    """The step after the highest recorded one (0 when none): `breach_escalation` skips steps, so the
    number of rows is not the next step."""
    highest = connection.execute(
        select(func.max(escalations.c.step)).where(
            escalations.c.tenant_id == tenant_id, escalations.c.incident_id == incident_id
        )
    ).scalar_one()
    return 0 if highest is None else int(highest) + 1


def escalation_count(connection: Connection, tenant_id: TenantId, incident_id: str) -> int:
    return int(
        connection.execute(
            select(func.count())
            .select_from(escalations)
            .where(escalations.c.tenant_id == tenant_id, escalations.c.incident_id == incident_id)
        ).scalar_one()
    )


# -- per-tenant case settings --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class TenantSettings:
    """A tenant's time zone (for business hours and escalation bands), escalation tree and contract."""

    tenant_id: TenantId
    timezone: str = "UTC"
    escalation: Mapping[str, Any] = field(default_factory=dict)  # see cases.escalation
    contract: Mapping[str, Any] = field(default_factory=dict)  # monthly_fee_minor, currency, ...


class TenantSettingsRepository:
    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, tenant_id: TenantId) -> TenantSettings:
        """The tenant's settings, or the defaults when none were stored."""
        with self._store.read() as connection:
            row = (
                connection.execute(select(tenant_settings).where(tenant_settings.c.tenant_id == tenant_id))
                .mappings()
                .one_or_none()
            )
        if row is None:
            return TenantSettings(tenant_id=tenant_id)
        return TenantSettings(
            tenant_id=tenant_id,
            timezone=row["timezone"],
            escalation=row["escalation"],
            contract=row["contract"],
        )

    def put(self, settings: TenantSettings, *, actor: str) -> None:
        tenant_id = settings.tenant_id
        values = {
            "timezone": settings.timezone,
            "escalation": dict(settings.escalation),
            "contract": dict(settings.contract),
        }
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            now = self._store.now()
            statement = dialect_insert(connection, tenant_settings).values(
                tenant_id=tenant_id, updated_at=now, **values
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[tenant_settings.c.tenant_id], set_={**values, "updated_at": now}
                )
            )
            append_audit(
                connection,
                at=now,
                actor=actor,
                action="tenant.settings",
                tenant_id=tenant_id,
                object_type="tenant_settings",
                object_id=tenant_id,
                details=values,
            )
