"""The bus contract the pipeline stages talk through; the spool and (later) NATS JetStream implement it.

Contract: `publish*` returns sequence numbers only once the messages are durable; a durable consumer
delivers every message at least once, in sequence order, and resumes after a restart from its acked floor.

Names follow JetStream: a *subject* is one stream here (`ingest.raw`, `normalize.events`), a consumer is a
*durable* pull consumer with explicit acks, `fetch` is a pull with a batch size and an expiry, unacked
messages are redelivered after `ack_wait_seconds` (or at once after `nak`), and at most `max_ack_pending`
messages are out at a time. Everything is synchronous and thread-safe; asyncio code calls it through
`asyncio.to_thread`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from watchfloor.bus.errors import InvalidNameError, SpoolBackpressure
from watchfloor.core.errors import Location
from watchfloor.core.types import TenantId

Headers = Mapping[str, str]
PublishItem = tuple[TenantId, bytes, Headers | None]
PressureLevel = Literal["ok", "throttle", "full"]

_SUBJECT_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_DURABLE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_SUBJECT_LENGTH = 128


def subject_name(value: str) -> str:
    """Validate a subject: dot-separated tokens of `[A-Za-z0-9_-]`, at most 128 characters (no wildcards)."""
    if len(value) > MAX_SUBJECT_LENGTH or not _SUBJECT_RE.fullmatch(value):
        msg = f"invalid subject {value!r}: use dot-separated tokens of [A-Za-z0-9_-], at most 128 characters"
        raise InvalidNameError(msg)
    return value


def durable_name(value: str) -> str:
    """Validate a durable consumer name: 1-64 of `[A-Za-z0-9_-]` (JetStream forbids dots here too)."""
    if not _DURABLE_RE.fullmatch(value):
        msg = f"invalid durable consumer name {value!r}: use 1-64 of [A-Za-z0-9_-]"
        raise InvalidNameError(msg)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One delivered message. `delivery_count` is 1 on first delivery and grows with each redelivery."""

    subject: str
    sequence: int
    tenant: TenantId
    payload: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    delivery_count: int = 1
    timestamp_ns: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerConfig:
    """Per-consumer settings (JetStream `AckWait`, `MaxAckPending`); `None` takes the bus default."""

    ack_wait_seconds: float | None = None
    max_ack_pending: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectStats:
    subject: str
    first_sequence: int
    last_sequence: int
    messages: int
    bytes_on_disk: int
    segments: int
    torn_tail_bytes: int = 0
    corrupt_records: int = 0
    expired_messages: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerStats:
    subject: str
    durable_name: str
    acked_floor: int
    acked_above_floor: int
    pending: int
    pending_bytes: int
    in_flight: int
    redelivered: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BusStats:
    subjects: Mapping[str, SubjectStats]
    consumers: Mapping[tuple[str, str], ConsumerStats]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pressure:
    """How far behind a subject's consumers are. Intake answers 429 on "throttle", 503 on "full"."""

    subject: str
    level: PressureLevel
    pending_bytes: int
    high_water_bytes: int | None
    retry_after_seconds: float
    reason: str = ""

    def raise_for_level(self, *, tenant: TenantId | None = None) -> None:
        """Raise `SpoolBackpressure` unless the level is "ok"."""
        if self.level == "ok":
            return
        raise SpoolBackpressure(
            self.reason or f"subject {self.subject} is {self.level}",
            level=self.level,
            retry_after_seconds=self.retry_after_seconds,
            location=Location(path=self.subject, tenant=tenant),
        )


@runtime_checkable
class Consumer(Protocol):
    """A durable pull consumer on one subject. Thread-safe; several workers may share one."""

    @property
    def subject(self) -> str: ...

    @property
    def durable_name(self) -> str: ...

    def fetch(self, max_messages: int, timeout_seconds: float) -> list[Message]:
        """Up to `max_messages`; waits up to `timeout_seconds` for the first one, returns [] on expiry."""
        ...

    def ack(self, message: Message) -> None:
        """Durably mark one message done; acking twice, or after retention removed it, is a no-op."""
        ...

    def ack_many(self, messages: Iterable[Message]) -> None:
        """Durably mark several messages done with one state write (prefer this in stages)."""
        ...

    def nak(self, message: Message, delay_seconds: float = 0.0) -> None:
        """Give a message back for redelivery after `delay_seconds`."""
        ...


@runtime_checkable
class Bus(Protocol):
    """Publish durably, consume through durable consumers. Thread-safe; not async (use `to_thread`)."""

    def publish(self, subject: str, tenant: TenantId, payload: bytes, headers: Headers | None = None) -> int:
        """Store one message; returns its sequence once durable (fsync'd)."""
        ...

    def publish_batch(self, subject: str, items: Sequence[PublishItem]) -> list[int]:
        """Store several messages all-or-nothing; returns their sequences, in order, once durable."""
        ...

    def consumer(self, subject: str, durable_name: str, config: ConsumerConfig | None = None) -> Consumer:
        """The durable consumer `durable_name` on `subject`, created on first use, resumed afterwards."""
        ...

    def delete_consumer(self, subject: str, durable_name: str) -> bool:
        """Forget a durable consumer (so retention stops waiting for it); False if it did not exist."""
        ...

    def pressure(self, subject: str) -> Pressure:
        """Backpressure for intake: pending bytes of the slowest consumer against the high-water mark."""
        ...

    def stats(self) -> BusStats: ...

    def close(self) -> None: ...
