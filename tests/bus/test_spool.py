"""The spool as stages see it: publish, fetch, ack, restart, redelivery, group commit, limits on consumers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.bus.conftest import OTHER_TENANT, SMALL, SUBJECT, TENANT, OpenBus, payload, segment_files
from watchfloor.bus import (
    Bus,
    BusClosedError,
    BusInUseError,
    Consumer,
    ConsumerConfig,
    InvalidNameError,
    MessageTooLargeError,
    SpoolBus,
    SpoolConfig,
    SpoolIO,
)
from watchfloor.bus.framing import scan


def as_bus(bus: SpoolBus) -> Bus:
    return bus  # mypy checks SpoolBus against the Bus protocol here


def as_consumer(bus: Bus) -> Consumer:
    return bus.consumer(SUBJECT, "norm")


def test_spool_bus_satisfies_the_protocols(bus: SpoolBus) -> None:
    assert isinstance(as_bus(bus), Bus)
    assert isinstance(as_consumer(bus), Consumer)


def test_publish_fetch_ack_round_trip(bus: SpoolBus) -> None:
    first = bus.publish(SUBJECT, TENANT, b"hello", {"content-type": "application/json"})
    rest = bus.publish_batch(SUBJECT, [(OTHER_TENANT, payload(i), None) for i in range(5)])
    assert [first, *rest] == [1, 2, 3, 4, 5, 6]
    consumer = bus.consumer(SUBJECT, "normalize")
    got = consumer.fetch(10, timeout_seconds=1)
    assert [m.sequence for m in got] == [1, 2, 3, 4, 5, 6]
    assert (got[0].tenant, got[0].payload, dict(got[0].headers)) == (
        TENANT,
        b"hello",
        {"content-type": "application/json"},
    )
    assert got[1].tenant == OTHER_TENANT
    assert got[1].payload == payload(0)
    assert all(m.delivery_count == 1 and m.subject == SUBJECT for m in got)
    consumer.ack(got[0])
    consumer.ack_many(got[1:])
    assert consumer.fetch(10, timeout_seconds=0) == []
    stats = bus.stats()
    assert stats.subjects[SUBJECT].last_sequence == 6
    assert stats.consumers[SUBJECT, "normalize"].acked_floor == 6
    assert stats.consumers[SUBJECT, "normalize"].pending == 0


def test_subjects_are_independent_streams(bus: SpoolBus) -> None:
    assert bus.publish("ingest.raw", TENANT, b"a") == 1
    assert bus.publish("normalize.events", TENANT, b"b") == 1
    assert [m.payload for m in bus.consumer("normalize.events", "detect").fetch(5, 0)] == [b"b"]


def test_consumers_of_one_subject_each_get_every_message(bus: SpoolBus) -> None:
    bus.publish_batch(SUBJECT, [(TENANT, payload(i), None) for i in range(3)])
    a = bus.consumer(SUBJECT, "a").fetch(10, 0)
    b = bus.consumer(SUBJECT, "b").fetch(10, 0)
    assert [m.sequence for m in a] == [m.sequence for m in b] == [1, 2, 3]
    assert bus.consumer(SUBJECT, "a") is bus.consumer(SUBJECT, "a")


def test_restart_resumes_at_the_acked_floor_and_redelivers_unacked(open_bus: OpenBus) -> None:
    bus = open_bus()
    bus.publish_batch(SUBJECT, [(TENANT, payload(i), {"i": str(i)}) for i in range(1, 21)])
    consumer = bus.consumer(SUBJECT, "normalize")
    got = consumer.fetch(10, 0)
    consumer.ack_many([m for m in got if m.sequence in {1, 2, 3, 5, 8}])
    bus.close()

    bus = open_bus()
    consumer = bus.consumer(SUBJECT, "normalize")
    assert bus.stats().consumers[SUBJECT, "normalize"].acked_floor == 3
    again = consumer.fetch(100, 0)
    redelivered = [(m.sequence, m.delivery_count) for m in again if m.delivery_count > 1]
    assert redelivered == [(4, 2), (6, 2), (7, 2), (9, 2), (10, 2)]
    assert [m.sequence for m in again if m.delivery_count == 1] == list(range(11, 21))
    assert all(m.payload == payload(m.sequence) and m.headers["i"] == str(m.sequence) for m in again)
    consumer.ack_many(again)
    assert bus.stats().consumers[SUBJECT, "normalize"].acked_floor == 20


def test_a_consumer_lost_without_close_still_counts_its_deliveries(
    open_bus: OpenBus, spool_dir: Path
) -> None:
    bus = open_bus()
    bus.publish_batch(SUBJECT, [(TENANT, payload(i), None) for i in range(1, 4)])
    bus.consumer(SUBJECT, "normalize").fetch(3, 0)
    # No close(): the state saved by fetch is what a crash would leave behind.
    state_copy = (spool_dir / "consumers" / SUBJECT / "normalize.state").read_bytes()
    bus.close()
    (spool_dir / "consumers" / SUBJECT / "normalize.state").write_bytes(state_copy)
    bus = open_bus()
    again = bus.consumer(SUBJECT, "normalize").fetch(3, 0)
    assert [(m.sequence, m.delivery_count) for m in again] == [(1, 2), (2, 2), (3, 2)]


def test_nak_redelivers_at_once_with_a_higher_count(bus: SpoolBus) -> None:
    bus.publish_batch(SUBJECT, [(TENANT, payload(i), None) for i in range(3)])
    consumer = bus.consumer(SUBJECT, "c")
    first, second, third = consumer.fetch(3, 0)
    consumer.nak(second)
    again = consumer.fetch(3, 0)
    assert [(m.sequence, m.delivery_count) for m in again] == [(2, 2)]
    consumer.nak(again[0], delay_seconds=60)
    assert consumer.fetch(3, 0) == []
    consumer.ack_many([first, third])
    assert bus.stats().consumers[SUBJECT, "c"].acked_floor == 1


def test_unacked_messages_come_back_after_ack_wait(bus: SpoolBus) -> None:
    bus.publish(SUBJECT, TENANT, b"slow")
    consumer = bus.consumer(SUBJECT, "c", ConsumerConfig(ack_wait_seconds=0.2))
    assert consumer.fetch(1, 0)[0].delivery_count == 1
    assert consumer.fetch(1, 0) == []
    started = time.monotonic()
    again = consumer.fetch(1, timeout_seconds=2)
    assert again[0].delivery_count == 2
    assert 0.1 < time.monotonic() - started < 1.5
    assert bus.stats().consumers[SUBJECT, "c"].redelivered == 1


def test_max_ack_pending_caps_messages_out(bus: SpoolBus) -> None:
    bus.publish_batch(SUBJECT, [(TENANT, payload(i), None) for i in range(10)])
    consumer = bus.consumer(SUBJECT, "c", ConsumerConfig(max_ack_pending=4))
    got = consumer.fetch(10, 0)
    assert len(got) == 4
    assert consumer.fetch(10, 0) == []
    consumer.ack_many(got[:2])
    assert [m.sequence for m in consumer.fetch(10, 0)] == [5, 6]


def test_fetch_waits_for_a_publish_from_another_thread(bus: SpoolBus) -> None:
    consumer = bus.consumer(SUBJECT, "c")
    timer = threading.Timer(0.1, lambda: bus.publish(SUBJECT, TENANT, b"late"))
    timer.start()
    started = time.monotonic()
    got = consumer.fetch(5, timeout_seconds=5)
    timer.join()
    assert [m.payload for m in got] == [b"late"]
    assert time.monotonic() - started < 2


def test_a_fetch_blocked_by_max_ack_pending_wakes_on_ack(bus: SpoolBus) -> None:
    bus.publish_batch(SUBJECT, [(TENANT, payload(i), None) for i in range(2)])
    consumer = bus.consumer(SUBJECT, "c", ConsumerConfig(max_ack_pending=1))
    (first,) = consumer.fetch(5, 0)
    threading.Timer(0.1, lambda: consumer.ack(first)).start()
    started = time.monotonic()
    assert [m.sequence for m in consumer.fetch(5, timeout_seconds=5)] == [2]
    assert time.monotonic() - started < 2


class CountingIO(SpoolIO):
    """Counts fsyncs of segment data: the group commit's whole point is fewer of them."""

    def __init__(self) -> None:
        self.fsyncs = 0
        self.lock = threading.Lock()

    def fsync(self, fd: int) -> None:
        with self.lock:
            self.fsyncs += 1
        time.sleep(0.002)  # a slow disk makes publishers pile up behind the leader
        super().fsync(fd)


def test_group_commit_from_eight_threads_is_all_durable(open_bus: OpenBus, spool_dir: Path) -> None:
    io = CountingIO()
    bus = open_bus(SpoolConfig(min_free_bytes=0), io)
    per_thread = 60
    results: dict[int, list[tuple[int, bytes]]] = {}
    barrier = threading.Barrier(8)

    def publisher(worker: int) -> None:
        barrier.wait()
        mine = []
        for i in range(per_thread):
            body = f"w{worker}-{i}".encode()
            mine.append((bus.publish(SUBJECT, TENANT, body), body))
        results[worker] = mine

    threads = [threading.Thread(target=publisher, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    published = dict(pair for mine in results.values() for pair in mine)
    assert sorted(published) == list(range(1, 8 * per_thread + 1))
    assert io.fsyncs < 8 * per_thread / 2, "publishers were not batched into shared fsyncs"
    for mine in results.values():
        assert [s for s, _ in mine] == sorted(s for s, _ in mine)
    bus.close()
    # What is on disk (read without the bus) is exactly what was acknowledged.
    data = b"".join(p.read_bytes() for p in segment_files(spool_dir))
    assert scan(data).sequences == sorted(published)
    bus = open_bus()
    got = bus.consumer(SUBJECT, "check").fetch(10_000, 0)
    assert {m.sequence: m.payload for m in got} == published


def test_segments_roll_at_max_segment_bytes(bus: SpoolBus, spool_dir: Path) -> None:
    bus.publish_batch(SUBJECT, [(TENANT, payload(i, 200), None) for i in range(60)])
    files = segment_files(spool_dir)
    assert len(files) > 2
    assert all(f.stat().st_size <= SMALL.max_segment_bytes for f in files)
    assert int(files[1].stem) == scan(files[1].read_bytes()).sequences[0]


def test_names_limits_and_lifecycle_errors(bus: SpoolBus, spool_dir: Path) -> None:
    with pytest.raises(InvalidNameError):
        bus.publish("ingest/../x", TENANT, b"")
    with pytest.raises(InvalidNameError):
        bus.consumer(SUBJECT, "has.dot")
    with pytest.raises(MessageTooLargeError):
        bus.publish(SUBJECT, TENANT, b"x" * (SMALL.max_record_bytes + 1))
    with pytest.raises(BusInUseError):
        SpoolBus(spool_dir, SMALL)
    assert bus.publish_batch(SUBJECT, []) == []
    consumer = bus.consumer(SUBJECT, "c")
    bus.close()
    with pytest.raises(BusClosedError) as info:
        bus.publish(SUBJECT, TENANT, b"late")
    assert info.value.code == "bus.closed"
    with pytest.raises(BusClosedError):
        consumer.fetch(1, 0)


def test_publishing_is_safe_from_asyncio_through_to_thread(bus: SpoolBus) -> None:
    import asyncio

    async def main() -> list[int]:
        calls = [asyncio.to_thread(bus.publish, SUBJECT, TENANT, payload(i)) for i in range(20)]
        return list(await asyncio.gather(*calls))

    assert sorted(asyncio.run(main())) == list(range(1, 21))
    assert [p.name for p in (bus.data_dir / "streams").iterdir()] == [SUBJECT]
