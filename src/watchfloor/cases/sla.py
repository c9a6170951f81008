"""The SLA clock as pure functions: status per metric, warning/breach events, contract credits.

Nothing here reads a clock or storage: every function takes `now` (a timezone-aware instant) and frozen
inputs, so the sweeper, the console and the tests get the same answer for the same inputs.

**The clock of a metric** (`acknowledge`, `notify`, `contain`) starts at `incident.created_at` and counts
*working* seconds of the tier's calendar for the incident's **current** severity, minus the working
seconds inside `incident.pauses` (awaiting the customer; an open pause `(start, None)` runs to the end).
Overlapping pauses count once; pauses before the start or after the end are clipped. It stops at:

- the milestone (`acknowledged_at`, `notified_at`, `contained_at`) if it is set and not after `now`
  (a later milestone has not happened "as of now", which lets callers replay history); else
- the resolution or closure when the incident is resolved or closed without the milestone (a false
  positive needs no containment): the earliest of `resolved_at`/`closed_at`. `achieved_at` stays None;
  else
- `now`.

**States** (first that applies): `no_target` (the tier sets none for this metric and severity);
`met`/`missed` once stopped (elapsed <= target / > target); `breached` (elapsed > target); `paused` (an
open pause has begun); `warning` (elapsed >= `warning_fraction` x target); `running`. A breached clock
that is paused stays `breached`; `SlaStatus.paused` says whether it is paused either way. At exactly the
target the clock is not yet breached: a breach is *more* working time than the target.

**due_at** is the projected deadline (UTC) given the pauses so far: the instant at which elapsed working
time reaches the target. It is None while paused (the deadline depends on when the customer answers;
`remaining_seconds` still says how much is left) and when there is no target. Once stopped, `due_at` is
the deadline as it stood. `remaining_seconds` is target minus elapsed, negative once over.

**Severity changes** re-evaluate the whole clock from `created_at` with the new severity's target and
calendar (escalating low -> critical can breach at once; the event's `at` is then in the past).

**Events** (`evaluate_sla`): `sla_warning` when elapsed >= warning threshold, `sla_breached` when elapsed
> target, each with `at` = the instant the threshold was crossed (from `add_working_time` through the
pauses, never `now`), once per (metric, kind): pairs in `already` are not emitted again, so a sweeper may
call it every few seconds. Events are facts about the past: a threshold crossed before the milestone is
reported even when the sweeper first looks after the milestone. Events are never retracted (a severity
lowered after a breach keeps the breach). Merged incidents have no clocks (`evaluate_sla` returns []).

**Credits** (`credits_for`): money is always an `int` of minor currency units (cents). Each breach of a
metric the tier credits earns `monthly_fee x percent(severity)`, rounded down to a whole minor unit per
line, in breach order, until the monthly cap (`monthly_fee x cap percent`, rounded down) is reached; the
line that reaches the cap is cut to fit and later lines earn 0. Every breach record gets a line saying why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, Protocol

from watchfloor.cases.calendars import Calendar, utc
from watchfloor.cases.models import Incident
from watchfloor.cases.tiers import BASIS_POINTS, ServiceTier, format_duration
from watchfloor.core.types import CLOSED_STATES, SLA_METRICS, Severity, SlaMetric, TenantId

__all__ = [
    "CreditLine",
    "CreditStatement",
    "SlaBreachRecord",
    "SlaEvent",
    "SlaEventKind",
    "SlaState",
    "SlaStatus",
    "credits_for",
    "evaluate_sla",
    "sla_status",
    "sla_statuses",
]

SlaState = Literal["running", "paused", "warning", "breached", "met", "missed", "no_target"]
SlaEventKind = Literal["sla_warning", "sla_breached"]
_ZERO: Final = timedelta(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaStatus:
    """One metric's clock for one incident as of `now` (see the module docstring for every field)."""

    metric: SlaMetric
    severity: Severity
    state: SlaState
    target_seconds: int | None
    started_at: datetime
    achieved_at: datetime | None  # the milestone, when reached by `now`
    stopped_at: datetime | None  # achieved_at, or the resolution/closure that made the milestone moot
    elapsed_seconds: float
    remaining_seconds: float | None
    due_at: datetime | None
    paused: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaEvent:
    """A warning or breach to record once: the fields of `storage.incidents.SlaEventRecord` and a summary."""

    tenant_id: TenantId
    incident_id: str
    kind: SlaEventKind
    metric: SlaMetric
    severity: Severity
    at: datetime
    target_seconds: int
    summary: str


class SlaBreachRecord(Protocol):
    """What `credits_for` reads from a stored SLA event (an `SlaEvent` or a storage record both fit)."""

    @property
    def tenant_id(self) -> TenantId: ...
    @property
    def incident_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def metric(self) -> SlaMetric: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def at(self) -> datetime: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditLine:
    incident_id: str
    metric: SlaMetric
    severity: Severity
    breached_at: datetime
    percent_bp: int  # the tier's rate for this line (basis points of the monthly fee)
    amount_minor: int  # what this line earns after rounding and the cap
    explanation: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditStatement:
    tenant_id: TenantId | None  # None when there were no breaches
    tier: str
    monthly_fee_minor: int
    cap_minor: int
    lines: tuple[CreditLine, ...]
    total_minor: int
    capped: bool  # the cap cut at least one line


# -- the clock -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Clock:
    calendar: Calendar
    start: datetime
    end: datetime
    stopped: bool
    achieved_at: datetime | None
    pauses: tuple[tuple[datetime, datetime | None], ...]  # merged, clipped, ordered; None = still open
    elapsed: timedelta

    def reach(self, amount: timedelta) -> datetime | None:
        """The instant elapsed working time reaches `amount` (None if that lies beyond an open pause)."""
        cursor, need = self.start, amount
        for lo, hi in self.pauses:
            if lo > cursor:
                available = self.calendar.working_time(cursor, lo)
                if available >= need:
                    return self.calendar.add_working_time(cursor, need)
                need -= available
            if hi is None:
                return None
            cursor = max(cursor, hi)
        return self.calendar.add_working_time(cursor, need)


def _milestone(incident: Incident, metric: SlaMetric) -> datetime | None:
    if metric == "acknowledge":
        return incident.acknowledged_at
    if metric == "notify":
        return incident.notified_at
    return incident.contained_at


def _clock(incident: Incident, metric: SlaMetric, calendar: Calendar, now: datetime) -> _Clock:
    now = utc(now, "now")
    start = utc(incident.created_at, "incident.created_at")
    milestone = _milestone(incident, metric)
    achieved = utc(milestone, metric) if milestone is not None else None
    if achieved is not None and achieved > now:
        achieved = None  # not yet reached as of `now`
    stop = achieved
    if stop is None and (incident.state in CLOSED_STATES or incident.state == "resolved"):
        done = [
            utc(t, "resolved_at/closed_at")
            for t in (incident.resolved_at, incident.closed_at)
            if t is not None
        ]
        done = [t for t in done if t <= now]
        stop = min(done) if done else None
    end = max(start, stop if stop is not None else now)

    stopped = stop is not None
    pauses = sorted(
        (
            (utc(lo, "pause start"), None if hi is None else utc(hi, "pause end"))
            for lo, hi in incident.pauses
        ),
        key=lambda p: p[0],
    )
    spans: list[tuple[datetime, datetime | None]] = []
    for raw_lo, raw_hi in pauses:
        lo = max(raw_lo, start)
        if lo >= end:
            continue
        hi: datetime | None
        if stopped:  # a stopped clock has no open pause: it ends with the clock
            hi = end if raw_hi is None else min(raw_hi, end)
        else:  # still open as of now when it has no end yet, or ends after now
            hi = None if raw_hi is None or raw_hi > end else raw_hi
        if hi is not None and hi <= lo:
            continue
        if spans and (spans[-1][1] is None or lo <= spans[-1][1]):
            prev_lo, prev_hi = spans[-1]
            spans[-1] = (prev_lo, None if prev_hi is None or hi is None else max(prev_hi, hi))
        else:
            spans.append((lo, hi))
    paused_time = sum((calendar.working_time(lo, hi or end) for lo, hi in spans), _ZERO)
    elapsed = calendar.working_time(start, end) - paused_time
    return _Clock(calendar, start, end, stopped, achieved, tuple(spans), elapsed)


def sla_status(
    incident: Incident, metric: SlaMetric, tier: ServiceTier, now: datetime, *, tenant_timezone: str = "UTC"
) -> SlaStatus:
    """The `metric` clock of `incident` under `tier` as of `now` (calendar zone: `tenant_timezone`)."""
    severity = incident.severity
    calendar = tier.calendar_for(severity, tenant_timezone)
    clock = _clock(incident, metric, calendar, now)
    target = tier.target(metric, severity)
    paused = not clock.stopped and bool(clock.pauses) and clock.pauses[-1][1] is None
    elapsed = clock.elapsed.total_seconds()
    if target is None:
        return SlaStatus(
            metric=metric,
            severity=severity,
            state="no_target",
            target_seconds=None,
            started_at=clock.start,
            achieved_at=clock.achieved_at,
            stopped_at=clock.end if clock.stopped else None,
            elapsed_seconds=elapsed,
            remaining_seconds=None,
            due_at=None,
            paused=paused,
        )
    target_time = timedelta(seconds=target)
    state: SlaState
    if clock.stopped:
        state = "missed" if clock.elapsed > target_time else "met"
    elif clock.elapsed > target_time:
        state = "breached"
    elif paused:
        state = "paused"
    elif clock.elapsed >= _warning_time(tier, target):
        state = "warning"
    else:
        state = "running"
    return SlaStatus(
        metric=metric,
        severity=severity,
        state=state,
        target_seconds=target,
        started_at=clock.start,
        achieved_at=clock.achieved_at,
        stopped_at=clock.end if clock.stopped else None,
        elapsed_seconds=elapsed,
        remaining_seconds=(target_time - clock.elapsed).total_seconds(),
        due_at=None if paused else clock.reach(target_time),
        paused=paused,
    )


def sla_statuses(
    incident: Incident, tier: ServiceTier, now: datetime, *, tenant_timezone: str = "UTC"
) -> tuple[SlaStatus, ...]:
    """`sla_status` for every metric, in `SLA_METRICS` order."""
    return tuple(sla_status(incident, m, tier, now, tenant_timezone=tenant_timezone) for m in SLA_METRICS)


def _warning_time(tier: ServiceTier, target: int) -> timedelta:
    return timedelta(seconds=tier.warning_fraction * target)


def evaluate_sla(
    incident: Incident,
    tier: ServiceTier,
    now: datetime,
    already: frozenset[tuple[SlaMetric, str]] = frozenset(),
    *,
    tenant_timezone: str = "UTC",
) -> list[SlaEvent]:
    """Warnings and breaches crossed by `now` and not in `already` ((metric, kind) pairs), ordered by `at`."""
    if incident.merged_into is not None:
        return []
    severity = incident.severity
    calendar = tier.calendar_for(severity, tenant_timezone)
    events: list[SlaEvent] = []
    for metric in SLA_METRICS:
        target = tier.target(metric, severity)
        if target is None:
            continue
        clock = _clock(incident, metric, calendar, now)
        target_time = timedelta(seconds=target)
        warning_time = _warning_time(tier, target)
        checks: tuple[tuple[SlaEventKind, timedelta, bool], ...] = (
            ("sla_warning", warning_time, clock.elapsed >= warning_time),
            ("sla_breached", target_time, clock.elapsed > target_time),
        )
        for kind, threshold, crossed in checks:
            if not crossed or (metric, kind) in already:
                continue
            at = clock.reach(threshold)
            if at is None:  # pragma: no cover - a crossed threshold lies before any open pause
                raise AssertionError("crossed SLA threshold not reachable")
            what = "warning" if kind == "sla_warning" else "breached"
            summary = (
                f"{metric} SLA {what}: {severity} target {format_duration(target)}"
                f" ({tier.name} tier), crossed at {at.isoformat()}"
            )
            events.append(
                SlaEvent(
                    tenant_id=incident.tenant_id,
                    incident_id=incident.id,
                    kind=kind,
                    metric=metric,
                    severity=severity,
                    at=at,
                    target_seconds=target,
                    summary=summary,
                )
            )
    events.sort(key=lambda e: (e.at, SLA_METRICS.index(e.metric), e.kind != "sla_warning"))
    return events


# -- credits ---------------------------------------------------------------------------------------------
def _percent(bp: int) -> str:
    whole, cents = divmod(bp, 100)
    return f"{whole}%" if not cents else f"{whole}.{cents:02d}".rstrip("0") + "%"


def credits_for(
    breaches: Sequence[SlaBreachRecord] | Iterable[SlaBreachRecord], tier: ServiceTier, monthly_fee_minor: int
) -> CreditStatement:
    """The credits one billing month's breaches earn under `tier` (the caller picks the month's records).

    Records whose `kind` is not `sla_breached` (warnings) are ignored; a repeated (incident, metric) earns
    once. ValueError when the fee is negative or the records mix tenants.
    """
    if isinstance(monthly_fee_minor, bool) or not isinstance(monthly_fee_minor, int) or monthly_fee_minor < 0:
        raise ValueError(
            f"monthly_fee_minor must be a non-negative int of minor units, got {monthly_fee_minor!r}"
        )
    policy = tier.credits
    records = sorted(
        (b for b in breaches if b.kind == "sla_breached"),
        key=lambda b: (utc(b.at, "breach at"), b.incident_id, SLA_METRICS.index(b.metric)),
    )
    tenants = {b.tenant_id for b in records}
    if len(tenants) > 1:
        raise ValueError(f"credits are per tenant; the breaches mix {', '.join(sorted(tenants))}")
    cap = monthly_fee_minor * policy.monthly_cap_bp // BASIS_POINTS
    total, capped = 0, False
    seen: set[tuple[str, str]] = set()
    lines: list[CreditLine] = []
    for breach in records:
        head = (
            f"{breach.incident_id} ({breach.severity}) breached the {breach.metric} target at "
            f"{utc(breach.at, 'breach at').isoformat()}"
        )
        bp = policy.bp_for(breach.severity)
        amount = 0
        if (breach.incident_id, breach.metric) in seen:
            bp, why = 0, "already credited for this incident and metric"
        elif breach.metric not in policy.metrics:
            bp, why = 0, f"the {tier.name} tier gives no credit for {breach.metric} breaches"
        elif bp == 0:
            why = f"the {tier.name} tier gives no credit for {breach.severity} breaches"
        else:
            full = monthly_fee_minor * bp // BASIS_POINTS
            amount = min(full, cap - total)
            why = f"{_percent(bp)} of {monthly_fee_minor} = {full}"
            if amount < full:
                capped = True
                why += f", cut to {amount} by the monthly cap of {_percent(policy.monthly_cap_bp)} ({cap})"
        seen.add((breach.incident_id, breach.metric))
        total += amount
        lines.append(
            CreditLine(
                incident_id=breach.incident_id,
                metric=breach.metric,
                severity=breach.severity,
                breached_at=utc(breach.at, "breach at"),
                percent_bp=bp,
                amount_minor=amount,
                explanation=f"{head}: {why}",
            )
        )
    return CreditStatement(
        tenant_id=next(iter(tenants)) if tenants else None,
        tier=tier.name,
        monthly_fee_minor=monthly_fee_minor,
        cap_minor=cap,
        lines=tuple(lines),
        total_minor=total,
        capped=capped,
    )
