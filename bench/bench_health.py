"""Telemetry health benchmark: the cost of `HealthTracker.observe` (called once per event in the pipeline).

Usage: python bench/bench_health.py [--events 2000000] [--tenants 50] [--sources 8] [--threads 1]

Events cycle over tenants x sources with receive times advancing 1 ms per event (so hour buckets roll over
as they would in production). Reports ns per `observe` call amortised over the run (best of --repeat runs),
single-threaded or spread over --threads threads contending for the tracker's lock, and the time of one
`flush` into a SQLite database of what was counted.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchfloor.core.types import TenantId
from watchfloor.health import HealthTracker
from watchfloor.storage import Database


def _inputs(events: int, tenants: int, sources: int) -> list[tuple[TenantId, str, datetime]]:
    names = [
        "windows/security",
        "windows/microsoft-windows-sysmon/operational",
        "okta/okta",
        "aws/cloudtrail",
    ]
    names += [f"syslog:udp:10.0.0.{i}" for i in range(max(0, sources - len(names)))]
    start = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    ids = [TenantId(f"tenant-{i}") for i in range(tenants)]
    step = timedelta(milliseconds=1)
    return [(ids[i % tenants], names[i % sources], start + i * step) for i in range(events)]


def _run(tracker: HealthTracker, items: list[tuple[TenantId, str, datetime]], threads: int) -> float:
    observe = tracker.observe
    if threads == 1:
        started = time.perf_counter()
        for tenant, source, at in items:
            observe(tenant, source, at)
        return time.perf_counter() - started
    chunks = [items[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def work(chunk: list[tuple[TenantId, str, datetime]]) -> None:
        barrier.wait()
        for tenant, source, at in chunk:
            observe(tenant, source, at)

    workers = [threading.Thread(target=work, args=(c,)) for c in chunks]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--sources", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    items = _inputs(args.events, args.tenants, args.sources)
    best = float("inf")
    tracker = HealthTracker(started_at=items[0][2])
    for _ in range(args.repeat):
        tracker = HealthTracker(started_at=items[0][2])
        best = min(best, _run(tracker, items, args.threads))
    print(
        f"observe: {best / args.events * 1e9:.0f} ns/event amortised "
        f"({args.events:,} events, {args.tenants} tenants x {args.sources} sources, "
        f"{args.threads} thread(s), "
        f"best of {args.repeat}); pending={tracker.pending_events():,}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            for i in range(args.tenants):
                db.tenants.create(
                    f"tenant-{i}", name=f"T{i}", vertical="other", tier="standard", actor="bench"
                )
            started = time.perf_counter()
            result = tracker.flush(db.health, items[-1][2] + timedelta(minutes=1))
            took = time.perf_counter() - started
        finally:
            db.close()
    print(
        f"flush (SQLite): {took * 1000:.0f} ms for {result.sources} sources of {result.tenants} tenants, "
        f"{result.events:,} events"
    )


if __name__ == "__main__":
    main()
