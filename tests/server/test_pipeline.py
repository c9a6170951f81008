"""The detection stage: spool -> engine -> detections stored exactly once, bad events dead-lettered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from watchfloor.bus import SpoolBus
from watchfloor.core.types import TenantId
from watchfloor.detect.sigma.engine import SigmaEngine
from watchfloor.detect.sigma.loader import RuleSet, load_rules
from watchfloor.ingest.envelope import SUBJECT_RAW, Envelope
from watchfloor.normalize.logsources import content_dir, default_logsource_map
from watchfloor.samples.windows import generate_windows_events
from watchfloor.server.pipeline import DetectionWorker, rule_versions
from watchfloor.server.service import correlation_engine
from watchfloor.storage import Database

CLINIC, LAWFIRM = TenantId("clinic"), TenantId("lawfirm")
START = datetime(2026, 11, 2, 8, tzinfo=UTC)
BRUTE_FORCE = "288c074b-724f-4b0f-bda9-543a8cebe5c5"  # content/rules: a correlation (event_count) rule


@pytest.fixture(scope="module")
def content_rules() -> RuleSet:
    rules = load_rules([content_dir() / "rules"], cache_dir=False)
    assert not rules.errors
    assert rules.correlations  # our content has correlation rules; the stage must run them
    return rules


@pytest.fixture(scope="module")
def engine_and_versions(content_rules: RuleSet) -> tuple[SigmaEngine, dict[str, str]]:
    metas = [m for _, m in [*content_rules.rules, *content_rules.correlations]]
    return SigmaEngine(content_rules, default_logsource_map()), rule_versions(metas)


def new_worker(
    bus: SpoolBus,
    db: Database,
    engine: SigmaEngine,
    versions: dict[str, str],
    rules: RuleSet,
    batch_size: int = 200,
) -> DetectionWorker:
    return DetectionWorker(
        bus,
        db,
        engine,
        versions=versions,
        batch_size=batch_size,
        correlations=correlation_engine(rules),
        correlation_meta={m.id: m for _, m in rules.correlations},
    )


@pytest.fixture(scope="module")
def sample_events() -> list[dict[str, object]]:
    events, truths = generate_windows_events(seed=7, hosts=4, hours=3, start=START)
    assert truths
    return events


@pytest.fixture
def world(
    tmp_path: Path,
    db_url: str,
    engine_and_versions: tuple[SigmaEngine, dict[str, str]],
    content_rules: RuleSet,
) -> Iterator[tuple[SpoolBus, Database, DetectionWorker]]:
    db = Database.open(db_url)
    for tenant in (CLINIC, LAWFIRM):
        db.tenants.create(tenant, name=tenant.title(), vertical="healthcare", tier="standard", actor="test")
    bus = SpoolBus(tmp_path / "spool")
    engine, versions = engine_and_versions
    worker = new_worker(bus, db, engine, versions, content_rules)
    try:
        yield bus, db, worker
    finally:
        bus.close()
        db.close()


def publish(bus: SpoolBus, tenant: TenantId, bodies: list[bytes], fmt: str = "json") -> None:
    now = datetime.now(tz=UTC)
    envs = [
        Envelope(tenant=tenant, source="test", format=fmt, body=b, received_at=now, offset=f"line {i + 1}")  # type: ignore[arg-type]
        for i, b in enumerate(bodies)
    ]
    bus.publish_batch(SUBJECT_RAW, [e.to_publish() for e in envs])


def drain(worker: DetectionWorker) -> int:
    total = 0
    while handled := worker.run_once(timeout_seconds=0.05):
        total += handled
    return total


def test_detections_are_stored_per_tenant_exactly_once(
    world: tuple[SpoolBus, Database, DetectionWorker], sample_events: list[dict[str, object]]
) -> None:
    bus, db, worker = world
    bodies = [orjson.dumps(e) for e in sample_events]
    publish(bus, CLINIC, bodies)
    assert drain(worker) == len(bodies)
    stored = db.detections.count(CLINIC)
    assert stored > 0
    assert db.detections.count(LAWFIRM) == 0
    brute_force = db.detections.list(CLINIC, rule_id=BRUTE_FORCE, limit=10)
    assert brute_force, "the sample day's RDP brute force must raise the correlation rule"
    assert brute_force[0].event["correlation"] is True
    assert len(brute_force[0].event["event_refs"]) >= 10
    # the shipper re-sends everything (a retry after a timeout): no new detections
    publish(bus, CLINIC, bodies)
    drain(worker)
    assert db.detections.count(CLINIC) == stored
    correlations = len(db.detections.list(CLINIC, rule_id=BRUTE_FORCE, limit=100))
    # every base detection came again and was already stored; re-sent events never re-count in a window
    assert worker.counters.duplicates[CLINIC] == stored - correlations
    # the same events from another tenant are that tenant's detections
    publish(bus, LAWFIRM, bodies)
    drain(worker)
    assert db.detections.count(LAWFIRM) == stored
    rows = db.detections.list(CLINIC, limit=1000)
    assert {r.tenant_id for r in rows} == {CLINIC}
    assert all(r.rule_version != "unknown" and r.event_time is not None for r in rows)


def test_redelivery_after_a_crash_before_the_ack_stores_nothing_twice(
    tmp_path: Path,
    db_url: str,
    engine_and_versions: tuple[SigmaEngine, dict[str, str]],
    sample_events: list[dict[str, object]],
) -> None:
    db = Database.open(db_url)
    db.tenants.create(CLINIC, name="Clinic", vertical="healthcare", tier="standard", actor="test")
    engine, versions = engine_and_versions
    bus = SpoolBus(tmp_path / "spool")
    publish(bus, CLINIC, [orjson.dumps(e) for e in sample_events])
    worker = DetectionWorker(bus, db, engine, versions=versions, batch_size=10_000)
    messages = worker.consumer.fetch(10_000, 0.1)
    worker._process(messages)  # stored, then "crash" before the ack
    stored = db.detections.count(CLINIC)
    bus.close()
    bus = SpoolBus(tmp_path / "spool")  # restart: the batch is delivered again
    worker = DetectionWorker(bus, db, engine, versions=versions, batch_size=10_000)
    assert drain(worker) == len(sample_events)
    assert db.detections.count(CLINIC) == stored
    assert drain(worker) == 0
    bus.close()
    db.close()


def test_bad_events_are_dead_lettered_with_where_and_why(
    world: tuple[SpoolBus, Database, DetectionWorker],
) -> None:
    bus, db, worker = world
    publish(bus, CLINIC, [b"{not json", b"[1, 2]", b'{"ok": true}'])
    publish(bus, CLINIC, [b"\xff\xfe binary"], fmt="text")
    assert drain(worker) == 4
    letters = db.dead_letters.list(CLINIC)
    codes = sorted(d.code for d in letters)
    assert codes == ["json.malformed", "json.not_object", "text.unparseable"]
    assert any("line 1" in d.message for d in letters)
    assert db.dead_letters.list(LAWFIRM) == []
    assert worker.counters.dead_letters[CLINIC] == 3
    assert worker.counters.received[CLINIC] == 1
