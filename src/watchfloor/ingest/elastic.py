"""Elasticsearch output compatibility: Filebeat/Winlogbeat/Elastic Agent, Fluent Bit, Vector, Logstash.

Shippers see an 8.11.0 cluster: `GET /` (Beats read `version.number`, Vector picks its API version, the
official clients check `X-Elastic-Product`), `GET /_license`, `/_xpack`, `/_cluster/health` (Vector's health
check), `/_nodes` (sniffing), and the setup calls Beats and Logstash make before sending (index and component
templates, ILM policies, ingest pipelines, data streams): they are acknowledged and answered as existing, but
nothing is stored or executed. Data arrives through `POST /_bulk` and `POST /{index}/_bulk`; each
`index`/`create` source document becomes one Envelope (format "json", source `bulk:<index>`, offset
`item N`). `delete` and `update` are refused per item (400); a malformed item is refused per item and
dead-lettered; a malformed action line refuses the whole request (400), as Elasticsearch does.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from watchfloor.core.records import DeadLetter
from watchfloor.ingest import metrics
from watchfloor.ingest.auth import AuthProblem, Principal, credential_from_header
from watchfloor.ingest.envelope import SUBJECT_RAW, Envelope
from watchfloor.ingest.http import (
    BodyTooLargeError,
    ContentEncodingError,
    Intake,
    IntakeError,
    now_utc,
    refuse,
)

logger = logging.getLogger(__name__)

PROTOCOL: Final = "elastic"
_ES_TYPES: Final = {
    "throttle": "es_rejected_execution_exception",
    "full": "cluster_block_exception",
    "body_too_large": "content_too_long_exception",
    "bad_encoding": "illegal_argument_exception",
    "internal": "exception",
}
ES_SCHEMES: Final = frozenset({"basic", "bearer", "apikey"})
VERSION: Final = "8.11.0"
LUCENE_VERSION: Final = "9.8.0"
BUILD_HASH: Final = "d9ec3fa628c7b0ba3d25692e277ba26814820b20"
BUILD_DATE: Final = "2023-11-04T10:04:57.184859352Z"
PRODUCT_HEADERS: Final = {"X-Elastic-Product": "Elasticsearch"}
WWW_AUTHENTICATE: Final = ('Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey")
# Index names as Elasticsearch allows them: lower case, no \ / * ? " < > | , # : or space, not starting
# with - _ +, not . or .., at most 255 bytes.
_INDEX_RE = re.compile(r"(?![-_+])(?!\.\.?$)[^A-Z\\/*?\"<>|,# :]{1,255}")


def es_response(body: object, status: int = 200, *, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={**PRODUCT_HEADERS, **(headers or {})},
    )


def es_error(
    status: int, error_type: str, reason: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    cause = {"type": error_type, "reason": reason}
    return es_response({"error": {"root_cause": [cause], **cause}, "status": status}, status, headers=headers)


def _unauthorized(path: str, problem: AuthProblem) -> Response:
    if problem is AuthProblem.MISSING:
        reason = f"missing authentication credentials for REST request [{path[:200]}]"
    else:
        reason = f"unable to authenticate with provided credentials for REST request [{path[:200]}]"
    cause = {"type": "security_exception", "reason": reason, "header": {"WWW-Authenticate": WWW_AUTHENTICATE}}
    response = es_response({"error": {"root_cause": [cause], **cause}, "status": 401}, 401)
    for value in WWW_AUTHENTICATE:
        response.headers.append("WWW-Authenticate", value)
    return response


# ---------------------------------------------------------------------- _bulk parsing (worker threads)


@dataclass(frozen=True, slots=True)
class BulkRequestError(Exception):
    """The bulk body cannot be paired into actions and sources: the whole request is refused (400)."""

    error_type: str
    reason: str
    line: int
    raw: bytes


def _item_error(
    op: str, index: str | None, doc_id: str | None, error_type: str, reason: str
) -> dict[str, Any]:
    item: dict[str, Any] = {"status": 400, "error": {"type": error_type, "reason": reason}}
    if index is not None:
        item = {"_index": index, **item}
    if doc_id is not None:
        item = {"_id": doc_id, **item}
    return {op: item}


def _new_id() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, like Elasticsearch's generated ids


def _process_bulk(
    intake: Intake, principal: Principal, body: bytes, default_index: str | None
) -> dict[str, Any]:
    started = time.monotonic()
    now = now_utc()
    intake.check_capacity()
    tenant = principal.tenant
    limit = intake.settings.max_event_bytes
    lines = body.split(b"\n")
    items: list[dict[str, Any]] = []
    accepted: list[tuple[int, str, str, str]] = []  # (item position, op, index, id)
    envelopes: list[Envelope] = []
    letters: list[DeadLetter] = []
    reasons: list[str] = []
    position = 0

    def refuse(
        op: str,
        index: str | None,
        doc_id: str | None,
        kind: str,
        reason: str,
        raw: bytes | None,
        line: int,
        label: str,
    ) -> None:
        items.append(_item_error(op, index, doc_id, kind, reason))
        reasons.append(label)
        if raw is not None:
            letters.append(
                DeadLetter(
                    tenant=tenant,
                    source=f"bulk:{index or '-'}",
                    reason=f"item {position}: {reason}",
                    code=f"bulk.{label}",
                    line=line,
                    record_id=position,
                    sample=raw[:limit],
                )
            )

    i = 0
    while i < len(lines):
        action_line = lines[i].removesuffix(b"\r")
        action_number = i + 1
        i += 1
        if not action_line.strip():
            continue
        op, meta = _action(action_line, action_number)
        index = meta.get("_index", default_index)
        index = str(index) if index is not None else None
        raw_id = meta.get("_id")
        doc_id = str(raw_id) if raw_id is not None else None
        if op == "delete":
            refuse(
                op,
                index,
                doc_id,
                "illegal_argument_exception",
                "delete is not supported by this intake",
                None,
                action_number,
                "unsupported_action",
            )
            position += 1
            continue
        if i >= len(lines) or (i == len(lines) - 1 and not lines[i].strip()):
            reason = f"action on line {action_number} has no source line"
            raise BulkRequestError("illegal_argument_exception", reason, action_number, action_line)
        source = lines[i].removesuffix(b"\r")
        source_number = i + 1
        i += 1
        if op == "update":
            refuse(
                op,
                index,
                doc_id,
                "illegal_argument_exception",
                "update is not supported by this intake",
                source,
                source_number,
                "unsupported_action",
            )
        elif index is None:
            refuse(
                op,
                None,
                doc_id,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;",
                source,
                source_number,
                "missing_index",
            )
        elif _INDEX_RE.fullmatch(index) is None:
            refuse(
                op,
                index,
                doc_id,
                "invalid_index_name_exception",
                f"Invalid index name [{index[:100]}]",
                source,
                source_number,
                "invalid_index",
            )
        else:
            problem = _source_problem(source, limit)
            if problem is not None:
                label, reason = problem
                refuse(op, index, doc_id, "mapper_parsing_exception", reason, source, source_number, label)
            else:
                meta_out = {"index": index, "action": op}
                if doc_id is not None:
                    meta_out["id"] = doc_id
                envelopes.append(
                    Envelope(
                        tenant=tenant,
                        source=f"bulk:{index}",
                        format="json",
                        body=source,
                        received_at=now,
                        offset=f"item {position}",
                        meta=meta_out,
                    )
                )
                accepted.append((len(items), op, index, doc_id or _new_id()))
                items.append({})
        position += 1
    sequences = intake.accept(tenant, envelopes, letters, now)
    for (slot, op, index, doc_id), sequence in zip(accepted, sequences, strict=True):
        items[slot] = {
            op: {
                "_index": index,
                "_id": doc_id,
                "_version": 1,
                "result": "created",
                "_shards": {"total": 1, "successful": 1, "failed": 0},
                "_seq_no": sequence,
                "_primary_term": 1,
                "status": 201,
            }
        }
    metrics.count_received(tenant, PROTOCOL, len(items))
    metrics.count_accepted(tenant, PROTOCOL, len(envelopes))
    for label in reasons:
        metrics.count_rejected(tenant, PROTOCOL, label)
    took = int((time.monotonic() - started) * 1000)
    return {"took": took, "errors": bool(reasons), "items": items}


def _action(line: bytes, number: int) -> tuple[str, dict[str, Any]]:
    try:
        action = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        reason = f"Malformed action/metadata line [{number}]: {exc.msg}"[:300]
        raise BulkRequestError("x_content_parse_exception", reason, number, line) from exc
    if not isinstance(action, dict) or len(action) != 1:
        reason = f"Malformed action/metadata line [{number}], expected one object with a single key"
        raise BulkRequestError("illegal_argument_exception", reason, number, line)
    op, meta = next(iter(action.items()))
    if op not in {"index", "create", "update", "delete"}:
        reason = f"Malformed action/metadata line [{number}], unknown action [{str(op)[:40]}]"
        raise BulkRequestError("illegal_argument_exception", reason, number, line)
    if not isinstance(meta, dict):
        reason = f"Malformed action/metadata line [{number}], expected START_OBJECT"
        raise BulkRequestError("illegal_argument_exception", reason, number, line)
    return op, meta


def _source_problem(source: bytes, limit: int) -> tuple[str, str] | None:
    if len(source) > limit:
        return "too_large", f"document is {len(source)} bytes (limit {limit})"
    try:
        source.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "invalid_utf8", f"failed to parse: invalid UTF-8 at byte {exc.start}"
    try:
        document = orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        return "invalid_json", f"failed to parse: {exc.msg}"[:300]
    if not isinstance(document, dict):
        return "not_object", "failed to parse, document is empty or not an object"
    return None


# ---------------------------------------------------------------------- canned cluster answers


def _cluster_info(intake: Intake) -> dict[str, Any]:
    name = intake.settings.cluster_name
    return {
        "name": f"{name}-intake",
        "cluster_name": name,
        "cluster_uuid": "d2F0Y2hmbG9vci1pbnRha2U",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": BUILD_HASH,
            "build_date": BUILD_DATE,
            "build_snapshot": False,
            "lucene_version": LUCENE_VERSION,
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


_LICENSE: Final = {
    "status": "active",
    "uid": "8d7c7bf4-1f0f-4f38-9c2d-6f1a4a3c1a55",
    "type": "basic",
    "issue_date": "2024-01-01T00:00:00.000Z",
    "issue_date_in_millis": 1704067200000,
    "max_nodes": 1000,
    "max_resource_units": None,
    "issued_to": "watchfloor",
    "issuer": "elasticsearch",
    "start_date_in_millis": -1,
}

_ACKNOWLEDGED: Final = {"acknowledged": True}


def routes(intake: Intake) -> APIRouter:
    """The Elasticsearch-compatible endpoints, bound to `intake`."""
    router = APIRouter()

    async def authenticate(request: Request) -> Principal | Response:
        credential = credential_from_header(request.headers.get("authorization"), schemes=ES_SCHEMES)
        if not isinstance(credential, AuthProblem):
            principal = await intake.resolver.authenticate(credential)
            if principal is not None:
                return principal
            credential = AuthProblem.INVALID
        metrics.count_received(metrics.UNAUTHENTICATED, PROTOCOL)
        metrics.count_rejected(metrics.UNAUTHENTICATED, PROTOCOL, f"auth_{credential.value}")
        return _unauthorized(request.url.path, credential)

    async def drain(request: Request) -> Response | None:
        """Read (and drop) a setup call's body, within limits, so the connection stays usable."""
        try:
            await intake.read_body(request)
        except BodyTooLargeError as exc:
            return es_error(413, "content_too_long_exception", f"request body over {exc.limit} bytes")
        except ContentEncodingError as exc:
            return es_error(400, "illegal_argument_exception", exc.message)
        return None

    def setup_route(path: str, found: Any) -> None:
        """GET/HEAD answer `found(name)` (it "exists"); PUT/POST/DELETE are acknowledged and ignored."""

        async def read(request: Request, name: str) -> Response:
            principal = await authenticate(request)
            if isinstance(principal, Response):
                return principal
            return es_response(found(name))

        async def write(request: Request, name: str) -> Response:  # noqa: ARG001 - path parameter
            principal = await authenticate(request)
            if isinstance(principal, Response):
                return principal
            refused = await drain(request)
            return refused or es_response(_ACKNOWLEDGED)

        router.add_api_route(path, read, methods=["GET", "HEAD"], include_in_schema=False)
        router.add_api_route(path, write, methods=["PUT", "POST", "DELETE"], include_in_schema=False)

    setup_route("/_index_template/{name}", lambda name: {"index_templates": [_index_template(name)]})
    setup_route("/_template/{name}", lambda name: {name: _legacy_template(name)})
    setup_route(
        "/_component_template/{name}",
        lambda name: {"component_templates": [{"name": name, "component_template": {"template": {}}}]},
    )
    setup_route(
        "/_ilm/policy/{name}",
        lambda name: {
            name: {
                "version": 1,
                "modified_date": "2024-01-01T00:00:00.000Z",
                "policy": {"phases": {"hot": {"min_age": "0ms", "actions": {}}}},
                "in_use_by": {"indices": [], "data_streams": [], "composable_templates": []},
            }
        },
    )
    setup_route(
        "/_ingest/pipeline/{name}",
        lambda name: {
            name: {"description": "accepted by the Watchfloor intake, not executed", "processors": []}
        },
    )
    setup_route("/_data_stream/{name}", lambda name: {"data_streams": [_data_stream(name)]})

    @router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def root(request: Request) -> Response:
        principal = await authenticate(request)
        if isinstance(principal, Response):
            return principal
        return es_response(_cluster_info(intake))

    @router.get("/_license", include_in_schema=False)
    async def license_info(request: Request) -> Response:
        principal = await authenticate(request)
        if isinstance(principal, Response):
            return principal
        return es_response({"license": _LICENSE})

    @router.get("/_xpack", include_in_schema=False)
    async def xpack(request: Request) -> Response:
        principal = await authenticate(request)
        if isinstance(principal, Response):
            return principal
        feature = {"available": True, "enabled": True}
        return es_response(
            {
                "build": {"hash": BUILD_HASH, "date": BUILD_DATE},
                "license": {"uid": _LICENSE["uid"], "type": "basic", "mode": "basic", "status": "active"},
                "features": dict.fromkeys(("ilm", "security", "data_streams", "monitoring"), feature),
                "tagline": "You know, for X",
            }
        )

    @router.get("/_cluster/health", include_in_schema=False)
    async def cluster_health(request: Request) -> Response:
        principal = await authenticate(request)
        if isinstance(principal, Response):
            return principal
        pressure = await run_in_threadpool(intake.bus.pressure, SUBJECT_RAW)
        status = {"ok": "green", "throttle": "yellow", "full": "red"}[pressure.level]
        return es_response(
            {
                "cluster_name": intake.settings.cluster_name,
                "status": status,
                "timed_out": False,
                "number_of_nodes": 1,
                "number_of_data_nodes": 1,
                "active_primary_shards": 1,
                "active_shards": 1,
                "relocating_shards": 0,
                "initializing_shards": 0,
                "unassigned_shards": 0,
                "delayed_unassigned_shards": 0,
                "number_of_pending_tasks": 0,
                "number_of_in_flight_fetch": 0,
                "task_max_waiting_in_queue_millis": 0,
                "active_shards_percent_as_number": 100.0,
            }
        )

    @router.get("/_nodes", include_in_schema=False)
    @router.get("/_nodes/{selector:path}", include_in_schema=False)
    async def nodes(request: Request) -> Response:
        principal = await authenticate(request)
        if isinstance(principal, Response):
            return principal
        address = request.headers.get("host") or f"{request.url.hostname}:{request.url.port or 80}"
        name = f"{intake.settings.cluster_name}-intake"
        node = {
            "name": name,
            "transport_address": address,
            "host": address.rsplit(":", 1)[0],
            "ip": address.rsplit(":", 1)[0],
            "version": VERSION,
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": BUILD_HASH,
            "roles": ["data", "ingest", "master"],
            "attributes": {},
            "http": {
                "bound_address": [address],
                "publish_address": address,
                "max_content_length_in_bytes": intake.settings.max_request_bytes,
            },
        }
        return es_response(
            {
                "_nodes": {"total": 1, "successful": 1, "failed": 0},
                "cluster_name": intake.settings.cluster_name,
                "nodes": {"d2F0Y2hmbG9vcg": node},
            }
        )

    @router.get("/_security/_authenticate", include_in_schema=False)
    async def whoami(request: Request) -> Response:
        principal = await authenticate(request)
        if isinstance(principal, Response):
            return principal
        return es_response(
            {
                "username": principal.token_id,
                "roles": ["watchfloor_intake"],
                "full_name": None,
                "email": None,
                "metadata": {},
                "enabled": True,
                "authentication_realm": {"name": "watchfloor", "type": "token"},
                "lookup_realm": {"name": "watchfloor", "type": "token"},
                "authentication_type": "token",
            }
        )

    async def bulk(request: Request, default_index: str | None) -> Response:
        principal = await authenticate(request)
        if isinstance(principal, Response):
            return principal
        tenant = principal.tenant
        try:
            await run_in_threadpool(intake.check_capacity)
            body, wire = await intake.read_body(request)
            metrics.count_bytes(tenant, PROTOCOL, wire)
            if not body.strip():
                metrics.count_rejected(tenant, PROTOCOL, "no_data")
                return es_error(
                    400, "action_request_validation_exception", "Validation Failed: 1: no requests added;"
                )
            answer = await run_in_threadpool(_process_bulk, intake, principal, body, default_index)
        except BulkRequestError as exc:
            metrics.count_rejected(tenant, PROTOCOL, "malformed_action")
            letter = DeadLetter(
                tenant=tenant,
                source=f"bulk:{default_index or '-'}",
                reason=exc.reason,
                code="bulk.malformed_action",
                line=exc.line,
                sample=exc.raw[: intake.settings.max_event_bytes],
            )
            await run_in_threadpool(intake.dead_letter, tenant, [letter], now_utc())
            return es_error(400, exc.error_type, exc.reason)
        except IntakeError as exc:
            refusal = refuse(exc, tenant, PROTOCOL)
            return es_error(refusal.status, _ES_TYPES[refusal.kind], refusal.detail, headers=refusal.headers)
        return es_response(answer)

    @router.api_route("/_bulk", methods=["POST", "PUT"], include_in_schema=False)
    async def bulk_default(request: Request) -> Response:
        return await bulk(request, None)

    @router.api_route("/{index}/_bulk", methods=["POST", "PUT"], include_in_schema=False)
    async def bulk_index(request: Request, index: str) -> Response:
        return await bulk(request, index)

    return router


def _index_template(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "index_template": {
            "index_patterns": [f"{name}*"],
            "template": {"settings": {}, "mappings": {}},
            "composed_of": [],
            "priority": 150,
            "data_stream": {"hidden": False, "allow_custom_routing": False},
        },
    }


def _legacy_template(name: str) -> dict[str, Any]:
    return {"order": 0, "index_patterns": [f"{name}*"], "settings": {}, "mappings": {}, "aliases": {}}


def _data_stream(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "timestamp_field": {"name": "@timestamp"},
        "indices": [],
        "generation": 1,
        "status": "GREEN",
        "template": name,
        "hidden": False,
        "system": False,
        "allow_custom_routing": False,
        "replicated": False,
    }
