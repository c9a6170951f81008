"""HTTP problems (RFC 9457): every error of the admin API is `application/problem+json`.

Body: `type` (`urn:watchfloor:problem:<code>`), `title`, `status`, `detail`, `code` (the stable
`WatchfloorError` code, or an `api.*` code), `instance` (the request path), plus per-problem members
(`errors` for 422, `offset`/`column` for a bad search condition).

`ProblemRoute` is the route class of the admin router: it turns every exception raised while answering a
request (authentication, validation, storage, archive) into a problem response, so the router needs no
handlers on the application it is mounted in. Details never carry secrets, request bodies or frame locals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from watchfloor.archive.model import ArchiveError, SearchQueryError
from watchfloor.cases.permissions import CaseError, PermissionDeniedError
from watchfloor.core.errors import ConfigError, WatchfloorError
from watchfloor.server.cases import SettingsInvalidError, UnknownActorError
from watchfloor.storage import (
    AlreadyExistsError,
    NotFoundError,
    SecretInAuditError,
    StorageError,
    TenantRetiredError,
)
from watchfloor.triage.conditions import ConditionError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:watchfloor:problem:"

# Archive codes that mean "your request was wrong" rather than "the archive failed".
_ARCHIVE_CLIENT_CODES: Final = frozenset(
    {"archive.invalid_range", "archive.invalid_setting", "search.invalid_limit", "search.invalid_columns"}
)
_TITLES: Final[Mapping[int, str]] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    501: "Not implemented",
    503: "Service unavailable",
}


class Problem(BaseModel):
    """The problem document (for the OpenAPI schema; responses are built by `ApiProblem.response`)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


class ApiProblem(Exception):  # noqa: N818 - a response, raised to leave the endpoint
    """Raise to answer with a problem. `extra` members are added to the body; `headers` to the response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str,
        title: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.title = title or _TITLES.get(status, "Error")
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def response(self, instance: str | None = None) -> JSONResponse:
        body: dict[str, Any] = {
            "type": f"{TYPE_PREFIX}{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance is not None:
            body["instance"] = instance
        body.update(self.extra)
        return JSONResponse(
            body, status_code=self.status, headers=self.headers, media_type=PROBLEM_MEDIA_TYPE
        )


def not_found(detail: str) -> ApiProblem:
    return ApiProblem(404, detail, code=NotFoundError.code)


def problem_for(exc: Exception) -> ApiProblem:
    """The problem that answers `exc`. Unknown exceptions become a generic 500 (logged, never echoed)."""
    if isinstance(exc, ApiProblem):
        return exc
    if isinstance(exc, RequestValidationError):
        return ApiProblem(
            422,
            "the request does not match the schema; see `errors`",
            code="api.invalid_request",
            extra={"errors": [_validation_item(item) for item in exc.errors()]},
        )
    if isinstance(exc, HTTPException):
        return ApiProblem(exc.status_code, str(exc.detail), code=f"http.{exc.status_code}")
    if isinstance(exc, SearchQueryError):
        return ApiProblem(400, exc.message, code=exc.code, extra={"offset": exc.offset, "column": exc.column})
    if isinstance(exc, ArchiveError):
        if exc.code in _ARCHIVE_CLIENT_CODES:
            return ApiProblem(400, exc.message, code=exc.code)
        log.error("archive search failed: %s", exc)
        return ApiProblem(500, "the event archive could not be searched", code=exc.code)
    if isinstance(exc, NotFoundError):
        return ApiProblem(404, exc.message, code=exc.code)
    if isinstance(exc, AlreadyExistsError | TenantRetiredError):
        return ApiProblem(409, exc.message, code=exc.code)
    if isinstance(exc, SecretInAuditError):
        return ApiProblem(422, "the request contains something shaped like an intake token", code=exc.code)
    # Case work: the specific classes first (UnknownActorError and PermissionDeniedError are CaseErrors).
    if isinstance(exc, UnknownActorError | PermissionDeniedError):
        return ApiProblem(403, exc.message, code=exc.code)
    if isinstance(exc, SettingsInvalidError):  # the request's own settings: 400, the message says which key
        return ApiProblem(400, exc.message, code=exc.code)
    if isinstance(exc, CaseError):
        return ApiProblem(409, exc.message, code=exc.code)
    if isinstance(exc, ConditionError):
        return ApiProblem(400, exc.message, code=exc.code)
    if isinstance(exc, ConfigError):  # e.g. UnknownTierError: the server's content, not the request
        log.error("request failed on the server's configuration: %s", exc)
        return ApiProblem(
            500, "the server's case configuration is invalid; see the server log", code=exc.code
        )
    if isinstance(exc, StorageError | WatchfloorError):
        log.error("request failed: %s", exc)
        return ApiProblem(500, "the request could not be completed", code=exc.code)
    if isinstance(exc, ValueError):
        # Storage and core validators raise ValueError with a message about the input, never a secret.
        return ApiProblem(422, str(exc), code="api.invalid_value")
    log.error("unexpected error answering an admin API request", exc_info=exc)
    return ApiProblem(500, "unexpected error; see the server log", code="api.internal")


def _validation_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic error without `input`/`ctx`, so nothing the client sent (a secret?) is echoed back."""
    return {
        "loc": [str(part) for part in item.get("loc", ())],
        "msg": str(item.get("msg", "")),
        "type": str(item.get("type", "")),
    }


Guard = Callable[[Request], None]


def problem_route_class(guard: Guard) -> type[APIRoute]:
    """A route class that runs `guard` (authentication) first, then the endpoint, answering errors as
    problems. `guard` raises `ApiProblem` to refuse a request and may set `request.state` for endpoints."""

    class ProblemRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            endpoint = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    guard(request)
                    return await endpoint(request)
                except Exception as exc:  # noqa: BLE001 - every error leaves as a problem response
                    return problem_for(exc).response(instance=request.url.path)

            return handle

    return ProblemRoute
