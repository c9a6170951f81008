"""A durable pull consumer over a `SubjectLog`: delivery, acks, redelivery, persisted state.

State kept per consumer, saved atomically after every ack call that changed something (durably: the
call returns after the rename is fsync'd) and after every fetch that delivered something (atomically but
without the directory fsync: after a power loss a delivery count may come back one lower):
- the acked floor and acks above it (`AckState`);
- the cursor: the highest sequence ever handed out (or skipped as a gap);
- delivered-but-unacked sequences with their delivery counts.

After a restart every delivered-but-unacked message is due at once and comes back with its delivery count
plus one; new messages continue after the cursor. A gap in the log (retention by age, a damaged record) is
acked implicitly so the floor can pass it.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable

from watchfloor.bus.ackstate import AckState, ConsumerState, ConsumerStateFile
from watchfloor.bus.api import ConsumerStats, Message
from watchfloor.bus.errors import BusClosedError, BusError
from watchfloor.bus.framing import Record
from watchfloor.bus.segments import SubjectLog
from watchfloor.core.errors import Location

log = logging.getLogger("watchfloor.bus")

_MIN_WAIT_SECONDS = 0.001


class SpoolConsumer:
    """One durable consumer on one subject. Thread-safe: workers may fetch and ack from several threads."""

    def __init__(
        self,
        subject_log: SubjectLog,
        state_file: ConsumerStateFile,
        durable_name: str,
        *,
        ack_wait_seconds: float,
        max_ack_pending: int,
        on_floor_advanced: Callable[[], object] | None = None,
    ) -> None:
        self._log = subject_log
        self._file = state_file
        self._subject = subject_log.subject
        self._durable = durable_name
        self.ack_wait_seconds = ack_wait_seconds
        self.max_ack_pending = max_ack_pending
        self._on_floor_advanced = on_floor_advanced
        self._lock = threading.Lock()
        self._closed = False
        self.redelivered = 0
        self.state_recovered = False
        stored: ConsumerState | None
        try:
            stored = state_file.load()
        except ValueError as exc:
            log.warning("consumer %s/%s: %s; redelivering from the start", self._subject, durable_name, exc)
            self.state_recovered = True
            stored = None
        if stored is None:
            stored = ConsumerState(subject=self._subject, durable_name=durable_name)
        self._acks = AckState(stored.floor, stored.above)
        self._cursor = max(stored.cursor, self._acks.floor)
        self._inflight: dict[int, int] = {}
        self._deadline: dict[int, float] = {}
        self._heap: list[tuple[float, int]] = []
        for seq, count in stored.deliveries.items():
            if not self._acks.is_acked(seq) and seq <= self._cursor:
                self._inflight[seq] = count
                self._schedule(seq, 0.0)

    @property
    def subject(self) -> str:
        return self._subject

    @property
    def durable_name(self) -> str:
        return self._durable

    @property
    def acked_floor(self) -> int:
        return self._acks.floor

    # ---------------------------------------------------------------- delivery

    def fetch(self, max_messages: int, timeout_seconds: float) -> list[Message]:
        if max_messages < 1:
            msg = "max_messages must be at least 1"
            raise ValueError(msg)
        end = time.monotonic() + max(0.0, timeout_seconds)
        while True:
            with self._lock:
                self._check_open()
                now = time.monotonic()
                with self._log.lock:
                    seen = self._log.last_seq
                    messages = self._collect(max_messages, now)
                if messages:
                    self._save(durable=False)
                    return messages
                wake = self._heap[0][0] if self._heap else math.inf
            now = time.monotonic()
            if now >= end:
                return []
            self._log.wait_for_records(seen, max(_MIN_WAIT_SECONDS, min(end, wake) - now))

    def _collect(self, max_messages: int, now: float) -> list[Message]:
        """Due redeliveries first, then new records after the cursor. Both locks held."""
        out: list[Message] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(out) < max_messages:
            deadline, seq = heapq.heappop(heap)
            if self._deadline.get(seq) != deadline:
                continue  # stale: acked or rescheduled since
            record = self._log.read_one(seq)
            if record is None:
                self._forget(seq)
                self._acks.ack(seq)  # removed by retention or damaged: nothing left to deliver
                continue
            count = self._inflight[seq] + 1
            self._inflight[seq] = count
            self._schedule(seq, now + self.ack_wait_seconds)
            self.redelivered += 1
            out.append(self._message(record, count))
        room = min(max_messages - len(out), self.max_ack_pending - len(self._inflight))
        if room <= 0:
            return out
        records, examined = self._log.read_after(self._cursor, room)
        for record in records:
            seq = record.sequence
            if seq > self._cursor + 1:
                self._acks.ack_range(self._cursor + 1, seq - 1)
            self._cursor = seq
            self._inflight[seq] = 1
            self._schedule(seq, now + self.ack_wait_seconds)
            out.append(self._message(record, 1))
        if examined > self._cursor:
            self._acks.ack_range(self._cursor + 1, examined)
            self._cursor = examined
        return out

    def _message(self, record: Record, count: int) -> Message:
        return Message(
            subject=self._subject,
            sequence=record.sequence,
            tenant=record.tenant,
            payload=record.payload,
            headers=record.headers,
            delivery_count=count,
            timestamp_ns=record.timestamp_ns,
        )

    def _schedule(self, seq: int, deadline: float) -> None:
        self._deadline[seq] = deadline
        heapq.heappush(self._heap, (deadline, seq))

    def _forget(self, seq: int) -> None:
        self._inflight.pop(seq, None)
        self._deadline.pop(seq, None)

    # ---------------------------------------------------------------- acks

    def ack(self, message: Message) -> None:
        self.ack_many((message,))

    def ack_many(self, messages: Iterable[Message]) -> None:
        with self._lock:
            self._check_open()
            was_full = len(self._inflight) >= self.max_ack_pending
            floor_before = self._acks.floor
            changed = False
            for message in messages:
                self._check_mine(message)
                seq = message.sequence
                if seq > self._cursor:
                    continue  # never delivered by this consumer: nothing to ack
                self._forget(seq)
                changed |= self._acks.ack(seq)
            if changed:
                self._save()
            advanced = self._acks.floor > floor_before
        if was_full:
            self._log.notify()
        if advanced and self._on_floor_advanced is not None:
            self._on_floor_advanced()

    def nak(self, message: Message, delay_seconds: float = 0.0) -> None:
        with self._lock:
            self._check_open()
            self._check_mine(message)
            if message.sequence in self._inflight:
                self._schedule(message.sequence, time.monotonic() + max(0.0, delay_seconds))
        self._log.notify()

    def _check_mine(self, message: Message) -> None:
        if message.subject != self._subject:
            msg = f"message of subject {message.subject} acked on consumer {self._durable} of {self._subject}"
            raise BusError(
                msg, location=Location(path=self._subject, tenant=message.tenant), code="bus.wrong_consumer"
            )

    def _check_open(self) -> None:
        if self._closed:
            msg = f"consumer {self._durable} is closed"
            raise BusClosedError(msg, location=Location(path=self._subject))

    # ---------------------------------------------------------------- state

    def _save(self, *, durable: bool = True) -> None:
        state = ConsumerState(
            subject=self._subject,
            durable_name=self._durable,
            floor=self._acks.floor,
            above=sorted(self._acks.above),
            cursor=self._cursor,
            deliveries=dict(self._inflight),
        )
        self._file.save(state, durable=durable)

    def stats(self) -> ConsumerStats:
        with self._lock, self._log.lock:
            floor = self._acks.floor
            pending = max(0, self._log.count_after(floor) - self._acks.above_count)
            pending_bytes = self._log.bytes_after(floor)
            return ConsumerStats(
                subject=self._subject,
                durable_name=self._durable,
                acked_floor=floor,
                acked_above_floor=self._acks.above_count,
                pending=pending,
                pending_bytes=pending_bytes,
                in_flight=len(self._inflight),
                redelivered=self.redelivered,
            )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._save()
            self._closed = True

    def delete(self) -> bool:
        with self._lock:
            self._closed = True
            return self._file.delete()
