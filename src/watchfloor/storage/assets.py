"""Assets: a tenant's hosts and users, with how much they matter (criticality).

Names are stored exactly as given; callers normalise (e.g. lower-case host names) before calling.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import delete, select, update

from watchfloor.core.types import TenantId
from watchfloor.storage.audit import append_audit
from watchfloor.storage.engine import Store, dialect_insert
from watchfloor.storage.schema import assets
from watchfloor.storage.tenants import require_tenant

AssetKind = Literal["host", "user"]
Criticality = Literal["low", "medium", "high", "critical"]
ASSET_KINDS: tuple[AssetKind, ...] = get_args(AssetKind)
CRITICALITIES: tuple[Criticality, ...] = get_args(Criticality)


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    tenant_id: TenantId
    kind: AssetKind
    name: str
    criticality: Criticality
    attributes: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


def asset_kind(value: str) -> AssetKind:
    for kind in ASSET_KINDS:
        if value == kind:
            return kind
    msg = f"unknown asset kind {value!r}: use one of {', '.join(ASSET_KINDS)}"
    raise ValueError(msg)


def criticality_level(value: str) -> Criticality:
    for level in CRITICALITIES:
        if value == level:
            return level
    msg = f"unknown criticality {value!r}: use one of {', '.join(CRITICALITIES)}"
    raise ValueError(msg)


def _asset(row: Mapping[Any, Any]) -> Asset:
    return Asset(
        tenant_id=TenantId(row["tenant_id"]),
        kind=asset_kind(row["kind"]),
        name=row["name"],
        criticality=criticality_level(row["criticality"]),
        attributes=row["attributes"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class AssetRepository:
    """Upsert, read and delete a tenant's hosts and users.

    Changes write audit entries; an upsert that changes nothing writes nothing.
    """

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def upsert(
        self,
        tenant_id: TenantId,
        *,
        kind: str,
        name: str,
        criticality: str,
        attributes: Mapping[str, Any] | None = None,
        actor: str,
    ) -> Asset:
        """Create the asset or replace its criticality and attributes."""
        values = {
            "kind": asset_kind(kind),
            "name": name,
            "criticality": criticality_level(criticality),
            "attributes": dict(attributes or {}),
        }
        if not name:
            msg = "an asset needs a name"
            raise ValueError(msg)
        key = (assets.c.tenant_id == tenant_id) & (assets.c.kind == kind) & (assets.c.name == name)
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            now = self._store.now()
            before = connection.execute(select(assets).where(key)).mappings().first()
            if before is None:
                statement = dialect_insert(connection, assets).values(
                    tenant_id=tenant_id, created_at=now, updated_at=now, **values
                )
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=[assets.c.tenant_id, assets.c.kind, assets.c.name],
                        set_={
                            "criticality": values["criticality"],
                            "attributes": values["attributes"],
                            "updated_at": now,
                        },
                    )
                )
                action = "asset.create"
            elif (
                before["criticality"] == values["criticality"]
                and before["attributes"] == values["attributes"]
            ):
                return _asset(before)
            else:
                connection.execute(
                    update(assets)
                    .where(key)
                    .values(
                        criticality=values["criticality"], attributes=values["attributes"], updated_at=now
                    )
                )
                action = "asset.update"
            append_audit(
                connection,
                at=now,
                actor=actor,
                action=action,
                tenant_id=tenant_id,
                object_type=kind,
                object_id=name,
                details={
                    "criticality": values["criticality"],
                    "previous_criticality": None if before is None else before["criticality"],
                    "attributes": sorted(values["attributes"]),
                },
            )
            row = connection.execute(select(assets).where(key)).mappings().one()
        return _asset(row)

    def get(self, tenant_id: TenantId, kind: str, name: str) -> Asset | None:
        key = (assets.c.tenant_id == tenant_id) & (assets.c.kind == kind) & (assets.c.name == name)
        with self._store.read() as connection:
            row = connection.execute(select(assets).where(key)).mappings().first()
        return None if row is None else _asset(row)

    def list(
        self, tenant_id: TenantId, *, kind: str | None = None, criticality: str | None = None
    ) -> builtins.list[Asset]:
        """The tenant's assets by kind then name, optionally one kind or one criticality."""
        query = select(assets).where(assets.c.tenant_id == tenant_id)
        if kind is not None:
            query = query.where(assets.c.kind == asset_kind(kind))
        if criticality is not None:
            query = query.where(assets.c.criticality == criticality_level(criticality))
        with self._store.read() as connection:
            rows = connection.execute(query.order_by(assets.c.kind, assets.c.name)).mappings().all()
        return [_asset(row) for row in rows]

    def delete(self, tenant_id: TenantId, kind: str, name: str, *, actor: str) -> bool:
        """Remove one asset; False when the tenant has no such asset."""
        key = (assets.c.tenant_id == tenant_id) & (assets.c.kind == kind) & (assets.c.name == name)
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            removed = connection.execute(delete(assets).where(key)).rowcount
            if removed:
                append_audit(
                    connection,
                    at=self._store.now(),
                    actor=actor,
                    action="asset.delete",
                    tenant_id=tenant_id,
                    object_type=kind,
                    object_id=name,
                )
        return bool(removed)
