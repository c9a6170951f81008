"""Alerts and suppressions: what triage decided, stored per tenant.

Alerts are upserted on their stable id (derived from the dedup key), so replaying detections through triage
lands on the same rows. Suppressions are state changes made by people: each create/disable is audited.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, func, select, update

from watchfloor.core.types import RuleId, Severity, TenantId
from watchfloor.storage.audit import append_audit
from watchfloor.storage.engine import Store, dialect_insert
from watchfloor.storage.errors import NotFoundError, where
from watchfloor.storage.schema import alerts, suppressions
from watchfloor.storage.tenants import require_tenant
from watchfloor.triage.models import (
    Alert,
    AlertStatus,
    Condition,
    ConditionOp,
    Entity,
    EntityKind,
    RiskFactor,
    RiskScore,
    Suppression,
)


# -- JSON shapes shared with storage/cases.py ---------------------------------------------------------
def entities_json(entities: Iterable[Entity]) -> list[list[str]]:
    return [[entity.kind, entity.value] for entity in entities]


def entities_from(data: Iterable[Sequence[str]]) -> tuple[Entity, ...]:
    return tuple(Entity(cast("EntityKind", kind), value) for kind, value in data)


def risk_json(risk: RiskScore) -> dict[str, Any]:
    return {
        "score": risk.score,
        "factors": [{"name": f.name, "points": f.points, "detail": f.detail} for f in risk.factors],
    }


def risk_from(data: Mapping[str, Any]) -> RiskScore:
    return RiskScore(
        score=int(data["score"]),
        factors=tuple(
            RiskFactor(name=f["name"], points=float(f["points"]), detail=f["detail"]) for f in data["factors"]
        ),
    )


def conditions_json(conditions: Iterable[Condition]) -> list[dict[str, Any]]:
    return [
        {"field": c.field, "op": c.op, "value": list(c.value) if isinstance(c.value, tuple) else c.value}
        for c in conditions
    ]


def conditions_from(data: Iterable[Mapping[str, Any]]) -> tuple[Condition, ...]:
    return tuple(
        Condition(
            field=item["field"],
            op=cast("ConditionOp", item["op"]),
            value=tuple(item["value"]) if isinstance(item["value"], list) else item["value"],
        )
        for item in data
    )


def _alert_values(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "tenant_id": alert.tenant_id,
        "dedup_key": alert.dedup_key,
        "rule_id": alert.rule_id,
        "rule_title": alert.rule_title,
        "rule_author": alert.rule_author,
        "severity": alert.severity,
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "count": alert.count,
        "entities": entities_json(alert.entities),
        "techniques": list(alert.techniques),
        "tactics": list(alert.tactics),
        "detection_ids": list(alert.detection_ids),
        "risk": risk_json(alert.risk),
        "risk_score": alert.risk.score,
        "status": alert.status,
        "incident_id": alert.incident_id,
        "closed_reason": alert.closed_reason,
    }


def _alert(row: Mapping[Any, Any]) -> Alert:
    return Alert(
        id=row["id"],
        tenant_id=TenantId(row["tenant_id"]),
        dedup_key=row["dedup_key"],
        rule_id=RuleId(row["rule_id"]),
        rule_title=row["rule_title"],
        rule_author=row["rule_author"],
        severity=cast("Severity", row["severity"]),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        count=int(row["count"]),
        entities=entities_from(row["entities"]),
        techniques=tuple(row["techniques"]),
        tactics=tuple(row["tactics"]),
        detection_ids=tuple(row["detection_ids"]),
        risk=risk_from(row["risk"]),
        status=cast("AlertStatus", row["status"]),
        incident_id=row["incident_id"],
        closed_reason=row["closed_reason"],
    )


_UPDATABLE = (
    "last_seen",
    "count",
    "entities",
    "techniques",
    "tactics",
    "detection_ids",
    "risk",
    "risk_score",
    "severity",
    "status",
    "incident_id",
    "closed_reason",
)


def upsert_alerts(connection: Connection, tenant_id: TenantId | None, batch: Sequence[Alert]) -> None:
    """Insert or update alerts on `connection` (the caller's transaction). Rows of another tenant than
    `tenant_id` raise; None: alerts of several tenants, each already checked by the caller (an existing
    alert id is still only ever updated by an alert of its own tenant)."""
    if not batch:
        return
    values = []
    for alert in sorted(batch, key=lambda a: a.id):  # one lock order for concurrent writers
        if tenant_id is not None and alert.tenant_id != tenant_id:
            msg = f"alert {alert.id} belongs to tenant {alert.tenant_id!r}, not {tenant_id!r}"
            raise ValueError(msg)
        values.append(_alert_values(alert))
    connection.execute(_upsert_statement(connection), values)


_UPSERTS: dict[str, Any] = {}


def _upsert_statement(connection: Connection) -> Any:
    """The dialect's upsert statement, built once (statements are immutable; building one costs more than
    executing a small batch)."""
    name = connection.dialect.name
    statement = _UPSERTS.get(name)
    if statement is None:
        insert_ = dialect_insert(connection, alerts)
        statement = _UPSERTS[name] = insert_.on_conflict_do_update(
            index_elements=[alerts.c.id],
            set_={column: insert_.excluded[column] for column in _UPDATABLE},
            where=alerts.c.tenant_id == insert_.excluded.tenant_id,
        )
    return statement


class AlertRepository:
    """Alerts per tenant: upsert batches from triage, read them for the console and incidents."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def upsert_many(self, tenant_id: TenantId, batch: Sequence[Alert]) -> None:
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=False)
            upsert_alerts(connection, tenant_id, batch)

    def get(self, tenant_id: TenantId, alert_id: str) -> Alert:
        with self._store.read() as connection:
            row = (
                connection.execute(
                    select(alerts).where(alerts.c.tenant_id == tenant_id, alerts.c.id == alert_id)
                )
                .mappings()
                .one_or_none()
            )
        if row is None:
            raise NotFoundError(f"no alert {alert_id!r}", location=where(tenant_id, "alerts", alert_id))
        return _alert(row)

    def list(
        self,
        tenant_id: TenantId,
        *,
        incident_id: str | None = None,
        status: AlertStatus | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> builtins.list[Alert]:
        """Newest (by last_seen) first."""
        query = select(alerts).where(alerts.c.tenant_id == tenant_id)
        if incident_id is not None:
            query = query.where(alerts.c.incident_id == incident_id)
        if status is not None:
            query = query.where(alerts.c.status == status)
        if since is not None:
            query = query.where(alerts.c.last_seen >= since)
        query = query.order_by(alerts.c.last_seen.desc(), alerts.c.id).limit(limit)
        with self._store.read() as connection:
            return [_alert(row) for row in connection.execute(query).mappings()]

    def count(self, tenant_id: TenantId, *, status: AlertStatus | None = None) -> int:
        query = select(func.count()).select_from(alerts).where(alerts.c.tenant_id == tenant_id)
        if status is not None:
            query = query.where(alerts.c.status == status)
        with self._store.read() as connection:
            return int(connection.execute(query).scalar_one())


# -- suppressions ----------------------------------------------------------------------------------
def _suppression(row: Mapping[Any, Any]) -> Suppression:
    return Suppression(
        id=row["id"],
        tenant_id=TenantId(row["tenant_id"]),
        conditions=conditions_from(row["conditions"]),
        rule_id=RuleId(row["rule_id"]) if row["rule_id"] is not None else None,
        reason=row["reason"],
        author=row["author"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        enabled=bool(row["enabled"]),
    )


class SuppressionRepository:
    """Per-tenant suppressions. Creating and disabling are audited with the author and the reason."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, suppression: Suppression, *, actor: str) -> Suppression:
        tenant_id = suppression.tenant_id
        if not suppression.reason.strip():
            msg = "a suppression needs a reason"
            raise ValueError(msg)
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            connection.execute(
                suppressions.insert().values(
                    id=suppression.id,
                    tenant_id=tenant_id,
                    rule_id=suppression.rule_id,
                    conditions=conditions_json(suppression.conditions),
                    reason=suppression.reason,
                    author=suppression.author,
                    created_at=suppression.created_at,
                    expires_at=suppression.expires_at,
                    enabled=int(suppression.enabled),
                    hits=0,
                    last_hit_at=None,
                )
            )
            append_audit(
                connection,
                at=self._store.now(),
                actor=actor,
                action="suppression.create",
                tenant_id=tenant_id,
                object_type="suppression",
                object_id=suppression.id,
                details={
                    "rule_id": suppression.rule_id,
                    "conditions": conditions_json(suppression.conditions),
                    "reason": suppression.reason,
                    "expires_at": suppression.expires_at.isoformat() if suppression.expires_at else None,
                },
            )
        return suppression

    def disable(self, tenant_id: TenantId, suppression_id: str, *, actor: str, reason: str) -> None:
        with self._store.write() as connection:
            result = connection.execute(
                update(suppressions)
                .where(suppressions.c.tenant_id == tenant_id, suppressions.c.id == suppression_id)
                .values(enabled=0)
            )
            if result.rowcount == 0:
                raise NotFoundError(
                    f"no suppression {suppression_id!r}",
                    location=where(tenant_id, "suppressions", suppression_id),
                )
            append_audit(
                connection,
                at=self._store.now(),
                actor=actor,
                action="suppression.disable",
                tenant_id=tenant_id,
                object_type="suppression",
                object_id=suppression_id,
                details={"reason": reason},
            )

    def list(self, tenant_id: TenantId, *, enabled_only: bool = False) -> builtins.list[Suppression]:
        query = select(suppressions).where(suppressions.c.tenant_id == tenant_id)
        if enabled_only:
            query = query.where(suppressions.c.enabled == 1)
        with self._store.read() as connection:
            return [
                _suppression(row) for row in connection.execute(query.order_by(suppressions.c.id)).mappings()
            ]

    def list_enabled_all(self) -> builtins.list[Suppression]:
        """Every tenant's enabled suppressions, to load triage at start-up (the one all-tenant scan)."""
        query = select(suppressions).where(suppressions.c.enabled == 1).order_by(suppressions.c.id)
        with self._store.read() as connection:
            return [_suppression(row) for row in connection.execute(query).mappings()]

    def record_hits(self, tenant_id: TenantId, hits: Mapping[str, tuple[int, datetime]]) -> None:
        """Add hit counts (suppression id -> (count, last hit time)) found by triage."""
        if not hits:
            return
        with self._store.write() as connection:
            for suppression_id, (count, at) in sorted(hits.items()):
                connection.execute(
                    update(suppressions)
                    .where(suppressions.c.tenant_id == tenant_id, suppressions.c.id == suppression_id)
                    .values(hits=suppressions.c.hits + count, last_hit_at=at)
                )

    def hits(self, tenant_id: TenantId, suppression_id: str) -> int:
        with self._store.read() as connection:
            value = connection.execute(
                select(suppressions.c.hits).where(
                    suppressions.c.tenant_id == tenant_id, suppressions.c.id == suppression_id
                )
            ).scalar_one_or_none()
        if value is None:
            raise NotFoundError(
                f"no suppression {suppression_id!r}",
                location=where(tenant_id, "suppressions", suppression_id),
            )
        return int(value)
