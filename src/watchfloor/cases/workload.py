"""Analyst workload and occupancy from the incident timeline and the roster's shifts. Pure functions.

**Working sessions.** An analyst's actions on one incident are its timeline entries with `actor` = the
analyst's id (notes, evidence, state changes, escalations, notifications, taking it; `system` entries such
as SLA warnings or routing are nobody's work). Sorted by time, they split into *sessions* wherever two
consecutive actions are more than `gap_seconds` apart (default 30 min). A session runs from its first to
its last action, and lasts at least `min_session_seconds` (default 5 min, ending that long after its first
action): the one-click acknowledgement still took reading the incident. Actions on different incidents make
separate sessions, which may overlap in time (an analyst working two incidents at once).

**Per analyst and period** `[start, end)` (`workload`) or per analyst and shift occurrence
(`workload_by_shift`), sessions clipped to the period:

- `incidents_handled`: distinct incidents with at least one action by the analyst in the period;
- `handling_minutes`: the sum of the session minutes per incident (what the incidents cost; concurrent work
  on two incidents counts twice);
- `busy_minutes`: the union of the sessions (concurrent work counts once);
- `on_duty_minutes`: the analyst's shift time in the period (from the roster);
- `occupancy`: busy minutes *inside* the shifts / on-duty minutes, in [0, 1]; None without on-duty time.
  We use the union, not the handling sum, so that multitasking cannot push occupancy past 100 %;
- `off_shift_minutes`: busy minutes outside the shifts (overtime, call-outs);
- `open_load`: open (not closed, not merged) incidents assigned to the analyst (`open_load(incidents)`,
  the `load` that `routing.route` takes), as of the incidents given: pass their state at the period's end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from watchfloor.cases.calendars import utc
from watchfloor.cases.models import Incident, TimelineEntry
from watchfloor.cases.soc import Interval, SocRoster, analyst_intervals, merge_intervals
from watchfloor.core.types import CLOSED_STATES, TenantId

__all__ = [
    "AnalystWorkload",
    "Session",
    "open_load",
    "sessions",
    "workload",
    "workload_by_shift",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A spell of work by one analyst on one incident."""

    analyst_id: str
    incident_id: str
    tenant_id: TenantId
    start: datetime
    end: datetime
    actions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalystWorkload:
    analyst_id: str
    start: datetime
    end: datetime
    shift: str | None  # with workload_by_shift: "<region>" of the shift occurrence; None for a plain period
    incidents_handled: int
    actions: int
    handling_minutes: float
    busy_minutes: float
    on_duty_minutes: float
    off_shift_minutes: float
    occupancy: float | None
    open_load: int


def sessions(
    entries: Iterable[TimelineEntry],
    *,
    analysts: frozenset[str] | None = None,
    gap_seconds: float = 1800,
    min_session_seconds: float = 300,
) -> list[Session]:
    """Working sessions from timeline entries (module docstring); `analysts` limits whose actions count."""
    if gap_seconds < 0 or min_session_seconds < 0:
        raise ValueError("gap_seconds and min_session_seconds cannot be negative")
    grouped: dict[tuple[str, str], list[TimelineEntry]] = defaultdict(list)
    for entry in entries:
        if entry.actor == "system" or (analysts is not None and entry.actor not in analysts):
            continue
        grouped[(entry.actor, entry.incident_id)].append(entry)
    gap, floor = timedelta(seconds=gap_seconds), timedelta(seconds=min_session_seconds)
    result: list[Session] = []
    for (actor, incident_id), items in grouped.items():
        items.sort(key=lambda e: e.at)
        first = last = utc(items[0].at, "entry time")
        count = 1
        for entry in items[1:]:
            at = utc(entry.at, "entry time")
            if at - last > gap:
                result.append(_session(actor, incident_id, items[0].tenant_id, first, last, count, floor))
                first, count = at, 0
            last = at
            count += 1
        result.append(_session(actor, incident_id, items[0].tenant_id, first, last, count, floor))
    result.sort(key=lambda s: (s.analyst_id, s.start, s.incident_id))
    return result


def _session(
    actor: str,
    incident_id: str,
    tenant: TenantId,
    first: datetime,
    last: datetime,
    count: int,
    floor: timedelta,
) -> Session:
    return Session(
        analyst_id=actor,
        incident_id=incident_id,
        tenant_id=tenant,
        start=first,
        end=max(last, first + floor),
        actions=count,
    )


def open_load(incidents: Iterable[Incident]) -> dict[str, int]:
    """Open, unmerged incidents per assignee (what `routing.route` takes as `load`)."""
    load: dict[str, int] = defaultdict(int)
    for incident in incidents:
        if incident.assignee and incident.state not in CLOSED_STATES and incident.merged_into is None:
            load[incident.assignee] += 1
    return dict(load)


def _minutes(spans: Iterable[Interval]) -> float:
    return sum((hi - lo).total_seconds() for lo, hi in spans) / 60


def _clip(spans: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    return [(max(lo, start), min(hi, end)) for lo, hi in spans if min(hi, end) > max(lo, start)]


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """Intersection of two merged interval lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _row(
    analyst_id: str,
    start: datetime,
    end: datetime,
    shift: str | None,
    mine: list[Session],
    duty: list[Interval],
    load: int,
) -> AnalystWorkload:
    clipped = [(s, _clip([(s.start, s.end)], start, end)) for s in mine]
    inside = [(s, spans) for s, spans in clipped if spans]
    busy = merge_intervals(span for _, spans in inside for span in spans)
    duty = merge_intervals(_clip(duty, start, end))
    on_duty = _minutes(duty)
    busy_on_duty = _minutes(_intersect(busy, duty))
    return AnalystWorkload(
        analyst_id=analyst_id,
        start=start,
        end=end,
        shift=shift,
        incidents_handled=len({s.incident_id for s, _ in inside}),
        actions=sum(s.actions for s, _ in inside),
        handling_minutes=sum(_minutes(spans) for _, spans in inside),
        busy_minutes=_minutes(busy),
        on_duty_minutes=on_duty,
        off_shift_minutes=_minutes(busy) - busy_on_duty,
        occupancy=busy_on_duty / on_duty if on_duty > 0 else None,
        open_load=load,
    )


def workload(
    entries: Iterable[TimelineEntry],
    incidents: Iterable[Incident],
    roster: SocRoster,
    start: datetime,
    end: datetime,
    *,
    gap_seconds: float = 1800,
    min_session_seconds: float = 300,
) -> list[AnalystWorkload]:
    """One row per roster analyst for the period `[start, end)`, in roster order."""
    start, end = utc(start, "start"), utc(end, "end")
    if end <= start:
        raise ValueError("the period must end after it starts")
    ids = frozenset(a.id for a in roster.analysts)
    by_analyst = _by_analyst(
        sessions(entries, analysts=ids, gap_seconds=gap_seconds, min_session_seconds=min_session_seconds)
    )
    load = open_load(incidents)
    return [
        _row(
            a.id,
            start,
            end,
            None,
            by_analyst.get(a.id, []),
            analyst_intervals(roster, a, start, end),
            load.get(a.id, 0),
        )
        for a in roster.analysts
    ]


def workload_by_shift(
    entries: Iterable[TimelineEntry],
    incidents: Iterable[Incident],
    roster: SocRoster,
    start: datetime,
    end: datetime,
    *,
    gap_seconds: float = 1800,
    min_session_seconds: float = 300,
) -> list[AnalystWorkload]:
    """One row per analyst and shift occurrence (a contiguous on-duty interval) overlapping `[start, end)`.

    Each row's period is the whole shift occurrence (not clipped to `[start, end)`), so a shift is judged
    whole; off-shift work between shifts is reported by `workload`, not here. Rows by start, then analyst.
    """
    start, end = utc(start, "start"), utc(end, "end")
    ids = frozenset(a.id for a in roster.analysts)
    by_analyst = _by_analyst(
        sessions(entries, analysts=ids, gap_seconds=gap_seconds, min_session_seconds=min_session_seconds)
    )
    load = open_load(incidents)
    rows: list[AnalystWorkload] = []
    pad = timedelta(days=2)  # find the whole occurrence of shifts cut by the period's edges
    for analyst in roster.analysts:
        for lo, hi in analyst_intervals(roster, analyst, start - pad, end + pad):
            if hi <= start or lo >= end:
                continue
            mine = by_analyst.get(analyst.id, [])
            rows.append(_row(analyst.id, lo, hi, analyst.region, mine, [(lo, hi)], load.get(analyst.id, 0)))
    rows.sort(key=lambda r: (r.start, r.analyst_id))
    return rows


def _by_analyst(found: Iterable[Session]) -> Mapping[str, list[Session]]:
    grouped: dict[str, list[Session]] = defaultdict(list)
    for session in found:
        grouped[session.analyst_id].append(session)
    return grouped
