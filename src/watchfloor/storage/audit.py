"""The audit log: who changed what, for which tenant, written in the same transaction as the change.

Repositories call `append_audit` on every state change; other stages use `AuditRepository.append`.
Details are JSON; anything shaped like an intake token is refused, so a secret can never land here.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from watchfloor.core.types import TenantId
from watchfloor.storage.engine import Store
from watchfloor.storage.errors import StorageError, where
from watchfloor.storage.schema import audit_log

# Same shape as tokens.TOKEN_RE, without anchors: a plaintext intake token anywhere in the details.
_TOKEN_SHAPE = re.compile(r"wf_[a-z0-9]{8}_[A-Za-z0-9_-]{43}")


class SecretInAuditError(StorageError):
    """Audit details contained something shaped like an intake token."""

    code = "storage.secret_in_audit"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    tenant_id: TenantId
    object_type: str
    object_id: str
    details: Mapping[str, Any] = field(compare=False)


def append_audit(
    connection: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    tenant_id: str,
    object_type: str,
    object_id: str,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Write one audit entry on `connection` (inside the caller's transaction); returns its id."""
    if not actor.strip():
        msg = "every state change needs an actor (user name, service or API client id)"
        raise ValueError(msg)
    payload = dict(details or {})
    # Fails on values JSON cannot hold, before anything is written.
    if _TOKEN_SHAPE.search(json.dumps(payload, sort_keys=True)):
        msg = f"audit details for {action} look like they contain an intake token; refusing to store them"
        raise SecretInAuditError(msg, location=where(tenant_id, "audit_log"))
    result = connection.execute(
        insert(audit_log)
        .values(
            at=at,
            actor=actor,
            action=action,
            tenant_id=tenant_id,
            object_type=object_type,
            object_id=object_id,
            details=payload,
        )
        .returning(audit_log.c.id)
    )
    return int(result.scalar_one())


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAuditEntry:
    """One entry for `append_audit_many`."""

    at: datetime
    actor: str
    action: str
    tenant_id: str
    object_type: str
    object_id: str
    details: Mapping[str, Any] = field(default_factory=dict)


def append_audit_many(connection: Connection, entries: Sequence[NewAuditEntry]) -> None:
    """Write several audit entries in one statement (same checks as `append_audit`, all before writing)."""
    rows = []
    for entry in entries:
        if not entry.actor.strip():
            msg = "every state change needs an actor (user name, service or API client id)"
            raise ValueError(msg)
        payload = dict(entry.details)
        if _TOKEN_SHAPE.search(json.dumps(payload, sort_keys=True)):
            msg = (
                f"audit details for {entry.action} look like they contain an intake token; "
                "refusing to store them"
            )
            raise SecretInAuditError(msg, location=where(entry.tenant_id, "audit_log"))
        rows.append(
            {
                "at": entry.at,
                "actor": entry.actor,
                "action": entry.action,
                "tenant_id": entry.tenant_id,
                "object_type": entry.object_type,
                "object_id": entry.object_id,
                "details": payload,
            }
        )
    if rows:
        connection.execute(insert(audit_log), rows)


class AuditRepository:
    """Read the audit trail of one tenant; append entries for changes made outside storage."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def append(
        self,
        tenant_id: TenantId,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Record a state change made elsewhere (e.g. an API login or a case transition); returns the id."""
        with self._store.write() as connection:
            return append_audit(
                connection,
                at=self._store.now(),
                actor=actor,
                action=action,
                tenant_id=tenant_id,
                object_type=object_type,
                object_id=object_id,
                details=details,
            )

    def list(
        self, tenant_id: TenantId, *, limit: int = 100, action: str | None = None
    ) -> builtins.list[AuditEntry]:
        """The tenant's newest entries first, optionally only one action."""
        query = select(audit_log).where(audit_log.c.tenant_id == tenant_id)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        query = query.order_by(audit_log.c.id.desc()).limit(limit)
        with self._store.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            AuditEntry(
                id=row["id"],
                at=row["at"],
                actor=row["actor"],
                action=row["action"],
                tenant_id=TenantId(row["tenant_id"]),
                object_type=row["object_type"],
                object_id=row["object_id"],
                details=row["details"],
            )
            for row in rows
        ]
