"""The one shape every intake path hands to the bus: one event, its tenant, and where it came from.

Every intake (HEC, Elasticsearch `_bulk`, NDJSON, syslog, `watchfloor ingest` files) publishes each
accepted event as one message on `SUBJECT_RAW`; the pipeline consumes them. The tenant travels as the
message's tenant (from the intake token or listener binding, never from the body); everything else as
headers, so a JetStream implementation carries them unchanged.

Formats:
- ``json``: `body` is one JSON object (UTF-8), exactly as the shipper sent it (HEC `event` objects
  re-serialised compactly, `_bulk` sources and NDJSON lines as received);
- ``text``: `body` is one line or message of text (HEC `raw`, a HEC `event` string);
- ``syslog``: `body` is one syslog frame (RFC 5424/3164, possibly CEF) as received.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, get_args

from watchfloor.bus.api import Message, PublishItem
from watchfloor.core.errors import InputError
from watchfloor.core.types import TenantId

SUBJECT_RAW = "ingest.raw"

EventFormat = Literal["json", "text", "syslog"]
_FORMATS: tuple[str, ...] = get_args(EventFormat)

_H_SOURCE = "wf-source"
_H_FORMAT = "wf-format"
_H_RECEIVED = "wf-received"
_H_OFFSET = "wf-offset"
_META_PREFIX = "wf-meta-"


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One event as accepted by an intake.

    `source` names the intake and sender (``hec:<token id>``, ``bulk:<index>``, ``ndjson``,
    ``syslog:udp:10.0.0.5``, ``file:/path/to/Security.evtx``); `offset` says where inside the request
    or file the event was (``line 12``, ``item 3``, ``record 4711``), for dead letters. `meta` holds
    shipper metadata worth keeping (HEC host/source/sourcetype/index/time, `_bulk` index).
    """

    tenant: TenantId
    source: str
    format: EventFormat
    body: bytes
    received_at: datetime
    offset: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    def to_publish(self) -> PublishItem:
        """(tenant, payload, headers) for `Bus.publish_batch`."""
        headers = {
            _H_SOURCE: self.source,
            _H_FORMAT: self.format,
            _H_RECEIVED: self.received_at.astimezone(UTC).isoformat(),
        }
        if self.offset is not None:
            headers[_H_OFFSET] = self.offset
        for key, value in self.meta.items():
            headers[_META_PREFIX + key] = value
        return self.tenant, self.body, headers


def from_message(message: Message) -> Envelope:
    """The envelope a message carries; InputError (code `envelope.invalid`) when headers are missing."""
    headers = message.headers
    fmt = headers.get(_H_FORMAT)
    source = headers.get(_H_SOURCE)
    received = headers.get(_H_RECEIVED)
    if fmt not in _FORMATS or source is None or received is None:
        where = f"{message.subject}#{message.sequence}"
        msg = f"message {where} is not an intake envelope (headers {sorted(headers)})"
        raise InputError(msg, code="envelope.invalid")
    try:
        received_at = datetime.fromisoformat(received)
    except ValueError as exc:
        msg = f"message {message.subject}#{message.sequence}: bad {_H_RECEIVED} {received!r}"
        raise InputError(msg, code="envelope.invalid") from exc
    meta = {k[len(_META_PREFIX) :]: v for k, v in headers.items() if k.startswith(_META_PREFIX)}
    return Envelope(
        tenant=message.tenant,
        source=source,
        format=fmt,  # type: ignore[arg-type]  # checked against _FORMATS above
        body=message.payload,
        received_at=received_at,
        offset=headers.get(_H_OFFSET),
        meta=meta,
    )
