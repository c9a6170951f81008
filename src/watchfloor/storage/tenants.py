"""Tenants: the customers we watch. Tenant admin is the one repository not scoped by a tenant argument.

Retiring is soft (`status="retired"`, `retired_at`): history stays, tokens stop resolving, no new tokens,
no further changes to the tenant or its assets.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import Connection, insert, select, update

from watchfloor.core.types import TenantId
from watchfloor.core.types import tenant_id as valid_tenant_id
from watchfloor.storage.audit import append_audit
from watchfloor.storage.engine import Store
from watchfloor.storage.errors import AlreadyExistsError, NotFoundError, TenantRetiredError, where
from watchfloor.storage.schema import tenants

Vertical = Literal["healthcare", "legal", "manufacturing", "other"]
TenantStatus = Literal["active", "retired"]
VERTICALS: tuple[Vertical, ...] = get_args(Vertical)


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """Who to call for a tenant, in `escalation_order` (1 first)."""

    name: str
    email: str
    role: str
    escalation_order: int
    phone: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            msg = "a contact needs a name"
            raise ValueError(msg)
        if "@" not in self.email:
            msg = f"contact {self.name!r}: {self.email!r} is not an e-mail address"
            raise ValueError(msg)
        if self.escalation_order < 1:
            msg = f"contact {self.name!r}: escalation_order starts at 1, got {self.escalation_order}"
            raise ValueError(msg)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "role": self.role,
            "escalation_order": self.escalation_order,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Contact:
        return cls(
            name=data["name"],
            email=data["email"],
            phone=data.get("phone"),
            role=data["role"],
            escalation_order=int(data["escalation_order"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    id: TenantId
    name: str
    vertical: Vertical
    tier: str
    contacts: tuple[Contact, ...]
    status: TenantStatus
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"


def _vertical(value: str) -> Vertical:
    for vertical in VERTICALS:
        if value == vertical:
            return vertical
    msg = f"unknown vertical {value!r}: use one of {', '.join(VERTICALS)}"
    raise ValueError(msg)


def _contacts(contacts: Iterable[Contact]) -> builtins.list[dict[str, Any]]:
    return [contact.to_json() for contact in sorted(contacts, key=lambda c: (c.escalation_order, c.name))]


def _tenant(row: Mapping[Any, Any]) -> Tenant:
    return Tenant(
        id=TenantId(row["id"]),
        name=row["name"],
        vertical=_vertical(row["vertical"]),
        tier=row["tier"],
        contacts=tuple(Contact.from_json(item) for item in row["contacts"]),
        status="retired" if row["status"] == "retired" else "active",
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        retired_at=row["retired_at"],
    )


def require_tenant(connection: Connection, tenant_id: str, *, active: bool) -> None:
    """Raise `NotFoundError` unless the tenant exists; with `active`, `TenantRetiredError` if retired."""
    status = connection.execute(
        select(tenants.c.status).where(tenants.c.id == tenant_id)
    ).scalar_one_or_none()
    if status is None:
        raise NotFoundError(f"no tenant {tenant_id!r}", location=where(tenant_id, "tenants", tenant_id))
    if active and status != "active":
        raise TenantRetiredError(
            f"tenant {tenant_id!r} is retired; it accepts no changes",
            location=where(tenant_id, "tenants", tenant_id),
        )


class TenantRepository:
    """Create, read, update and retire tenants. Every change writes an audit entry."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(
        self,
        tenant_id: str,
        *,
        name: str,
        vertical: str,
        tier: str,
        contacts: Sequence[Contact] = (),
        actor: str,
    ) -> Tenant:
        """A new active tenant. `tenant_id` must pass `core.types.tenant_id`; a taken id raises."""
        tid = valid_tenant_id(tenant_id)
        if not name.strip():
            msg = "a tenant needs a name"
            raise ValueError(msg)
        now = self._store.now()
        values = {
            "id": tid,
            "name": name,
            "vertical": _vertical(vertical),
            "tier": tier,
            "contacts": _contacts(contacts),
            "status": "active",
            "created_at": now,
            "updated_at": now,
            "retired_at": None,
        }
        with self._store.write() as connection:
            taken = connection.execute(select(tenants.c.id).where(tenants.c.id == tid)).first()
            if taken is not None:
                raise AlreadyExistsError(
                    f"tenant {tid!r} exists already", location=where(tid, "tenants", tid)
                )
            connection.execute(insert(tenants).values(values))
            append_audit(
                connection,
                at=now,
                actor=actor,
                action="tenant.create",
                tenant_id=tid,
                object_type="tenant",
                object_id=tid,
                details={"name": name, "vertical": vertical, "tier": tier, "contacts": len(contacts)},
            )
        return _tenant(values)

    def get(self, tenant_id: TenantId) -> Tenant | None:
        with self._store.read() as connection:
            row = connection.execute(select(tenants).where(tenants.c.id == tenant_id)).mappings().first()
        return None if row is None else _tenant(row)

    def list(self, *, include_retired: bool = False) -> builtins.list[Tenant]:
        """Tenants by id; retired ones only when asked."""
        query = select(tenants).order_by(tenants.c.id)
        if not include_retired:
            query = query.where(tenants.c.status == "active")
        with self._store.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [_tenant(row) for row in rows]

    def update(
        self,
        tenant_id: TenantId,
        *,
        actor: str,
        name: str | None = None,
        vertical: str | None = None,
        tier: str | None = None,
        contacts: Sequence[Contact] | None = None,
    ) -> Tenant:
        """Change the given fields (None leaves a field as it is). Retired tenants cannot change."""
        changes: dict[str, Any] = {}
        details: dict[str, Any] = {}
        if name is not None:
            if not name.strip():
                msg = "a tenant needs a name"
                raise ValueError(msg)
            changes["name"] = details["name"] = name
        if vertical is not None:
            changes["vertical"] = details["vertical"] = _vertical(vertical)
        if tier is not None:
            changes["tier"] = details["tier"] = tier
        if contacts is not None:
            changes["contacts"] = _contacts(contacts)
            details["contacts"] = len(contacts)
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            if changes:
                now = self._store.now()
                connection.execute(
                    update(tenants).where(tenants.c.id == tenant_id).values({**changes, "updated_at": now})
                )
                append_audit(
                    connection,
                    at=now,
                    actor=actor,
                    action="tenant.update",
                    tenant_id=tenant_id,
                    object_type="tenant",
                    object_id=tenant_id,
                    details={"changed": sorted(details), **details},
                )
            row = connection.execute(select(tenants).where(tenants.c.id == tenant_id)).mappings().one()
        return _tenant(row)

    def retire(self, tenant_id: TenantId, *, actor: str) -> Tenant:
        """Soft-retire: keep every row, stop its tokens. Retiring a retired tenant changes nothing."""
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=False)
            now = self._store.now()
            changed = connection.execute(
                update(tenants)
                .where(tenants.c.id == tenant_id, tenants.c.status == "active")
                .values(status="retired", retired_at=now, updated_at=now)
            ).rowcount
            if changed:
                append_audit(
                    connection,
                    at=now,
                    actor=actor,
                    action="tenant.retire",
                    tenant_id=tenant_id,
                    object_type="tenant",
                    object_id=tenant_id,
                )
            row = connection.execute(select(tenants).where(tenants.c.id == tenant_id)).mappings().one()
        return _tenant(row)
