"""The bus the pipeline stages talk through, and its embedded durable implementation (the spool).

Stages depend on `Bus`, `Consumer` and `Message` only; `SpoolBus` is one implementation, NATS JetStream
is meant to be another (see `README.md` and `docs/adr/2026-12-03-durable-bus-spool.md`).
"""

from watchfloor.bus.api import (
    Bus,
    BusStats,
    Consumer,
    ConsumerConfig,
    ConsumerStats,
    Message,
    Pressure,
    SubjectStats,
)
from watchfloor.bus.config import SpoolConfig, SpoolIO
from watchfloor.bus.errors import (
    BusClosedError,
    BusError,
    BusInUseError,
    InvalidNameError,
    MessageTooLargeError,
    SpoolBackpressure,
    SpoolFullError,
    SpoolWriteError,
)
from watchfloor.bus.spool import SpoolBus

__all__ = [
    "Bus",
    "BusClosedError",
    "BusError",
    "BusInUseError",
    "BusStats",
    "Consumer",
    "ConsumerConfig",
    "ConsumerStats",
    "InvalidNameError",
    "Message",
    "MessageTooLargeError",
    "Pressure",
    "SpoolBackpressure",
    "SpoolBus",
    "SpoolConfig",
    "SpoolFullError",
    "SpoolIO",
    "SpoolWriteError",
    "SubjectStats",
]
