"""Grouping: which incident an alert belongs to. Decisions only; `cases` builds and changes incidents.

`decide(alert, index, now)` returns one `GroupingDecision`, with its reason in words for the analyst:

1. **none**: the alert is suppressed or auto-closed, or already on an open incident.
2. **attach** to an open incident that shares a grouping entity (host, user, IP, process, cloud account:
   `GROUPING_KINDS`) and whose last activity is within `window_seconds` (24 h) of the alert's last event.
   Several candidates: prefer ATT&CK progression (the incident has a tactic at or before the alert's
   latest tactic in the enterprise kill chain, `entities.TACTICS`: initial access, then execution, then
   lateral movement is one story), then the most recent activity, then the most shared entities.
3. **reopen** a closed incident, closed at most `reopen_window_seconds` (7 days, as `cases.lifecycle`)
   before `now`, that shares a grouping entity *and* an ATT&CK technique (or neither has techniques): the
   same activity came back. Different activity on the same host after a closure is a new incident.
4. **create** a new incident when the alert's severity is at least `min_severity` (medium) or its risk
   is at least `min_risk_alone` (60). Its id is `inc-<tenant>-<12 hex>` from the first alert's id.
5. otherwise **none**: a low-severity, low-risk alert stays an alert (few incidents is the point); it
   joins an incident when a later detection of it finds one that shares an entity.

Alerts that share no grouping entity never merge. Windows compare event times (alert `last_seen` against
the incident's `last_activity`), so replays and backfills group as live traffic did; closure ages compare
against `now` because closing is an analyst's act.

`IncidentIndex` is one tenant's in-memory view of open and recently closed incidents: ids, grouping entity
keys (at most `max_entity_keys` per incident and `max_keys_per_kind` of a kind, so one noisy incident
cannot absorb a whole tenant and per-execution process ids cannot crowd out hosts and users), ATT&CK
ids, last activity, closure time. It is bounded (`max_refs`): stale entries are pruned, then the least
recently active. `apply` records a decision; `upsert`/`close`/`remove` keep it in step with storage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from watchfloor.core.errors import WatchfloorError
from watchfloor.core.types import Severity, TenantId, severity_rank
from watchfloor.triage.entities import TACTICS
from watchfloor.triage.models import GROUPING_KINDS, Alert, Entity

__all__ = [
    "DEFAULT_GROUPING",
    "GroupingAction",
    "GroupingDecision",
    "GroupingError",
    "GroupingPolicy",
    "IncidentIndex",
    "IncidentRef",
    "decide",
    "grouping_keys",
    "incident_id_for",
]

_STAGE: Final = {name: index for index, name in enumerate(TACTICS)}

GroupingAction = Literal["create", "attach", "reopen", "none"]


class GroupingError(WatchfloorError):
    """A grouping call mixed tenants (an alert or incident offered to another tenant's index)."""

    code = "triage.grouping_invalid"


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupingPolicy:
    window_seconds: int = 86400  # attach when the incident was active within this of the alert
    reopen_window_seconds: int = 7 * 86400  # reopen closed incidents closed at most this long ago
    min_severity: Severity = "medium"  # alerts at or above this open an incident alone
    min_risk_alone: int = 60  # ... and so do lower ones with at least this risk
    max_entity_keys: int = 64  # grouping entity keys an incident collects, at most ...
    max_keys_per_kind: int = 16  # ... and at most this many of one kind (process ids are many)
    max_refs: int = 5000  # incidents one tenant's index holds, at most


DEFAULT_GROUPING: Final = GroupingPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentRef:
    """What grouping needs to know of one incident."""

    id: str
    tenant_id: TenantId
    entity_keys: frozenset[str]  # `Entity.key` of grouping kinds only
    techniques: frozenset[str]
    tactics: frozenset[str]
    last_activity: datetime
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupingDecision:
    action: GroupingAction
    incident_id: str | None
    reason: str  # shown to analysts as is
    shared: tuple[str, ...] = ()  # the entity keys that linked the alert to the incident


_keys_of: dict[int, tuple[tuple[Entity, ...], tuple[str, ...]]] = {}


def grouping_keys(entities: tuple[Entity, ...]) -> tuple[str, ...]:
    """The keys of the entities incidents are grouped by, in the alert's order. Remembered per tuple
    object (an alert's repeats share one entities tuple; the tuple is kept, so its id is not reused)."""
    found = _keys_of.get(id(entities))
    if found is not None and found[0] is entities:
        return found[1]
    keys = tuple(f"{e.kind}:{e.value}" for e in entities if e.kind in GROUPING_KINDS)
    if len(_keys_of) >= 65536:
        _keys_of.clear()
    _keys_of[id(entities)] = (entities, keys)
    return keys


def incident_id_for(alert: Alert) -> str:
    """`inc-<tenant>-<12 hex>`: deterministic from the id of the alert that opens the incident (and, when
    that alert already opened one that has since closed for good, from its latest event time too)."""
    seed = alert.id if alert.incident_id is None else f"{alert.id}@{alert.last_seen.isoformat()}"
    digest = hashlib.blake2b(seed.encode(), digest_size=6).hexdigest()
    return f"inc-{alert.tenant_id}-{digest}"


class _Entry:
    __slots__ = (
        "already",
        "closed_at",
        "id",
        "keys",
        "last_activity",
        "last_entities",
        "tactics",
        "techniques",
    )

    def __init__(self, ref: IncidentRef) -> None:
        self.already: GroupingDecision | None = None  # the "already on this incident" decision, made once
        self.last_entities: tuple[Entity, ...] = ()  # the entities last merged in (skip when unchanged)
        self.id = ref.id
        self.keys: set[str] = set(ref.entity_keys)
        self.techniques: set[str] = set(ref.techniques)
        self.tactics: set[str] = set(ref.tactics)
        self.last_activity = ref.last_activity
        self.closed_at = ref.closed_at


class IncidentIndex:
    """One tenant's open and recently closed incidents, indexed by grouping entity key. Bounded."""

    __slots__ = ("_by_key", "_entries", "_newest", "policy", "tenant_id")

    def __init__(self, tenant_id: TenantId, *, policy: GroupingPolicy = DEFAULT_GROUPING) -> None:
        self.tenant_id = tenant_id
        self.policy = policy
        self._entries: dict[str, _Entry] = {}
        self._by_key: dict[str, set[str]] = {}
        self._newest: datetime | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, incident_id: object) -> bool:
        return incident_id in self._entries

    def __iter__(self) -> Iterator[IncidentRef]:
        return (self._ref(entry) for entry in list(self._entries.values()))

    def get(self, incident_id: str) -> IncidentRef | None:
        entry = self._entries.get(incident_id)
        return None if entry is None else self._ref(entry)

    def _ref(self, entry: _Entry) -> IncidentRef:
        return IncidentRef(
            id=entry.id,
            tenant_id=self.tenant_id,
            entity_keys=frozenset(entry.keys),
            techniques=frozenset(entry.techniques),
            tactics=frozenset(entry.tactics),
            last_activity=entry.last_activity,
            closed_at=entry.closed_at,
        )

    # -- keeping in step with storage ------------------------------------------------------------
    def upsert(self, ref: IncidentRef, now: datetime | None = None) -> None:
        """Add or replace an incident (seeding from storage, after a merge or a closure)."""
        if ref.tenant_id != self.tenant_id:
            msg = f"incident {ref.id} of tenant {ref.tenant_id} offered to the index of {self.tenant_id}"
            raise GroupingError(msg)
        self.remove(ref.id)
        entry = _Entry(ref)
        entry.keys = set()
        self._add_keys(entry, sorted(ref.entity_keys))
        self._entries[ref.id] = entry
        for key in entry.keys:
            self._by_key.setdefault(key, set()).add(ref.id)
        self._saw(entry.last_activity)
        if len(self._entries) > self.policy.max_refs:
            self.prune(now if now is not None else entry.last_activity)

    def remove(self, incident_id: str) -> None:
        entry = self._entries.pop(incident_id, None)
        if entry is None:
            return
        for key in entry.keys:
            ids = self._by_key.get(key)
            if ids is not None:
                ids.discard(incident_id)
                if not ids:
                    del self._by_key[key]

    def close(self, incident_id: str, at: datetime) -> None:
        """Mark an incident closed at `at` (it stays reopenable for the reopen window)."""
        entry = self._entries.get(incident_id)
        if entry is not None:
            entry.closed_at = at

    def prune(self, now: datetime) -> int:
        """Drop incidents no alert can reach any more, then the least recently active above `max_refs`
        (down to 90 %); returns how many were dropped."""
        policy = self.policy
        newest = self._newest or now
        stale_open = newest - timedelta(seconds=policy.window_seconds)
        stale_closed = now - timedelta(seconds=policy.reopen_window_seconds)
        doomed = [
            entry.id
            for entry in self._entries.values()
            if (entry.closed_at is None and entry.last_activity < stale_open)
            or (entry.closed_at is not None and entry.closed_at < stale_closed)
        ]
        keep = policy.max_refs * 9 // 10
        if len(self._entries) - len(doomed) > keep:
            gone = set(doomed)
            alive = sorted(
                (e for e in self._entries.values() if e.id not in gone), key=lambda e: (e.last_activity, e.id)
            )
            doomed.extend(e.id for e in alive[: len(alive) - keep])
        for incident_id in doomed:
            self.remove(incident_id)
        return len(doomed)

    def _saw(self, moment: datetime) -> None:
        if self._newest is None or moment > self._newest:
            self._newest = moment

    # -- recording decisions ---------------------------------------------------------------------
    def apply(self, decision: GroupingDecision, alert: Alert, now: datetime) -> None:
        """Record a decision for `alert`: a new incident, an attachment, a reopening, or (for an alert
        already on an open incident) its latest activity and entities."""
        incident_id = decision.incident_id
        if incident_id is None:
            return
        entry = self._entries.get(incident_id)
        if decision.action == "create" or entry is None:
            if decision.action == "none":
                return  # an incident the index no longer holds (pruned): nothing to refresh
            ref = IncidentRef(
                id=incident_id,
                tenant_id=self.tenant_id,
                entity_keys=frozenset(grouping_keys(alert.entities)),
                techniques=frozenset(alert.techniques),
                tactics=frozenset(alert.tactics),
                last_activity=alert.last_seen,
            )
            self.upsert(ref, now)
            return
        if decision.action == "reopen":
            entry.closed_at = None
        if alert.last_seen > entry.last_activity:
            entry.last_activity = alert.last_seen
            self._saw(alert.last_seen)
        if alert.entities is entry.last_entities:
            return  # a repeat that brought no new entity (techniques and tactics come with entities)
        entry.last_entities = alert.entities
        self._add_keys(entry, grouping_keys(alert.entities))
        entry.techniques.update(alert.techniques)
        entry.tactics.update(alert.tactics)

    def _add_keys(self, entry: _Entry, keys: Iterable[str]) -> None:
        """Index new grouping keys of an incident within its budgets (total and per kind)."""
        policy = self.policy
        room = policy.max_entity_keys - len(entry.keys)
        if room <= 0:
            return
        counts: dict[str, int] | None = None
        for key in keys:
            if key in entry.keys:
                continue
            if counts is None:
                counts = {}
                for known in entry.keys:
                    kind = known.partition(":")[0]
                    counts[kind] = counts.get(kind, 0) + 1
            kind = key.partition(":")[0]
            if counts.get(kind, 0) >= policy.max_keys_per_kind:
                continue
            counts[kind] = counts.get(kind, 0) + 1
            entry.keys.add(key)
            self._by_key.setdefault(key, set()).add(entry.id)
            room -= 1
            if room <= 0:
                return

    # -- lookups for decide ----------------------------------------------------------------------
    def _candidates(self, keys: tuple[str, ...]) -> dict[str, list[str]]:
        """Incident id -> the keys it shares with `keys`."""
        out: dict[str, list[str]] = {}
        by_key = self._by_key
        for key in keys:
            ids = by_key.get(key)
            if ids:
                for incident_id in ids:
                    out.setdefault(incident_id, []).append(key)
        return out


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    if seconds < 129600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} d"


def _shown(keys: list[str]) -> str:
    names = [key.replace(":", " ", 1) for key in keys[:3]]
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return ", ".join(names) + more


def _stage(tactics: tuple[str, ...] | set[str]) -> tuple[int, int] | None:
    stages = [_STAGE[t] for t in tactics if t in _STAGE]
    return (min(stages), max(stages)) if stages else None


def decide(alert: Alert, index: IncidentIndex, now: datetime) -> GroupingDecision:
    """Where the alert goes (see the module docstring); `index.apply` records the decision."""
    if alert.tenant_id != index.tenant_id:
        msg = f"alert {alert.id} of tenant {alert.tenant_id} grouped against the index of {index.tenant_id}"
        raise GroupingError(msg)
    policy = index.policy
    if alert.status in ("suppressed", "auto_closed"):
        return GroupingDecision(action="none", incident_id=None, reason=alert.closed_reason or alert.status)
    if alert.incident_id is not None:
        entry = index._entries.get(alert.incident_id)
        if entry is None or entry.closed_at is None:
            already = entry.already if entry is not None else None
            if already is None:
                why = f"already on incident {alert.incident_id}"
                already = GroupingDecision(action="none", incident_id=alert.incident_id, reason=why)
                if entry is not None:
                    entry.already = already
            return already
    keys = grouping_keys(alert.entities)
    shared_by = index._candidates(keys) if keys else {}
    window = policy.window_seconds
    open_: list[tuple[_Entry, list[str], float]] = []
    closed: list[tuple[_Entry, list[str]]] = []
    for incident_id, shared in shared_by.items():
        entry = index._entries[incident_id]
        if entry.closed_at is None:
            gap = (alert.last_seen - entry.last_activity).total_seconds()
            if abs(gap) <= window:
                open_.append((entry, shared, gap))
        elif (now - entry.closed_at).total_seconds() <= policy.reopen_window_seconds:
            closed.append((entry, shared))
    if open_:
        return _attach(alert, open_)
    if closed:
        decision = _reopen(alert, closed, now)
        if decision is not None:
            return decision
    return _create_or_keep(alert, policy, keys, bool(shared_by))


def _attach(alert: Alert, open_: list[tuple[_Entry, list[str], float]]) -> GroupingDecision:
    stage = _stage(alert.tactics)

    def progresses(entry: _Entry) -> bool:
        if stage is None:
            return False
        before = _stage(entry.tactics)
        return before is not None and before[0] <= stage[1]

    entry, shared, gap = max(open_, key=lambda c: (progresses(c[0]), c[0].last_activity, len(c[1]), c[0].id))
    when = "before" if gap >= 0 else "after"
    reason = (
        f"shares {_shown(shared)} with incident {entry.id}, "
        f"last active {_span(gap)} {when} this alert's latest event"
    )
    if progresses(entry):
        earlier = sorted(entry.tactics, key=lambda t: _STAGE.get(t, 99))
        latest = max(alert.tactics, key=lambda t: _STAGE.get(t, -1))
        reason += f"; ATT&CK progression: {', '.join(earlier)} then {latest}"
    if len(open_) > 1:
        reason += f" (chosen among {len(open_)} open incidents sharing entities)"
    return GroupingDecision(action="attach", incident_id=entry.id, reason=reason, shared=tuple(shared))


def _reopen(alert: Alert, closed: list[tuple[_Entry, list[str]]], now: datetime) -> GroupingDecision | None:
    techniques = set(alert.techniques)
    fitting = [
        (entry, shared)
        for entry, shared in closed
        if (techniques & entry.techniques) or (not techniques and not entry.techniques)
    ]
    if not fitting:
        return None
    entry, shared = max(fitting, key=lambda c: (c[0].closed_at or now, len(c[1]), c[0].id))
    closed_at = entry.closed_at or now
    same = sorted(techniques & entry.techniques)
    what = f"the same technique ({', '.join(same)})" if same else "activity without ATT&CK tags"
    reason = (
        f"shares {_shown(shared)} and {what} with incident {entry.id}, "
        f"closed {_span((now - closed_at).total_seconds())} ago: reopening it"
    )
    return GroupingDecision(action="reopen", incident_id=entry.id, reason=reason, shared=tuple(shared))


def _create_or_keep(
    alert: Alert, policy: GroupingPolicy, keys: tuple[str, ...], had_candidates: bool
) -> GroupingDecision:
    severe = severity_rank(alert.severity) >= severity_rank(policy.min_severity)
    risky = alert.risk.score >= policy.min_risk_alone
    if not keys:
        context = "it has no host, user, IP, process or cloud account to group by"
    elif had_candidates:
        context = "the incidents sharing its entities are outside the grouping or reopen windows"
    else:
        context = "no open or recently closed incident shares its entities"
    if severe or risky:
        why = (
            f"severity {alert.severity}" if severe else f"risk {alert.risk.score} >= {policy.min_risk_alone}"
        )
        reason = f"new incident: {context}; {why}"
        return GroupingDecision(action="create", incident_id=incident_id_for(alert), reason=reason)
    reason = (
        f"kept as an alert: {context}, and severity {alert.severity} with risk {alert.risk.score} "
        f"< {policy.min_risk_alone} does not open an incident alone"
    )
    return GroupingDecision(action="none", incident_id=None, reason=reason)
