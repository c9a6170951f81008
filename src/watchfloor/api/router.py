"""The admin API router (`/api/v1`) and a bare application around it for tests and embedding."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, Depends, FastAPI

from watchfloor.api import (
    assets,
    connectors,
    deadletters,
    detections,
    edl,
    incidents,
    response,
    search,
    tenants,
    tokens,
)
from watchfloor.api.auth import AdminGuard, normalize_token_hash
from watchfloor.api.context import ApiContext, ReplayCallable, bearer_scheme
from watchfloor.api.problems import PROBLEM_MEDIA_TYPE, Problem, problem_route_class
from watchfloor.storage import Database

if TYPE_CHECKING:
    from watchfloor.respond.engine import RunEngine
    from watchfloor.respond.secrets import CredentialStore
    from watchfloor.server.cases import CaseService

API_PREFIX: Final = "/api/v1"


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}


_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: _problem("bad request (e.g. a search condition that does not parse)"),
    401: _problem("missing or wrong operator token"),
    403: _problem(
        "case work: the X-Watchfloor-Actor is not in the SOC roster, or the named analyst may not do this "
        "(tenant scope or the permission table)"
    ),
    404: _problem("no such tenant or object (another tenant's object looks exactly the same)"),
    409: _problem("conflict: the id is taken, or the tenant is retired"),
    422: _problem("the request does not validate"),
    503: _problem("no operator token configured (WATCHFLOOR_ADMIN_TOKEN_SHA256)"),
}


def build_api_router(
    db: Database,
    *,
    archive_root: Path,
    admin_token_sha256: str | None,
    replay: ReplayCallable | None = None,
    cases: CaseService | None = None,
    credentials: CredentialStore | None = None,
    response_engine: RunEngine | None = None,
) -> APIRouter:
    """The admin/operator API under `/api/v1`: tenants, assets, tokens, detections, dead letters, search,
    audit. Every route needs the operator token; errors are problem+json (no app handlers needed).

    `admin_token_sha256`: SHA-256 hex of the operator token (None or blank: every route answers 503).
    `replay`: re-runs dead letters through the pipeline (None: the replay route answers 501).
    `cases`: incident work (incidents, alerts, suppressions, queue, SLA metrics; None: those routes 503).
    `credentials`: sealed connector credentials; `response_engine`: playbook runs, approvals, response policy,
    kill switch (None: those routes 503).
    Raises `ConfigError` when `admin_token_sha256` is not a SHA-256 hex.
    """
    guard = AdminGuard(normalize_token_hash(admin_token_sha256))
    ctx = ApiContext(
        db=db,
        archive_root=archive_root,
        replay=replay,
        cases=cases,
        credentials=credentials,
        response=response_engine,
    )
    router = APIRouter(
        prefix=API_PREFIX,
        route_class=problem_route_class(guard),
        dependencies=[Depends(bearer_scheme)],
        responses=_RESPONSES,
    )
    for module in (
        tenants,
        assets,
        tokens,
        detections,
        deadletters,
        search,
        incidents,
        edl,
        connectors,
        response,
    ):
        module.routes(router, ctx)
    return router


def create_api_app(
    db: Database,
    *,
    archive_root: Path,
    admin_token_sha256: str | None,
    replay: ReplayCallable | None = None,
    cases: CaseService | None = None,
    credentials: CredentialStore | None = None,
    response_engine: RunEngine | None = None,
) -> FastAPI:
    """An application serving only the admin API (tests, or a separate admin listener)."""
    app = FastAPI(title="Watchfloor admin API", version="1")
    app.include_router(
        build_api_router(
            db,
            archive_root=archive_root,
            admin_token_sha256=admin_token_sha256,
            replay=replay,
            cases=cases,
            credentials=credentials,
            response_engine=response_engine,
        )
    )
    return app
