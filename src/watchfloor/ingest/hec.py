"""Splunk HTTP Event Collector (HEC) compatibility: `/services/collector/{event,raw,ack,health}`.

Protocol as Splunk documents it: the event endpoint takes concatenated JSON objects (any whitespace between
them), each with `event` and optional `time`/`host`/`source`/`sourcetype`/`index`/`fields`; the raw endpoint
takes lines; answers are `{"text": ..., "code": N}` with Splunk's codes and HTTP statuses. A batch with an
invalid event is handled like Splunk: the events before it are accepted, the answer is 400 with
`invalid-event-number` (zero-based), and here the invalid event also goes to the dead-letter store.

Indexer acknowledgement: an ackId is handed out only after `publish_batch` returned, so it is true as soon as
it exists. Ack state is per (tenant, channel), bounded, and forgotten once queried true or after
`ack_ttl_seconds`; one tenant never sees another's channel (the tenant is part of the key).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from json import JSONDecoder
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from watchfloor.core.records import DeadLetter
from watchfloor.core.types import TenantId
from watchfloor.ingest import metrics
from watchfloor.ingest.auth import AuthProblem, Principal, credential_from_header
from watchfloor.ingest.envelope import SUBJECT_RAW, Envelope, EventFormat
from watchfloor.ingest.http import (
    BodyTooLargeError,
    ContentEncodingError,
    Intake,
    IntakeError,
    OverCapacityError,
    now_utc,
)

logger = logging.getLogger(__name__)

PROTOCOL: Final = "hec"
HEC_SCHEMES: Final = frozenset({"splunk", "bearer", "basic"})
CHANNEL_HEADER: Final = "x-splunk-request-channel"

_GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Splunk index names: lower-case letters, digits, '_' and '-', not starting with '_' or '-'.
_INDEX_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,79}")
_JSON_WS = re.compile(r"[ \t\n\r]*")
_DECODER = JSONDecoder()
_MAX_ACK_QUERY_IDS = 10_000


@dataclass(frozen=True, slots=True)
class HecStatus:
    """One of Splunk's HEC answers: HTTP status, HEC code, text."""

    http_status: int
    code: int
    text: str


SUCCESS = HecStatus(200, 0, "Success")
TOKEN_REQUIRED = HecStatus(401, 2, "Token is required")
INVALID_AUTHORIZATION = HecStatus(401, 3, "Invalid authorization")
INVALID_TOKEN = HecStatus(403, 4, "Invalid token")
NO_DATA = HecStatus(400, 5, "No data")
INVALID_DATA_FORMAT = HecStatus(400, 6, "Invalid data format")
INCORRECT_INDEX = HecStatus(400, 7, "Incorrect index")
INTERNAL_ERROR = HecStatus(500, 8, "Internal server error")
SERVER_BUSY = HecStatus(503, 9, "Server is busy")
CHANNEL_MISSING = HecStatus(400, 10, "Data channel is missing")
INVALID_CHANNEL = HecStatus(400, 11, "Invalid data channel")
EVENT_REQUIRED = HecStatus(400, 12, "Event field is required")
EVENT_BLANK = HecStatus(400, 13, "Event field cannot be blank")
ACK_DISABLED = HecStatus(400, 14, "ACK is disabled")
INDEXED_FIELDS = HecStatus(400, 15, "Error in handling indexed fields")
QUERY_AUTH_DISABLED = HecStatus(400, 16, "Query string authorization is not enabled")
HEALTHY = HecStatus(200, 17, "HEC is healthy")
UNHEALTHY_FULL = HecStatus(503, 18, "HEC is unhealthy, queues are full")


def hec_response(
    status: HecStatus,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, int | str] | None = None,
) -> Response:
    body: dict[str, Any] = {"text": status.text, "code": status.code, **(extra or {})}
    return Response(
        orjson.dumps(body), status_code=status.http_status, media_type="application/json", headers=headers
    )


# ---------------------------------------------------------------------- splitting concatenated JSON


@dataclass(frozen=True, slots=True)
class SplitError:
    """Where a concatenated-JSON body stops being valid: the zero-based event index, why, and the rest."""

    index: int
    reason: str
    raw: bytes


def split_concatenated_json(body: bytes) -> tuple[list[bytes], SplitError | None]:
    """The top-level JSON objects of a HEC event body, each as its UTF-8 bytes, and the first problem.

    Objects may be separated by any JSON whitespace (or nothing). Parsing stops at the first thing that is
    not a complete JSON object (or at invalid UTF-8); the objects before it are returned. Never raises.
    Only the object boundaries are checked here: callers validate each object (with orjson) themselves.
    """
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    bad_byte: int | None = None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_byte = exc.start
        text = body[: exc.start].decode("utf-8")
    events: list[bytes] = []
    pos = _skip_ws(text, 0)
    while pos < len(text):
        if text[pos] != "{":
            return events, _split_error(body, text, pos, len(events), "expected a JSON object", bad_byte)
        try:
            _, end = _DECODER.raw_decode(text, pos)
        except ValueError as exc:
            reason = f"invalid JSON: {exc.args[0] if exc.args else 'unparsable'}"[:200]
            return events, _split_error(body, text, pos, len(events), reason, bad_byte)
        except RecursionError:
            return events, _split_error(body, text, pos, len(events), "JSON nested too deeply", bad_byte)
        events.append(text[pos:end].encode("utf-8"))
        pos = _skip_ws(text, end)
    if bad_byte is not None:
        return events, _split_error(body, text, pos, len(events), "", bad_byte)
    return events, None


def _skip_ws(text: str, pos: int) -> int:
    match = _JSON_WS.match(text, pos)
    return pos if match is None else match.end()


def _split_error(
    body: bytes, text: str, pos: int, index: int, reason: str, bad_byte: int | None
) -> SplitError:
    start = len(text[:pos].encode("utf-8"))
    if bad_byte is not None:
        reason = f"invalid UTF-8 at byte {bad_byte}"
    return SplitError(index=index, reason=reason, raw=body[start:])


# ---------------------------------------------------------------------- ack state


@dataclass(slots=True)
class _Channel:
    next_id: int = 0
    pending: OrderedDict[int, float] = field(default_factory=OrderedDict)  # ackId -> issued (monotonic)
    touched: float = 0.0


class AckRegistry:
    """Issued HEC ackIds per (tenant, channel); bounded, expiring, and never shared between tenants."""

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_channels_per_tenant: int,
        max_pending_per_channel: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_channels = max_channels_per_tenant
        self._max_pending = max_pending_per_channel
        self._clock = clock
        self._lock = threading.Lock()
        self._tenants: dict[TenantId, OrderedDict[str, _Channel]] = {}

    def issue(self, tenant: TenantId, channel: str) -> int:
        """A new ackId for events that are already durable."""
        now = self._clock()
        with self._lock:
            channels = self._tenants.setdefault(tenant, OrderedDict())
            state = channels.get(channel)
            if state is None:
                self._evict(channels, now, room_for=1)
                state = channels[channel] = _Channel(touched=now)
            channels.move_to_end(channel)
            self._expire(state, now)
            ack_id = state.next_id
            state.next_id += 1
            state.pending[ack_id] = now
            while len(state.pending) > self._max_pending:
                state.pending.popitem(last=False)
            state.touched = now
            return ack_id

    def query(self, tenant: TenantId, channel: str, ack_ids: list[int]) -> dict[str, bool]:
        """{"<id>": issued-and-not-yet-reported}; ids reported true are forgotten."""
        now = self._clock()
        with self._lock:
            state = self._tenants.get(tenant, OrderedDict()).get(channel)
            if state is None:
                return {str(ack_id): False for ack_id in ack_ids}
            self._expire(state, now)
            state.touched = now
            return {str(ack_id): state.pending.pop(ack_id, None) is not None for ack_id in ack_ids}

    def pending(self, tenant: TenantId, channel: str) -> int:
        with self._lock:
            state = self._tenants.get(tenant, OrderedDict()).get(channel)
            return 0 if state is None else len(state.pending)

    def _expire(self, state: _Channel, now: float) -> None:
        while state.pending:
            ack_id, issued = next(iter(state.pending.items()))
            if now - issued < self._ttl:
                break
            del state.pending[ack_id]

    def _evict(self, channels: OrderedDict[str, _Channel], now: float, *, room_for: int) -> None:
        for name in [name for name, state in channels.items() if now - state.touched >= self._ttl]:
            del channels[name]
        while channels and len(channels) + room_for > self._max_channels:
            channels.popitem(last=False)


# ---------------------------------------------------------------------- event validation


@dataclass(frozen=True, slots=True)
class _Refusal:
    status: HecStatus
    reason: str  # metrics label and dead-letter code suffix
    message: str


def _event_envelope(
    raw: bytes,
    number: int,
    *,
    principal: Principal,
    defaults: Mapping[str, str],
    intake: Intake,
    now: datetime,
) -> Envelope | _Refusal:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _Refusal(INVALID_DATA_FORMAT, "invalid_json", f"event {number}: invalid JSON ({exc})"[:300])
    if not isinstance(obj, dict):
        return _Refusal(INVALID_DATA_FORMAT, "not_object", f"event {number} is not a JSON object")
    event = obj.get("event")
    if event is None:
        return _Refusal(EVENT_REQUIRED, "missing_event", f"event {number} has no `event` field")
    if (isinstance(event, str) and not event.strip()) or event in ({}, []):
        return _Refusal(EVENT_BLANK, "blank_event", f"event {number} has a blank `event` field")
    meta = dict(defaults)
    for key in ("host", "source", "sourcetype", "index"):
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            status = INCORRECT_INDEX if key == "index" else INVALID_DATA_FORMAT
            return _Refusal(status, f"invalid_{key}", f"event {number}: `{key}` must be a string")
        meta[key] = value
    index = meta.get("index")
    if index is not None and not _index_allowed(index, intake):
        return _Refusal(INCORRECT_INDEX, "invalid_index", f"event {number}: index {index[:80]!r} not allowed")
    if "time" in obj and obj["time"] is not None:
        stamp = _time(obj["time"])
        if stamp is None:
            message = f"event {number}: `time` is not epoch seconds"
            return _Refusal(INVALID_DATA_FORMAT, "invalid_time", message)
        meta["time"] = stamp
    if "fields" in obj and obj["fields"] is not None:
        if not _indexed_fields_ok(obj["fields"]):
            return _Refusal(INDEXED_FIELDS, "invalid_fields", f"event {number}: `fields` must be flat")
        meta["fields"] = orjson.dumps(obj["fields"]).decode()
    fmt: EventFormat
    if isinstance(event, dict):
        fmt, body = "json", orjson.dumps(event)
    elif isinstance(event, str):
        fmt, body = "text", event.encode("utf-8")
    else:  # numbers, booleans, arrays: Splunk indexes their JSON text
        fmt, body = "text", orjson.dumps(event)
    if len(body) > intake.settings.max_event_bytes:
        return _Refusal(
            INVALID_DATA_FORMAT,
            "too_large",
            f"event {number} is {len(body)} bytes (limit {intake.settings.max_event_bytes})",
        )
    return Envelope(
        tenant=principal.tenant,
        source=f"hec:{principal.token_id}",
        format=fmt,
        body=body,
        received_at=now,
        offset=f"event {number}",
        meta=meta,
    )


def _index_allowed(index: str, intake: Intake) -> bool:
    allowed = intake.settings.hec_allowed_indexes
    return _INDEX_RE.fullmatch(index) is not None and (allowed is None or index in allowed)


def _time(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return value.strip() if math.isfinite(number) else None
    return None


def _indexed_fields_ok(fields: object) -> bool:
    if not isinstance(fields, dict):
        return False
    scalar = (str, int, float)
    for value in fields.values():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, scalar) and not isinstance(v, bool) for v in values):
            return False
    return True


# ---------------------------------------------------------------------- request processing (worker threads)


@dataclass(frozen=True, slots=True)
class _Outcome:
    accepted: int
    refusal: tuple[int, _Refusal] | None = None


def _process_events(
    intake: Intake, principal: Principal, body: bytes, defaults: Mapping[str, str]
) -> _Outcome:
    now = now_utc()
    intake.check_capacity()
    raws, split_error = split_concatenated_json(body)
    envelopes: list[Envelope] = []
    refused: tuple[int, _Refusal, bytes] | None = None
    for number, raw in enumerate(raws):
        outcome = _event_envelope(raw, number, principal=principal, defaults=defaults, intake=intake, now=now)
        if isinstance(outcome, _Refusal):
            refused = (number, outcome, raw)
            break
        envelopes.append(outcome)
    if refused is None and split_error is not None:
        message = f"event {split_error.index}: {split_error.reason}"
        refusal = _Refusal(INVALID_DATA_FORMAT, "invalid_json", message)
        refused = (split_error.index, refusal, split_error.raw)
    letters = []
    if refused is not None:
        number, refusal, raw = refused
        letters.append(
            DeadLetter(
                tenant=principal.tenant,
                source=f"hec:{principal.token_id}",
                reason=refusal.message,
                code=f"hec.{refusal.reason}",
                record_id=number,
                sample=raw[: intake.settings.max_event_bytes],
            )
        )
    intake.accept(principal.tenant, envelopes, letters, now)
    tenant = principal.tenant
    metrics.count_received(tenant, PROTOCOL, len(envelopes) + len(letters))
    metrics.count_accepted(tenant, PROTOCOL, len(envelopes))
    if refused is not None:
        metrics.count_rejected(tenant, PROTOCOL, refused[1].reason)
        return _Outcome(len(envelopes), (refused[0], refused[1]))
    return _Outcome(len(envelopes))


def _process_raw(intake: Intake, principal: Principal, body: bytes, defaults: Mapping[str, str]) -> _Outcome:
    now = now_utc()
    intake.check_capacity()
    limit = intake.settings.max_event_bytes
    source = f"hec:{principal.token_id}"
    envelopes: list[Envelope] = []
    letters: list[DeadLetter] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if not line.strip():
            continue
        if len(line) > limit:
            letters.append(
                DeadLetter(
                    tenant=principal.tenant,
                    source=source,
                    reason=f"line {number} is {len(line)} bytes (limit {limit})",
                    code="hec.too_large",
                    line=number,
                    sample=line[:limit],
                )
            )
            continue
        envelopes.append(
            Envelope(
                tenant=principal.tenant,
                source=source,
                format="text",
                body=line,
                received_at=now,
                offset=f"line {number}",
                meta=dict(defaults),
            )
        )
    intake.accept(principal.tenant, envelopes, letters, now)
    metrics.count_received(principal.tenant, PROTOCOL, len(envelopes) + len(letters))
    metrics.count_accepted(principal.tenant, PROTOCOL, len(envelopes))
    metrics.count_rejected(principal.tenant, PROTOCOL, "too_large", len(letters))
    return _Outcome(len(envelopes))


# ---------------------------------------------------------------------- routes


def routes(intake: Intake) -> APIRouter:
    """The HEC endpoints, bound to `intake`."""
    settings = intake.settings
    acks = AckRegistry(
        ttl_seconds=settings.ack_ttl_seconds,
        max_channels_per_tenant=settings.max_ack_channels_per_tenant,
        max_pending_per_channel=settings.max_pending_acks_per_channel,
    )
    router = APIRouter()

    async def authenticate(request: Request) -> Principal | Response:
        credential = credential_from_header(request.headers.get("authorization"), schemes=HEC_SCHEMES)
        if not isinstance(credential, AuthProblem):
            principal = await intake.resolver.authenticate(credential)
            if principal is not None:
                return principal
            credential = AuthProblem.INVALID
        metrics.count_received(metrics.UNAUTHENTICATED, PROTOCOL)
        metrics.count_rejected(metrics.UNAUTHENTICATED, PROTOCOL, f"auth_{credential.value}")
        if credential is AuthProblem.MISSING:
            if "token" in request.query_params:
                return hec_response(QUERY_AUTH_DISABLED)
            return hec_response(TOKEN_REQUIRED)
        if credential is AuthProblem.MALFORMED:
            return hec_response(INVALID_AUTHORIZATION)
        return hec_response(INVALID_TOKEN)

    def channel_of(request: Request, *, required: bool) -> str | Response | None:
        channel = request.headers.get(CHANNEL_HEADER) or request.query_params.get("channel")
        if not channel:
            return hec_response(CHANNEL_MISSING) if required else None
        if _GUID_RE.fullmatch(channel.strip()) is None:
            return hec_response(INVALID_CHANNEL)
        return channel.strip().lower()

    def query_defaults(request: Request) -> dict[str, str] | Response:
        defaults = {
            key: request.query_params[key]
            for key in ("host", "source", "sourcetype", "index", "time")
            if request.query_params.get(key)
        }
        if "index" in defaults and not _index_allowed(defaults["index"], intake):
            return hec_response(INCORRECT_INDEX)
        return defaults

    async def ingest(
        request: Request, process: Callable[[Intake, Principal, bytes, Mapping[str, str]], _Outcome]
    ) -> Response:
        principal = await authenticate(request)
        if isinstance(principal, Response):
            return principal
        channel = channel_of(request, required=settings.hec_acks == "required")
        if isinstance(channel, Response):
            return channel
        defaults = query_defaults(request)
        if isinstance(defaults, Response):
            return defaults
        tenant = principal.tenant
        try:
            await run_in_threadpool(intake.check_capacity)
            body, wire = await intake.read_body(request)
            metrics.count_bytes(tenant, PROTOCOL, wire)
            if not body.strip():
                metrics.count_rejected(tenant, PROTOCOL, "no_data")
                return hec_response(NO_DATA)
            outcome = await run_in_threadpool(process, intake, principal, body, defaults)
        except IntakeError as exc:
            return _refusal_response(exc, tenant)
        except Exception:
            logger.exception("HEC request of tenant %s failed", tenant)
            return hec_response(INTERNAL_ERROR)
        if outcome.refusal is not None:
            number, refusal = outcome.refusal
            return hec_response(refusal.status, extra={"invalid-event-number": number})
        if channel is not None and settings.hec_acks != "off":
            return hec_response(SUCCESS, extra={"ackId": acks.issue(tenant, channel)})
        return hec_response(SUCCESS)

    def endpoint(
        process: Callable[[Intake, Principal, bytes, Mapping[str, str]], _Outcome],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return await ingest(request, process)

        return handler

    for path in ("/services/collector", "/services/collector/event", "/services/collector/event/1.0"):
        router.add_api_route(path, endpoint(_process_events), methods=["POST"], include_in_schema=False)
    for path in ("/services/collector/raw", "/services/collector/raw/1.0"):
        router.add_api_route(path, endpoint(_process_raw), methods=["POST"], include_in_schema=False)

    @router.post("/services/collector/ack", include_in_schema=False)
    async def ack(request: Request) -> Response:
        principal = await authenticate(request)
        if isinstance(principal, Response):
            return principal
        if settings.hec_acks == "off":
            return hec_response(ACK_DISABLED)
        channel = channel_of(request, required=True)
        if isinstance(channel, Response):
            return channel
        assert channel is not None  # required=True
        try:
            body, _ = await intake.read_body(request)
        except IntakeError as exc:
            return _refusal_response(exc, principal.tenant)
        ids = _ack_ids(body)
        if ids is None:
            return hec_response(INVALID_DATA_FORMAT)
        return Response(
            orjson.dumps({"acks": acks.query(principal.tenant, channel, ids)}), media_type="application/json"
        )

    @router.get("/services/collector/health", include_in_schema=False)
    @router.get("/services/collector/health/1.0", include_in_schema=False)
    async def health() -> Response:
        pressure = await run_in_threadpool(intake.bus.pressure, SUBJECT_RAW)
        if pressure.level == "full":
            retry = OverCapacityError("", level="full", retry_after_seconds=pressure.retry_after_seconds)
            return hec_response(UNHEALTHY_FULL, headers={"Retry-After": retry.retry_after})
        return hec_response(HEALTHY)

    return router


def _ack_ids(body: bytes) -> list[int] | None:
    try:
        query = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    ids = query.get("acks") if isinstance(query, dict) else None
    if not isinstance(ids, list) or len(ids) > _MAX_ACK_QUERY_IDS:
        return None
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        return None
    return ids


def _refusal_response(exc: IntakeError, tenant: TenantId) -> Response:
    if isinstance(exc, OverCapacityError):
        metrics.count_rejected(tenant, PROTOCOL, f"over_capacity_{exc.level}")
        return hec_response(SERVER_BUSY, headers={"Retry-After": exc.retry_after})
    if isinstance(exc, BodyTooLargeError):
        metrics.count_rejected(tenant, PROTOCOL, "request_too_large")
        return hec_response(
            HecStatus(413, INVALID_DATA_FORMAT.code, f"Content too large (maximum is {exc.limit} bytes)")
        )
    if isinstance(exc, ContentEncodingError):
        metrics.count_rejected(tenant, PROTOCOL, "bad_encoding")
        return hec_response(INVALID_DATA_FORMAT)
    metrics.count_rejected(tenant, PROTOCOL, "error")
    return hec_response(INTERNAL_ERROR)
