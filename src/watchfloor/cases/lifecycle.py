"""The incident lifecycle: an ordered policy of transition rules, and the pure operations on incidents.

Every state change is a `TransitionRequest` run through `IncidentPolicy.apply`. Each rule names the
`FROM_STATES` and `TO_STATES` it cares about (as in Prefect's `orchestration/core_policy.py`); matching rules
run in order and the first that does not `Accept` decides (`Reject(reason)` or `Delay(reason, until)`). When
all accept, every matching rule's `after(request, incident)` shapes the new incident (milestones, pauses,
closure fields), and exactly one `state_changed` timeline entry records it. Nothing here reads a clock,
touches storage or mutates anything: inputs are frozen, outputs are new records plus timeline entries.

Transitions (`TRANSITIONS`; anything else is rejected):

| from              | to                                                                      |
|-------------------|-------------------------------------------------------------------------|
| new               | acknowledged, contained, closed_false_positive                          |
| acknowledged      | investigating, awaiting_customer, contained, closed_false_positive      |
| investigating     | awaiting_customer, contained, resolved, closed_false_positive           |
| awaiting_customer | acknowledged, investigating, contained, closed_false_positive           |
| contained         | awaiting_customer, investigating, resolved                              |
| resolved          | investigating, closed_true_positive                                     |
| closed_*          | investigating (reopen, within `reopen_window_seconds` of `closed_at`)   |

The core rules (`CORE_RULES`, in order; the first eight decide, the last four shape the result):

| #  | rule                            | from -> to            | does                                       |
|----|---------------------------------|-----------------------|--------------------------------------------|
| 1  | `AuthorizeTransition`           | any -> any            | reject unless `authorize(.., action_for)`  |
| 2  | `EnforceTransitionGraph`        | any -> any            | reject same-state or unlisted moves        |
| 3  | `MergedIncidentsStayPut`        | any -> any            | reject on a merged incident                |
| 4  | `ReopenWithinWindow`            | closed_* -> any       | reject after the window: new incident      |
| 5  | `RequireClosureReason`          | any -> closed_*       | reject without a closure reason            |
| 6  | `ReviewCriticalFalsePositives`  | any -> closed_fp      | reject T1/partner closing a critical one   |
| 7  | `NotifyCustomerBeforeResolving` | any -> resolved       | reject high/critical until notified        |
| 8  | `WatchBeforeClosing`            | resolved -> closed_tp | delay high/critical: resolved_at + watch   |
| 9  | `SetMilestones`                 | any -> any            | milestones, set the first time only        |
| 10 | `TrackCustomerPauses`           | awaiting_customer     | open a pause on entry, close it on exit    |
| 11 | `RecordClosure`                 | closed_* <-> any      | closure reason on close, cleared on reopen |
| 12 | `TakeOwnershipOnAcknowledge`    | new -> acknowledged   | unassigned: assign to the acknowledger     |

Milestones are first-time values and never move: the first state change by a person sets
`acknowledged_at/by` (normally leaving `new`; closing a false positive straight from `new` counts as the
acknowledgement; a playbook containing a `new` incident does not, so the acknowledge clock keeps running
until an analyst acts); the first triage decision by a person (entering any state past `acknowledged`, or
an escalation) sets `triaged_at`; `contained_at`, `resolved_at`, `closed_at` are set
when first reached and kept across a reopen (so the reopen window counts from the *first* closure).
`WatchBeforeClosing` is the delay: a resolved high/critical incident stays open (new alerts attach to it) for
`close_watch_seconds` before it may close as a true positive; `Delay.until` is when the same request passes.

A merged incident keeps its state and gets `merged_into`; it takes no more transitions or alerts, and queues
and SLA clocks must skip it. Operations other than transitions raise `CaseError`/`PermissionDeniedError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Final, NoReturn

from watchfloor.cases.models import SYSTEM, Actor, Evidence, Incident, Note, TimelineEntry, TimelineKind
from watchfloor.cases.permissions import Action, CaseError, PermissionDeniedError, authorize, grantee_of
from watchfloor.core.errors import Location
from watchfloor.core.types import (
    ANALYST_TIERS,
    CLOSED_STATES,
    INCIDENT_STATES,
    AnalystTier,
    IncidentState,
    Severity,
    severity_rank,
)
from watchfloor.triage.models import Alert, Entity

ALL_STATES: frozenset[IncidentState] = frozenset(INCIDENT_STATES)

TRANSITIONS: Mapping[IncidentState, frozenset[IncidentState]] = MappingProxyType(
    {
        # containment straight from new/acknowledged: a playbook (or the analyst) stops an attack at 3 a.m.
        # before anyone has investigated; time to contain must count it
        "new": frozenset({"acknowledged", "contained", "closed_false_positive"}),
        "acknowledged": frozenset(
            {"investigating", "awaiting_customer", "contained", "closed_false_positive"}
        ),
        "investigating": frozenset({"awaiting_customer", "contained", "resolved", "closed_false_positive"}),
        "awaiting_customer": frozenset(
            {"acknowledged", "investigating", "contained", "closed_false_positive"}
        ),
        "contained": frozenset({"awaiting_customer", "investigating", "resolved"}),
        "resolved": frozenset({"investigating", "closed_true_positive"}),
        "closed_true_positive": frozenset({"investigating"}),
        "closed_false_positive": frozenset({"investigating"}),
    }
)

_ACTION_BY_TARGET: Mapping[IncidentState, Action] = MappingProxyType(
    {
        "new": "triage",  # never a valid target; the graph rule rejects it
        "acknowledged": "acknowledge",
        "investigating": "investigate",
        "awaiting_customer": "request_customer",
        "contained": "contain",
        "resolved": "resolve",
        "closed_true_positive": "close",
        "closed_false_positive": "close",
    }
)


def action_for(from_state: IncidentState, to_state: IncidentState) -> Action:
    """The permission a transition needs: `reopen` out of a closed state, else by the target state."""
    return "reopen" if from_state in CLOSED_STATES else _ACTION_BY_TARGET[to_state]


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleConfig:
    """The policy's knobs (per deployment; a tenant override is a second `IncidentPolicy.core(config)`)."""

    reopen_window_seconds: int = 7 * 24 * 3600
    close_watch_seconds: int = 24 * 3600
    watch_severities: frozenset[Severity] = frozenset({"high", "critical"})
    notify_before_resolve_severities: frozenset[Severity] = frozenset({"high", "critical"})
    fp_review_severities: frozenset[Severity] = frozenset({"critical"})


def _require_utc(now: datetime, incident: Incident) -> None:
    if now.tzinfo is None or now.utcoffset() != timedelta(0):
        raise CaseError(
            f"time {now.isoformat()} must be timezone-aware UTC",
            location=_where(incident),
            code="cases.naive_time",
        )


def _where(incident: Incident) -> Location:
    return Location(tenant=incident.tenant_id, path=f"incident/{incident.id}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionRequest:
    incident: Incident
    to_state: IncidentState
    actor: Actor
    now: datetime
    reason: str = ""  # the analyst's words, kept in the timeline
    closure_reason: str | None = None  # required to enter a closed state

    def __post_init__(self) -> None:
        _require_utc(self.now, self.incident)

    @property
    def from_state(self) -> IncidentState:
        return self.incident.state


@dataclass(frozen=True, slots=True)
class Accept:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Delay:
    reason: str
    until: datetime  # the earliest time the same request passes the rule that delayed it


Verdict = Accept | Reject | Delay
ACCEPT = Accept()


class TransitionRule:
    """Base rule. To add one, copy `ReviewCriticalFalsePositives` (verdict) or `RecordClosure` (effect)."""

    FROM_STATES: ClassVar[frozenset[IncidentState]] = ALL_STATES
    TO_STATES: ClassVar[frozenset[IncidentState]] = ALL_STATES

    def __init__(self, config: LifecycleConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return type(self).__name__

    def applies(self, request: TransitionRequest) -> bool:
        return request.from_state in self.FROM_STATES and request.to_state in self.TO_STATES

    def evaluate(self, request: TransitionRequest) -> Verdict:  # noqa: ARG002 - the default accepts
        return ACCEPT

    def after(self, request: TransitionRequest, incident: Incident) -> Incident:  # noqa: ARG002
        """Shape the new incident once every rule accepted (`incident` already has the new state)."""
        return incident


class AuthorizeTransition(TransitionRule):
    """Tenant scope and the permission table, for the action the transition needs (`action_for`)."""

    def evaluate(self, request: TransitionRequest) -> Verdict:
        incident = request.incident
        action = action_for(request.from_state, request.to_state)
        try:
            authorize(request.actor, action, incident.tenant_id, incident_id=incident.id)
        except PermissionDeniedError as exc:
            return Reject(reason=exc.message)
        return ACCEPT


class EnforceTransitionGraph(TransitionRule):
    """Only the edges in `TRANSITIONS`; moving to the current state is refused too."""

    def evaluate(self, request: TransitionRequest) -> Verdict:
        current, target = request.from_state, request.to_state
        if current == target:
            return Reject(reason=f"the incident is already {current}")
        if target not in TRANSITIONS[current]:
            options = ", ".join(sorted(TRANSITIONS[current]))
            return Reject(reason=f"no transition from {current} to {target}; from {current}: {options}")
        return ACCEPT


class MergedIncidentsStayPut(TransitionRule):
    """A merged incident is history: its target takes the work."""

    def evaluate(self, request: TransitionRequest) -> Verdict:
        target = request.incident.merged_into
        if target is not None:
            return Reject(reason=f"the incident was merged into {target}; work that one")
        return ACCEPT


class ReopenWithinWindow(TransitionRule):
    """Reopen only within `reopen_window_seconds` of the first closure; later, open a new incident."""

    FROM_STATES = CLOSED_STATES

    def evaluate(self, request: TransitionRequest) -> Verdict:
        closed_at = request.incident.closed_at
        window = timedelta(seconds=self.config.reopen_window_seconds)
        if closed_at is not None and request.now > closed_at + window:
            seconds = self.config.reopen_window_seconds
            return Reject(
                reason=f"closed at {closed_at.isoformat()}, beyond the {seconds} s reopen window: "
                "open a new incident and link it"
            )
        return ACCEPT


class RequireClosureReason(TransitionRule):
    """Every closure says why (it goes into the customer report)."""

    TO_STATES = CLOSED_STATES

    def evaluate(self, request: TransitionRequest) -> Verdict:
        if not (request.closure_reason or "").strip():
            return Reject(reason=f"closing as {request.to_state} needs a closure reason")
        return ACCEPT


class ReviewCriticalFalsePositives(TransitionRule):
    """A T1 (in-house or partner) may not dismiss a critical incident alone: escalate to T2+."""

    TO_STATES: ClassVar[frozenset[IncidentState]] = frozenset({"closed_false_positive"})

    def evaluate(self, request: TransitionRequest) -> Verdict:
        severity = request.incident.severity
        tier1 = grantee_of(request.actor) in ("analyst_t1", "partner_analyst")
        if tier1 and severity in self.config.fp_review_severities:
            return Reject(
                reason=f"a {severity} incident closed as false positive needs T2+ review: escalate it"
            )
        return ACCEPT


class NotifyCustomerBeforeResolving(TransitionRule):
    """High and critical incidents are resolved only after the customer was told."""

    TO_STATES: ClassVar[frozenset[IncidentState]] = frozenset({"resolved"})

    def evaluate(self, request: TransitionRequest) -> Verdict:
        incident = request.incident
        if incident.notified_at is None and incident.severity in self.config.notify_before_resolve_severities:
            return Reject(
                reason=f"a {incident.severity} incident is resolved only after the customer was notified: "
                "notify the customer first"
            )
        return ACCEPT


class WatchBeforeClosing(TransitionRule):
    """A resolved high/critical incident is watched (alerts still attach) before it closes."""

    FROM_STATES: ClassVar[frozenset[IncidentState]] = frozenset({"resolved"})
    TO_STATES: ClassVar[frozenset[IncidentState]] = frozenset({"closed_true_positive"})

    def evaluate(self, request: TransitionRequest) -> Verdict:
        incident = request.incident
        if incident.resolved_at is None or incident.severity not in self.config.watch_severities:
            return ACCEPT
        until = incident.resolved_at + timedelta(seconds=self.config.close_watch_seconds)
        if request.now < until:
            return Delay(
                reason=f"a resolved {incident.severity} incident is watched for "
                f"{self.config.close_watch_seconds} s before it closes",
                until=until,
            )
        return ACCEPT


class SetMilestones(TransitionRule):
    """SLA milestones, each set the first time it is reached and never moved."""

    def after(self, request: TransitionRequest, incident: Incident) -> Incident:
        now, to_state = request.now, request.to_state
        changes: dict[str, Any] = {}
        # the first state change by a person acknowledges (the acknowledge SLA measures people: automation
        # containing a new incident does not stop that clock; the analyst's next move does)
        automated = request.actor.role == "system"
        if incident.acknowledged_at is None and not automated:
            changes.update(acknowledged_at=now, acknowledged_by=request.actor.id)
        if to_state not in ("new", "acknowledged") and incident.triaged_at is None and not automated:
            changes["triaged_at"] = now
        if to_state == "contained" and incident.contained_at is None:
            changes["contained_at"] = now
        if to_state == "resolved" and incident.resolved_at is None:
            changes["resolved_at"] = now
        if to_state in CLOSED_STATES and incident.closed_at is None:
            changes["closed_at"] = now
        return replace(incident, **changes) if changes else incident


class TrackCustomerPauses(TransitionRule):
    """Entering awaiting_customer opens a pause (SLA clocks stop); leaving closes it."""

    def applies(self, request: TransitionRequest) -> bool:
        return "awaiting_customer" in (request.from_state, request.to_state)

    def after(self, request: TransitionRequest, incident: Incident) -> Incident:
        pauses = list(incident.pauses)
        if request.from_state == "awaiting_customer" and pauses and pauses[-1][1] is None:
            start = pauses[-1][0]
            pauses[-1] = (start, max(start, request.now))
        if request.to_state == "awaiting_customer":
            last_end = pauses[-1][1] if pauses else None
            start = request.now if last_end is None else max(last_end, request.now)
            pauses.append((start, None))
        return replace(incident, pauses=tuple(pauses))


class RecordClosure(TransitionRule):
    """The closure reason is set on closing and cleared on reopening (the timeline keeps the old one)."""

    def applies(self, request: TransitionRequest) -> bool:
        return request.to_state in CLOSED_STATES or request.from_state in CLOSED_STATES

    def after(self, request: TransitionRequest, incident: Incident) -> Incident:
        if request.to_state in CLOSED_STATES:
            return replace(incident, closure_reason=(request.closure_reason or "").strip())
        return replace(incident, closure_reason=None)


class TakeOwnershipOnAcknowledge(TransitionRule):
    """Acknowledging an unassigned incident assigns it to the acknowledger."""

    FROM_STATES: ClassVar[frozenset[IncidentState]] = frozenset({"new"})
    TO_STATES: ClassVar[frozenset[IncidentState]] = frozenset({"acknowledged"})

    def after(self, request: TransitionRequest, incident: Incident) -> Incident:
        return incident if incident.assignee else replace(incident, assignee=request.actor.id)


CORE_RULES: tuple[type[TransitionRule], ...] = (
    AuthorizeTransition,
    EnforceTransitionGraph,
    MergedIncidentsStayPut,
    ReopenWithinWindow,
    RequireClosureReason,
    ReviewCriticalFalsePositives,
    NotifyCustomerBeforeResolving,
    WatchBeforeClosing,
    SetMilestones,
    TrackCustomerPauses,
    RecordClosure,
    TakeOwnershipOnAcknowledge,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionOutcome:
    incident: Incident  # the new incident when accepted, else the request's incident unchanged
    verdict: Verdict
    entries: tuple[TimelineEntry, ...]
    rule: str | None = None  # the rule that rejected or delayed

    @property
    def accepted(self) -> bool:
        return isinstance(self.verdict, Accept)


def _entry(
    incident: Incident, now: datetime, actor: Actor, kind: TimelineKind, summary: str, /, **details: Any
) -> TimelineEntry:
    return TimelineEntry(
        incident_id=incident.id,
        tenant_id=incident.tenant_id,
        at=now,
        actor=actor.id,
        kind=kind,
        summary=summary,
        details=details,
    )


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    """Ordered transition rules; `IncidentPolicy.core()` is the default Watchfloor policy."""

    rules: tuple[TransitionRule, ...]

    @classmethod
    def core(cls, config: LifecycleConfig | None = None) -> IncidentPolicy:
        config = config or LifecycleConfig()
        return cls(tuple(rule(config) for rule in CORE_RULES))

    def apply(self, request: TransitionRequest) -> TransitionOutcome:
        """Run the matching rules in order; the first Reject or Delay wins, else every `after` applies."""
        incident, actor, now = request.incident, request.actor, request.now
        move: dict[str, Any] = {"from_state": request.from_state, "to_state": request.to_state}
        said = f"{actor.id}: {request.from_state} -> {request.to_state}"
        matching = [rule for rule in self.rules if rule.applies(request)]
        for rule in matching:
            verdict = rule.evaluate(request)
            if isinstance(verdict, Accept):
                continue
            details: dict[str, Any] = {**move, "rule": rule.name, "reason": verdict.reason}
            kind: TimelineKind = "transition_rejected"
            summary = f"{said} rejected: {verdict.reason}"
            if isinstance(verdict, Delay):
                kind, details["until"] = "transition_delayed", verdict.until.isoformat()
                summary = f"{said} delayed until {details['until']}: {verdict.reason}"
            entry = _entry(incident, now, actor, kind, summary, **details)
            return TransitionOutcome(incident=incident, verdict=verdict, entries=(entry,), rule=rule.name)
        changed = replace(incident, state=request.to_state, updated_at=max(now, incident.updated_at))
        for rule in matching:
            changed = rule.after(request, changed)
        words = f": {request.reason}" if request.reason else ""
        move.update(reason=request.reason, closure_reason=changed.closure_reason)
        entries = [_entry(changed, now, actor, "state_changed", said + words, **move)]
        if request.from_state in CLOSED_STATES:
            reopened = f"{actor.id} reopened the incident{words}"
            entries.append(_entry(changed, now, actor, "reopened", reopened))
        return TransitionOutcome(incident=changed, verdict=ACCEPT, entries=tuple(entries))


DEFAULT_POLICY = IncidentPolicy.core()


def transition(
    incident: Incident,
    to_state: IncidentState,
    by: Actor,
    now: datetime,
    *,
    reason: str = "",
    closure_reason: str | None = None,
    policy: IncidentPolicy = DEFAULT_POLICY,
) -> TransitionOutcome:
    """Ask `policy` to move `incident` to `to_state` on behalf of `by`."""
    request = TransitionRequest(
        incident=incident, to_state=to_state, actor=by, now=now, reason=reason, closure_reason=closure_reason
    )
    return policy.apply(request)


def acknowledge(
    incident: Incident, by: Actor, now: datetime, *, reason: str = "", policy: IncidentPolicy = DEFAULT_POLICY
) -> TransitionOutcome:
    """new -> acknowledged (sets `acknowledged_at/by`, and the assignee when there is none)."""
    return transition(incident, "acknowledged", by, now, reason=reason, policy=policy)


# -- operations that are not state changes (they raise CaseError / PermissionDeniedError) ------------------
Update = tuple[Incident, tuple[TimelineEntry, ...]]


def _fail(incident: Incident, code: str, message: str) -> NoReturn:
    raise CaseError(message, location=_where(incident), code=f"cases.{code}")


def _check(incident: Incident, by: Actor, action: Action, now: datetime, *, merged_ok: bool = False) -> None:
    _require_utc(now, incident)
    authorize(by, action, incident.tenant_id, incident_id=incident.id)
    if not merged_ok and incident.merged_into is not None:
        _fail(incident, "incident_merged", f"incident {incident.id} was merged into {incident.merged_into}")


def _touch(incident: Incident, now: datetime, **changes: Any) -> Incident:
    return replace(incident, updated_at=max(now, incident.updated_at), **changes)


def assign(incident: Incident, analyst_id: str | None, by: Actor, now: datetime) -> Update:
    """Set (or clear, with None) the assignee. Taking or dropping it yourself needs `triage`, else `assign`.

    A no-op (same assignee) returns no timeline entry.
    """
    self_service = analyst_id == by.id or (analyst_id is None and incident.assignee == by.id)
    _check(incident, by, "triage" if self_service else "assign", now)
    if incident.assignee == analyst_id:
        return incident, ()
    summary = f"{by.id} assigned the incident to {analyst_id}" if analyst_id else f"{by.id} unassigned it"
    entry = _entry(incident, now, by, "assigned", summary, previous=incident.assignee, assignee=analyst_id)
    return _touch(incident, now, assignee=analyst_id), (entry,)


def escalate(incident: Incident, to_tier: AnalystTier, by: Actor, now: datetime, reason: str) -> Update:
    """Raise `queue_tier` to `to_tier`: back to that tier's queue (assignee cleared); counts as triaged
    when a person escalates (not when the SLA engine does)."""
    _check(incident, by, "escalate", now)
    current = incident.queue_tier
    if incident.state in CLOSED_STATES:
        _fail(incident, "escalation_invalid", f"incident {incident.id} is {incident.state}; reopen it first")
    if ANALYST_TIERS.index(to_tier) <= ANALYST_TIERS.index(current):
        _fail(incident, "escalation_invalid", f"incident {incident.id} is at {current}; raise the tier")
    if not reason.strip():
        _fail(incident, "escalation_invalid", f"escalating incident {incident.id} needs a reason")
    summary = f"{by.id} escalated {current} -> {to_tier}: {reason}"
    details = {"from_tier": current, "to_tier": to_tier, "reason": reason, "assignee": incident.assignee}
    entry = _entry(incident, now, by, "escalated", summary, **details)
    # a person escalating has triaged the incident; the SLA engine escalating a breach has not
    triaged = incident.triaged_at or (None if by.role == "system" else now)
    changed = _touch(incident, now, queue_tier=to_tier, assignee=None, triaged_at=triaged)
    return changed, (entry,)


def record_customer_notification(incident: Incident, by: Actor, now: datetime, channel: str) -> Update:
    """Record that the customer was told (phone, email, portal); `notified_at` is set the first time only."""
    _check(incident, by, "request_customer", now)
    summary = f"{by.id} notified the customer by {channel}"
    entry = _entry(
        incident, now, by, "customer_notified", summary, channel=channel, first=incident.notified_at is None
    )
    return _touch(incident, now, notified_at=incident.notified_at or now), (entry,)


def add_note(
    incident: Incident, author: Actor, text: str, now: datetime, *, visible_to_customer: bool = False
) -> tuple[Note, TimelineEntry]:
    """A note (customers' notes are always visible to the customer). The incident itself is unchanged."""
    _check(incident, author, "annotate", now, merged_ok=True)
    if not text.strip():
        _fail(incident, "empty_note", "a note needs text")
    visible = visible_to_customer or author.role in ("customer_admin", "customer_viewer")
    note = Note(
        incident_id=incident.id,
        tenant_id=incident.tenant_id,
        at=now,
        author=author.id,
        text=text,
        visible_to_customer=visible,
    )
    summary = f"{author.id} noted: {text.strip().splitlines()[0][:120]}"
    return note, _entry(incident, now, author, "note", summary, visible_to_customer=visible)


def add_evidence(
    incident: Incident, author: Actor, now: datetime, *, kind: str, reference: str, description: str
) -> tuple[Evidence, TimelineEntry]:
    """A pointer to supporting evidence (event key, detection id, sha256). The incident is unchanged."""
    _check(incident, author, "annotate", now, merged_ok=True)
    if not reference.strip():
        _fail(incident, "empty_evidence", "evidence needs a reference")
    evidence = Evidence(
        incident_id=incident.id,
        tenant_id=incident.tenant_id,
        at=now,
        author=author.id,
        kind=kind,
        reference=reference,
        description=description,
    )
    summary = f"{author.id} added {kind} evidence {reference}"
    return evidence, _entry(incident, now, author, "evidence", summary, kind=kind, reference=reference)


def _union(first: Iterable[Any], *more: Iterable[Any]) -> tuple[Any, ...]:
    base = tuple(first)
    extra = [x for items in more for x in items]
    if not extra:
        return base
    if len(base) > 8:  # the common case of a repeat: nothing new, no rebuild
        seen = set(base)
        if all(x in seen for x in extra):
            return base
    return tuple(dict.fromkeys([*base, *extra]))


MAX_INCIDENT_ENTITIES: Final = 128  # an incident keeps the first 128 distinct entities of its alerts ...
MAX_INCIDENT_ENTITIES_PER_KIND: Final = 32  # ... at most 32 of a kind (per-execution process ids pile up)


_EntityIndex = tuple[tuple[Entity, ...], frozenset[Entity], dict[str, int]]
_entity_indexes: dict[int, _EntityIndex] = {}


def _entity_index(entities: tuple[Entity, ...]) -> tuple[frozenset[Entity], dict[str, int]]:
    """The set and per-kind counts of an incident's entities, remembered per tuple object (a repeat that
    adds nothing keeps the same tuple; the cache holds the tuple, so its id is not reused meanwhile)."""
    found = _entity_indexes.get(id(entities))
    if found is not None and found[0] is entities:
        return found[1], found[2]
    counts: dict[str, int] = {}
    for entity in entities:
        counts[entity.kind] = counts.get(entity.kind, 0) + 1
    if len(_entity_indexes) >= 16384:
        _entity_indexes.clear()
    built = _entity_indexes[id(entities)] = (entities, frozenset(entities), counts)
    return built[1], built[2]


def bounded_entities(old: tuple[Entity, ...], new: tuple[Entity, ...]) -> tuple[Entity, ...]:
    """`old` plus the entities of `new` it lacks, within the per-kind and total bounds (`old` itself,
    the same object, when nothing is added)."""
    if not new or len(old) >= MAX_INCIDENT_ENTITIES:
        return old
    known, known_counts = _entity_index(old)
    if all(e in known or known_counts.get(e.kind, 0) >= MAX_INCIDENT_ENTITIES_PER_KIND for e in new):
        return old
    seen, counts = set(known), dict(known_counts)
    added: list[Entity] = []
    for entity in new:
        if entity in seen or counts.get(entity.kind, 0) >= MAX_INCIDENT_ENTITIES_PER_KIND:
            continue
        seen.add(entity)
        counts[entity.kind] = counts.get(entity.kind, 0) + 1
        added.append(entity)
        if len(old) + len(added) >= MAX_INCIDENT_ENTITIES:
            break
    return old + tuple(added) if added else old


def _absorb(incident: Incident, other: Incident | Alert) -> Incident:
    """`incident` plus `other`'s alerts, entities, techniques, tactics; severity and risk raised to max."""
    alert_ids = other.alert_ids if isinstance(other, Incident) else (other.id,)
    first_event = other.first_event_at if isinstance(other, Incident) else other.first_seen
    return replace(
        incident,
        alert_ids=_union(incident.alert_ids, alert_ids),
        entities=bounded_entities(incident.entities, other.entities),
        techniques=_union(incident.techniques, other.techniques),
        tactics=_union(incident.tactics, other.tactics),
        severity=max(incident.severity, other.severity, key=severity_rank),
        risk=other.risk if other.risk.score > incident.risk.score else incident.risk,
        first_event_at=min(incident.first_event_at, first_event),
    )


def _same_substance(a: Incident, b: Incident) -> bool:
    """Same entities, ATT&CK, severity and first event: what an analyst reads in a timeline entry."""
    return (
        a.entities == b.entities
        and a.techniques == b.techniques
        and a.tactics == b.tactics
        and a.severity == b.severity
        and a.first_event_at == b.first_event_at
    )


def _same_tenant(incident: Incident, other_tenant: str, what: str) -> None:
    if other_tenant != incident.tenant_id:
        message = f"{what} belongs to tenant {other_tenant}, incident {incident.id} to {incident.tenant_id}"
        _fail(incident, "tenant_mismatch", message)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachResult:
    incident: Incident
    alert: Alert  # pointing at the incident when attached, else unchanged
    entries: tuple[TimelineEntry, ...]
    attached: bool
    reopened: bool = False
    reason: str | None = None  # why it was not attached: the caller opens a new incident (and links it)


def attach_alert(
    incident: Incident, alert: Alert, now: datetime, *, policy: IncidentPolicy = DEFAULT_POLICY
) -> AttachResult:
    """Attach a new or updated alert; a closed incident is reopened by SYSTEM through `policy` if it may be.

    Idempotent: the same alert again changes nothing and records nothing. A repeat of an attached alert
    that only moves its count or risk updates the incident without a timeline entry (a noisy rule would
    otherwise bury the analyst's timeline); new entities, ATT&CK ids or a higher severity get one.
    """
    _require_utc(now, incident)
    _same_tenant(incident, alert.tenant_id, f"alert {alert.id}")
    if incident.merged_into is not None:
        reason = f"incident {incident.id} was merged into {incident.merged_into}; attach to that one"
        return AttachResult(incident=incident, alert=alert, entries=(), attached=False, reason=reason)
    reopening: tuple[TimelineEntry, ...] = ()
    current = incident
    if incident.state in CLOSED_STATES:
        why = f"new alert {alert.id}: {alert.rule_title}"
        outcome = transition(incident, "investigating", SYSTEM, now, policy=policy, reason=why)
        if isinstance(outcome.verdict, Reject | Delay):
            refused, reason = outcome.entries, outcome.verdict.reason
            return AttachResult(
                incident=incident, alert=alert, entries=refused, attached=False, reason=reason
            )
        current, reopening = outcome.incident, outcome.entries
    absorbed = _absorb(current, alert)
    pointed = replace(alert, incident_id=incident.id, status="incident")
    new = alert.id not in incident.alert_ids
    entries = reopening
    if absorbed == current:
        pass
    elif not new and _same_substance(absorbed, current):  # a repeat: counts and risk move, no entry
        absorbed = _touch(absorbed, now)
    else:
        summary = f"alert {alert.id} ({alert.rule_title}) {'attached' if new else 'updated'}"
        details = {"alert_id": alert.id, "rule_id": alert.rule_id, "severity": alert.severity, "new": new}
        attached = _entry(absorbed, now, SYSTEM, "alert_attached", summary, **details)
        absorbed, entries = _touch(absorbed, now), (attached, *reopening)
    return AttachResult(
        incident=absorbed, alert=pointed, entries=entries, attached=True, reopened=bool(reopening)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeResult:
    target: Incident
    sources: tuple[Incident, ...]  # same state as before, `merged_into` set: out of queues and SLA clocks
    entries: tuple[TimelineEntry, ...]  # one `merged` entry on the target and one on each source


def merge(target: Incident, sources: Sequence[Incident], by: Actor, now: datetime) -> MergeResult:
    """Fold `sources` into the open `target` (same tenant). The caller repoints the sources' alerts."""
    _check(target, by, "merge", now)
    ids = [s.id for s in sources]
    if target.state in CLOSED_STATES:
        _fail(target, "merge_invalid", f"incident {target.id} is {target.state}; merge into an open one")
    if not sources or target.id in ids or len(set(ids)) != len(ids):
        _fail(target, "merge_invalid", f"merge into {target.id} needs distinct other incidents, got {ids}")
    merged, entries, out = target, [], []
    for source in sources:
        _same_tenant(target, source.tenant_id, f"incident {source.id}")
        _check(source, by, "merge", now)
        merged = replace(_absorb(merged, source), linked=_union(merged.linked, source.linked))
        out.append(_touch(source, now, merged_into=target.id))
        summary = f"{by.id} merged this incident into {target.id}"
        entries.append(_entry(source, now, by, "merged", summary, target=target.id))
    merged = _touch(merged, now, linked=tuple(i for i in merged.linked if i not in {target.id, *ids}))
    summary = f"{by.id} merged {', '.join(ids)} into this incident"
    entries.insert(0, _entry(merged, now, by, "merged", summary, sources=ids))
    return MergeResult(target=merged, sources=tuple(out), entries=tuple(entries))


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitResult:
    remaining: Incident
    new: Incident
    alerts: tuple[Alert, ...]  # the moved alerts (when given), pointing at the new incident
    entries: tuple[TimelineEntry, ...]  # one `split` entry on each


def split(
    incident: Incident,
    alert_ids: Sequence[str],
    new_id: str,
    by: Actor,
    now: datetime,
    *,
    alerts: Sequence[Alert] = (),
    title: str | None = None,
) -> SplitResult:
    """Move `alert_ids` to a new incident `new_id`, linked both ways.

    The new incident keeps the history of work already done on those alerts (created_at, first_event_at,
    acknowledged/triaged/notified milestones, tier, assignee) and starts `acknowledged` if the original was
    acknowledged, else `new`. With `alerts` (exactly the moved ones) its entities, techniques, tactics,
    severity and risk come from them; without, they are copied. The original keeps its own.
    """
    _check(incident, by, "split", now)
    moving = tuple(a for a in incident.alert_ids if a in set(alert_ids))
    by_id = {a.id: a for a in alerts}
    if incident.state in CLOSED_STATES:
        _fail(incident, "split_invalid", f"incident {incident.id} is {incident.state}; reopen it first")
    if not moving or len(moving) != len(set(alert_ids)) or len(moving) == len(incident.alert_ids):
        message = f"split needs some, not all, alerts of incident {incident.id}; got {list(alert_ids)}"
        _fail(incident, "split_invalid", message)
    if new_id == incident.id or (alerts and set(by_id) != set(moving)):
        _fail(incident, "split_invalid", f"split into {new_id}: new id, and alerts must be the moved ones")
    new = replace(
        incident,
        id=new_id,
        title=title or f"{incident.title} (split)",
        updated_at=now,
        alert_ids=moving,
        state="acknowledged" if incident.acknowledged_at is not None else "new",
        contained_at=None,
        resolved_at=None,
        closed_at=None,
        pauses=(),
        merged_into=None,
        linked=(incident.id,),
        closure_reason=None,
    )
    moved = tuple(replace(by_id[a], incident_id=new_id, status="incident") for a in moving if a in by_id)
    if moved:
        new = replace(
            new,
            alert_ids=(),
            entities=(),
            techniques=(),
            tactics=(),
            severity="low",
            risk=moved[0].risk,
            first_event_at=moved[0].first_seen,
        )
        for alert in moved:
            new = _absorb(new, alert)
    remaining = _touch(
        incident,
        now,
        alert_ids=tuple(a for a in incident.alert_ids if a not in moving),
        linked=_union(incident.linked, (new_id,)),
    )
    off, into = f"{by.id} split this incident off {incident.id}", f"{by.id} split alerts off into {new_id}"
    entries = (
        _entry(remaining, now, by, "split", into, new_incident=new_id, alert_ids=list(moving)),
        _entry(new, now, by, "split", off, original=incident.id, alert_ids=list(moving)),
    )
    return SplitResult(remaining=remaining, new=new, alerts=moved, entries=entries)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkResult:
    a: Incident
    b: Incident
    entries: tuple[TimelineEntry, ...]  # one `linked` entry on each; empty when they were already linked


def link(a: Incident, b: Incident, by: Actor, now: datetime) -> LinkResult:
    """Relate two incidents of one tenant, both ways. Cross-tenant campaigns belong to intel, not here."""
    _check(a, by, "link", now, merged_ok=True)
    _check(b, by, "link", now, merged_ok=True)
    _same_tenant(a, b.tenant_id, f"incident {b.id}")
    if a.id == b.id:
        _fail(a, "link_invalid", f"incident {a.id} cannot be linked to itself")
    if b.id in a.linked and a.id in b.linked:
        return LinkResult(a=a, b=b, entries=())
    return LinkResult(
        a=_touch(a, now, linked=_union(a.linked, (b.id,))),
        b=_touch(b, now, linked=_union(b.linked, (a.id,))),
        entries=(
            _entry(a, now, by, "linked", f"{by.id} linked incident {b.id}", other=b.id),
            _entry(b, now, by, "linked", f"{by.id} linked incident {a.id}", other=a.id),
        ),
    )
