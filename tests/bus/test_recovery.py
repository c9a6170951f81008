"""Opening after damage: torn tails are truncated and counted, damaged records skipped, nothing else lost."""

from __future__ import annotations

import os
from pathlib import Path

from tests.bus.conftest import SMALL, SUBJECT, TENANT, OpenBus, payload, segment_files
from watchfloor.bus import SpoolConfig
from watchfloor.bus.framing import HEAD_SIZE, scan

ONE_SEGMENT = SpoolConfig(min_free_bytes=0)


def fill(open_bus: OpenBus, count: int, config: SpoolConfig = ONE_SEGMENT) -> None:
    bus = open_bus(config)
    for i in range(1, count + 1):
        bus.publish(SUBJECT, TENANT, payload(i, 30 + i))
    bus.close()


def read_all(open_bus: OpenBus, config: SpoolConfig = ONE_SEGMENT) -> dict[int, bytes]:
    bus = open_bus(config)
    got = bus.consumer(SUBJECT, "verify").fetch(100_000, 0)
    bus.delete_consumer(SUBJECT, "verify")
    bus.close()
    return {m.sequence: m.payload for m in got}


def test_torn_tail_is_truncated_and_counted(open_bus: OpenBus, spool_dir: Path) -> None:
    fill(open_bus, 10)
    (seg,) = segment_files(spool_dir)
    offsets = scan(seg.read_bytes()).offsets
    cut = offsets[9] + HEAD_SIZE + 7  # in the middle of the last record's body
    os.truncate(seg, cut)
    bus = open_bus(ONE_SEGMENT)
    stats = bus.stats().subjects[SUBJECT]
    assert stats.last_sequence == 9
    assert stats.torn_tail_bytes == cut - offsets[9]
    assert [e.kind for e in bus.recovery_report()] == ["torn_tail"]
    assert seg.stat().st_size == offsets[9]
    got = bus.consumer(SUBJECT, "verify").fetch(100, 0)
    assert {m.sequence: m.payload for m in got} == {i: payload(i, 30 + i) for i in range(1, 10)}
    # The next publish reuses the torn record's sequence: it was never acknowledged to anyone.
    assert bus.publish(SUBJECT, TENANT, b"after") == 10


def test_truncation_inside_a_head_and_at_every_record_boundary(open_bus: OpenBus, spool_dir: Path) -> None:
    fill(open_bus, 5)
    (seg,) = segment_files(spool_dir)
    original = seg.read_bytes()
    offsets = scan(original).offsets
    for cut, survivors in ((offsets[4] + 3, 4), (offsets[2], 2), (offsets[0] + 1, 0)):
        seg.write_bytes(original[:cut])
        assert sorted(read_all(open_bus)) == list(range(1, survivors + 1))


def test_a_flipped_byte_in_the_middle_skips_only_that_record(open_bus: OpenBus, spool_dir: Path) -> None:
    fill(open_bus, 10)
    (seg,) = segment_files(spool_dir)
    data = bytearray(seg.read_bytes())
    offsets = scan(bytes(data)).offsets
    data[offsets[4] + HEAD_SIZE + 25] ^= 0x01  # inside record 5's body
    seg.write_bytes(bytes(data))
    bus = open_bus(ONE_SEGMENT)
    assert bus.stats().subjects[SUBJECT].corrupt_records == 1
    assert bus.stats().subjects[SUBJECT].torn_tail_bytes == 0
    assert seg.stat().st_size == len(data), "a damaged record between good ones is never truncated away"
    got = bus.consumer(SUBJECT, "verify").fetch(100, 0)
    assert {m.sequence: m.payload for m in got} == {i: payload(i, 30 + i) for i in range(1, 11) if i != 5}
    assert bus.publish(SUBJECT, TENANT, b"next") == 11


def test_a_flipped_byte_in_the_last_record_is_a_corrupt_tail(open_bus: OpenBus, spool_dir: Path) -> None:
    fill(open_bus, 4)
    (seg,) = segment_files(spool_dir)
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0xFF
    seg.write_bytes(bytes(data))
    bus = open_bus(ONE_SEGMENT)
    assert bus.stats().subjects[SUBJECT].last_sequence == 3
    assert bus.stats().subjects[SUBJECT].torn_tail_bytes > 0
    assert [m.sequence for m in bus.consumer(SUBJECT, "verify").fetch(100, 0)] == [1, 2, 3]


def test_damage_in_a_sealed_segment_is_reported_and_the_file_left_alone(
    open_bus: OpenBus, spool_dir: Path
) -> None:
    fill(open_bus, 80, SMALL)
    first = segment_files(spool_dir)[0]
    data = bytearray(first.read_bytes())
    data[HEAD_SIZE + 3] ^= 0x10  # record 1's body
    first.write_bytes(bytes(data))
    bus = open_bus(SMALL)
    assert first.read_bytes() == bytes(data)
    got = bus.consumer(SUBJECT, "verify").fetch(1000, 0)
    assert [m.sequence for m in got] == list(range(2, 81))
    stats = bus.stats()
    assert stats.subjects[SUBJECT].corrupt_records == 1
    # The damaged record counts as done so the floor (and retention) can move past it.
    bus.consumer(SUBJECT, "verify").ack_many(got)
    assert bus.stats().consumers[SUBJECT, "verify"].acked_floor == 80


def test_garbage_appended_after_a_clean_close_is_cut_off(open_bus: OpenBus, spool_dir: Path) -> None:
    fill(open_bus, 3)
    (seg,) = segment_files(spool_dir)
    with seg.open("ab") as fh:
        fh.write(b"\x00" * 512)
    assert sorted(read_all(open_bus)) == [1, 2, 3]
    assert seg.stat().st_size == sum(scan(seg.read_bytes()).lengths)


def test_a_damaged_consumer_state_redelivers_instead_of_losing(open_bus: OpenBus, spool_dir: Path) -> None:
    bus = open_bus()
    bus.publish_batch(SUBJECT, [(TENANT, payload(i), None) for i in range(5)])
    consumer = bus.consumer(SUBJECT, "normalize")
    consumer.ack_many(consumer.fetch(3, 0))
    bus.close()
    (spool_dir / "consumers" / SUBJECT / "normalize.state").write_bytes(b'{"version":1,"floor":3')
    bus = open_bus()
    consumer = bus.consumer(SUBJECT, "normalize")
    assert consumer.state_recovered
    assert [m.sequence for m in consumer.fetch(10, 0)] == [1, 2, 3, 4, 5]
