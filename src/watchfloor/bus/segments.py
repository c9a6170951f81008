"""One subject's append-only log: segment files, the in-memory index, group commit, recovery, retention.

Layout: `<dir>/<first sequence, 20 digits>.seg`, frames as in `framing.py`. Only the last segment is
written; earlier ones are sealed and only ever deleted whole (by retention).

Group commit: a publisher queues its unit (one publish or publish_batch call) and waits. Whichever waiting
publisher finds no flush running becomes the leader: it takes the whole queue, assigns sequences, writes
it with one `pwrite` per segment touched, fsyncs, and only then makes the records visible to consumers and
wakes the publishers. Publishers that arrive meanwhile form the next group. On any write or fsync error
the leader truncates every touched segment back to where the group began, so a failed call stores nothing.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchfloor.bus.ackstate import fsync_dir
from watchfloor.bus.config import SpoolConfig, SpoolIO
from watchfloor.bus.errors import (
    BusClosedError,
    MessageTooLargeError,
    SpoolFullError,
    SpoolWriteError,
)
from watchfloor.bus.framing import (
    CorruptFrameError,
    Record,
    TornFrameError,
    decode_record,
    encode_record,
    encoded_size,
    scan,
)
from watchfloor.core.errors import Location
from watchfloor.core.types import TenantId

log = logging.getLogger("watchfloor.bus")

SEGMENT_SUFFIX = ".seg"
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryEvent:
    """Something recovery found and repaired (torn tail) or skipped (corrupt records) in one segment."""

    subject: str
    segment: str
    kind: str  # "torn_tail" (truncated) or "corrupt" (skipped, file left as it is)
    bytes: int
    records: int


class _Segment:
    __slots__ = ("fd", "first_seq", "last_timestamp_ns", "lengths", "offsets", "path", "seqs", "size")

    def __init__(self, path: Path, fd: int, first_seq: int) -> None:
        self.path = path
        self.fd = fd
        self.first_seq = first_seq
        self.seqs = array("Q")
        self.offsets = array("Q")
        self.lengths = array("I")
        self.size = 0
        self.last_timestamp_ns = 0

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else self.first_seq - 1


class _Unit:
    """One publish call waiting for its group commit."""

    __slots__ = ("done", "error", "items", "nbytes", "seqs")

    def __init__(
        self, items: Sequence[tuple[TenantId, bytes, Mapping[str, str] | None]], nbytes: int
    ) -> None:
        self.items = items
        self.nbytes = nbytes
        self.seqs: list[int] = []
        self.error: Exception | None = None
        self.done = False


class SubjectLog:
    """The durable log of one subject. Thread-safe; `cond` is notified whenever records become visible."""

    def __init__(self, subject: str, directory: Path, config: SpoolConfig, io: SpoolIO) -> None:
        self.subject = subject
        self.directory = directory
        self.config = config
        self.io = io
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self._segments: list[_Segment] = []
        self._queue: list[_Unit] = []
        self._queued_bytes = 0
        self._flushing = False
        self._closed = False
        self._poisoned: str | None = None
        self.last_seq = 0
        self.bytes_on_disk = 0
        self.torn_tail_bytes = 0
        self.corrupt_records = 0
        self.expired_messages = 0
        self.recovery: list[RecoveryEvent] = []
        self._recover()

    # ---------------------------------------------------------------- recovery

    def _recover(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        paths = sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}"))
        prev_last = 0
        for i, path in enumerate(paths):
            is_last = i == len(paths) - 1
            first = int(path.stem)
            data = path.read_bytes()
            result = scan(data, min_sequence=max(first, prev_last + 1))
            fd = os.open(path, os.O_RDWR if is_last else os.O_RDONLY)
            seg = _Segment(path, fd, first)
            seg.seqs.extend(result.sequences)
            seg.offsets.extend(result.offsets)
            seg.lengths.extend(result.lengths)
            seg.last_timestamp_ns = result.last_timestamp_ns
            seg.size = len(data)
            if result.corrupt_records:
                self._report("corrupt", path, result.corrupt_bytes, result.corrupt_records)
            tail = len(data) - result.valid_end
            if tail and is_last:
                os.ftruncate(fd, result.valid_end)
                os.fsync(fd)
                seg.size = result.valid_end
                self.torn_tail_bytes += tail
                self._report("torn_tail", path, tail, 1)
            elif tail:
                self._report("corrupt", path, tail, 1)
            self._segments.append(seg)
            self.bytes_on_disk += seg.size
            prev_last = max(prev_last, seg.last_seq)
        self.last_seq = prev_last
        if not self._segments:
            self._segments.append(self._create_segment(1))
        else:
            # An empty last segment is named after the sequence its first record was going to get.
            self.last_seq = max(self.last_seq, self._segments[-1].first_seq - 1)

    def _report(self, kind: str, path: Path, nbytes: int, records: int) -> None:
        if kind == "corrupt":
            self.corrupt_records += records
        event = RecoveryEvent(
            subject=self.subject, segment=path.name, kind=kind, bytes=nbytes, records=records
        )
        self.recovery.append(event)
        log.warning(
            "spool recovery: subject=%s segment=%s %s bytes=%d records=%d",
            self.subject,
            path.name,
            kind,
            nbytes,
            records,
        )

    def _create_segment(self, first_seq: int) -> _Segment:
        path = self.directory / f"{first_seq:020d}{SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fsync_dir(self.directory)
        return _Segment(path, fd, first_seq)

    # ---------------------------------------------------------------- publishing

    def append(self, items: Sequence[tuple[TenantId, bytes, Mapping[str, str] | None]]) -> list[int]:
        """Store `items` all-or-nothing; returns their sequences once fsync'd."""
        if not items:
            return []
        nbytes = 0
        for tenant, payload, headers in items:
            try:
                size = encoded_size(tenant, payload, headers)
            except ValueError as exc:
                raise MessageTooLargeError(str(exc), location=self._where(tenant)) from exc
            if size > self.config.max_record_bytes:
                msg = f"message of {size} bytes exceeds max_record_bytes={self.config.max_record_bytes}"
                raise MessageTooLargeError(msg, location=self._where(tenant))
            nbytes += size
        unit = _Unit(items, nbytes)
        with self.cond:
            self._check_writable(items[0][0])
            limit = self.config.max_bytes
            if limit is not None and self.bytes_on_disk + self._queued_bytes + nbytes > limit:
                msg = (
                    f"subject holds {self.bytes_on_disk} bytes; max_bytes={limit} leaves no room for {nbytes}"
                )
                raise SpoolFullError(
                    msg,
                    retry_after_seconds=self.config.full_retry_after_seconds,
                    location=self._where(items[0][0]),
                )
            self._queue.append(unit)
            self._queued_bytes += nbytes
            while not unit.done:
                if self._flushing:
                    self.cond.wait()
                    continue
                self._flushing = True
                group = self._queue
                self._queue = []
                self._queued_bytes -= sum(u.nbytes for u in group)
                outcome: _GroupOutcome | Exception = SpoolWriteError("interrupted", location=self._where())
                self.lock.release()
                try:
                    outcome = self._write_group(group)
                except Exception as exc:  # noqa: BLE001 - a bug must fail the group, never leave publishers waiting
                    outcome = SpoolWriteError(f"unexpected {type(exc).__name__}", location=self._where())
                finally:
                    self.lock.acquire()
                    self._finish_group(group, outcome)
        if unit.error is not None:
            raise unit.error
        return unit.seqs

    def _check_writable(self, tenant: TenantId) -> None:
        if self._closed:
            raise BusClosedError("the bus is closed", location=self._where(tenant))
        if self._poisoned is not None:
            msg = f"subject is unusable until the bus is reopened: {self._poisoned}"
            raise SpoolWriteError(msg, location=self._where(tenant))

    def _where(self, tenant: TenantId | None = None) -> Location:
        return Location(path=self.subject, tenant=tenant)

    def _write_group(self, group: list[_Unit]) -> _GroupOutcome | Exception:
        """Runs without the lock, in the leader only: the only code that writes segment files."""
        if self._poisoned is not None:
            return SpoolWriteError(f"subject is unusable: {self._poisoned}", location=self._where())
        total = sum(u.nbytes for u in group)
        try:
            free = self.io.free_bytes(self.directory)
        except OSError as exc:
            return SpoolWriteError(f"statvfs failed: {exc.strerror}", location=self._where())
        if free - total < self.config.min_free_bytes:
            msg = (
                f"filesystem has {free} bytes free; min_free_bytes={self.config.min_free_bytes} "
                f"leaves no room for {total}"
            )
            return SpoolFullError(msg, retry_after_seconds=self.config.full_retry_after_seconds)
        now = time.time_ns()
        seq = self.last_seq + 1
        active = self._segments[-1]
        outcome = _GroupOutcome()
        chunk = _Chunk(active, active.size)
        outcome.chunks.append(chunk)
        try:
            for unit in group:
                for tenant, payload, headers in unit.items:
                    frame = encode_record(seq, now, tenant, payload, headers)
                    end = chunk.start + chunk.nbytes
                    if end > 0 and end + len(frame) > self.config.max_segment_bytes:
                        self._flush_chunk(chunk)
                        chunk = _Chunk(self._create_segment(seq), 0, created=True)
                        outcome.chunks.append(chunk)
                    chunk.add(seq, frame)
                    unit.seqs.append(seq)
                    seq += 1
                outcome.timestamp_ns = now
            self._flush_chunk(chunk)
        except OSError as exc:
            return self._roll_back(outcome, exc)
        return outcome

    def _flush_chunk(self, chunk: _Chunk) -> None:
        if not chunk.frames:
            return
        data = memoryview(b"".join(chunk.frames))
        offset = chunk.start
        while data:
            written = self.io.pwrite(chunk.segment.fd, data, offset)
            if written <= 0:
                raise OSError(errno.EIO, "short write")
            data = data[written:]
            offset += written
        self.io.fsync(chunk.segment.fd)

    def _roll_back(self, outcome: _GroupOutcome, exc: OSError) -> Exception:
        try:
            for chunk in reversed(outcome.chunks):
                if chunk.created:
                    os.close(chunk.segment.fd)
                    chunk.segment.path.unlink(missing_ok=True)
                    fsync_dir(self.directory)
                else:
                    self.io.truncate(chunk.segment.fd, chunk.start)
                    self.io.fsync(chunk.segment.fd)
        except OSError as again:
            self._poisoned = f"rollback after a failed write failed ({again.strerror})"
            log.error("spool subject=%s poisoned: %s", self.subject, self._poisoned)  # noqa: TRY400
        reason = exc.strerror or type(exc).__name__
        if exc.errno in _NO_SPACE:
            return SpoolFullError(
                f"the filesystem is full ({reason}); nothing was stored",
                retry_after_seconds=self.config.full_retry_after_seconds,
                location=self._where(),
            )
        return SpoolWriteError(f"write failed ({reason}); nothing was stored", location=self._where())

    def _finish_group(self, group: list[_Unit], outcome: _GroupOutcome | Exception) -> None:
        """Under the lock: make a committed group visible, or fail every unit in it."""
        if isinstance(outcome, Exception):
            for unit in group:
                unit.seqs = []
                unit.error = outcome
                unit.done = True
        else:
            for chunk in outcome.chunks:
                seg = chunk.segment
                if chunk.created:
                    self._segments.append(seg)
                offset = chunk.start
                for seq, frame in zip(chunk.seqs, chunk.frames, strict=True):
                    seg.seqs.append(seq)
                    seg.offsets.append(offset)
                    seg.lengths.append(len(frame))
                    offset += len(frame)
                seg.size = offset
                seg.last_timestamp_ns = outcome.timestamp_ns
                self.bytes_on_disk += chunk.nbytes
                if chunk.seqs:
                    self.last_seq = chunk.seqs[-1]
            for unit in group:
                unit.done = True
        self._flushing = False
        self.cond.notify_all()

    # ---------------------------------------------------------------- reading

    @property
    def first_seq(self) -> int:
        """The lowest sequence still stored (last_seq + 1 when the subject holds nothing)."""
        for seg in self._segments:
            if seg.seqs:
                return seg.seqs[0]
        return self.last_seq + 1

    def read_after(self, cursor: int, limit: int) -> tuple[list[Record], int]:
        """Up to `limit` stored records with sequence > cursor, in order, and the highest sequence examined
        (>= the last record's; damaged records are skipped, so the caller sees gaps). Call with the lock held.
        """
        out: list[Record] = []
        examined = cursor
        if limit <= 0:
            return out, examined
        for seg in self._segments:
            if len(out) >= limit:
                break
            if not seg.seqs or seg.seqs[-1] <= examined:
                continue
            i = bisect_right(seg.seqs, examined)
            j = min(len(seg.seqs), i + limit - len(out))
            start = seg.offsets[i]
            buf = os.pread(seg.fd, seg.offsets[j - 1] + seg.lengths[j - 1] - start, start)
            for k in range(i, j):
                record = self._decode(buf, seg.offsets[k] - start, seg, k)
                if record is not None:
                    out.append(record)
            examined = seg.seqs[j - 1]
        return out, examined

    def read_one(self, seq: int) -> Record | None:
        """The record with this sequence, or None if it is gone (retention) or damaged. Lock held."""
        for seg in self._segments:
            if seg.seqs and seg.seqs[0] <= seq <= seg.seqs[-1]:
                k = bisect_left(seg.seqs, seq)
                if k < len(seg.seqs) and seg.seqs[k] == seq:
                    buf = os.pread(seg.fd, seg.lengths[k], seg.offsets[k])
                    return self._decode(buf, 0, seg, k)
                return None
        return None

    def _decode(self, buf: bytes, pos: int, seg: _Segment, k: int) -> Record | None:
        try:
            record, _ = decode_record(buf, pos)
        except (CorruptFrameError, TornFrameError):
            record = None
        if record is None or record.sequence != seg.seqs[k]:
            self._report("corrupt", seg.path, seg.lengths[k], 1)
            return None
        return record

    def count_after(self, seq: int) -> int:
        """How many stored records have a sequence > seq. Lock held."""
        return sum(len(s.seqs) - bisect_right(s.seqs, seq) for s in self._segments)

    def bytes_after(self, seq: int) -> int:
        """Bytes on disk of the records with a sequence > seq (the backlog behind a floor). Lock held."""
        total = 0
        for seg in self._segments:
            i = bisect_right(seg.seqs, seq)
            if i < len(seg.seqs):
                total += seg.size - seg.offsets[i]
        return total

    def wait_for_records(self, seen_last_seq: int, timeout_seconds: float) -> None:
        """Block until a record after `seen_last_seq` is visible, `notify` is called, or the timeout."""
        with self.cond:
            if self.last_seq == seen_last_seq and not self._closed and timeout_seconds > 0:
                self.cond.wait(timeout_seconds)

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    # ---------------------------------------------------------------- retention and shutdown

    def retain(self, acked_floor: int | None, now_ns: int | None = None) -> int:
        """Delete sealed segments fully acked by every consumer (`acked_floor` is their minimum floor;
        None means no consumer exists), and with `max_age_seconds`, sealed segments older than that.
        Never deletes the last segment. Returns the number of segments deleted."""
        max_age = self.config.max_age_seconds
        now = time.time_ns() if now_ns is None else now_ns
        deleted = 0
        with self.cond:
            while len(self._segments) > 1:
                seg = self._segments[0]
                acked = acked_floor is not None and seg.last_seq <= acked_floor
                expired = max_age is not None and seg.last_timestamp_ns < now - int(max_age * 1e9)
                if not (acked or expired):
                    break
                if not acked:
                    floor = acked_floor or 0
                    self.expired_messages += len(seg.seqs) - bisect_right(seg.seqs, floor)
                os.close(seg.fd)
                seg.path.unlink(missing_ok=True)
                self._segments.pop(0)
                self.bytes_on_disk -= seg.size
                deleted += 1
            if deleted:
                fsync_dir(self.directory)
        return deleted

    def close(self) -> None:
        with self.cond:
            while self._flushing or self._queue:
                self.cond.wait()
            if self._closed:
                return
            self._closed = True
            for seg in self._segments:
                os.close(seg.fd)
            self.cond.notify_all()


class _Chunk:
    """The frames of one group going into one segment, starting at byte `start`."""

    __slots__ = ("created", "frames", "nbytes", "segment", "seqs", "start")

    def __init__(self, segment: _Segment, start: int, *, created: bool = False) -> None:
        self.segment = segment
        self.start = start
        self.created = created
        self.frames: list[bytes] = []
        self.seqs: list[int] = []
        self.nbytes = 0

    def add(self, seq: int, frame: bytes) -> None:
        self.frames.append(frame)
        self.seqs.append(seq)
        self.nbytes += len(frame)


class _GroupOutcome:
    __slots__ = ("chunks", "timestamp_ns")

    def __init__(self) -> None:
        self.chunks: list[_Chunk] = []
        self.timestamp_ns = 0
