"""Spool bus micro benchmark: publish_batch throughput by batch size, group commit, fetch + ack throughput.

Usage: python bench/bench_bus.py [--dir /path/on/the/disk/to/test] [--payload-bytes 1024] [--seconds 2]

Every publish returns only after fsync, so the numbers are bounded by the disk's fsync latency (printed
first). Each case runs for about --seconds on a fresh spool in a temporary directory under --dir.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import threading
import time
from pathlib import Path

from watchfloor.bus import ConsumerConfig, SpoolBus, SpoolConfig
from watchfloor.core.types import TenantId

TENANT = TenantId("bench")
SUBJECT = "bench.raw"
CONFIG = SpoolConfig(min_free_bytes=64 * 1024 * 1024)


def fsync_latency_ms(directory: Path) -> float:
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        started = time.perf_counter()
        for i in range(300):
            os.pwrite(fd, b"x" * 1100, i * 1100)
            os.fsync(fd)
        return (time.perf_counter() - started) / 300 * 1000
    finally:
        os.close(fd)
        path.unlink()


def bench_publish_batch(base: Path, batch: int, body: bytes, seconds: float) -> tuple[int, float]:
    with tempfile.TemporaryDirectory(dir=base) as tmp, SpoolBus(tmp, CONFIG) as bus:
        items = [(TENANT, body, None)] * batch
        sent = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            bus.publish_batch(SUBJECT, items)
            sent += batch
        return sent, time.perf_counter() - started


def bench_threads(base: Path, threads: int, body: bytes, seconds: float) -> tuple[int, float, int]:
    """`threads` publishers each calling publish() (one message per call): what group commit buys."""
    with tempfile.TemporaryDirectory(dir=base) as tmp, SpoolBus(tmp, CONFIG) as bus:
        counts = [0] * threads
        stop = time.perf_counter() + seconds

        def run(n: int) -> None:
            while time.perf_counter() < stop:
                bus.publish(SUBJECT, TENANT, body)
                counts[n] += 1

        workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
        return sum(counts), elapsed, bus.stats().subjects[SUBJECT].segments


def bench_fetch_ack(base: Path, total: int, batch: int, body: bytes) -> tuple[int, float]:
    with tempfile.TemporaryDirectory(dir=base) as tmp, SpoolBus(tmp, CONFIG) as bus:
        for _ in range(total // 512):
            bus.publish_batch(SUBJECT, [(TENANT, body, None)] * 512)
        consumer = bus.consumer(SUBJECT, "bench", ConsumerConfig(max_ack_pending=batch))
        got = 0
        started = time.perf_counter()
        while messages := consumer.fetch(batch, 0):
            consumer.ack_many(messages)
            got += len(messages)
        return got, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--payload-bytes", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--fetch-messages", type=int, default=100_000)
    args = parser.parse_args()
    body = random.Random(1).randbytes(args.payload_bytes)
    mb = args.payload_bytes / 1e6
    print(f"python {platform.python_version()} {platform.machine()}, {os.cpu_count()} cpus, dir {args.dir}")
    print(f"append 1.1 KB + fsync: {fsync_latency_ms(args.dir):.3f} ms (before)")
    print(f"\npublish_batch, {args.payload_bytes} B payloads, one thread:")
    print(f"{'batch':>6} {'messages/s':>12} {'MB/s':>8} {'batches/s':>10}")
    for batch in (1, 64, 512):
        sent, elapsed = bench_publish_batch(args.dir, batch, body, args.seconds)
        rate = sent / elapsed
        print(f"{batch:>6} {rate:>12,.0f} {rate * mb:>8.1f} {rate / batch:>10,.0f}")
    print(f"\npublish() from N threads (group commit), {args.payload_bytes} B payloads:")
    print(f"{'threads':>7} {'messages/s':>12} {'MB/s':>8}")
    for threads in (1, 8, 32):
        sent, elapsed, _ = bench_threads(args.dir, threads, body, args.seconds)
        rate = sent / elapsed
        print(f"{threads:>7} {rate:>12,.0f} {rate * mb:>8.1f}")
    print(f"\nfetch + ack_many of {args.fetch_messages:,} stored messages:")
    print(f"{'batch':>6} {'messages/s':>12} {'MB/s':>8}")
    for batch in (64, 512):
        got, elapsed = bench_fetch_ack(args.dir, args.fetch_messages, batch, body)
        rate = got / elapsed
        print(f"{batch:>6} {rate:>12,.0f} {rate * mb:>8.1f}")
    print(f"\nappend 1.1 KB + fsync: {fsync_latency_ms(args.dir):.3f} ms (after)")


if __name__ == "__main__":
    main()
