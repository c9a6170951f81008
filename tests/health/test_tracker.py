"""`HealthTracker`: in-memory counting, flushing into the system of record, and baseline learning."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.health.conftest import MONDAY
from tests.storage.conftest import FakeClock
from watchfloor.core.types import TenantId
from watchfloor.health import Baseline, HealthTracker
from watchfloor.health.model import HOUR
from watchfloor.health.tracker import OVERFLOW_SOURCE
from watchfloor.storage import Database

CLINIC = TenantId("clinic")
SEC = "windows/security"


def test_counts_per_source_and_hour_in_any_order(tracker: HealthTracker) -> None:
    for minutes in (5, 70, 10, 59, 61, 3):  # crosses 01:00 back and forth
        tracker.observe(CLINIC, SEC, MONDAY + timedelta(minutes=minutes))
    tracker.observe(CLINIC, "okta/okta", MONDAY)
    assert tracker.pending_events() == 7


def test_naive_times_are_refused(tracker: HealthTracker) -> None:
    with pytest.raises((ValueError, TypeError)):
        tracker.observe(CLINIC, SEC, datetime(2026, 12, 7, 9))  # noqa: DTZ001
    tracker.observe(CLINIC, SEC, MONDAY)
    with pytest.raises(TypeError):
        tracker.observe(CLINIC, SEC, datetime(2026, 12, 7, 0, 30))  # noqa: DTZ001


def test_observe_is_thread_safe(tracker: HealthTracker) -> None:
    def work(n: int) -> None:
        for i in range(5000):
            tracker.observe(CLINIC, f"s{i % 3}", MONDAY + timedelta(seconds=i + n))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tracker.pending_events() == 40_000


def test_sources_beyond_the_cap_are_counted_together(db: Database, tenant_clinic: TenantId) -> None:
    tracker = HealthTracker(started_at=MONDAY, max_sources_per_tenant=2)
    for i in range(5):
        tracker.observe(tenant_clinic, f"syslog:udp:10.0.0.{i}", MONDAY)
    tracker.flush(db.health, MONDAY + timedelta(minutes=1))
    assert [s.source for s in db.health.list(tenant_clinic)] == [
        OVERFLOW_SOURCE,
        "syslog:udp:10.0.0.0",
        "syslog:udp:10.0.0.1",
    ]
    assert db.health.get(tenant_clinic, OVERFLOW_SOURCE).events_total == 3  # type: ignore[union-attr]
    assert tracker.overflowed == 3


def test_flush_writes_last_seen_totals_and_hourly_volume(
    db: Database, tenant_clinic: TenantId, tracker: HealthTracker
) -> None:
    for minutes in (10, 20, 65):
        tracker.observe(tenant_clinic, SEC, MONDAY + timedelta(minutes=minutes))
    result = tracker.flush(db.health, MONDAY + timedelta(minutes=66))
    assert (result.events, result.sources, result.tenants) == (3, 1, 1)
    assert tracker.pending_events() == 0
    tracker.observe(tenant_clinic, SEC, MONDAY + timedelta(minutes=5))  # late, earlier than all
    tracker.observe(tenant_clinic, SEC, MONDAY + timedelta(minutes=70))
    tracker.flush(db.health, MONDAY + timedelta(minutes=71))
    row = db.health.get(tenant_clinic, SEC)
    assert row is not None
    assert row.first_seen == MONDAY + timedelta(minutes=5)
    assert row.last_seen == MONDAY + timedelta(minutes=70)
    assert row.events_total == 5
    assert row.status == "ok"
    volume = db.health.volume(tenant_clinic, since=MONDAY)
    assert [(v.hour, v.events) for v in volume] == [(MONDAY, 3), (MONDAY + HOUR, 2)]


def test_an_unknown_tenant_is_dropped_and_a_failing_write_is_retried(
    db: Database, tenant_clinic: TenantId, tracker: HealthTracker
) -> None:
    tracker.observe(TenantId("nobody"), SEC, MONDAY)
    result = tracker.flush(db.health, MONDAY + timedelta(minutes=1))
    assert result.dropped_events == 1
    assert tracker.pending_events() == 0

    class Broken:
        def record(self, *_args: Any) -> int:
            raise RuntimeError("database down")

        def list(self, *_args: Any, **_kwargs: Any) -> list[Any]:
            raise RuntimeError("database down")

    tracker.observe(tenant_clinic, SEC, MONDAY + timedelta(minutes=2))
    failed = tracker.flush(Broken(), MONDAY + timedelta(minutes=3))  # type: ignore[arg-type]
    assert failed.failed_tenants == (tenant_clinic,)
    tracker.observe(tenant_clinic, SEC, MONDAY + timedelta(minutes=4))
    assert tracker.pending_events() == 2
    assert tracker.flush(db.health, MONDAY + timedelta(minutes=5)).events == 2
    assert db.health.get(tenant_clinic, SEC).events_total == 2  # type: ignore[union-attr]


def _feed(tracker: HealthTracker, tenant: TenantId, source: str, hours: dict[int, int]) -> None:
    """`hours`: hour offset from MONDAY -> events in that hour (spread over the hour)."""
    for offset, events in hours.items():
        for i in range(events):
            tracker.observe(
                tenant, source, MONDAY + offset * HOUR + timedelta(seconds=i * 3599 // max(events, 1))
            )


def test_completed_hours_fold_into_the_weekly_baseline(
    db: Database, tenant_clinic: TenantId, tracker: HealthTracker
) -> None:
    # Two weeks: 30 events every hour, except Monday 09:00 has 100, and hour 5 of week 1 nothing at all.
    hours = {h: (100 if h % 168 == 9 else 30) for h in range(336)}
    hours[5] = 0
    hours[0] = 30
    _feed(tracker, tenant_clinic, SEC, hours)
    now = MONDAY + 336 * HOUR + timedelta(minutes=11)  # the last hour (335) ended 11 minutes ago
    result = tracker.flush(db.health, now)
    row = db.health.get(tenant_clinic, SEC)
    assert row is not None
    assert row.baseline_through == MONDAY + 335 * HOUR
    baseline = Baseline.from_json(row.baseline)
    nine = MONDAY + 9 * HOUR
    assert baseline.expected(nine) == pytest.approx(100)
    assert baseline.samples(nine) == 2
    # Hour 0 of week 1 is the source's first (partial) hour: skipped, so learnt from week 2 only.
    assert baseline.samples(MONDAY) == 1
    # An hour with no events is an observation of 0.
    assert baseline.expected(MONDAY + 5 * HOUR) == pytest.approx(0.3 * 30)
    assert result.folded_hours == 335
    # Each hour is learnt once: flushing again (or from a second tracker) folds nothing more.
    assert tracker.flush(db.health, now).folded_hours == 0
    other = HealthTracker(started_at=MONDAY, max_fold_hours=1000)
    other.observe(tenant_clinic, SEC, now)
    assert other.flush(db.health, now).folded_hours == 0


def test_hours_before_the_tracker_started_or_while_silent_are_not_learnt(
    db: Database, tenant_clinic: TenantId, clock: FakeClock
) -> None:
    started = MONDAY + timedelta(hours=2, minutes=30)  # watching from 03:00 on
    tracker = HealthTracker(started_at=started)
    tracker.observe(tenant_clinic, SEC, MONDAY)  # a late event of an hour we did not watch
    tracker.observe(tenant_clinic, SEC, MONDAY + timedelta(hours=3, minutes=1))
    tracker.flush(db.health, MONDAY + timedelta(hours=5, minutes=15))  # folds through 04:00
    baseline = Baseline.from_json(db.health.get(tenant_clinic, SEC).baseline)  # type: ignore[union-attr]
    assert [h for h, m in enumerate(baseline.means) if m is not None] == [3, 4]
    # Silent: hours pass, the watermark moves, nothing is learnt.
    db.health.change_status(
        tenant_clinic, SEC, expected="ok", status="silent", at=MONDAY + 5 * HOUR, actor="health-checker"
    )
    tracker.observe(tenant_clinic, "okta/okta", MONDAY + 9 * HOUR)
    tracker.flush(db.health, MONDAY + timedelta(hours=10, minutes=15))
    row = db.health.get(tenant_clinic, SEC)
    assert row is not None
    assert row.baseline_through == MONDAY + 9 * HOUR
    assert [h for h, m in enumerate(Baseline.from_json(row.baseline).means) if m is not None] == [3, 4]
    assert clock.now == MONDAY


def test_flush_uses_received_time_not_the_flush_clock(
    db: Database, tenant_clinic: TenantId, tracker: HealthTracker
) -> None:
    tracker.observe(tenant_clinic, SEC, MONDAY + timedelta(minutes=1))
    tracker.flush(db.health, MONDAY + timedelta(days=1))
    row = db.health.get(tenant_clinic, SEC)
    assert row is not None
    assert row.last_seen == MONDAY + timedelta(minutes=1)
    assert row.last_seen.tzinfo == UTC or row.last_seen.utcoffset() == timedelta(0)
