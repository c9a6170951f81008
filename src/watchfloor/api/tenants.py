"""Tenants: create, list, read, update, retire; and a tenant's audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from watchfloor.api.context import DEFAULT_PAGE, Actor, ApiContext, Limit, capped
from watchfloor.storage import Contact, Tenant
from watchfloor.storage.tenants import TenantStatus, Vertical

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class ContactDTO(BaseModel):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    role: str = Field(max_length=200)
    escalation_order: int = Field(ge=1, le=100, description="1 is called first")
    phone: str | None = Field(default=None, max_length=50)

    def to_domain(self) -> Contact:
        return Contact(
            name=self.name,
            email=self.email,
            role=self.role,
            escalation_order=self.escalation_order,
            phone=self.phone,
        )


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=TENANT_ID_PATTERN, description="1-63 of [a-z0-9_-], starting with a letter/digit")
    name: str = Field(min_length=1, max_length=200)
    vertical: Vertical
    tier: str = Field(min_length=1, max_length=64, description="service tier, e.g. standard or premium")
    contacts: list[ContactDTO] = Field(default_factory=list, max_length=50)


class TenantUpdate(BaseModel):
    """Fields to change; absent (or null) fields stay as they are. `contacts` replaces the whole list."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    vertical: Vertical | None = None
    tier: str | None = Field(default=None, min_length=1, max_length=64)
    contacts: list[ContactDTO] | None = Field(default=None, max_length=50)


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    vertical: Vertical
    tier: str
    contacts: list[ContactDTO]
    status: TenantStatus
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    tenant_id: str
    object_type: str
    object_id: str
    details: dict[str, object]


def _out(tenant: Tenant) -> TenantOut:
    return TenantOut.model_validate(tenant)


def routes(router: APIRouter, ctx: ApiContext) -> None:
    db = ctx.db

    @router.post("/tenants", status_code=status.HTTP_201_CREATED, tags=["tenants"])
    def create_tenant(body: TenantCreate, actor: Actor) -> TenantOut:
        """Create an active tenant. A taken id is 409."""
        tenant = db.tenants.create(
            body.id,
            name=body.name,
            vertical=body.vertical,
            tier=body.tier,
            contacts=[c.to_domain() for c in body.contacts],
            actor=actor,
        )
        return _out(tenant)

    @router.get("/tenants", tags=["tenants"])
    def list_tenants(include_retired: bool = False) -> list[TenantOut]:
        """Tenants by id; retired ones only with `include_retired=true`."""
        return [_out(t) for t in db.tenants.list(include_retired=include_retired)]

    @router.get("/tenants/{tenant}", tags=["tenants"])
    def get_tenant(tenant: str) -> TenantOut:
        return _out(ctx.tenant(tenant))

    @router.patch("/tenants/{tenant}", tags=["tenants"])
    def update_tenant(tenant: str, body: TenantUpdate, actor: Actor) -> TenantOut:
        """Change the given fields. A retired tenant is 409."""
        tid = ctx.tenant_id(tenant)
        contacts = None if body.contacts is None else [c.to_domain() for c in body.contacts]
        updated = db.tenants.update(
            tid, actor=actor, name=body.name, vertical=body.vertical, tier=body.tier, contacts=contacts
        )
        return _out(updated)

    @router.post("/tenants/{tenant}/retire", tags=["tenants"])
    def retire_tenant(tenant: str, actor: Actor) -> TenantOut:
        """Soft-retire: history stays, intake tokens stop resolving. Retiring twice changes nothing."""
        return _out(db.tenants.retire(ctx.tenant_id(tenant), actor=actor))

    @router.get("/tenants/{tenant}/audit", tags=["audit"])
    def list_audit(
        tenant: str,
        limit: Limit = DEFAULT_PAGE,
        action: Annotated[str | None, Query(max_length=100)] = None,
    ) -> list[AuditEntryOut]:
        """The tenant's audit trail, newest first, optionally one action (e.g. `token.create`)."""
        entries = db.audit.list(ctx.tenant_id(tenant), limit=capped(limit), action=action)
        return [AuditEntryOut.model_validate(e) for e in entries]
