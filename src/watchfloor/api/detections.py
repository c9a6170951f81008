"""Detections: a tenant's stored rule matches, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from watchfloor.api.context import DEFAULT_PAGE, ApiContext, Limit, aware, capped
from watchfloor.core.types import RuleLevel
from watchfloor.storage.detections import TimeField


class DetectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str
    rule_id: str
    rule_version: str
    rule_title: str
    rule_level: RuleLevel
    event_key: str
    source: str
    record_id: str | None
    event_time: datetime | None
    matched_at: datetime
    stored_at: datetime
    tags: list[str]
    event: dict[str, Any]


def routes(router: APIRouter, ctx: ApiContext) -> None:
    db = ctx.db

    @router.get("/tenants/{tenant}/detections", tags=["detections"])
    def list_detections(
        tenant: str,
        since: Annotated[datetime | None, Query(description="inclusive; naive means UTC")] = None,
        until: Annotated[datetime | None, Query(description="exclusive; naive means UTC")] = None,
        rule_id: Annotated[str | None, Query(max_length=200)] = None,
        by: TimeField = "matched_at",
        limit: Limit = DEFAULT_PAGE,
    ) -> list[DetectionOut]:
        """Newest first by `by` (`matched_at` or `event_time`)."""
        found = db.detections.list(
            ctx.tenant_id(tenant),
            since=aware(since),
            until=aware(until),
            rule_id=rule_id,
            limit=capped(limit),
            by=by,
        )
        return [DetectionOut.model_validate(d) for d in found]
