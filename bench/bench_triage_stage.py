"""Triage stage benchmark, persisted: stored detections -> alerts -> incidents in the embedded database.

Usage: python bench/bench_triage_stage.py [--detections 100000] [--tenants 200] [--seed 7] [--batch 2000]
                                          [--database-url URL] [--profile] [--json FILE]

The detections are the ones `bench_triage.py` generates (same seed, same tenants, rules, chains, noise and
benign management activity; a tenth of the tenants suppress a noisy rule), stored with `insert_many` as
the detection stage stores them (not timed), each batch stamped with its detections' time so the stage
tails them as it would live. Then, in the same run:
  1. ceiling A: reading the detections back in batches (`after_all_tenants`), nothing else;
  2. ceiling B: the in-memory engine over the same detections in the same batches with the same clock
     (`from_detection` + `Triage.process_many`): triage without storage;
  3. the stage: `TriageWorker.run_once` until drained: read, triage, write alerts, incidents (through
     `cases.lifecycle`, with timeline and audit entries) and the cursor, one transaction per batch;
  4. one SLA engine tick (`CaseService.sweep`) over every open incident the run produced.
Reports detections/s for each, alerts, incidents, the alert->incident reduction ratio, and the counts
stored in the database (which must match what the stage reported).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_triage import RULES, Generator, calibration_s, cpu_steal, make_tenants, suppressions_for

from watchfloor.cases.tiers import load_tiers
from watchfloor.core.types import TenantId
from watchfloor.server.cases import CaseService
from watchfloor.server.service import tune_gc
from watchfloor.server.triage_stage import TriageWorker
from watchfloor.storage import Database
from watchfloor.storage.detections import Detection, NewDetection
from watchfloor.storage.schema import alerts, incident_timeline, incidents
from watchfloor.triage.conditions import load_autoclose
from watchfloor.triage.engine import TenantContext, Triage
from watchfloor.triage.entities import from_detection

VERTICAL = {"healthcare": "healthcare", "legal": "legal", "manufacturing": "manufacturing"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def store(db: Database, clock: Clock, detections: list[Detection], batch: int) -> list[datetime]:
    """Insert in time order, `batch` at a time, each stamped with its newest detection's time; the stored
    time of each id, in id order."""
    stamps: list[datetime] = []
    for start in range(0, len(detections), batch):
        chunk = detections[start : start + batch]
        clock.now = max(d.matched_at for d in chunk) + timedelta(seconds=1)
        by_tenant: dict[TenantId, list[NewDetection]] = defaultdict(list)
        for d in chunk:
            by_tenant[d.tenant_id].append(
                NewDetection(
                    rule_id=d.rule_id,
                    rule_version=d.rule_version,
                    rule_title=d.rule_title,
                    rule_level=d.rule_level,
                    event_key=d.event_key,
                    source=d.source,
                    record_id=d.record_id,
                    event_time=d.event_time,
                    matched_at=d.matched_at,
                    event=d.event,
                    tags=d.tags,
                )
            )
        for tenant, rows in by_tenant.items():
            db.detections.insert_many(tenant, rows)
        stamps.extend([clock.now] * len(chunk))
    return stamps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--detections", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=2000, help="detections per stage transaction")
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--profile", action="store_true", help="cProfile the stage, print the top 30")
    parser.add_argument("--json", help="write results as JSON here")
    args = parser.parse_args()

    import random

    rng = random.Random(args.seed)
    tenants = make_tenants(rng, args.tenants)
    detections = Generator(rng, tenants).run(args.detections)
    statuses = {r.id: r.status for r in RULES}
    policies = load_autoclose()

    # The generated detections live for the whole run (the service never holds them all): keep them out of
    # every garbage collection, as the service keeps its compiled rules out (gc.freeze after start-up).
    gc.collect()
    gc.freeze()
    tune_gc()  # what `watchfloor serve` does at start-up (full collections 10x rarer)
    workdir = tempfile.mkdtemp(prefix="wf-bench-triage-")
    url = args.database_url or f"sqlite:///{workdir}/watchfloor.db"
    clock = Clock(detections[0].matched_at - timedelta(hours=1))
    db = Database.open(url, clock=clock)
    for t in tenants:
        db.tenants.create(
            t.id,
            name=f"Tenant {t.id}",
            vertical=VERTICAL.get(t.vertical, "other"),
            tier=("basic", "standard", "premium")[int(t.id[1:]) % 3],
            actor="bench",
        )
        for host, level in t.criticality:
            db.assets.upsert(t.id, kind="host", name=host, criticality=level, actor="bench")
    started = time.perf_counter()
    stamps = store(db, clock, detections, args.batch)
    store_s = time.perf_counter() - started

    # the suppressions a tenth of the tenants made from an alert (built on a scratch engine)
    inputs = [from_detection(d) for d in detections]
    made = suppressions_for(tenants, Triage(rule_statuses=statuses), inputs)
    for items in made.values():
        for item in items:
            db.suppressions.create(item, actor="analyst-1")

    # ceiling A: read the batches back, nothing else
    started = time.perf_counter()
    after, read = 0, 0
    while True:
        rows = db.detections.after_all_tenants(
            after, stored_before=stamps[-1] + timedelta(days=1), limit=args.batch
        )
        if not rows:
            break
        read += len(rows)
        after = rows[-1].id
    read_s = time.perf_counter() - started

    # ceiling B: the in-memory engine over the same detections
    contexts = {
        t.id: TenantContext.from_inventory(
            VERTICAL.get(t.vertical, "other"), [("host", h, c) for h, c in t.criticality]
        )
        for t in tenants
    }
    engine = Triage(
        context=contexts.__getitem__, policies=policies, suppressions=made, rule_statuses=statuses
    )
    del inputs
    gc.collect()
    started = time.perf_counter()
    for start in range(0, len(detections), args.batch):  # in the stage's batches, with its clock
        chunk = detections[start : start + args.batch]
        now = stamps[start + len(chunk) - 1] + timedelta(seconds=1)
        engine.process_many([from_detection(d) for d in chunk], now)
    memory_s = time.perf_counter() - started
    del engine
    gc.collect()

    # the stage
    worker = TriageWorker(db, policies=policies, rule_statuses=statuses, batch_size=args.batch, lag_seconds=0)
    worker.seed(stamps[0])
    profiler = cProfile.Profile() if args.profile else None
    steal0, total0 = cpu_steal()
    done = batches = created = alerts_written = 0
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    while done < len(detections):
        now = stamps[min(done + args.batch, len(stamps)) - 1] + timedelta(seconds=1)
        clock.now = now
        result = worker.run_once(now)
        if result.detections == 0:
            break
        done += result.detections
        created += result.incidents_created
        alerts_written += result.alerts_written
        batches += 1
    stage_s = time.perf_counter() - started
    if profiler:
        profiler.disable()
    steal1, total1 = cpu_steal()

    with db.store.read() as connection:
        stored_alerts = connection.execute(select(func.count()).select_from(alerts)).scalar_one()
        stored_incidents = connection.execute(select(func.count()).select_from(incidents)).scalar_one()
        timeline = connection.execute(select(func.count()).select_from(incident_timeline)).scalar_one()
        by_status = dict(
            connection.execute(select(alerts.c.status, func.count()).group_by(alerts.c.status)).all()
        )

    cases = CaseService(db, load_tiers(), clock=clock)
    clock.now = stamps[-1] + timedelta(hours=1)
    started = time.perf_counter()
    swept = cases.sweep(clock.now)
    sweep_s = time.perf_counter() - started
    open_incidents = len(db.incidents.list(None, states=("new",), limit=None))

    n = len(detections)
    on_incidents = by_status.get("incident", 0)
    out: dict[str, object] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python " + " ".join(sys.argv),
        "database": url.split(":", 1)[0],
        "cpu_steal_share": round((steal1 - steal0) / max(total1 - total0, 1), 3),
        "python_loop_5m_s": round(calibration_s(), 3),
        "detections": n,
        "tenants": len({d.tenant_id for d in detections}),
        "store_detections_per_s": round(n / store_s),
        "ceiling_read_back_per_s": round(read / read_s),
        "ceiling_in_memory_triage_per_s": round(n / memory_s),
        "stage_per_s": round(n / stage_s),
        "stage_s": round(stage_s, 2),
        "batches": batches,
        "alerts_stored": stored_alerts,
        "alerts_by_status": by_status,
        "incidents_stored": stored_incidents,
        "incidents_created_reported": created,
        "timeline_entries": timeline,
        "alert_to_incident_ratio": round(stored_alerts / max(stored_incidents, 1), 1),
        "alerts_on_incidents_per_incident": round(on_incidents / max(stored_incidents, 1), 1),
        "detection_to_incident_ratio": round(n / max(stored_incidents, 1), 1),
        "sla_sweep_s": round(sweep_s, 2),
        "sla_sweep_open_incidents": open_incidents,
        "sla_events_recorded": swept.sla_events,
    }
    print(json.dumps(out, indent=2))
    print()
    print("| measure | value |")
    print("|---|---|")
    rows = [
        ("detections / tenants", f"{n:,} / {out['tenants']}"),
        ("storing the detections (`insert_many`, not the stage)", f"{out['store_detections_per_s']:,} /s"),
        ("ceiling A: reading them back in batches", f"{out['ceiling_read_back_per_s']:,} /s"),
        (
            "ceiling B: in-memory triage of the same detections",
            f"{out['ceiling_in_memory_triage_per_s']:,} /s",
        ),
        (
            "**triage stage, persisted** (read, triage, write, one transaction per batch)",
            f"**{out['stage_per_s']:,} detections/s** ({stage_s:.1f} s)",
        ),
        (
            "alerts stored (by status)",
            f"{stored_alerts:,} ({', '.join(f'{k} {v:,}' for k, v in sorted(by_status.items()))})",
        ),
        ("incidents stored", f"{stored_incidents:,}"),
        ("alert -> incident reduction", f"{out['alert_to_incident_ratio']}:1"),
        ("detection -> incident reduction", f"{out['detection_to_incident_ratio']}:1"),
        (
            "SLA tick over the open incidents",
            f"{sweep_s:.2f} s for {open_incidents:,} incidents, {swept.sla_events:,} events",
        ),
        ("CPU stolen by the hypervisor during the stage", f"{out['cpu_steal_share']:.0%}"),
        ("calibration: 5M-iteration Python loop", f"{out['python_loop_5m_s']} s"),
    ]
    for name, value in rows:
        print(f"| {name} | {value} |")
    if profiler:
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(
            30
        )
        print(buffer.getvalue())
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    db.close()


if __name__ == "__main__":
    main()
