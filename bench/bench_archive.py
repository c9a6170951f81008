"""Archive benchmark: write N events (the shared EVTX corpus, repeated) and search them.

Usage: python bench/bench_archive.py [--events 300000] [--days 30] [--flush-rows 50000] [--dir /tmp]
                                     [--shared ../shared]

The corpus events keep their raw bytes; their event times are spread evenly over --days days (so one
tenant-day holds about events/days rows) and each repetition gets its own event keys. Reports:

- write: rows/s through `event_from_raw` + `ArchiveWriter.append`/`flush` (parse, flatten, Parquet zstd,
  fsync, rename), and the writer's share of that time;
- size: bytes per event on disk, raw bytes per event, compression ratio raw / archive;
- search latency (median of --repeat runs, fresh DuckDB connection each) for a selective field condition
  over one tenant-day and over all --days days, plus a count-everything query for scale;
- retro-hunt: events/s streaming one day through the engine with the SigmaHQ Windows security rules.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from watchfloor.archive import (
    ArchivedEvent,
    ArchiveWriter,
    event_from_raw,
    make_event_key,
    partition_files,
    retrohunt,
    search,
)
from watchfloor.detect.sigma.loader import load_rules

TENANT = "bench"
START = datetime(2026, 11, 1, tzinfo=UTC)


def corpus(shared: Path) -> list[bytes]:
    path = shared / "datasets" / "windows-evtx" / "events.jsonl.gz"
    with gzip.open(path) as fh:
        return fh.read().splitlines()


def write(root: Path, lines: list[bytes], total: int, days: int, flush_rows: int) -> dict[str, float]:
    step = timedelta(days=days) / total
    received = datetime.now(tz=UTC)
    docs = [orjson.loads(line) for line in lines]
    raw_bytes = 0
    in_writer = 0.0
    started = time.perf_counter()
    with ArchiveWriter(root, flush_rows=flush_rows, flush_seconds=3600, background_flush=False) as writer:
        for i in range(total):
            line, doc = lines[i % len(lines)], docs[i % len(docs)]
            source = f"{doc.get('SourceFile', 'corpus')}#{i // len(lines)}"
            base = event_from_raw(line, tenant=TENANT, source=source, received_at=received, doc=doc)
            event = ArchivedEvent(
                tenant=base.tenant,
                event_time=START + step * i,
                received_at=base.received_at,
                source=source,
                record_id=base.record_id,
                logsource=base.logsource,
                raw=line,
                fields=base.fields,
                event_key=make_event_key(source, line),
            )
            raw_bytes += len(line)
            t0 = time.perf_counter()
            writer.append(event)
            in_writer += time.perf_counter() - t0
        t0 = time.perf_counter()
    in_writer += time.perf_counter() - t0  # the final flush in close()
    elapsed = time.perf_counter() - started
    files = list(root.rglob("part-*.parquet"))
    disk = sum(f.stat().st_size for f in files)
    return {
        "elapsed": elapsed,
        "in_writer": in_writer,
        "raw_bytes": raw_bytes,
        "disk_bytes": disk,
        "files": len(files),
        "flushes": writer.stats.flushes,
    }


def timed(repeat: int, fn: object) -> tuple[float, object]:
    assert callable(fn)
    runs = []
    result: object = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--flush-rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    default_shared = Path(__file__).resolve().parents[1].parent / "shared"
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("WATCHFLOOR_SHARED_DIR", default_shared))
    )
    args = parser.parse_args()

    lines = corpus(args.shared)
    print(f"{platform.python_implementation()} {platform.python_version()} on {os.cpu_count()} CPUs")
    print(f"corpus: {len(lines):,} events, writing {args.events:,} over {args.days} days")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp) / "archive"
        w = write(root, lines, args.events, args.days, args.flush_rows)
        n = args.events
        print(
            f"write: {n / w['elapsed']:,.0f} events/s end to end ({w['elapsed']:.1f}s); "
            f"writer append+flush {w['in_writer']:.1f}s ({n / w['in_writer']:,.0f} events/s); "
            f"{w['files']:.0f} files in {w['flushes']:.0f} flushes"
        )
        print(
            f"size: {w['disk_bytes'] / n:,.0f} bytes/event on disk, "
            f"{w['raw_bytes'] / n:,.0f} raw bytes/event, "
            f"ratio raw/archive {w['raw_bytes'] / w['disk_bytes']:.2f}x "
            f"({w['disk_bytes'] / 2**20:,.1f} MiB for {w['raw_bytes'] / 2**20:,.1f} MiB raw; "
            "the archive also holds the normalized fields as JSON)"
        )
        day = START + timedelta(days=args.days // 2)
        ranges = {
            "1 day": (day, day + timedelta(days=1)),
            f"{args.days} days": (START, START + timedelta(days=args.days)),
        }
        queries = {
            "selective field": "EventID=4625 AND TargetUserName=administrator",
            "contains": "CommandLine~mimikatz",
            "logsource + field": "logsource=windows/security/* AND IpAddress in 10.0.0.0/8",
        }
        for label, (since, until) in ranges.items():
            files = partition_files(root, TENANT, since, until)
            seconds, _ = timed(
                args.repeat, lambda s=since, u=until: search(root, TENANT, since=s, until=u, limit=100_000)
            )
            print(f"search {label} ({len(files)} files), no condition, limit 100k: {seconds * 1000:,.0f} ms")
            for qlabel, where in queries.items():
                seconds, rows = timed(
                    args.repeat,
                    lambda s=since, u=until, q=where: search(
                        root, TENANT, since=s, until=u, where=q, limit=1000
                    ),
                )
                assert isinstance(rows, list)
                print(f"search {label}, {qlabel} [{where}]: {seconds * 1000:,.0f} ms, {len(rows)} rows")
        rules_dir = args.shared / "sigma" / "rules" / "windows" / "builtin" / "security"
        if rules_dir.is_dir():
            ruleset = load_rules([rules_dir])
            since, until = ranges["1 day"]
            t0 = time.perf_counter()
            hits = sum(1 for _ in retrohunt(root, TENANT, ruleset, since, until))
            elapsed = time.perf_counter() - t0
            per_day = n / args.days
            print(
                f"retrohunt 1 day (~{per_day:,.0f} events, {len(ruleset.rules)} rules): {elapsed:.2f}s "
                f"({per_day / elapsed:,.0f} events/s incl. engine build), {hits} events matched"
            )


if __name__ == "__main__":
    main()
