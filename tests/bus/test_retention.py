"""Retention: a segment goes only when every durable consumer has acked all of it (or it passed max_age)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.bus.conftest import SMALL, SUBJECT, TENANT, OpenBus, payload, segment_files
from watchfloor.bus import SpoolBus, SpoolConfig
from watchfloor.bus.framing import scan


def segment_ranges(spool_dir: Path) -> list[tuple[int, int]]:
    out = []
    for path in segment_files(spool_dir):
        seqs = scan(path.read_bytes()).sequences
        out.append((seqs[0], seqs[-1]) if seqs else (int(path.stem), int(path.stem) - 1))
    return out


def publish_many(bus: SpoolBus, count: int) -> None:
    bus.publish_batch(SUBJECT, [(TENANT, payload(i, 200), None) for i in range(1, count + 1)])


def test_only_fully_acked_segments_are_deleted(bus: SpoolBus, spool_dir: Path) -> None:
    consumer = bus.consumer(SUBJECT, "normalize")
    publish_many(bus, 100)
    ranges = segment_ranges(spool_dir)
    assert len(ranges) >= 4
    first_end = ranges[0][1]
    got = consumer.fetch(100, 0)
    consumer.ack_many(got[: first_end - 1])  # all of segment 1 but its last record
    assert segment_ranges(spool_dir) == ranges
    consumer.ack(got[first_end - 1])
    assert segment_ranges(spool_dir) == ranges[1:]
    # Out-of-order acks above the floor delete nothing.
    consumer.ack_many(got[ranges[2][0] - 1 :])
    assert segment_ranges(spool_dir) == ranges[1:]
    consumer.ack_many(got)
    assert segment_ranges(spool_dir) == ranges[-1:], "the active segment is never deleted"
    stats = bus.stats().subjects[SUBJECT]
    assert (stats.first_sequence, stats.last_sequence, stats.segments) == (ranges[-1][0], 100, 1)
    assert stats.bytes_on_disk == segment_files(spool_dir)[0].stat().st_size


def test_the_slowest_consumer_holds_retention(bus: SpoolBus, spool_dir: Path) -> None:
    fast = bus.consumer(SUBJECT, "fast")
    slow = bus.consumer(SUBJECT, "slow")
    publish_many(bus, 100)
    ranges = segment_ranges(spool_dir)
    fast.ack_many(fast.fetch(100, 0))
    assert segment_ranges(spool_dir) == ranges
    slow_got = slow.fetch(100, 0)
    slow.ack_many(slow_got[: ranges[1][1]])
    assert segment_ranges(spool_dir) == ranges[2:]


def test_a_consumer_known_only_from_disk_still_holds_retention(open_bus: OpenBus, spool_dir: Path) -> None:
    bus = open_bus()
    bus.consumer(SUBJECT, "archiver")
    publish_many(bus, 100)
    bus.close()
    bus = open_bus()
    ranges = segment_ranges(spool_dir)
    fast = bus.consumer(SUBJECT, "fast")
    fast.ack_many(fast.fetch(100, 0))
    assert bus.retain() == 0
    assert segment_ranges(spool_dir) == ranges
    assert bus.delete_consumer(SUBJECT, "archiver")
    assert not bus.delete_consumer(SUBJECT, "archiver")
    assert segment_ranges(spool_dir) == ranges[-1:]


def test_without_consumers_nothing_is_deleted(bus: SpoolBus, spool_dir: Path) -> None:
    publish_many(bus, 100)
    before = segment_ranges(spool_dir)
    assert bus.retain() == 0
    assert segment_ranges(spool_dir) == before


def test_max_age_expires_old_sealed_segments_and_consumers_skip_them(
    open_bus: OpenBus, spool_dir: Path
) -> None:
    bus = open_bus(SMALL)
    consumer = bus.consumer(SUBJECT, "normalize")
    publish_many(bus, 60)
    bus.close()
    time.sleep(0.3)
    aged = SpoolConfig(max_segment_bytes=SMALL.max_segment_bytes, min_free_bytes=0, max_age_seconds=0.2)
    bus = open_bus(aged)  # retention runs on open
    ranges = segment_ranges(spool_dir)
    assert len(ranges) == 1
    stats = bus.stats()
    assert stats.subjects[SUBJECT].expired_messages == ranges[0][0] - 1
    consumer = bus.consumer(SUBJECT, "normalize")
    got = consumer.fetch(100, 0)
    assert [m.sequence for m in got] == list(range(ranges[0][0], 61))
    consumer.ack_many(got)
    assert bus.stats().consumers[SUBJECT, "normalize"].acked_floor == 60
