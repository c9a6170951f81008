"""Telemetry health records: per (tenant, source) last seen, status and baseline; hourly volume; alerts.

No business rules: `watchfloor.health` decides what is silent or low; this module stores what it decided,
each status change in one transaction with its alerts and its audit entry. Every function takes the tenant
id, except `list_all_for_check`, the one all-tenants scan (the checker's), which says so in its name.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import Connection, case, delete, insert, select, update

from watchfloor.core.types import TenantId
from watchfloor.storage.audit import append_audit
from watchfloor.storage.columns import as_utc
from watchfloor.storage.engine import Store, dialect_insert
from watchfloor.storage.errors import NotFoundError, where
from watchfloor.storage.schema import health_alerts, source_health, source_volume, tenants
from watchfloor.storage.tenants import require_tenant

SourceStatus = Literal["ok", "silent", "low_volume", "retired"]
AlertKind = Literal["silent", "low_volume", "recovered"]
SOURCE_STATUSES: tuple[SourceStatus, ...] = get_args(SourceStatus)
ALERT_KINDS: tuple[AlertKind, ...] = get_args(AlertKind)
OPEN_KINDS: tuple[AlertKind, ...] = ("silent", "low_volume")


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceObservation:
    """What a tracker counted for one source since its last flush: events per UTC hour (hour starts)."""

    source: str
    first_seen: datetime
    last_seen: datetime
    hours: Mapping[datetime, int]

    @property
    def events(self) -> int:
        return sum(self.hours.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceHealth:
    tenant_id: TenantId
    source: str
    first_seen: datetime
    last_seen: datetime
    events_total: int
    status: SourceStatus
    status_since: datetime
    baseline: Mapping[str, Any] = field(compare=False, repr=False)
    baseline_through: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HourlyVolume:
    tenant_id: TenantId
    source: str
    hour: datetime
    events: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthAlert:
    id: int
    tenant_id: TenantId
    source: str
    kind: AlertKind
    opened_at: datetime
    closed_at: datetime | None
    detail: Mapping[str, Any] = field(compare=False)

    @property
    def open(self) -> bool:
        return self.closed_at is None and self.kind != "recovered"


def source_status(value: str) -> SourceStatus:
    for status in SOURCE_STATUSES:
        if value == status:
            return status
    msg = f"unknown source status {value!r}: use one of {', '.join(SOURCE_STATUSES)}"
    raise ValueError(msg)


def alert_kind(value: str) -> AlertKind:
    for kind in ALERT_KINDS:
        if value == kind:
            return kind
    msg = f"unknown health alert kind {value!r}: use one of {', '.join(ALERT_KINDS)}"
    raise ValueError(msg)


def _health(row: Mapping[Any, Any]) -> SourceHealth:
    return SourceHealth(
        tenant_id=TenantId(row["tenant_id"]),
        source=row["source"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        events_total=int(row["events_total"]),
        status=source_status(row["status"]),
        status_since=row["status_since"],
        baseline=row["baseline"] or {},
        baseline_through=row["baseline_through"],
    )


def _alert(row: Mapping[Any, Any]) -> HealthAlert:
    return HealthAlert(
        id=int(row["id"]),
        tenant_id=TenantId(row["tenant_id"]),
        source=row["source"],
        kind=alert_kind(row["kind"]),
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        detail=row["detail"] or {},
    )


def _key(tenant_id: str, source: str) -> Any:
    return (source_health.c.tenant_id == tenant_id) & (source_health.c.source == source)


class SourceHealthRepository:
    """Per-source health rows, hourly volume and health alerts of one tenant at a time."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- counting (the tracker's flush) -----------------------------------------------------------
    def record(self, tenant_id: TenantId, observations: Iterable[SourceObservation]) -> int:
        """Add counted events: hourly rows are incremented (UPSERT), last/first seen move outwards, new
        sources start `ok`. One transaction; returns the events added. Retired tenants' late events are
        still counted; an unknown tenant raises `NotFoundError` and writes nothing."""
        items = sorted(observations, key=lambda o: o.source)  # one lock order for concurrent writers
        if not items:
            return 0
        added = 0
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=False)
            for item in items:
                added += self._record_one(connection, tenant_id, item)
        return added

    @staticmethod
    def _record_one(connection: Connection, tenant_id: TenantId, item: SourceObservation) -> int:
        events = item.events
        first, last = as_utc(item.first_seen), as_utc(item.last_seen)
        statement = dialect_insert(connection, source_health).values(
            tenant_id=tenant_id,
            source=item.source,
            first_seen=first,
            last_seen=last,
            events_total=events,
            status="ok",
            status_since=first,
            baseline={},
            baseline_through=None,
        )
        excluded = statement.excluded
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[source_health.c.tenant_id, source_health.c.source],
                set_={
                    "first_seen": case(
                        (excluded.first_seen < source_health.c.first_seen, excluded.first_seen),
                        else_=source_health.c.first_seen,
                    ),
                    "last_seen": case(
                        (excluded.last_seen > source_health.c.last_seen, excluded.last_seen),
                        else_=source_health.c.last_seen,
                    ),
                    "events_total": source_health.c.events_total + excluded.events_total,
                },
            )
        )
        for hour, count in sorted(item.hours.items()):
            volume = dialect_insert(connection, source_volume).values(
                tenant_id=tenant_id, source=item.source, hour=as_utc(hour), events=count
            )
            connection.execute(
                volume.on_conflict_do_update(
                    index_elements=[source_volume.c.tenant_id, source_volume.c.source, source_volume.c.hour],
                    set_={"events": source_volume.c.events + volume.excluded.events},
                )
            )
        return events

    def update_baseline(
        self,
        tenant_id: TenantId,
        source: str,
        *,
        baseline: Mapping[str, Any],
        through: datetime,
        expected_through: datetime | None,
    ) -> bool:
        """Store a new baseline learnt up to and including hour `through`, only if the stored watermark is
        still `expected_through` (two flushing processes fold each hour once). Not audited (not a status)."""
        current = (
            source_health.c.baseline_through.is_(None)
            if expected_through is None
            else source_health.c.baseline_through == as_utc(expected_through)
        )
        with self._store.write() as connection:
            changed = connection.execute(
                update(source_health)
                .where(_key(tenant_id, source), current)
                .values(baseline=dict(baseline), baseline_through=as_utc(through))
            ).rowcount
        return bool(changed)

    def prune_volume(self, tenant_id: TenantId, *, before: datetime) -> int:
        """Delete the tenant's hourly rows of hours starting before `before`; returns how many."""
        with self._store.write() as connection:
            removed = connection.execute(
                delete(source_volume).where(
                    source_volume.c.tenant_id == tenant_id, source_volume.c.hour < as_utc(before)
                )
            ).rowcount
        return int(removed)

    # -- reading ----------------------------------------------------------------------------------
    def get(self, tenant_id: TenantId, source: str) -> SourceHealth | None:
        with self._store.read() as connection:
            row = connection.execute(select(source_health).where(_key(tenant_id, source))).mappings().first()
        return None if row is None else _health(row)

    def list(self, tenant_id: TenantId, *, include_retired: bool = True) -> builtins.list[SourceHealth]:
        """The tenant's sources by name."""
        query = select(source_health).where(source_health.c.tenant_id == tenant_id)
        if not include_retired:
            query = query.where(source_health.c.status != "retired")
        with self._store.read() as connection:
            rows = connection.execute(query.order_by(source_health.c.source)).mappings().all()
        return [_health(row) for row in rows]

    def list_all_for_check(self) -> builtins.list[SourceHealth]:
        """ALL TENANTS: every source that is not retired, of every active tenant, by tenant then source.
        For the health checker only; everything else goes through the per-tenant calls."""
        query = (
            select(source_health)
            .join(tenants, tenants.c.id == source_health.c.tenant_id)
            .where(tenants.c.status == "active", source_health.c.status != "retired")
            .order_by(source_health.c.tenant_id, source_health.c.source)
        )
        with self._store.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [_health(row) for row in rows]

    def volume(
        self,
        tenant_id: TenantId,
        *,
        since: datetime,
        until: datetime | None = None,
        source: str | None = None,
    ) -> builtins.list[HourlyVolume]:
        """Hourly rows with `since <= hour < until`, by source then hour."""
        query = select(source_volume).where(
            source_volume.c.tenant_id == tenant_id, source_volume.c.hour >= as_utc(since)
        )
        if until is not None:
            query = query.where(source_volume.c.hour < as_utc(until))
        if source is not None:
            query = query.where(source_volume.c.source == source)
        with self._store.read() as connection:
            rows = (
                connection.execute(query.order_by(source_volume.c.source, source_volume.c.hour))
                .mappings()
                .all()
            )
        return [
            HourlyVolume(
                tenant_id=TenantId(row["tenant_id"]),
                source=row["source"],
                hour=row["hour"],
                events=int(row["events"]),
            )
            for row in rows
        ]

    def alerts(
        self,
        tenant_id: TenantId,
        *,
        source: str | None = None,
        open_only: bool = False,
        limit: int = 100,
    ) -> builtins.list[HealthAlert]:
        """The tenant's health alerts, newest first."""
        query = select(health_alerts).where(health_alerts.c.tenant_id == tenant_id)
        if source is not None:
            query = query.where(health_alerts.c.source == source)
        if open_only:
            query = query.where(health_alerts.c.closed_at.is_(None), health_alerts.c.kind.in_(OPEN_KINDS))
        query = query.order_by(health_alerts.c.id.desc()).limit(limit)
        with self._store.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [_alert(row) for row in rows]

    # -- status changes ---------------------------------------------------------------------------
    def change_status(
        self,
        tenant_id: TenantId,
        source: str,
        *,
        expected: SourceStatus,
        status: SourceStatus,
        at: datetime,
        actor: str,
        open_alert: AlertKind | None = None,
        recovered: bool = False,
        detail: Mapping[str, Any] | None = None,
    ) -> builtins.list[HealthAlert] | None:
        """Move a source from `expected` to `status` in one transaction: close its open alerts, record a
        `recovered` row when asked, open an alert of kind `open_alert`, write the audit entry.

        Returns the alert rows written (closed, recovered, opened), or None when the source is not in
        `expected` any more (another checker got there first): nothing is written then.
        """
        at = as_utc(at)
        if open_alert is not None and open_alert not in OPEN_KINDS:
            msg = f"only {' and '.join(OPEN_KINDS)} alerts can be opened, not {open_alert!r}"
            raise ValueError(msg)
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=False)
            ids = _apply_change(
                connection,
                tenant_id,
                source,
                expected=expected,
                status=status,
                at=at,
                actor=actor,
                open_alert=open_alert,
                recovered=recovered,
                detail=dict(detail or {}),
            )
            if ids is None:
                return None
            rows = (
                connection.execute(
                    select(health_alerts)
                    .where(health_alerts.c.tenant_id == tenant_id, health_alerts.c.id.in_(ids))
                    .order_by(health_alerts.c.id)
                )
                .mappings()
                .all()
            )
        return [_alert(row) for row in rows]

    def retire_source(self, tenant_id: TenantId, source: str, *, actor: str) -> SourceHealth:
        """An operator decommissioned this source: it stops alerting (open alerts close). Idempotent;
        the tenant must be active. Unknown sources raise `NotFoundError`."""
        return self._operator_status(tenant_id, source, to="retired", actor=actor)

    def restore_source(self, tenant_id: TenantId, source: str, *, actor: str) -> SourceHealth:
        """Undo `retire_source`: the source is checked again, starting `ok`. Idempotent."""
        return self._operator_status(tenant_id, source, to="ok", actor=actor)

    def _operator_status(
        self, tenant_id: TenantId, source: str, *, to: SourceStatus, actor: str
    ) -> SourceHealth:
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            row = connection.execute(select(source_health).where(_key(tenant_id, source))).mappings().first()
            if row is None:
                raise NotFoundError(
                    f"tenant {tenant_id!r} has no telemetry source {source!r}",
                    location=where(tenant_id, "source_health", source),
                )
            before = source_status(row["status"])
            if (to == "retired") == (before == "retired"):
                return _health(row)
            _apply_change(
                connection,
                tenant_id,
                source,
                expected=before,
                status=to,
                at=self._store.now(),
                actor=actor,
                open_alert=None,
                recovered=False,
                detail={"by": "operator"},
            )
            row = connection.execute(select(source_health).where(_key(tenant_id, source))).mappings().one()
        return _health(row)


def _apply_change(
    connection: Connection,
    tenant_id: TenantId,
    source: str,
    *,
    expected: SourceStatus,
    status: SourceStatus,
    at: datetime,
    actor: str,
    open_alert: AlertKind | None,
    recovered: bool,
    detail: dict[str, Any],
) -> builtins.list[int] | None:
    """The writes of one status change on the caller's transaction; None when the status was not
    `expected` (nothing written). Returns the ids of the alert rows closed and written."""
    changed = connection.execute(
        update(source_health)
        .where(_key(tenant_id, source), source_health.c.status == expected)
        .values(status=status, status_since=at)
    ).rowcount
    if not changed:
        return None
    open_ids = connection.execute(
        select(health_alerts.c.id).where(
            health_alerts.c.tenant_id == tenant_id,
            health_alerts.c.source == source,
            health_alerts.c.closed_at.is_(None),
            health_alerts.c.kind.in_(OPEN_KINDS),
        )
    ).scalars()
    ids = [int(i) for i in open_ids]
    if ids:
        connection.execute(
            update(health_alerts)
            .where(health_alerts.c.tenant_id == tenant_id, health_alerts.c.id.in_(ids))
            .values(closed_at=at)
        )
    new: builtins.list[AlertKind] = []
    if recovered:
        new.append("recovered")
    if open_alert is not None:
        new.append(open_alert)
    for kind in new:
        inserted = connection.execute(
            insert(health_alerts)
            .values(
                tenant_id=tenant_id,
                source=source,
                kind=kind,
                opened_at=at,
                closed_at=at if kind == "recovered" else None,
                detail=detail,
            )
            .returning(health_alerts.c.id)
        )
        ids.append(int(inserted.scalar_one()))
    append_audit(
        connection,
        at=at,
        actor=actor,
        action="health.status",
        tenant_id=tenant_id,
        object_type="source",
        object_id=source,
        details={"from": expected, "to": status, "alert_ids": ids, **detail},
    )
    return ids
