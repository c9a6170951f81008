"""Full disks and failing writes: refuse before writing, roll back after a failed write, damage nothing."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest

from tests.bus.conftest import SUBJECT, TENANT, OpenBus, payload, segment_files
from watchfloor.bus import (
    SpoolBackpressure,
    SpoolBus,
    SpoolConfig,
    SpoolFullError,
    SpoolIO,
    SpoolWriteError,
)
from watchfloor.bus.framing import scan
from watchfloor.core.errors import WatchfloorError


class FailingIO(SpoolIO):
    """The documented test seam: after `fail_after` good writes, write half the data, then fail with `err`.

    `fail_fsyncs` makes that many fsyncs fail instead; `fail_truncate` makes the rollback fail too.
    """

    def __init__(self, err: int = errno.ENOSPC) -> None:
        self.err = err
        self.fail_after: int | None = None
        self.fail_fsyncs = 0
        self.fail_truncate = False
        self.writes = 0

    def pwrite(self, fd: int, data: memoryview, offset: int) -> int:
        if self.fail_after is not None and self.writes >= self.fail_after:
            if len(data) > 1 and self.writes == self.fail_after:
                self.writes += 1
                return super().pwrite(fd, data[: len(data) // 2], offset)  # a real short write first
            raise OSError(self.err, errno.errorcode[self.err])
        self.writes += 1
        return super().pwrite(fd, data, offset)

    def fsync(self, fd: int) -> None:
        if self.fail_fsyncs > 0:
            self.fail_fsyncs -= 1
            raise OSError(errno.EIO, "EIO")
        super().fsync(fd)

    def truncate(self, fd: int, length: int) -> None:
        if self.fail_truncate:
            raise OSError(errno.EIO, "EIO")
        super().truncate(fd, length)


def stored(spool_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in segment_files(spool_dir))


def test_min_free_bytes_above_free_space_refuses_before_writing(open_bus: OpenBus, spool_dir: Path) -> None:
    bus = open_bus(SpoolConfig(min_free_bytes=0))
    bus.publish(SUBJECT, TENANT, b"kept")
    bus.close()
    before = stored(spool_dir)
    bus = open_bus(SpoolConfig(min_free_bytes=2**62, full_retry_after_seconds=7.5))
    with pytest.raises(SpoolFullError) as info:
        bus.publish(SUBJECT, TENANT, b"refused")
    assert info.value.code == "bus.spool_full"
    assert info.value.retry_after_seconds == 7.5
    assert isinstance(info.value, WatchfloorError)
    assert stored(spool_dir) == before
    assert bus.pressure(SUBJECT).level == "full"
    assert [m.payload for m in bus.consumer(SUBJECT, "c").fetch(10, 0)] == [b"kept"]


def test_max_bytes_refuses_the_publish_that_would_not_fit(open_bus: OpenBus, spool_dir: Path) -> None:
    bus = open_bus(SpoolConfig(min_free_bytes=0, max_bytes=2000))
    seqs: list[int] = []

    def fill_up() -> None:
        for i in range(100):
            seqs.append(bus.publish(SUBJECT, TENANT, payload(i, 100)))  # noqa: PERF401 - stops at the error

    with pytest.raises(SpoolFullError) as info:
        fill_up()
    assert "max_bytes=2000" in str(info.value)
    assert info.value.location is not None
    assert info.value.location.tenant == TENANT
    assert 0 < len(seqs) < 100
    assert bus.stats().subjects[SUBJECT].bytes_on_disk <= 2000
    assert scan(stored(spool_dir)).sequences == seqs
    with pytest.raises(SpoolFullError):  # a batch is all-or-nothing
        bus.publish_batch(SUBJECT, [(TENANT, b"x", None)] * 40)
    assert bus.stats().subjects[SUBJECT].last_sequence == seqs[-1]


@pytest.mark.parametrize(
    ("err", "error_type"), [(errno.ENOSPC, SpoolFullError), (errno.EIO, SpoolWriteError)]
)
def test_a_failed_write_is_rolled_back_and_the_spool_stays_usable(
    open_bus: OpenBus, spool_dir: Path, err: int, error_type: type[Exception]
) -> None:
    io = FailingIO(err)
    bus = open_bus(SpoolConfig(min_free_bytes=0), io)
    good = bus.publish_batch(SUBJECT, [(TENANT, payload(i), None) for i in range(5)])
    before = stored(spool_dir)
    io.fail_after = io.writes
    with pytest.raises(error_type):
        bus.publish_batch(SUBJECT, [(TENANT, payload(i, 500), None) for i in range(5, 10)])
    assert stored(spool_dir) == before, "the half-written batch was truncated away, nothing else touched"
    io.fail_after = None
    assert bus.publish(SUBJECT, TENANT, b"after") == good[-1] + 1, "no sequence was burned"
    bus.close()
    bus = open_bus(SpoolConfig(min_free_bytes=0))
    assert bus.recovery_report() == []
    got = bus.consumer(SUBJECT, "c").fetch(100, 0)
    assert [m.payload for m in got] == [*(payload(i) for i in range(5)), b"after"]


def test_a_failure_while_rolling_segments_rolls_back_every_segment_touched(
    open_bus: OpenBus, spool_dir: Path
) -> None:
    io = FailingIO()
    bus = open_bus(SpoolConfig(min_free_bytes=0, max_segment_bytes=4096), io)
    bus.publish_batch(SUBJECT, [(TENANT, payload(i, 300), None) for i in range(5)])
    files_before = {p.name: p.read_bytes() for p in segment_files(spool_dir)}
    io.fail_after = io.writes + 2  # the batch spans three segments; the third write fails
    with pytest.raises(SpoolFullError):
        bus.publish_batch(SUBJECT, [(TENANT, payload(i, 300), None) for i in range(5, 40)])
    assert {p.name: p.read_bytes() for p in segment_files(spool_dir)} == files_before
    assert bus.stats().subjects[SUBJECT].last_sequence == 5


def test_an_fsync_error_fails_the_call_and_stores_nothing(open_bus: OpenBus, spool_dir: Path) -> None:
    io = FailingIO()
    bus = open_bus(SpoolConfig(min_free_bytes=0), io)
    bus.publish(SUBJECT, TENANT, b"one")
    before = stored(spool_dir)
    io.fail_fsyncs = 1
    with pytest.raises(SpoolWriteError):
        bus.publish(SUBJECT, TENANT, b"two")
    assert stored(spool_dir) == before
    assert bus.publish(SUBJECT, TENANT, b"two") == 2


def test_a_failed_rollback_poisons_the_subject_until_reopened(open_bus: OpenBus, spool_dir: Path) -> None:
    io = FailingIO(errno.EIO)
    bus = open_bus(SpoolConfig(min_free_bytes=0), io)
    bus.publish(SUBJECT, TENANT, b"one")
    io.fail_after = io.writes
    io.fail_truncate = True
    with pytest.raises(SpoolWriteError):
        bus.publish(SUBJECT, TENANT, payload(2, 400))
    io.fail_after = None
    with pytest.raises(SpoolWriteError, match="reopened"):
        bus.publish(SUBJECT, TENANT, b"refused")
    bus.close()
    bus = open_bus(SpoolConfig(min_free_bytes=0))  # recovery cuts the half-written record
    assert [e.kind for e in bus.recovery_report()] == ["torn_tail"]
    assert bus.publish(SUBJECT, TENANT, b"two") == 2


def test_every_waiting_publisher_gets_the_error_of_a_failed_group(open_bus: OpenBus) -> None:
    io = FailingIO()
    bus = open_bus(SpoolConfig(min_free_bytes=0), io)
    io.fail_after = 0
    errors: list[Exception] = []

    def publish() -> None:
        try:
            bus.publish(SUBJECT, TENANT, b"x" * 64)
        except SpoolFullError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(errors) == 8
    assert bus.stats().subjects[SUBJECT].last_sequence == 0


def test_backpressure_signals_throttle_then_clears(open_bus: OpenBus) -> None:
    bus: SpoolBus = open_bus(
        SpoolConfig(min_free_bytes=0, high_water_bytes=3000, throttle_retry_after_seconds=2)
    )
    consumer = bus.consumer(SUBJECT, "normalize")
    bus.publish_batch(SUBJECT, [(TENANT, payload(i, 100), None) for i in range(30)])
    pressure = bus.pressure(SUBJECT)
    assert (pressure.level, pressure.retry_after_seconds) == ("throttle", 2)
    assert pressure.pending_bytes >= 3000
    with pytest.raises(SpoolBackpressure) as info:
        pressure.raise_for_level(tenant=TENANT)
    assert (info.value.code, info.value.level, info.value.retry_after_seconds) == (
        "bus.backpressure",
        "throttle",
        2,
    )
    consumer.ack_many(consumer.fetch(30, 0))
    assert bus.pressure(SUBJECT).level == "ok"
    bus.pressure(SUBJECT).raise_for_level()
