"""Detections: one row per (tenant, rule, event), stored exactly once.

The UNIQUE (tenant_id, rule_id, event_key) constraint plus INSERT ... ON CONFLICT DO NOTHING makes replays,
retries and concurrent writers harmless: `insert_many` returns how many rows were new.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select

from watchfloor.core.types import RuleId, RuleLevel, TenantId, rule_level
from watchfloor.storage.columns import as_utc
from watchfloor.storage.engine import Store, dialect_insert
from watchfloor.storage.errors import NotFoundError, where
from watchfloor.storage.schema import detections
from watchfloor.storage.tenants import require_tenant

TimeField = Literal["matched_at", "event_time"]


def event_key(source: str, record_id: str | int) -> str:
    """The stable id of an event: its source and its record id (or offset) in that source."""
    return f"{source}#{record_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewDetection:
    """A rule match to store. The tenant is the repository call's argument, not a field."""

    rule_id: RuleId
    rule_version: str
    rule_title: str
    rule_level: RuleLevel
    event_key: str
    source: str
    record_id: str | None
    event_time: datetime | None
    matched_at: datetime
    event: Mapping[str, Any] = field(compare=False)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Detection:
    """A stored detection."""

    id: int
    tenant_id: TenantId
    rule_id: RuleId
    rule_version: str
    rule_title: str
    rule_level: RuleLevel
    event_key: str
    source: str
    record_id: str | None
    event_time: datetime | None
    matched_at: datetime
    stored_at: datetime
    event: Mapping[str, Any] = field(compare=False)
    tags: tuple[str, ...] = ()


def _detection(row: Mapping[Any, Any]) -> Detection:
    return Detection(
        id=row["id"],
        tenant_id=TenantId(row["tenant_id"]),
        rule_id=RuleId(row["rule_id"]),
        rule_version=row["rule_version"],
        rule_title=row["rule_title"],
        rule_level=rule_level(row["rule_level"]),
        event_key=row["event_key"],
        source=row["source"],
        record_id=row["record_id"],
        event_time=row["event_time"],
        matched_at=row["matched_at"],
        stored_at=row["stored_at"],
        event=row["event"],
        tags=tuple(row["tags"]),
    )


class DetectionRepository:
    """Store detections exactly once; list and count them per tenant."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def insert_many(self, tenant_id: TenantId, rows: Iterable[NewDetection]) -> int:
        """Store the rows the tenant does not have yet (by rule_id + event_key); returns how many were new."""
        # One lock order for every writer: concurrent batches that overlap in different orders would
        # otherwise deadlock on PostgreSQL's unique index (each holding a key the other waits for).
        values = sorted(
            (_values(tenant_id, row) for row in rows), key=lambda item: (item["rule_id"], item["event_key"])
        )
        if not values:
            return 0
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=False)
            stored_at = self._store.now()
            for item in values:
                item["stored_at"] = stored_at
            statement = (
                dialect_insert(connection, detections)
                .on_conflict_do_nothing(
                    index_elements=[detections.c.tenant_id, detections.c.rule_id, detections.c.event_key]
                )
                .returning(detections.c.id)
            )
            # RETURNING yields only the rows actually inserted, on both dialects and with executemany.
            inserted = connection.execute(statement, values).all()
        return len(inserted)

    def list(
        self,
        tenant_id: TenantId,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        rule_id: str | None = None,
        limit: int = 100,
        by: TimeField = "matched_at",
    ) -> builtins.list[Detection]:
        """Newest first by `by` (then id); `since` is inclusive, `until` exclusive."""
        column = detections.c.event_time if by == "event_time" else detections.c.matched_at
        query = select(detections).where(detections.c.tenant_id == tenant_id)
        if since is not None:
            query = query.where(column >= as_utc(since))
        if until is not None:
            query = query.where(column < as_utc(until))
        if rule_id is not None:
            query = query.where(detections.c.rule_id == rule_id)
        query = query.order_by(column.desc(), detections.c.id.desc()).limit(limit)
        with self._store.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [_detection(row) for row in rows]

    def get(self, tenant_id: TenantId, detection_id: int) -> Detection:
        """One detection of the tenant (NotFoundError when absent or another tenant's)."""
        query = select(detections).where(detections.c.tenant_id == tenant_id, detections.c.id == detection_id)
        with self._store.read() as connection:
            row = connection.execute(query).mappings().one_or_none()
        if row is None:
            raise NotFoundError(
                f"no detection {detection_id}", location=where(tenant_id, "detections", str(detection_id))
            )
        return _detection(row)

    def after_all_tenants(
        self, after_id: int, *, stored_before: datetime, limit: int = 1000
    ) -> builtins.list[Detection]:
        """Detections of every tenant with id > `after_id`, stored before `stored_before`, by id.

        The one all-tenant scan: for stages that tail detections (triage). `stored_before` should lag the
        clock by more than any write transaction lasts, so ids that commit out of order on PostgreSQL are
        not skipped.
        """
        query = (
            select(detections)
            .where(detections.c.id > after_id, detections.c.stored_at < as_utc(stored_before))
            .order_by(detections.c.id)
            .limit(limit)
        )
        with self._store.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [_detection(row) for row in rows]

    def count(self, tenant_id: TenantId, *, rule_id: str | None = None) -> int:
        query = select(func.count()).select_from(detections).where(detections.c.tenant_id == tenant_id)
        if rule_id is not None:
            query = query.where(detections.c.rule_id == rule_id)
        with self._store.read() as connection:
            return int(connection.execute(query).scalar_one())


def _values(tenant_id: TenantId, row: NewDetection) -> dict[str, Any]:
    if not row.event_key:
        msg = f"rule {row.rule_id}: a detection needs an event_key (source + record id)"
        raise ValueError(msg)
    return {
        "tenant_id": tenant_id,
        "rule_id": row.rule_id,
        "rule_version": row.rule_version,
        "rule_title": row.rule_title,
        "rule_level": rule_level(row.rule_level),
        "event_key": row.event_key,
        "source": row.source,
        "record_id": row.record_id,
        "event_time": row.event_time,
        "matched_at": row.matched_at,
        "event": dict(row.event),
        "tags": list(row.tags),
    }
