"""`SpoolBus`: the embedded, in-process, durable `Bus` -- a spool of segment files under one data directory.

    <data_dir>/LOCK                                   flock'd while a bus has the directory open
    <data_dir>/streams/<subject>/<first seq>.seg      append-only segments (see segments.py, framing.py)
    <data_dir>/consumers/<subject>/<durable>.state    consumer ack state (see ackstate.py)

Opening recovers every subject (torn tails truncated and counted, damaged records skipped and counted;
`recovery_report()` lists what was found) and every durable consumer that has a state file, so retention
keeps waiting for consumers that have not reconnected yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from watchfloor.bus.ackstate import ConsumerStateFile
from watchfloor.bus.api import (
    BusStats,
    ConsumerConfig,
    ConsumerStats,
    Headers,
    Pressure,
    PressureLevel,
    PublishItem,
    SubjectStats,
    durable_name,
    subject_name,
)
from watchfloor.bus.config import SpoolConfig, SpoolIO
from watchfloor.bus.consumer import SpoolConsumer
from watchfloor.bus.errors import BusClosedError, BusInUseError, InvalidNameError
from watchfloor.bus.segments import RecoveryEvent, SubjectLog
from watchfloor.core.errors import Location
from watchfloor.core.types import TenantId

_AGE_RETENTION_INTERVAL_SECONDS = 1.0


class SpoolBus:
    """The embedded `Bus`. One instance per data directory per host; thread-safe."""

    def __init__(
        self, data_dir: Path | str, config: SpoolConfig | None = None, *, io: SpoolIO | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config = config or SpoolConfig()
        self._io = io or SpoolIO()
        self._lock = threading.Lock()
        self._closed = False
        self._logs: dict[str, SubjectLog] = {}
        self._consumers: dict[tuple[str, str], SpoolConsumer] = {}
        self._last_age_retention = 0.0
        self._streams = self.data_dir / "streams"
        self._consumer_dir = self.data_dir / "consumers"
        self._streams.mkdir(parents=True, exist_ok=True)
        self._consumer_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.data_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            msg = "another process (or another SpoolBus in this one) has this spool open"
            raise BusInUseError(msg, location=Location(path=str(self.data_dir))) from exc
        try:
            self._open_existing()
        except BaseException:
            for subject_log in self._logs.values():
                subject_log.close()
            self._release()
            raise

    def _open_existing(self) -> None:
        for path in sorted(self._streams.iterdir()):
            if path.is_dir() and _valid(subject_name, path.name):
                self._logs[path.name] = SubjectLog(path.name, path, self.config, self._io)
        for subject_dir in sorted(self._consumer_dir.iterdir()):
            if not (subject_dir.is_dir() and _valid(subject_name, subject_dir.name)):
                continue
            for state in sorted(subject_dir.glob(f"*{ConsumerStateFile.SUFFIX}")):
                name = state.name.removesuffix(ConsumerStateFile.SUFFIX)
                if _valid(durable_name, name):
                    self._open_consumer(subject_dir.name, name, None)
        for subject in list(self._logs):
            self._retain(subject)

    # ---------------------------------------------------------------- publishing

    def publish(self, subject: str, tenant: TenantId, payload: bytes, headers: Headers | None = None) -> int:
        return self._publish(subject, ((tenant, payload, headers),))[0]

    def publish_batch(self, subject: str, items: Sequence[PublishItem]) -> list[int]:
        return self._publish(subject, items)

    def _publish(self, subject: str, items: Sequence[PublishItem]) -> list[int]:
        seqs = self._log(subject).append(items)
        if self.config.max_age_seconds is not None:
            now = time.monotonic()
            if now - self._last_age_retention >= _AGE_RETENTION_INTERVAL_SECONDS:
                self._last_age_retention = now
                self._retain(subject)
        return seqs

    def _log(self, subject: str) -> SubjectLog:
        found = self._logs.get(subject)
        if found is not None:
            return found
        subject_name(subject)
        with self._lock:
            self._check_open()
            found = self._logs.get(subject)
            if found is None:
                found = SubjectLog(subject, self._streams / subject, self.config, self._io)
                self._logs[subject] = found
            return found

    # ---------------------------------------------------------------- consumers

    def consumer(
        self, subject: str, durable_name: str, config: ConsumerConfig | None = None
    ) -> SpoolConsumer:
        with self._lock:
            self._check_open()
        return self._open_consumer(subject, durable_name, config)

    def _open_consumer(self, subject: str, name: str, config: ConsumerConfig | None) -> SpoolConsumer:
        durable_name(name)
        subject_log = self._log(subject)
        key = (subject, name)
        with self._lock:
            found = self._consumers.get(key)
            if found is None:
                directory = self._consumer_dir / subject
                directory.mkdir(parents=True, exist_ok=True)
                found = SpoolConsumer(
                    subject_log,
                    ConsumerStateFile(directory, name),
                    name,
                    ack_wait_seconds=self.config.ack_wait_seconds,
                    max_ack_pending=self.config.max_ack_pending,
                    on_floor_advanced=lambda: self._retain(subject),
                )
                self._consumers[key] = found
            if config is not None:
                if config.ack_wait_seconds is not None:
                    found.ack_wait_seconds = config.ack_wait_seconds
                if config.max_ack_pending is not None:
                    found.max_ack_pending = config.max_ack_pending
            return found

    def delete_consumer(self, subject: str, durable_name: str) -> bool:
        with self._lock:
            self._check_open()
            found = self._consumers.pop((subject, durable_name), None)
        if found is None:
            return False
        found.delete()
        self._retain(subject)
        return True

    # ---------------------------------------------------------------- retention, pressure, stats

    def _floor(self, subject: str) -> int | None:
        floors = [c.acked_floor for (s, _), c in list(self._consumers.items()) if s == subject]
        return min(floors) if floors else None

    def _retain(self, subject: str) -> int:
        subject_log = self._logs.get(subject)
        if subject_log is None:
            return 0
        return subject_log.retain(self._floor(subject))

    def retain(self) -> int:
        """Apply retention to every subject now (it also runs after acks); returns segments deleted."""
        return sum(self._retain(subject) for subject in list(self._logs))

    def pressure(self, subject: str) -> Pressure:
        subject_log = self._log(subject)
        floor = self._floor(subject)
        cfg = self.config
        with subject_log.lock:
            on_disk = subject_log.bytes_on_disk
            pending = on_disk if floor is None else subject_log.bytes_after(floor)
        high_water = cfg.effective_high_water_bytes
        level: PressureLevel = "ok"
        reason = ""
        retry = 0.0
        free = self._io.free_bytes(self.data_dir)
        if free < cfg.min_free_bytes or (cfg.max_bytes is not None and on_disk >= cfg.max_bytes):
            level, retry = "full", cfg.full_retry_after_seconds
            reason = f"spool for {subject} is full ({on_disk} bytes stored, {free} bytes free on disk)"
        elif high_water is not None and pending >= high_water:
            level, retry = "throttle", cfg.throttle_retry_after_seconds
            reason = f"consumers of {subject} are {pending} bytes behind (high water {high_water})"
        return Pressure(
            subject=subject,
            level=level,
            pending_bytes=pending,
            high_water_bytes=high_water,
            retry_after_seconds=retry,
            reason=reason,
        )

    def stats(self) -> BusStats:
        subjects: dict[str, SubjectStats] = {}
        for name, subject_log in list(self._logs.items()):
            with subject_log.lock:
                first = subject_log.first_seq
                subjects[name] = SubjectStats(
                    subject=name,
                    first_sequence=first,
                    last_sequence=subject_log.last_seq,
                    messages=subject_log.count_after(0),
                    bytes_on_disk=subject_log.bytes_on_disk,
                    segments=subject_log.segment_count,
                    torn_tail_bytes=subject_log.torn_tail_bytes,
                    corrupt_records=subject_log.corrupt_records,
                    expired_messages=subject_log.expired_messages,
                )
        consumers: Mapping[tuple[str, str], ConsumerStats] = {
            key: c.stats() for key, c in list(self._consumers.items())
        }
        return BusStats(subjects=subjects, consumers=consumers)

    def recovery_report(self) -> list[RecoveryEvent]:
        """What opening (and reading since) found: torn tails truncated, damaged records skipped."""
        return [event for subject_log in self._logs.values() for event in subject_log.recovery]

    # ---------------------------------------------------------------- lifecycle

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosedError("the bus is closed", location=Location(path=str(self.data_dir)))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for consumer in self._consumers.values():
            consumer.close()
        for subject_log in self._logs.values():
            subject_log.close()
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _valid(check: Callable[[str], str], value: str) -> bool:
    try:
        check(value)
    except InvalidNameError:
        return False
    return True
