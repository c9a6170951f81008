"""Event search: one tenant's archive by time range and `--where` conditions (DuckDB, see archive/)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from pydantic import BaseModel

from watchfloor.api.context import DEFAULT_PAGE, ApiContext, Limit, aware, capped
from watchfloor.archive import search as archive_search

DEFAULT_WINDOW: Final = timedelta(hours=24)
MAX_WHERE_CHARS: Final = 10_000


class SearchResult(BaseModel):
    tenant: str
    since: datetime
    until: datetime
    where: str | None
    limit: int
    count: int
    rows: list[dict[str, Any]]


def routes(router: APIRouter, ctx: ApiContext) -> None:
    @router.get("/tenants/{tenant}/events/search", tags=["search"])
    def search_events(
        tenant: str,
        since: Annotated[
            datetime | None, Query(description="inclusive, by event time; default until - 24h; naive = UTC")
        ] = None,
        until: Annotated[datetime | None, Query(description="exclusive; default now; naive = UTC")] = None,
        where: Annotated[
            str | None, Query(max_length=MAX_WHERE_CHARS, description="e.g. EventID=4625 AND User!=admin")
        ] = None,
        limit: Limit = DEFAULT_PAGE,
    ) -> SearchResult:
        """Archived events oldest first, each event once, without the raw bytes.

        A condition that does not parse is 400 with `offset` (0-based) and `column` (1-based)."""
        tid = ctx.tenant_id(tenant)
        end = aware(until) or datetime.now(tz=UTC)
        start = aware(since) or end - DEFAULT_WINDOW
        condition = where if where and where.strip() else None
        rows = archive_search(
            ctx.archive_root, tid, since=start, until=end, where=condition, limit=capped(limit)
        )
        return SearchResult(
            tenant=tid,
            since=start,
            until=end,
            where=condition,
            limit=capped(limit),
            count=len(rows),
            rows=rows,
        )
