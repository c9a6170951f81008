"""`HealthTracker`: counts events per (tenant, source, UTC hour) in memory; `flush` writes them out.

`observe` is on the pipeline's hot path (once per event): one lock, one dict lookup, two datetime comparisons
("same hour as this source's previous event?"), one increment, one or two comparisons for first/last seen.
Everything else (hour arithmetic, SQL, the baseline) happens in `flush`, which the service calls about once
a minute from its own thread.

Baseline learning happens in `flush` too: once an hour has ended, and `fold_delay_minutes` more have passed
for late events to be counted, each source's count for that hour (0 when it sent nothing) is folded into its
hour-of-week EWMA (`model.Baseline.fold`). Hours are skipped, never folded as zeros, when:

- they are before the hour after this tracker started (we were not watching: a restart is not an outage);
- they are before the hour after the source was first seen (a partial first hour is not typical volume);
- the source is `silent` when the fold happens (an outage is not normal volume);
- they are more than `max_fold_hours` old (catch-up after a long pause is bounded).

Each hour is folded at most once per source, even with several processes flushing: the stored watermark
`baseline_through` is updated with compare-and-set.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from watchfloor.core.types import TenantId
from watchfloor.health.model import HOUR, Baseline, hour_start
from watchfloor.storage.errors import NotFoundError
from watchfloor.storage.health import SourceHealthRepository, SourceObservation

log = logging.getLogger(__name__)

OVERFLOW_SOURCE = "(other sources)"
DEFAULT_MAX_SOURCES_PER_TENANT = 2000
DEFAULT_FOLD_DELAY_MINUTES = 10
DEFAULT_MAX_FOLD_HOURS = 168


class _Slot:
    """One (tenant, source) between flushes: first and last event, the events of the hour most events fall
    in (`hour` <= at < `hour_end`, counted in `n`: the fast path) and of any other hours (`counts`)."""

    __slots__ = ("counts", "first", "hour", "hour_end", "last", "n")

    def __init__(self, at: datetime) -> None:
        self.first = at
        self.last = at
        self.hour = hour_start(at)
        self.hour_end = self.hour + HOUR
        self.n = 0
        self.counts: dict[datetime, int] = {}

    def move_to(self, at: datetime) -> None:
        """Make `at`'s hour the fast-path hour (events keep arriving in time order, mostly)."""
        if self.n:
            self.counts[self.hour] = self.counts.get(self.hour, 0) + self.n
        self.hour = hour_start(at)
        self.hour_end = self.hour + HOUR
        self.n = self.counts.pop(self.hour, 0)

    def hours(self) -> dict[datetime, int]:
        merged = dict(self.counts)
        if self.n:
            merged[self.hour] = merged.get(self.hour, 0) + self.n
        return merged

    def total(self) -> int:
        return self.n + sum(self.counts.values())

    def merge(self, other: _Slot) -> None:
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        for hour, count in other.hours().items():
            if hour == self.hour:
                self.n += count
            else:
                self.counts[hour] = self.counts.get(hour, 0) + count


@dataclass(frozen=True, slots=True, kw_only=True)
class FlushResult:
    """What one `flush` wrote."""

    events: int = 0
    sources: int = 0
    tenants: int = 0
    folded_hours: int = 0
    dropped_events: int = 0  # for tenants that do not exist
    failed_tenants: tuple[TenantId, ...] = field(default=())  # kept in memory, retried on the next flush


class HealthTracker:
    """Thread-safe in-memory counters for telemetry health. One per process; `observe` from any thread."""

    __slots__ = (
        "_flush_lock",
        "_folded_through",
        "_known",
        "_lock",
        "_slots",
        "fold_delay",
        "max_fold_hours",
        "max_sources_per_tenant",
        "overflowed",
        "started_at",
    )

    def __init__(
        self,
        *,
        started_at: datetime | None = None,
        max_sources_per_tenant: int = DEFAULT_MAX_SOURCES_PER_TENANT,
        fold_delay_minutes: int = DEFAULT_FOLD_DELAY_MINUTES,
        max_fold_hours: int = DEFAULT_MAX_FOLD_HOURS,
    ) -> None:
        if max_sources_per_tenant < 1 or fold_delay_minutes < 0 or max_fold_hours < 1:
            msg = "max_sources_per_tenant and max_fold_hours must be >= 1, fold_delay_minutes >= 0"
            raise ValueError(msg)
        started = datetime.now(UTC) if started_at is None else started_at
        if started.tzinfo is None:
            msg = "started_at must be timezone-aware"
            raise ValueError(msg)
        self.started_at = started.astimezone(UTC)
        self.max_sources_per_tenant = max_sources_per_tenant
        self.fold_delay = timedelta(minutes=fold_delay_minutes)
        self.max_fold_hours = max_fold_hours
        self.overflowed = 0  # events counted under OVERFLOW_SOURCE
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._slots: dict[tuple[TenantId, str], _Slot] = {}
        self._known: dict[TenantId, set[str]] = {}
        self._folded_through: dict[TenantId, datetime] = {}

    # -- hot path ---------------------------------------------------------------------------------
    def observe(self, tenant: TenantId, source: str, at: datetime) -> None:
        """Count one event of `source` (see `model.source_name`) for `tenant`, received at `at` (aware)."""
        lock = self._lock
        lock.acquire()
        try:
            slot = self._slots.get((tenant, source))
            if slot is not None and slot.hour <= at < slot.hour_end:
                slot.n += 1
                if at > slot.last:
                    slot.last = at
                elif at < slot.first:
                    slot.first = at
            else:
                self._slow_observe(tenant, source, at, slot)
        finally:
            lock.release()

    def _slow_observe(self, tenant: TenantId, source: str, at: datetime, slot: _Slot | None) -> None:
        """A source not seen since the last flush, or an event outside the slot's hour (lock held)."""
        if slot is None:
            slot = self._open(tenant, source, at)
        if not slot.hour <= at < slot.hour_end:
            slot.move_to(at)
        slot.n += 1
        slot.first = min(slot.first, at)
        slot.last = max(slot.last, at)

    def _open(self, tenant: TenantId, source: str, at: datetime) -> _Slot:
        """A slot for a source not seen since the last flush (called with the lock held)."""
        known = self._known.setdefault(tenant, set())
        if source not in known:
            if len(known) >= self.max_sources_per_tenant:
                self.overflowed += 1
                source = OVERFLOW_SOURCE
                slot = self._slots.get((tenant, source))
                if slot is not None:
                    return slot
            known.add(source)
        slot = _Slot(at)
        self._slots[(tenant, source)] = slot
        return slot

    def pending_events(self) -> int:
        """Events counted and not flushed yet."""
        with self._lock:
            return sum(slot.total() for slot in self._slots.values())

    # -- flush --------------------------------------------------------------------------------------
    def flush(self, repo: SourceHealthRepository, now: datetime) -> FlushResult:
        """Write the counts since the last flush (one transaction per tenant), then fold completed hours into
        the baselines of the tenants this tracker has seen. A tenant whose write fails keeps its counts for
        the next flush; an unknown tenant's counts are dropped (logged)."""
        with self._flush_lock:
            with self._lock:
                slots, self._slots = self._slots, {}
            by_tenant: dict[TenantId, list[tuple[str, _Slot]]] = defaultdict(list)
            for (tenant, source), slot in slots.items():
                by_tenant[tenant].append((source, slot))
            events = dropped = 0
            failed: list[TenantId] = []
            for tenant, items in sorted(by_tenant.items()):
                try:
                    events += repo.record(tenant, _observations(items))
                except NotFoundError:
                    lost = sum(slot.total() for _, slot in items)
                    dropped += lost
                    with self._lock:
                        self._known.pop(tenant, None)
                    log.warning("telemetry health: no tenant %r; %d counted events dropped", tenant, lost)
                except Exception:
                    log.exception("telemetry health: counts of tenant %r not stored; retrying later", tenant)
                    failed.append(tenant)
                    self._requeue(tenant, items)
            folded = 0
            with self._lock:
                tenants = sorted(self._known)
            for tenant in tenants:
                if tenant in failed:
                    continue
                try:
                    folded += self._fold_tenant(repo, tenant, now)
                except Exception:
                    log.exception(
                        "telemetry health: baseline of tenant %r not updated; retrying later", tenant
                    )
            return FlushResult(
                events=events,
                sources=sum(len(items) for items in by_tenant.values()),
                tenants=len(by_tenant),
                folded_hours=folded,
                dropped_events=dropped,
                failed_tenants=tuple(failed),
            )

    def _requeue(self, tenant: TenantId, items: Iterable[tuple[str, _Slot]]) -> None:
        with self._lock:
            for source, slot in items:
                current = self._slots.get((tenant, source))
                if current is None:
                    self._slots[(tenant, source)] = slot
                else:
                    current.merge(slot)

    # -- baseline -----------------------------------------------------------------------------------
    def last_foldable_hour(self, now: datetime) -> datetime:
        """The newest hour that ended at least `fold_delay` before `now`."""
        return hour_start(now - self.fold_delay - HOUR)

    def _fold_tenant(self, repo: SourceHealthRepository, tenant: TenantId, now: datetime) -> int:
        through = self.last_foldable_hour(now)
        if self._folded_through.get(tenant) == through:
            return 0
        watch_start = hour_start(self.started_at)
        if watch_start != self.started_at:
            watch_start += HOUR
        oldest = through - (self.max_fold_hours - 1) * HOUR
        plans: list[tuple[str, datetime, Baseline, datetime | None, bool]] = []
        for row in repo.list(tenant, include_retired=False):
            lower = max(watch_start, oldest, hour_start(row.first_seen) + HOUR)
            if row.baseline_through is not None:
                lower = max(lower, row.baseline_through + HOUR)
            if row.baseline_through is not None and row.baseline_through >= through:
                continue
            plans.append(
                (
                    row.source,
                    lower,
                    Baseline.from_json(row.baseline),
                    row.baseline_through,
                    row.status != "silent",
                )
            )
        folded = 0
        if plans:
            since = min(lower for _, lower, _, _, _ in plans)
            counts = {
                (v.source, v.hour): v.events for v in repo.volume(tenant, since=since, until=through + HOUR)
            }
            for source, lower, baseline, expected, learn in plans:
                hours: list[tuple[datetime, int]] = []
                hour = lower
                while learn and hour <= through:
                    hours.append((hour, counts.get((source, hour), 0)))
                    hour += HOUR
                if repo.update_baseline(
                    tenant,
                    source,
                    baseline=baseline.fold_many(hours).to_json(),
                    through=through,
                    expected_through=expected,
                ):
                    folded += len(hours)
        self._folded_through[tenant] = through
        return folded


def _observations(items: Iterable[tuple[str, _Slot]]) -> list[SourceObservation]:
    return [
        SourceObservation(
            source=source,
            first_seen=slot.first,
            last_seen=slot.last,
            hours=slot.hours(),
        )
        for source, slot in items
    ]
