"""What every admin route shares: the database, the archive, the replay hook, and small request helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import Depends, Query, Request
from fastapi.security import HTTPBearer

from watchfloor.api.problems import not_found
from watchfloor.core.types import TenantId, tenant_id
from watchfloor.storage import Database, Tenant

if TYPE_CHECKING:
    from watchfloor.respond.engine import RunEngine
    from watchfloor.respond.secrets import CredentialStore
    from watchfloor.server.cases import CaseService

MAX_PAGE: Final = 1000
DEFAULT_PAGE: Final = 100

ReplayCallable = Callable[[TenantId, list[int]], dict[str, Any]]
"""Re-run a tenant's dead letters (by id) through the pipeline; returns a JSON-able summary.

Called from a worker thread. It must not mark the entries: the API marks them replayed, with the
request's actor, after the callable returns without raising."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiContext:
    db: Database
    archive_root: Path
    replay: ReplayCallable | None = None
    cases: CaseService | None = None  # incidents, alerts, suppressions, queue, SLA metrics (None: 503)
    credentials: CredentialStore | None = None  # sealed connector credentials (None: 503)
    response: RunEngine | None = None  # runs, approvals, response policy, kill switch (None: 503)

    def tenant(self, value: str) -> Tenant:
        """The tenant named in the path; an invalid or unknown id is 404 alike."""
        try:
            tid = tenant_id(value)
        except ValueError:
            raise not_found(f"no tenant {value!r}") from None
        found = self.db.tenants.get(tid)
        if found is None:
            raise not_found(f"no tenant {tid!r}")
        return found

    def tenant_id(self, value: str) -> TenantId:
        return self.tenant(value).id


# Declared on the router so OpenAPI shows the scheme; the route guard does the checking.
bearer_scheme = HTTPBearer(auto_error=False, description="the operator token (the server keeps its SHA-256)")


def current_actor(request: Request) -> str:
    """The audit actor the route guard set (`api:<hash8>` or `api:<hash8>/<name>`)."""
    actor = getattr(request.state, "actor", None)
    if not isinstance(actor, str):  # the guard runs first on every admin route, so this is a wiring bug
        msg = "admin route reached without authentication"
        raise RuntimeError(msg)  # noqa: TRY004 - a wiring bug, not a type error of the caller
    return actor


Actor = Annotated[str, Depends(current_actor)]
Limit = Annotated[
    int, Query(ge=1, description=f"how many at most; values above {MAX_PAGE} are capped to {MAX_PAGE}")
]


def capped(limit: int) -> int:
    return min(limit, MAX_PAGE)


def aware(moment: datetime | None) -> datetime | None:
    """A query-string datetime in UTC; a naive one means UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
