"""NDJSON intake: `POST /api/v1/ingest/ndjson` with `Authorization: Bearer <token>`, one JSON object a line.

Answers `{"accepted": N, "rejected": M, "errors": [{"line": n, "reason": "..."}]}` (200). Every rejected line
(invalid UTF-8, not JSON, not an object, larger than `max_event_bytes`) also goes to the tenant's dead-letter
store with its line number; the response lists at most `max_reported_errors` of them. Blank lines are skipped.
Request-level refusals are RFC 9457 problem documents.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from watchfloor.core.records import DeadLetter
from watchfloor.ingest import metrics
from watchfloor.ingest.auth import AuthProblem, Principal, credential_from_header
from watchfloor.ingest.envelope import Envelope
from watchfloor.ingest.http import (
    Intake,
    IntakeError,
    now_utc,
    refuse,
)

logger = logging.getLogger(__name__)

_TITLES: Final = {
    "throttle": "Too Many Requests",
    "full": "Service Unavailable",
    "body_too_large": "Content Too Large",
    "bad_encoding": "Bad Content-Encoding",
    "internal": "Internal Server Error",
}
PROTOCOL: Final = "ndjson"
SOURCE: Final = "ndjson"
PATH: Final = "/api/v1/ingest/ndjson"


def problem(status: int, title: str, detail: str, *, headers: Mapping[str, str] | None = None) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/problem+json", headers=headers
    )


@dataclass(frozen=True, slots=True)
class LineRefusal:
    line: int
    reason: str  # metrics label and dead-letter code suffix
    message: str


def check_line(line: bytes, number: int, max_event_bytes: int) -> LineRefusal | None:
    """Why one NDJSON line cannot be accepted as a JSON-object event, or None if it can."""
    if len(line) > max_event_bytes:
        return LineRefusal(number, "too_large", f"line is {len(line)} bytes (limit {max_event_bytes})")
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return LineRefusal(number, "invalid_utf8", f"invalid UTF-8 at byte {exc.start}")
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return LineRefusal(number, "invalid_json", f"not JSON: {exc.msg}"[:200])
    if not isinstance(value, dict):
        return LineRefusal(number, "not_object", f"a JSON {type(value).__name__}, not an object")
    return None


def _process(intake: Intake, principal: Principal, body: bytes) -> dict[str, Any]:
    now = now_utc()
    intake.check_capacity()
    tenant = principal.tenant
    limit = intake.settings.max_event_bytes
    envelopes: list[Envelope] = []
    refusals: list[LineRefusal] = []
    letters: list[DeadLetter] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if not line.strip():
            continue
        refusal = check_line(line, number, limit)
        if refusal is not None:
            refusals.append(refusal)
            letters.append(
                DeadLetter(
                    tenant=tenant,
                    source=SOURCE,
                    reason=refusal.message,
                    code=f"ndjson.{refusal.reason}",
                    line=number,
                    sample=line[:limit],
                )
            )
            continue
        envelopes.append(
            Envelope(
                tenant=tenant,
                source=SOURCE,
                format="json",
                body=line,
                received_at=now,
                offset=f"line {number}",
                meta={"token": principal.token_id},
            )
        )
    intake.accept(tenant, envelopes, letters, now)
    metrics.count_received(tenant, PROTOCOL, len(envelopes) + len(letters))
    metrics.count_accepted(tenant, PROTOCOL, len(envelopes))
    for refusal in refusals:
        metrics.count_rejected(tenant, PROTOCOL, refusal.reason)
    shown = refusals[: intake.settings.max_reported_errors]
    answer: dict[str, Any] = {
        "accepted": len(envelopes),
        "rejected": len(refusals),
        "errors": [{"line": r.line, "reason": r.message} for r in shown],
    }
    if len(shown) < len(refusals):
        answer["errors_truncated"] = True
    return answer


def routes(intake: Intake) -> APIRouter:
    """The NDJSON endpoint, bound to `intake`."""
    router = APIRouter()

    @router.post(PATH, include_in_schema=False)
    async def ingest(request: Request) -> Response:
        credential = credential_from_header(request.headers.get("authorization"), schemes={"bearer"})
        principal = None
        if not isinstance(credential, AuthProblem):
            principal = await intake.resolver.authenticate(credential)
        if principal is None:
            problem_kind = credential if isinstance(credential, AuthProblem) else AuthProblem.INVALID
            metrics.count_received(metrics.UNAUTHENTICATED, PROTOCOL)
            metrics.count_rejected(metrics.UNAUTHENTICATED, PROTOCOL, f"auth_{problem_kind.value}")
            detail = {
                AuthProblem.MISSING: "an intake token is required (Authorization: Bearer <token>)",
                AuthProblem.MALFORMED: "use Authorization: Bearer <token>",
                AuthProblem.INVALID: "the intake token is unknown or revoked",
            }[problem_kind]
            return problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="intake"'})
        tenant = principal.tenant
        try:
            await run_in_threadpool(intake.check_capacity)
            body, wire = await intake.read_body(request)
            metrics.count_bytes(tenant, PROTOCOL, wire)
            if not body.strip():
                metrics.count_rejected(tenant, PROTOCOL, "no_data")
                return problem(400, "No data", "the request body holds no lines")
            answer = await run_in_threadpool(_process, intake, principal, body)
        except IntakeError as exc:
            refusal = refuse(exc, tenant, PROTOCOL)
            return problem(refusal.status, _TITLES[refusal.kind], refusal.detail, headers=refusal.headers)
        return Response(orjson.dumps(answer), media_type="application/json")

    return router
