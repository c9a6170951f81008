"""Alerts: repeats of one rule on one entity update one alert instead of opening new ones.

Keys (all plain text, hashed with BLAKE2b where an id is needed: never Python's `hash()`, so ids are the same
in every process and on every replay):

- `series_key(inp)`: `<rule id>|<primary entity key or "none">`; the primary entity is the first host, else
  user, else cloud account, else IP (`entities.primary_entity`).
- `dedup_key(inp, window_seconds)`: `<series key>|<window start, ISO UTC>`, the window holding the
  detection's event time (floored to `window_seconds`, default 1 h). It is fixed when the alert opens.
  A second alert of one series in one window (the engine opens one when the first was closed and a
  detection it does not cover arrives) gets `|2`, then `|3`; `series_of` strips both parts.
- `alert_id(tenant, key)`: `al-` + 20 hex digits of BLAKE2b over tenant and dedup key.

Spill-over: a repeat is matched to the current alert of its *series*, not to its own window's key. It
updates that alert when its event time is within `window_seconds` of the alert's `last_seen` (or of its
`first_seen`, for late events) and the alert would not span more than `max_span_seconds` (default 24 h).
So a burst from 10:50 to 11:10 is one alert (keyed by the 10:00 window), and a beacon every 30 minutes
makes one alert per day rather than one per hour or one forever. A detection that does not continue the
series opens a new alert under its own window's key; that key cannot collide with the previous alert's
(it is more than one window away from its first_seen). The series lookup lives in the engine's memory:
after a restart, the engine reloads open alerts and finds their series again from their dedup keys.

Event times in the future (a sender's wrong clock) count as `now`.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from watchfloor.core.types import TenantId, severity_of
from watchfloor.triage.entities import attack_of, primary_entity
from watchfloor.triage.models import Alert, AlertStatus, DetectionInput, Entity, RiskScore

__all__ = [
    "DEFAULT_MAX_SPAN_SECONDS",
    "DEFAULT_WINDOW_SECONDS",
    "MAX_DETECTION_IDS",
    "MAX_ENTITIES",
    "MAX_PER_KIND",
    "alert_id",
    "continues",
    "dedup_key",
    "event_moment",
    "open_alert",
    "series_key",
    "series_of",
    "update_alert",
    "window_start",
    "with_status",
]

DEFAULT_WINDOW_SECONDS: Final = 3600
DEFAULT_MAX_SPAN_SECONDS: Final = 86400
MAX_ENTITIES: Final = 32  # an alert keeps the first 32 distinct entities of its detections ...
MAX_PER_KIND: Final = 8  # ... at most 8 of each kind, so per-execution process ids cannot crowd out users
MAX_DETECTION_IDS: Final = 10  # and the ids of its first 10 detections, for drill-down

_RANK: Final = {"low": 0, "medium": 1, "high": 2, "critical": 3}
_window_texts: dict[int, str] = {}
_spans: dict[int, timedelta] = {}


def _span(seconds: int) -> timedelta:
    span = _spans.get(seconds)
    if span is None:
        span = _spans[seconds] = timedelta(seconds=seconds)
    return span


def series_key(inp: DetectionInput) -> str:
    """`<rule id>|<primary entity key>`: the alerts one rule raises about one entity."""
    primary = primary_entity(inp.entities)
    return f"{inp.rule_id}|{primary.key if primary is not None else 'none'}"


def series_of(key: str) -> str:
    """The series part of a dedup key (everything before the window start and its `|<n>` suffix)."""
    head, _, last = key.rpartition("|")
    if last.isdigit():  # `<series>|<window>|<n>`: the n-th alert of the series in that window
        head = head.rpartition("|")[0]
    return head


def event_moment(inp: DetectionInput, now: datetime) -> datetime:
    """The detection's event time, or `now` when the event claims to be from the future."""
    return min(inp.event_time, now)


def window_start(moment: datetime, window_seconds: int = DEFAULT_WINDOW_SECONDS) -> str:
    """ISO UTC text of the start of the `window_seconds` window holding `moment` (epoch-aligned)."""
    start = int(moment.timestamp()) // window_seconds * window_seconds
    text = _window_texts.get(start)
    if text is None:
        if len(_window_texts) > 65536:
            _window_texts.clear()
        text = _window_texts[start] = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return text


def dedup_key(
    inp: DetectionInput, window_seconds: int = DEFAULT_WINDOW_SECONDS, *, now: datetime | None = None
) -> str:
    """`<rule id>|<primary entity key>|<window start>` (see the module docstring)."""
    moment = inp.event_time if now is None else event_moment(inp, now)
    return f"{series_key(inp)}|{window_start(moment, window_seconds)}"


def alert_id(tenant: TenantId, key: str) -> str:
    """A stable id for the tenant's alert with this dedup key: the same in every process and replay."""
    digest = hashlib.blake2b(f"{tenant}\x1f{key}".encode(), digest_size=10).hexdigest()
    return f"al-{digest}"


def continues(
    alert: Alert,
    inp: DetectionInput,
    now: datetime,
    *,
    window_seconds: int = DEFAULT_WINDOW_SECONDS,
    max_span_seconds: int = DEFAULT_MAX_SPAN_SECONDS,
) -> bool:
    """Whether this detection updates `alert` (same series assumed) rather than opening a new one."""
    moment = min(inp.event_time, now)
    window = _span(window_seconds)
    first, last = alert.first_seen, alert.last_seen
    if moment > last + window or moment < first - window:
        return False
    if moment < first:
        first = moment
    elif moment > last:
        last = moment
    return last - first <= _span(max_span_seconds)


def open_alert(
    inp: DetectionInput,
    risk: RiskScore,
    now: datetime,
    *,
    window_seconds: int = DEFAULT_WINDOW_SECONDS,
    nth: int = 1,
) -> Alert:
    """A new open alert from its first detection. `nth` > 1 suffixes the dedup key with `|<nth>`: the
    engine's way to open a second alert of a series in one window (after the first was closed)."""
    moment = event_moment(inp, now)
    key = f"{series_key(inp)}|{window_start(moment, window_seconds)}"
    if nth > 1:
        key = f"{key}|{nth}"
    techniques, tactics = attack_of(inp.tags)
    entities = inp.entities if len(inp.entities) <= MAX_PER_KIND else _entities((), inp.entities)
    return _build(
        alert_id(inp.tenant_id, key),
        inp.tenant_id,
        key,
        inp.rule_id,
        inp.rule_title,
        inp.rule_author,
        severity_of(inp.rule_level),
        moment,
        moment,
        1,
        entities,
        techniques,
        tactics,
        (inp.detection_id,),
        risk,
        "open",
        None,
        None,
    )


def _union(old: tuple[str, ...], new: tuple[str, ...]) -> tuple[str, ...]:
    if old is new or not new:
        return old
    extra = tuple(item for item in new if item not in old)
    return old + extra if extra else old


_EntityIndex = tuple[tuple[Entity, ...], set[tuple[str, str]], dict[str, int]]
_indexes: dict[int, _EntityIndex] = {}


def _entity_index(entities: tuple[Entity, ...]) -> _EntityIndex:
    """The (kind, value) pairs and per-kind counts of an alert's entities, remembered per tuple object:
    repeats that add nothing keep the same tuple, so most updates look it up instead of rebuilding it
    (the tuple is kept in the cache, so its id is not reused while cached)."""
    found = _indexes.get(id(entities))
    if found is not None and found[0] is entities:
        return found
    counts: dict[str, int] = {}
    for entity in entities:
        counts[entity.kind] = counts.get(entity.kind, 0) + 1
    pairs: set[tuple[str, str]] = {(e.kind, e.value) for e in entities}
    built = (entities, pairs, counts)
    if len(_indexes) >= 65536:
        _indexes.clear()
    _indexes[id(entities)] = built
    return built


def _entities(old: tuple[Entity, ...], new: tuple[Entity, ...]) -> tuple[Entity, ...]:
    """`old` plus the entities of `new` it lacks, at most MAX_PER_KIND of a kind and MAX_ENTITIES in all."""
    if old is new or not new or len(old) >= MAX_ENTITIES:
        return old
    _, seen, counts = _entity_index(old)
    added: list[Entity] = []
    extra: dict[str, int] = {}
    for entity in new:
        kind = entity.kind
        count = counts.get(kind, 0) + extra.get(kind, 0)
        if count >= MAX_PER_KIND or (kind, entity.value) in seen:
            continue
        if any(a.kind == kind and a.value == entity.value for a in added):
            continue
        extra[kind] = extra.get(kind, 0) + 1
        added.append(entity)
        if len(old) + len(added) >= MAX_ENTITIES:
            break
    return old + tuple(added) if added else old


_FIELDS: Final = (
    "id",
    "tenant_id",
    "dedup_key",
    "rule_id",
    "rule_title",
    "rule_author",
    "severity",
    "first_seen",
    "last_seen",
    "count",
    "entities",
    "techniques",
    "tactics",
    "detection_ids",
    "risk",
    "status",
    "incident_id",
    "closed_reason",
)
_setters: list[Any] = []


def _build(*values: Any) -> Alert:
    """An Alert from its 18 field values in `_FIELDS` order, set through the slot descriptors.

    The frozen dataclass __init__ sets each field through `object.__setattr__` (about 2.5x slower); this
    is the same object, and it falls back to the constructor if the model's fields ever change
    (tests/triage/test_alerts.py compares both).
    """
    if not _setters:
        names = tuple(f.name for f in fields(Alert))
        if names != _FIELDS:
            return Alert(**dict(zip(_FIELDS, values, strict=True)))
        _setters.extend(Alert.__dict__[name].__set__ for name in names)
    alert: Alert = object.__new__(Alert)
    for setter, value in zip(_setters, values, strict=True):
        setter(alert, value)
    return alert


def with_status(
    alert: Alert, status: AlertStatus, *, incident_id: str | None = None, closed_reason: str | None = None
) -> Alert:
    """The alert with a new status, incident and closing reason (a fast `dataclasses.replace`)."""
    a = alert
    return _build(
        a.id,
        a.tenant_id,
        a.dedup_key,
        a.rule_id,
        a.rule_title,
        a.rule_author,
        a.severity,
        a.first_seen,
        a.last_seen,
        a.count,
        a.entities,
        a.techniques,
        a.tactics,
        a.detection_ids,
        a.risk,
        status,
        incident_id,
        closed_reason,
    )


def update_alert(alert: Alert, inp: DetectionInput, risk: RiskScore, now: datetime) -> Alert:
    """The alert after one more detection: count + 1, first/last seen widened, entities and ATT&CK ids
    unioned (bounded), the first `MAX_DETECTION_IDS` detection ids kept, the higher risk kept. Status,
    incident and closing reason stay as they are."""
    moment = min(inp.event_time, now)
    techniques, tactics = attack_of(inp.tags)
    ids = alert.detection_ids
    if len(ids) < MAX_DETECTION_IDS and inp.detection_id not in ids:
        ids = (*ids, inp.detection_id)
    severity = severity_of(inp.rule_level)
    if severity != alert.severity and _RANK[severity] < _RANK[alert.severity]:
        severity = alert.severity
    return _build(
        alert.id,
        alert.tenant_id,
        alert.dedup_key,
        alert.rule_id,
        alert.rule_title,
        alert.rule_author or inp.rule_author,
        severity,
        min(alert.first_seen, moment),
        max(alert.last_seen, moment),
        alert.count + 1,
        _entities(alert.entities, inp.entities),
        _union(alert.techniques, techniques),
        _union(alert.tactics, tactics),
        ids,
        risk if risk.score > alert.risk.score else alert.risk,
        alert.status,
        alert.incident_id,
        alert.closed_reason,
    )
