"""Dead letters: list, fetch the stored bytes, and replay through the service's pipeline.

Replay needs the `replay` callable given to `build_api_router` (the service provides it); without one the
route answers 501 and `watchfloor deadletter replay` is the way. The API picks the tenant's pending entries,
hands their ids to the callable (in a worker thread) and, when it returns, marks them replayed with the
request's actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, ConfigDict, Field

from watchfloor.api.context import DEFAULT_PAGE, Actor, ApiContext, Limit, capped
from watchfloor.api.problems import ApiProblem, not_found
from watchfloor.core.types import TenantId
from watchfloor.storage.deadletters import DeadLetterStatus, StoredDeadLetter

MAX_REPLAY: Final = 10_000
_SCAN: Final = 100_000


class DeadLetterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str
    source: str
    line: int | None
    record_id: int | None
    offset: int | None
    code: str
    message: str
    raw_length: int
    stored_length: int
    truncated: bool
    received_at: datetime
    status: DeadLetterStatus
    replayed_at: datetime | None


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int] | None = Field(
        default=None, max_length=MAX_REPLAY, description=f"default: every pending entry (up to {MAX_REPLAY})"
    )


class ReplayAccepted(BaseModel):
    tenant: str
    ids: list[int] = Field(description="the entries handed to the pipeline and marked replayed")
    marked: int
    raw_bytes: int = Field(description="stored bytes of those entries")
    already_replayed: list[int]
    truncated: list[int] = Field(description="entries stored only in part: replayed as stored")
    result: dict[str, Any] = Field(description="what the pipeline reported")


def _letters(ctx: ApiContext, tenant: str) -> tuple[TenantId, list[StoredDeadLetter]]:
    tid = ctx.tenant_id(tenant)
    return tid, ctx.db.dead_letters.list(tid, limit=_SCAN)


def routes(router: APIRouter, ctx: ApiContext) -> None:
    db = ctx.db

    @router.get("/tenants/{tenant}/dead-letters", tags=["dead letters"])
    def list_dead_letters(
        tenant: str, status: DeadLetterStatus | None = None, limit: Limit = DEFAULT_PAGE
    ) -> list[DeadLetterOut]:
        """Oldest first (replay order), optionally one status."""
        found = db.dead_letters.list(ctx.tenant_id(tenant), status=status, limit=capped(limit))
        return [DeadLetterOut.model_validate(d) for d in found]

    @router.get(
        "/tenants/{tenant}/dead-letters/{dead_letter_id}/raw",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
        tags=["dead letters"],
    )
    def dead_letter_raw(tenant: str, dead_letter_id: int) -> Response:
        """The stored bytes (up to 256 KiB of the original; see `truncated` in the list)."""
        raw = db.dead_letters.get_raw(ctx.tenant_id(tenant), dead_letter_id)
        if raw is None:
            raise not_found(f"tenant {tenant!r} has no dead letter {dead_letter_id}")
        return Response(
            raw,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="dead-letter-{dead_letter_id}.bin"',
                "X-Content-Type-Options": "nosniff",
            },
        )

    @router.post(
        "/tenants/{tenant}/dead-letters/replay", status_code=status.HTTP_202_ACCEPTED, tags=["dead letters"]
    )
    def replay_dead_letters(
        tenant: str, actor: Actor, body: Annotated[ReplayRequest | None, Body()] = None
    ) -> ReplayAccepted:
        """Hand pending entries to the pipeline again and mark them replayed.

        No body (or no `ids`): every pending entry. Ids the tenant does not have (unknown, or another
        tenant's) are 404, listed in `ids`, and nothing is replayed."""
        if ctx.replay is None:
            raise ApiProblem(
                501,
                "replay is not available in this server; use `watchfloor deadletter replay --tenant ...`",
                code="api.replay_unavailable",
            )
        tid, letters = _letters(ctx, tenant)
        by_id = {d.id: d for d in letters}
        requested = None if body is None else body.ids
        if requested is None:
            chosen = [d for d in letters if d.status == "pending"][:MAX_REPLAY]
            already: list[int] = []
        else:
            wanted = sorted(set(requested))
            missing = [i for i in wanted if i not in by_id]
            if missing:
                raise ApiProblem(
                    404,
                    f"tenant {tid!r} has no dead letters {missing[:20]}",
                    code="storage.not_found",
                    extra={"ids": missing},
                )
            chosen = [by_id[i] for i in wanted if by_id[i].status == "pending"]
            already = [i for i in wanted if by_id[i].status != "pending"]
        ids = [d.id for d in chosen]
        result = ctx.replay(tid, ids) if ids else {}
        marked = db.dead_letters.mark_replayed(tid, ids, actor=actor)
        return ReplayAccepted(
            tenant=tid,
            ids=ids,
            marked=marked,
            raw_bytes=sum(d.stored_length for d in chosen),
            already_replayed=already,
            truncated=[d.id for d in chosen if d.truncated],
            result=result,
        )
