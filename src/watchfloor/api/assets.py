"""Assets: a tenant's hosts and users with their criticality; upsert by (kind, name), delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from watchfloor.api.context import Actor, ApiContext
from watchfloor.api.problems import not_found
from watchfloor.storage.assets import AssetKind, Criticality

AssetName = Annotated[str, Path(min_length=1, max_length=255, description="host or user name, as stored")]


class AssetPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criticality: Criticality
    attributes: dict[str, JsonValue] = Field(default_factory=dict, description="free-form, e.g. os, owner")


class AssetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tenant_id: str
    kind: AssetKind
    name: str
    criticality: Criticality
    attributes: dict[str, JsonValue]
    created_at: datetime
    updated_at: datetime


def routes(router: APIRouter, ctx: ApiContext) -> None:
    db = ctx.db

    @router.get("/tenants/{tenant}/assets", tags=["assets"])
    def list_assets(
        tenant: str,
        kind: AssetKind | None = None,
        criticality: Annotated[Criticality | None, Query()] = None,
    ) -> list[AssetOut]:
        """The tenant's asset inventory by kind then name."""
        found = db.assets.list(ctx.tenant_id(tenant), kind=kind, criticality=criticality)
        return [AssetOut.model_validate(a) for a in found]

    @router.get("/tenants/{tenant}/assets/{kind}/{name}", tags=["assets"])
    def get_asset(tenant: str, kind: AssetKind, name: AssetName) -> AssetOut:
        asset = db.assets.get(ctx.tenant_id(tenant), kind, name)
        if asset is None:
            raise not_found(f"tenant {tenant!r} has no {kind} {name!r}")
        return AssetOut.model_validate(asset)

    @router.put("/tenants/{tenant}/assets/{kind}/{name}", tags=["assets"])
    def put_asset(tenant: str, kind: AssetKind, name: AssetName, body: AssetPut, actor: Actor) -> AssetOut:
        """Create the asset or replace its criticality and attributes (idempotent)."""
        asset = db.assets.upsert(
            ctx.tenant_id(tenant),
            kind=kind,
            name=name,
            criticality=body.criticality,
            attributes=body.attributes,
            actor=actor,
        )
        return AssetOut.model_validate(asset)

    @router.delete(
        "/tenants/{tenant}/assets/{kind}/{name}", status_code=status.HTTP_204_NO_CONTENT, tags=["assets"]
    )
    def delete_asset(tenant: str, kind: AssetKind, name: AssetName, actor: Actor) -> Response:
        if not db.assets.delete(ctx.tenant_id(tenant), kind, name, actor=actor):
            raise not_found(f"tenant {tenant!r} has no {kind} {name!r}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)
