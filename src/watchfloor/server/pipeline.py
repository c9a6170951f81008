"""The detection stage of the service: `ingest.raw` -> parse -> engine -> stored detections.

At-least-once from the bus, exactly-once in effect: a batch is fetched, every event is evaluated, the
detections are written with INSERT ... ON CONFLICT DO NOTHING on (tenant, rule, event key), dead
letters are written, and only then is the batch acked. A crash anywhere before the ack redelivers the
batch; the unique key makes the replay harmless. The event key is stable for the same event: the
source host, channel and record id where the event has one, else a digest of its bytes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from watchfloor.archive import ArchiveWriter, event_from_raw
from watchfloor.bus.api import Bus, ConsumerConfig, Message
from watchfloor.core.errors import InputError
from watchfloor.core.types import RuleId, TenantId, rule_level
from watchfloor.detect.sigma.correlation import BaseMatch, CorrelationEngine, CorrelationMatch
from watchfloor.detect.sigma.engine import CompiledRule, SigmaEngine
from watchfloor.detect.sigma.loader import RuleMeta
from watchfloor.detect.sigma.values import EvalContext
from watchfloor.health import HealthTracker, source_name
from watchfloor.ingest.envelope import SUBJECT_RAW, Envelope, EventFormat, from_message
from watchfloor.normalize.shapes import classify
from watchfloor.normalize.shapes import record_id as doc_record_id
from watchfloor.normalize.shapes import timestamp as doc_timestamp
from watchfloor.normalize.text import text_to_doc
from watchfloor.storage.database import Database
from watchfloor.storage.detections import NewDetection

log = logging.getLogger(__name__)

DURABLE = "detect"
MAX_UNACKED = 100_000  # messages waiting for the archive flush that makes them durable
FED_MEMORY = 200_000  # base matches remembered for correlation de-duplication
TextToDoc = Callable[[bytes, datetime], dict[str, Any] | None]


def _text_doc(body: bytes, received_at: datetime) -> dict[str, Any] | None:
    """A text event as a JSON document: syslog (RFC 5424/3164, CEF, sshd, sudo, auditd) as the
    classifier knows it; any other UTF-8 line as its message and receive time."""
    doc = text_to_doc(body, received_at=received_at)
    if doc is not None:
        return doc
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return {"message": text, "@timestamp": received_at.astimezone(UTC).isoformat()}


@dataclass(slots=True)
class StageCounters:
    """received / sent / errors / discarded per tenant, as every pipeline component reports them."""

    received: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    detections: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead_letters: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    batches: int = 0


@dataclass(frozen=True, slots=True)
class _Parsed:
    envelope: Envelope
    doc: Mapping[str, Any]
    raw: bytes


def rule_versions(metas: Iterable[RuleMeta]) -> dict[str, str]:
    """rule id -> the first 12 hex digits of SHA-256 of its file (the version stored with detections)."""
    out: dict[str, str] = {}
    digests: dict[str, str] = {}
    for meta in metas:
        if meta.path not in digests:
            try:
                digests[meta.path] = hashlib.sha256(Path(meta.path).read_bytes()).hexdigest()[:12]
            except OSError:
                digests[meta.path] = "unknown"
        out[meta.id] = digests[meta.path]
    return out


def event_key(env: Envelope, doc: Mapping[str, Any], raw: bytes) -> tuple[str, str | None]:
    """(stable event key, record id): host/channel/record for records that carry one, else a digest."""
    rid = doc_record_id(doc)
    if rid is not None:
        event = doc.get("Event")
        system = event.get("System") if isinstance(event, dict) else None
        if isinstance(system, dict):
            where = f"{system.get('Computer', '')}/{system.get('Channel', '')}"
        else:
            where = env.source
        return f"{where}#{rid}", str(rid)
    return f"{env.source}#sha256:{hashlib.sha256(raw).hexdigest()[:32]}", None


class DetectionWorker:
    """Consumes `ingest.raw`, runs the engine, stores detections and dead letters, then acks."""

    def __init__(
        self,
        bus: Bus,
        db: Database,
        engine: SigmaEngine,
        *,
        versions: Mapping[str, str],
        text_to_doc: TextToDoc = _text_doc,
        correlations: CorrelationEngine | None = None,
        correlation_meta: Mapping[str, RuleMeta] | None = None,
        health: HealthTracker | None = None,
        archive: ArchiveWriter | None = None,
        archive_flush_seconds: float = 5.0,
        batch_size: int = 512,
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self.bus = bus
        self.db = db
        self.engine = engine
        self.versions = dict(versions)
        self.text_to_doc = text_to_doc
        self.correlations = correlations
        self.correlation_meta = dict(correlation_meta or {})
        self.health = health
        # Archived events are acked only once their Parquet file is durable: the batch's messages wait
        # in `_unacked` until the next flush (a crash before it redelivers them; the archive dedupes by
        # event key at query time and detections by their unique key).
        self.archive = archive
        self.archive_flush_seconds = archive_flush_seconds
        self._unacked: list[Message] = []
        self._last_flush = time.monotonic()
        # (tenant, rule, event key) recently fed to correlations: a replayed or re-sent event must not
        # count twice in a window (bounded; state is in memory like the windows themselves)
        self._fed: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self.batch_size = batch_size
        self.clock = clock
        self.counters = StageCounters()
        waiting = ConsumerConfig(
            max_ack_pending=MAX_UNACKED, ack_wait_seconds=max(120.0, 4 * archive_flush_seconds)
        )
        self.consumer = bus.consumer(SUBJECT_RAW, DURABLE, waiting if archive is not None else None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the engine is single-threaded

    # -- one batch ---------------------------------------------------------------------------
    def run_once(self, timeout_seconds: float = 0.5) -> int:
        """Fetch, process and ack one batch; returns how many messages it handled."""
        messages = self.consumer.fetch(self.batch_size, timeout_seconds)
        if not messages:
            self._flush_archive(force=False)
            return 0
        with self._lock:
            try:
                self._process(messages)
            except Exception:  # one bad event must not block the stream: find it, dead-letter it
                log.exception("detection batch failed; retrying its %d events one by one", len(messages))
                self._one_by_one(messages)
        if self.archive is None:
            self.consumer.ack_many(messages)
        else:
            self._unacked.extend(messages)
            self._flush_archive(force=False)
        self.counters.batches += 1
        return len(messages)

    def _process(self, messages: list[Message]) -> None:
        found: dict[TenantId, list[NewDetection]] = defaultdict(list)
        seen: list[tuple[TenantId, str, datetime]] = []
        now = self.clock()
        for message in messages:
            parsed = self._parse(message)
            if parsed is None:
                continue
            env = parsed.envelope
            self.counters.received[env.tenant] += 1
            if self.archive is not None:
                key, _rid = event_key(env, parsed.doc, parsed.raw)
                self.archive.append(
                    event_from_raw(
                        env.body,
                        tenant=env.tenant,
                        source=env.source,
                        received_at=env.received_at,
                        doc=parsed.doc,
                        event_key=key,
                    )
                )
            if self.health is not None:
                seen.append((env.tenant, source_name(classify(parsed.doc), env.source), env.received_at))
            doc, matched = self.engine.evaluate(parsed.raw, env.tenant, parsed.doc)
            if matched:
                rows = list(self._detections(parsed, doc, matched, now))
                found[env.tenant].extend(self._correlate(env.tenant, doc, matched, rows, now))
        for tenant, rows in found.items():
            new = self.db.detections.insert_many(tenant, rows)
            self.counters.detections[tenant] += new
            self.counters.duplicates[tenant] += len(rows) - new
        if self.health is not None:  # after the writes: a batch retried one by one is not counted twice
            for tenant, source, at in seen:
                self.health.observe(tenant, source, at)

    def _flush_archive(self, *, force: bool) -> None:
        """Write the archive's buffered events durably, then ack the messages they came from."""
        if self.archive is None or not self._unacked:
            return
        due = time.monotonic() - self._last_flush >= self.archive_flush_seconds
        if not (force or due or len(self._unacked) >= MAX_UNACKED // 2):
            return
        self.archive.flush()
        self.consumer.ack_many(self._unacked)
        self._unacked = []
        self._last_flush = time.monotonic()

    def _one_by_one(self, messages: list[Message]) -> None:
        """Each event alone; one that still fails is dead-lettered (storage errors propagate: the batch
        is then redelivered, not acked)."""
        for message in messages:
            try:
                self._process([message])
            except Exception as exc:  # noqa: BLE001 - recorded with its type, never silently dropped
                error = InputError(
                    f"pipeline failed on this event: {type(exc).__name__}", code="pipeline.failed"
                )
                self._dead(
                    message.tenant, message.headers.get("wf-source", "?"), error, message.payload, None
                )

    def _parse(self, message: Message) -> _Parsed | None:
        try:
            env = from_message(message)
        except InputError as exc:
            self._dead(
                message.tenant, f"bus:{message.subject}#{message.sequence}", exc, message.payload, None
            )
            return None
        if env.format == "json":
            try:
                doc = orjson.loads(env.body)
            except orjson.JSONDecodeError as exc:
                self._dead(
                    env.tenant,
                    env.source,
                    InputError(f"not JSON: {exc}", code="json.malformed"),
                    env.body,
                    env.offset,
                )
                return None
            if not isinstance(doc, dict):
                error = InputError(
                    f"a JSON {type(doc).__name__} is not an event object", code="json.not_object"
                )
                self._dead(env.tenant, env.source, error, env.body, env.offset)
                return None
            return _Parsed(env, doc, env.body)
        converted = self.text_to_doc(env.body, env.received_at)
        if converted is None:
            error = InputError("text event could not be normalized", code="text.unparseable")
            self._dead(env.tenant, env.source, error, env.body, env.offset)
            return None
        return _Parsed(env, converted, orjson.dumps(converted))

    def _detections(
        self, parsed: _Parsed, doc: Mapping[str, Any], matched: list[CompiledRule], now: datetime
    ) -> Iterable[NewDetection]:
        key, rid = event_key(parsed.envelope, doc, parsed.raw)
        when = doc_timestamp(doc)
        event_time = datetime.fromisoformat(when) if when else None
        for compiled in matched:
            meta = compiled.meta
            yield NewDetection(
                rule_id=RuleId(meta.id),
                rule_version=self.versions.get(meta.id, "unknown"),
                rule_title=meta.title,
                rule_level=meta.level,
                event_key=key,
                source=parsed.envelope.source,
                record_id=rid,
                event_time=event_time,
                matched_at=now,
                event=doc,
                tags=meta.tags,
            )

    def _correlate(
        self,
        tenant: TenantId,
        doc: Mapping[str, Any],
        matched: list[CompiledRule],
        rows: list[NewDetection],
        now: datetime,
    ) -> list[NewDetection]:
        """Feed base matches to the tenant's correlation state; returns the rows to store: the base
        detections (unless a correlation-only rule) plus any correlation that held. Correlation state is
        in memory: a restart forgets open windows (documented in the server README)."""
        corr = self.correlations
        if corr is None:
            return rows
        out: list[NewDetection] = []
        ctx: EvalContext | None = None
        for compiled, row in zip(matched, rows, strict=True):
            rule_id = compiled.meta.id
            if corr.is_referenced(rule_id):
                if not self._first_feed((tenant, rule_id, row.event_key)):
                    if corr.emits_base(rule_id):
                        out.append(row)  # stored once anyway by the unique key
                    continue
                ctx = ctx or EvalContext(doc)
                fields: dict[str, Any] = {}
                for name in corr.needed_fields(rule_id):
                    present, value = ctx.value(compiled.binding.native_names(name))
                    if present:
                        fields[name] = value
                when = row.event_time.timestamp() if row.event_time else now.timestamp()
                base = BaseMatch(
                    tenant=tenant,
                    rule_id=rule_id,
                    rule_name=compiled.meta.name,
                    event_ref=row.event_key,
                    timestamp=when,
                    fields=fields,
                )
                out.extend(self._correlation_row(m, now) for m in corr.feed(base))
                if not corr.emits_base(rule_id):
                    continue
            out.append(row)
        return out

    def _first_feed(self, key: tuple[str, str, str]) -> bool:
        if key in self._fed:
            self._fed.move_to_end(key)
            return False
        self._fed[key] = None
        if len(self._fed) > FED_MEMORY:
            self._fed.popitem(last=False)
        return True

    def _correlation_row(self, match: CorrelationMatch, now: datetime) -> NewDetection:
        meta = self.correlation_meta.get(match.rule_id)
        refs = "|".join(match.event_refs)
        key = f"correlation#{hashlib.sha256(refs.encode()).hexdigest()[:32]}"
        return NewDetection(
            rule_id=RuleId(match.rule_id),
            rule_version=self.versions.get(match.rule_id, "unknown"),
            rule_title=match.rule_title,
            rule_level=rule_level(match.level),
            event_key=key,
            source="<correlation>",
            record_id=None,
            event_time=datetime.fromtimestamp(match.last_timestamp, tz=UTC),
            matched_at=now,
            event={
                "correlation": True,
                "event_refs": list(match.event_refs),
                "event_count": match.event_count,
                "group": dict(match.group),
                "value": match.value,
            },
            tags=meta.tags if meta is not None else (),
        )

    def _dead(self, tenant: TenantId, source: str, exc: InputError, raw: bytes, offset: str | None) -> None:
        self.counters.dead_letters[tenant] += 1
        self.db.dead_letters.add(
            tenant,
            source=source,
            code=exc.code,
            message=exc.message if offset is None else f"{offset}: {exc.message}",
            raw=raw,
            received_at=self.clock(),
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="watchfloor-detect", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # e.g. the database is down: the batch is redelivered; keep the stage alive
                log.exception("detection batch not stored; it will be redelivered")
                self._stop.wait(1.0)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self, timeout_seconds: float = 0.05) -> int:
        """Process until the subject is empty (for `watchfloor ingest` and tests); returns events handled."""
        total = 0
        while handled := self.run_once(timeout_seconds):
            total += handled
        with self._lock:
            self._flush_archive(force=True)
        return total

    def stop(self, timeout_seconds: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
        with self._lock:
            self._flush_archive(force=True)


def dead_letter_envelopes(
    db: Database, tenant: TenantId, ids: Iterable[int] | None = None
) -> list[tuple[int, Envelope]]:
    """(dead letter id, envelope) for the tenant's pending dead letters (all, or those of `ids`), to run
    through the stage again; each keeps its source, and says which dead letter it was."""
    wanted = set(ids) if ids is not None else None
    out: list[tuple[int, Envelope]] = []
    for letter in db.dead_letters.list(tenant, status="pending", limit=100_000):
        if wanted is not None and letter.id not in wanted:
            continue
        raw = db.dead_letters.get_raw(tenant, letter.id)
        if raw is None:
            continue
        fmt: EventFormat = "json" if raw.lstrip()[:1] in (b"{", b"[") else "text"
        envelope = Envelope(
            tenant=tenant,
            source=letter.source,
            format=fmt,
            body=raw,
            received_at=datetime.now(tz=UTC),
            offset=f"dead letter {letter.id}",
        )
        out.append((letter.id, envelope))
    return out
