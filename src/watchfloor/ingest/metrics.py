"""Intake counters (Vector's component spec: received, accepted, rejected{reason}, bytes), labelled by tenant.

They live in the module-level `REGISTRY`, not prometheus_client's global one, so tests read exact values and
whoever exposes `/metrics` decides where they appear. Requests that never authenticated count under
tenant ``"-"``.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter

UNAUTHENTICATED: Final = "-"

REGISTRY = CollectorRegistry(auto_describe=True)

RECEIVED = Counter(
    "watchfloor_intake_received",
    "Events (or, for requests refused before parsing, requests) received by an intake protocol.",
    ["tenant", "protocol"],
    registry=REGISTRY,
)
ACCEPTED = Counter(
    "watchfloor_intake_accepted",
    "Events durably published to the spool.",
    ["tenant", "protocol"],
    registry=REGISTRY,
)
REJECTED = Counter(
    "watchfloor_intake_rejected",
    "Events or requests refused, by reason (reported to the sender or dead-lettered).",
    ["tenant", "protocol", "reason"],
    registry=REGISTRY,
)
BYTES = Counter(
    "watchfloor_intake_bytes",
    "Request body bytes read (as sent on the wire, before decompression).",
    ["tenant", "protocol"],
    registry=REGISTRY,
)


def count_received(tenant: str, protocol: str, events: int = 1) -> None:
    if events:
        RECEIVED.labels(tenant=tenant, protocol=protocol).inc(events)


def count_accepted(tenant: str, protocol: str, events: int) -> None:
    if events:
        ACCEPTED.labels(tenant=tenant, protocol=protocol).inc(events)


def count_rejected(tenant: str, protocol: str, reason: str, events: int = 1) -> None:
    if events:
        REJECTED.labels(tenant=tenant, protocol=protocol, reason=reason).inc(events)


def count_bytes(tenant: str, protocol: str, size: int) -> None:
    if size:
        BYTES.labels(tenant=tenant, protocol=protocol).inc(size)


def sample(name: str, **labels: str) -> float:
    """The current value of one counter series (0.0 when it never moved); for tests and diagnostics."""
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value
