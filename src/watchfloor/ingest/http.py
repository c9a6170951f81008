"""HTTP intake: Splunk HEC, Elasticsearch `_bulk` and NDJSON endpoints on one router, all ending in the spool.

Contract: one `Envelope` per accepted event on `SUBJECT_RAW`; a 2xx means every accepted event is durable
(`publish_batch` returned), and every refused event was either reported to the sender in the response or
written to the tenant's dead-letter store. The tenant always comes from the token (`auth.py`).

This module holds what the protocols share: settings, the `Intake` context (bounded body reading with
gzip/deflate, capacity checks, publishing, dead letters) and its error family. The protocol modules
(`hec.py`, `elastic.py`, `ndjson.py`) each add their routes with `routes(intake)`.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from watchfloor.bus import Bus, SpoolBackpressure, SpoolFullError, SpoolWriteError
from watchfloor.core.errors import WatchfloorError
from watchfloor.core.records import DeadLetter
from watchfloor.core.types import TenantId
from watchfloor.ingest import metrics
from watchfloor.ingest.auth import TokenResolver
from watchfloor.ingest.envelope import SUBJECT_RAW, Envelope
from watchfloor.storage import Database

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
HecAckMode = Literal["off", "optional", "required"]
CapacityLevel = Literal["throttle", "full"]

# Retry-After handed out when the spool failed a write (EIO...) and stored nothing.
WRITE_ERROR_RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeSettings:
    """Limits and switches of the HTTP intake (names carry their units).

    - `max_request_bytes`: largest request body, both as sent and after gzip/deflate (413 beyond).
    - `max_event_bytes`: largest single event; bigger ones are refused per event and dead-lettered.
    - `ack_ttl_seconds`: how long an issued HEC ackId stays queryable.
    - `token_cache_seconds`: how long a token lookup (found or not) is cached; a revoked token stops
      working within this time.
    - `hec_acks`: "optional" (default): a request that names a channel gets an ackId; "required": a channel
      is mandatory (HEC code 10 without one), as for a Splunk token with indexer acknowledgement;
      "off": no ackIds, `/services/collector/ack` answers code 14.
    - `hec_allowed_indexes`: HEC `index` values accepted (code 7 otherwise); None accepts any valid name.
    - `max_ack_channels_per_tenant`, `max_pending_acks_per_channel`: bounds of the HEC ack state.
    - `max_reported_errors`: per-line errors listed in an NDJSON response (all are dead-lettered).
    - `cluster_name`: what the Elasticsearch-compatible endpoints call the cluster.
    """

    max_request_bytes: int = 16 * MIB
    max_event_bytes: int = 1 * MIB
    ack_ttl_seconds: float = 600.0
    token_cache_seconds: float = 5.0
    hec_acks: HecAckMode = "optional"
    hec_allowed_indexes: frozenset[str] | None = None
    max_ack_channels_per_tenant: int = 1000
    max_pending_acks_per_channel: int = 100_000
    max_reported_errors: int = 100
    cluster_name: str = "watchfloor"

    def __post_init__(self) -> None:
        if self.max_request_bytes < 1 or self.max_event_bytes < 1:
            msg = "max_request_bytes and max_event_bytes must be positive"
            raise ValueError(msg)
        if self.max_event_bytes > self.max_request_bytes:
            msg = "max_event_bytes cannot exceed max_request_bytes"
            raise ValueError(msg)
        if self.ack_ttl_seconds <= 0 or self.token_cache_seconds < 0:
            msg = "ack_ttl_seconds must be positive and token_cache_seconds not negative"
            raise ValueError(msg)
        if self.max_ack_channels_per_tenant < 1 or self.max_pending_acks_per_channel < 1:
            msg = "the ack state bounds must be at least 1"
            raise ValueError(msg)


class IntakeError(WatchfloorError):
    """Root of the HTTP intake's request-level refusals; each protocol renders them in its own dialect."""

    code = "intake.error"


class BodyTooLargeError(IntakeError):
    """The request body (as sent, or once decompressed) is larger than `max_request_bytes`."""

    code = "intake.body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class ContentEncodingError(IntakeError):
    """Unsupported `Content-Encoding`, or a body that does not decompress."""

    code = "intake.content_encoding"


class OverCapacityError(IntakeError):
    """The spool cannot take data now: "throttle" (429) or "full" (503); retry after `retry_after_seconds`."""

    code = "intake.over_capacity"

    def __init__(self, message: str, *, level: CapacityLevel, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.level: CapacityLevel = level
        self.retry_after_seconds = retry_after_seconds

    @property
    def retry_after(self) -> str:
        """The `Retry-After` header value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after_seconds)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """A request-level refusal, protocol-neutral: each protocol renders it in its own dialect."""

    status: int  # 413, 400, 429, 503 or 500
    kind: str  # body_too_large | bad_encoding | throttle | full | internal
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


def refuse(exc: IntakeError, tenant: str, protocol: str) -> Refusal:
    """Count the refusal for `tenant` and `protocol` and say how to answer it."""
    if isinstance(exc, OverCapacityError):
        metrics.count_rejected(tenant, protocol, f"over_capacity_{exc.level}")
        status = 429 if exc.level == "throttle" else 503
        detail = "the intake spool is over capacity; retry later"
        return Refusal(status=status, kind=exc.level, detail=detail, headers={"Retry-After": exc.retry_after})
    if isinstance(exc, BodyTooLargeError):
        metrics.count_rejected(tenant, protocol, "request_too_large")
        return Refusal(
            status=413, kind="body_too_large", detail=f"the request body is over {exc.limit} bytes"
        )
    if isinstance(exc, ContentEncodingError):
        metrics.count_rejected(tenant, protocol, "bad_encoding")
        return Refusal(status=400, kind="bad_encoding", detail=exc.message)
    return Refusal(status=500, kind="internal", detail=exc.code)


class Intake:
    """What every protocol handler needs: the bus, the database, settings, token resolver. Thread-safe.

    The blocking methods (`check_capacity`, `publish`, `dead_letter`, `accept`) are called from worker
    threads (`run_in_threadpool`), never on the event loop.
    """

    def __init__(
        self, bus: Bus, db: Database, settings: IntakeSettings, resolver: TokenResolver | None = None
    ) -> None:
        self.bus = bus
        self.db = db
        self.settings = settings
        self.resolver = resolver or TokenResolver(db, ttl_seconds=settings.token_cache_seconds)

    # ------------------------------------------------------------------ request bodies

    async def read_body(self, request: Request) -> tuple[bytes, int]:
        """(decoded body, bytes on the wire). Reads incrementally and stops past `max_request_bytes`."""
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise BodyTooLargeError(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(limit)
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding in {"", "identity"}:
            return body, size
        if encoding not in {"gzip", "x-gzip", "deflate"}:
            raise ContentEncodingError(f"unsupported Content-Encoding {encoding[:40]!r}")
        if len(body) < 64 * 1024:
            return decompress(body, encoding, limit), size
        return await run_in_threadpool(decompress, body, encoding, limit), size

    # ------------------------------------------------------------------ capacity, publishing, dead letters

    def check_capacity(self) -> None:
        """Raise `OverCapacityError` unless the spool's consumers keep up (`bus.pressure`). Blocking."""
        pressure = self.bus.pressure(SUBJECT_RAW)
        if pressure.level != "ok":
            raise OverCapacityError(
                pressure.reason or f"{SUBJECT_RAW} is {pressure.level}",
                level=pressure.level,
                retry_after_seconds=pressure.retry_after_seconds,
            )

    def publish(self, envelopes: Sequence[Envelope]) -> list[int]:
        """Durably publish all of `envelopes` or none; spool refusals become `OverCapacityError`. Blocking."""
        if not envelopes:
            return []
        try:
            return self.bus.publish_batch(SUBJECT_RAW, [envelope.to_publish() for envelope in envelopes])
        except SpoolBackpressure as exc:
            level: CapacityLevel = "throttle" if exc.level == "throttle" else "full"
            retry = exc.retry_after_seconds
            raise OverCapacityError(exc.message, level=level, retry_after_seconds=retry) from exc
        except SpoolFullError as exc:
            retry = exc.retry_after_seconds
            raise OverCapacityError(exc.message, level="full", retry_after_seconds=retry) from exc
        except SpoolWriteError as exc:
            logger.error("spool write failed, nothing stored: %s", exc.code)  # noqa: TRY400 - no payload
            raise OverCapacityError(
                "the spool failed a write", level="full", retry_after_seconds=WRITE_ERROR_RETRY_SECONDS
            ) from exc

    def dead_letter(self, tenant: TenantId, letters: Sequence[DeadLetter], received_at: datetime) -> None:
        """Store refused events in the tenant's dead-letter store. Blocking."""
        if letters:
            self.db.dead_letters.add_many(tenant, letters, received_at=received_at)

    def accept(
        self,
        tenant: TenantId,
        envelopes: Sequence[Envelope],
        rejected: Sequence[DeadLetter],
        received_at: datetime,
    ) -> list[int]:
        """Publish the good events, then dead-letter the bad ones; returns the sequences. Blocking.

        Publishing comes first: if the spool refuses, nothing is stored anywhere and the sender retries
        the whole request, so its refused events are not dead-lettered twice.
        """
        sequences = self.publish(envelopes)
        self.dead_letter(tenant, rejected, received_at)
        return sequences


def now_utc() -> datetime:
    return datetime.now(UTC)


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflate gzip (possibly multi-member) or deflate (zlib or raw); refuse more than `limit` bytes."""
    if encoding == "deflate":
        try:
            return _inflate(body, zlib.MAX_WBITS, limit, multi_member=False)
        except ContentEncodingError:
            return _inflate(body, -zlib.MAX_WBITS, limit, multi_member=False)
    return _inflate(body, 16 + zlib.MAX_WBITS, limit, multi_member=True)


def _inflate(data: bytes, wbits: int, limit: int, *, multi_member: bool) -> bytes:
    out = bytearray()
    if not data:
        return b""
    while data:
        inflater = zlib.decompressobj(wbits)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise ContentEncodingError("the request body does not decompress") from exc
        if len(out) > limit or inflater.unconsumed_tail:
            raise BodyTooLargeError(limit)
        if not inflater.eof:
            raise ContentEncodingError("the compressed request body is truncated")
        data = inflater.unused_data
        if not multi_member:
            break
    return bytes(out)


def build_intake_router(bus: Bus, db: Database, settings: IntakeSettings | None = None) -> APIRouter:
    """Every HTTP intake route (HEC, Elasticsearch-compatible, NDJSON) on one router.

    Mount it at the root of its own listener: Elasticsearch clients expect `GET /` to be the cluster info.
    """
    # Imported here: the protocol modules import this one.
    from watchfloor.ingest.elastic import routes as elastic_routes
    from watchfloor.ingest.hec import routes as hec_routes
    from watchfloor.ingest.ndjson import routes as ndjson_routes

    intake = Intake(bus, db, settings or IntakeSettings())
    router = APIRouter()
    router.include_router(hec_routes(intake))
    router.include_router(ndjson_routes(intake))
    router.include_router(elastic_routes(intake))  # last: it owns `/` and `/{index}/_bulk`
    return router


def create_intake_app(bus: Bus, db: Database, settings: IntakeSettings | None = None) -> FastAPI:
    """A FastAPI app serving only the intake router (no docs pages, which would shadow ES paths)."""
    app = FastAPI(title="Watchfloor intake", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(build_intake_router(bus, db, settings))
    return app
