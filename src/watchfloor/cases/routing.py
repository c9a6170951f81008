"""Queue routing: which incident first, who takes it, and who takes over at a shift change.

**Ranking** (`rank`): breached first (SLA remaining below zero; at exactly zero a clock is not yet
breached), then the least SLA time remaining (items without an SLA target after all items with one), then
the higher severity, then the older incident (`created_at`), then the id, so the order is total and stable.
The SLA time remaining is an input (`QueueItem.sla_remaining_seconds`, e.g. the smallest
`SlaStatus.remaining_seconds` of the incident's running clocks): this module never computes SLA clocks.

**Routing** (`route`): in rank order, each open, unmerged, unassigned item goes to an analyst who is

1. on duty at `now` (`soc.on_duty`),
2. allowed the tenant (`Analyst.may_work`: a partner's analysts only their partner's tenants),
3. of tier >= the incident's `queue_tier` (partner analysts are T1, so they only take T1 work),
4. below `max_concurrent` open incidents (`load` + what this call has assigned so far),

preferring, in order: the most required skills matched, the lowest sufficient tier (keep T2/T3 free for
escalations: a senior takes T1 work only when no T1 can), the least load, then the analyst id. Items no one
can take come back with `analyst_id=None` and the first rule that ruled everyone out as the reason.

**Required skills** (`required_skills`) come from the incident's ATT&CK techniques and cloud entities via
two small tables (`TECHNIQUE_SKILLS` by technique-id prefix, `CLOUD_PREFIX_SKILLS` by the cloud account's
provider prefix); pass `QueueItem.skills` to override. Skills are a preference, never a requirement.

**Hand-off** (`shift_handoff`): at `at`, every open, unmerged incident whose assignee is a roster analyst
who is not on duty at `at` (going off shift, or already gone) is re-routed by the same rules to an analyst
on duty at `at`: the next region. Each `Handoff` carries a note (state, SLA remaining, the last timeline
entry, the next step) and becomes a `handoff` timeline entry (`Handoff.entry`); the caller then applies
`lifecycle.assign(incident, handoff.to_analyst, SYSTEM, at)` (or unassigns when nobody can take it, which
puts the incident back in the queue). Assignees unknown to the roster (managers, admins) are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from watchfloor.cases.calendars import utc
from watchfloor.cases.models import Incident, TimelineEntry
from watchfloor.cases.soc import Analyst, SocRoster, on_duty
from watchfloor.core.types import ANALYST_TIERS, CLOSED_STATES, IncidentState, TenantId, severity_rank

__all__ = [
    "CLOUD_PREFIX_SKILLS",
    "NEXT_STEPS",
    "TECHNIQUE_SKILLS",
    "Assignment",
    "Handoff",
    "QueueItem",
    "format_seconds",
    "rank",
    "required_skills",
    "route",
    "shift_handoff",
]

# ATT&CK technique id prefix -> skill (the longest matching prefix wins; sub-techniques first).
TECHNIQUE_SKILLS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "T1003": "windows",  # OS credential dumping (LSASS, SAM)
        "T1021.001": "windows",  # RDP
        "T1021.002": "windows",  # SMB / admin shares
        "T1053.005": "windows",  # scheduled task
        "T1059.001": "windows",  # PowerShell
        "T1059.003": "windows",  # cmd
        "T1112": "windows",  # registry
        "T1218": "windows",  # signed binary proxy execution
        "T1490": "windows",  # shadow copy deletion
        "T1562.001": "windows",  # disable Defender
        "T1569.002": "windows",  # service execution
        "T1053.003": "linux",  # cron
        "T1059.004": "linux",  # unix shell
        "T1098.004": "linux",  # SSH authorized keys
        "T1548.001": "linux",  # setuid
        "T1114": "m365",  # email collection
        "T1534": "m365",  # internal spearphishing
        "T1564.008": "m365",  # email hiding rules
        "T1566": "email",  # phishing
        "T1078.004": "identity",  # cloud accounts
        "T1110": "identity",  # brute force
        "T1556": "identity",  # modify authentication process
        "T1530": "aws",  # data from cloud storage
        "T1537": "aws",  # transfer data to cloud account
        "T1578": "aws",  # modify cloud compute
        "T1580": "aws",  # cloud infrastructure discovery
        "T1046": "network",  # network service discovery
        "T1071": "network",  # application layer protocol C2
        "T1090": "network",  # proxy
        "T1571": "network",  # non-standard port
        "T1595": "network",  # active scanning
    }
)
# cloud_account entity value prefix (`aws:123456789012`, `azure:<tenant>`, ...) -> skill.
CLOUD_PREFIX_SKILLS: Final[Mapping[str, str]] = MappingProxyType(
    {"aws": "aws", "azure": "azure", "entra": "azure", "m365": "m365", "o365": "m365", "gcp": "gcp"}
)
# What the next analyst should do, by state (hand-off notes).
NEXT_STEPS: Final[Mapping[IncidentState, str]] = MappingProxyType(
    {
        "new": "acknowledge it and triage: true or false positive, scope, severity",
        "acknowledged": "start the investigation: confirm the activity and its scope",
        "investigating": "contain the threat or resolve it; tell the customer if not yet notified",
        "awaiting_customer": "follow up with the customer (the SLA clocks are paused while waiting)",
        "contained": "eradicate and recover, then resolve",
        "resolved": "watch for recurrence, then close as true positive",
        "closed_true_positive": "nothing: closed",
        "closed_false_positive": "nothing: closed",
    }
)


def required_skills(incident: Incident) -> frozenset[str]:
    """Skills an incident calls for, from its techniques and cloud-account entities (see the tables)."""
    skills: set[str] = set()
    for technique in incident.techniques:
        upper = technique.upper()
        best = max(
            (p for p in TECHNIQUE_SKILLS if upper == p or upper.startswith(p + ".")), key=len, default=None
        )
        if best is not None:
            skills.add(TECHNIQUE_SKILLS[best])
    for entity in incident.entities:
        if entity.kind == "cloud_account":
            provider = entity.value.split(":", 1)[0].lower()
            if provider in CLOUD_PREFIX_SKILLS:
                skills.add(CLOUD_PREFIX_SKILLS[provider])
    return frozenset(skills)


def format_seconds(seconds: float) -> str:
    """`5400` -> `1h30m`, `-300` -> `-5m`, `42` -> `42s` (for notes and reasons)."""
    sign, rest = ("-" if seconds < 0 else ""), int(abs(seconds))
    days, rest = divmod(rest, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    if not parts or (secs and not days and not hours):
        parts.append(f"{secs}s")
    return sign + "".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueItem:
    """An incident waiting for work; `skills=None` derives them with `required_skills`."""

    incident: Incident
    sla_remaining_seconds: float | None  # None: no SLA target running
    skills: frozenset[str] | None = None

    @property
    def breached(self) -> bool:
        return self.sla_remaining_seconds is not None and self.sla_remaining_seconds < 0

    @property
    def needed_skills(self) -> frozenset[str]:
        return required_skills(self.incident) if self.skills is None else self.skills


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    """A routing decision; `analyst_id` None = nobody can take it now (`reason` says why)."""

    incident_id: str
    tenant_id: TenantId
    analyst_id: str | None
    reason: str
    matched_skills: frozenset[str] = frozenset()
    missing_skills: frozenset[str] = frozenset()

    @property
    def assigned(self) -> bool:
        return self.analyst_id is not None


def _rank_key(item: QueueItem) -> tuple[int, int, float, int, datetime, str]:
    remaining = item.sla_remaining_seconds
    return (
        0 if item.breached else 1,
        0 if remaining is not None else 1,
        remaining if remaining is not None else 0.0,
        -severity_rank(item.incident.severity),
        item.incident.created_at,
        item.incident.id,
    )


def rank(items: Iterable[QueueItem], now: datetime) -> list[QueueItem]:
    """Queue order: breached, least SLA remaining, severity, age (see the module docstring)."""
    utc(now, "now")  # the order itself does not depend on now: remaining time is already as of now
    return sorted(items, key=_rank_key)


def _closed_reason(incident: Incident) -> str | None:
    if incident.merged_into is not None:
        return f"merged into {incident.merged_into}: work the target incident"
    if incident.state in CLOSED_STATES:
        return f"{incident.state}: nothing to route"
    return None


def _pick(
    incident: Incident,
    skills: frozenset[str],
    candidates: Sequence[Analyst],
    load: Mapping[str, int],
    *,
    prefer_lowest_tier: bool,
) -> tuple[Analyst | None, str]:
    """The best analyst for `incident` among `candidates`, or None and why nobody fits."""
    tenant, tier = incident.tenant_id, incident.queue_tier
    if not candidates:
        return None, "no analyst is on duty"
    allowed = [a for a in candidates if a.may_work(tenant)]
    if not allowed:
        return None, f"no on-duty analyst may work tenant {tenant}"
    able = [a for a in allowed if a.can_take(tier)]
    if not able:
        return None, f"no on-duty analyst of tier {tier} or above may work tenant {tenant}"
    free = [a for a in able if load.get(a.id, 0) < a.max_concurrent]
    if not free:
        return None, f"all {len(able)} eligible on-duty analyst(s) are at their max_concurrent"

    def key(a: Analyst) -> tuple[int, int, int, str]:
        tier_gap = ANALYST_TIERS.index(a.tier) - ANALYST_TIERS.index(tier) if prefer_lowest_tier else 0
        return (-len(skills & a.skills), tier_gap, load.get(a.id, 0), a.id)

    best = min(free, key=key)
    matched = sorted(skills & best.skills)
    why = f"{best.tier} on duty for {tenant}, load {load.get(best.id, 0)}/{best.max_concurrent}"
    if skills:
        why += f", skills {', '.join(matched) or 'none'} of {', '.join(sorted(skills))}"
    return best, why


def route(
    items: Iterable[QueueItem],
    roster: SocRoster,
    now: datetime,
    load: Mapping[str, int] | None = None,
    *,
    prefer_lowest_tier: bool = True,
) -> list[Assignment]:
    """Assign each open, unassigned item in rank order (see the module docstring); pure."""
    current = dict(load or {})
    candidates = on_duty(roster, now)
    result: list[Assignment] = []
    for item in rank(items, now):
        incident = item.incident
        if incident.assignee is not None:
            continue
        skills = item.needed_skills
        closed = _closed_reason(incident)
        if closed is not None:
            result.append(
                Assignment(
                    incident_id=incident.id, tenant_id=incident.tenant_id, analyst_id=None, reason=closed
                )
            )
            continue
        analyst, why = _pick(incident, skills, candidates, current, prefer_lowest_tier=prefer_lowest_tier)
        if analyst is not None:
            current[analyst.id] = current.get(analyst.id, 0) + 1
        result.append(
            Assignment(
                incident_id=incident.id,
                tenant_id=incident.tenant_id,
                analyst_id=analyst.id if analyst else None,
                reason=why,
                matched_skills=skills & analyst.skills if analyst else frozenset(),
                missing_skills=skills - analyst.skills if analyst else skills,
            )
        )
    return result


# -- shift hand-off --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Handoff:
    """Open work moving from an analyst going off shift; `to_analyst` None = back to the queue."""

    incident_id: str
    tenant_id: TenantId
    from_analyst: str
    to_analyst: str | None
    at: datetime
    note: str
    reason: str
    details: Mapping[str, object] = field(default_factory=dict, compare=False)

    def entry(self) -> TimelineEntry:
        """The `handoff` timeline entry (actor `system`: the shift change moved it, not a person)."""
        target = self.to_analyst or "the queue"
        return TimelineEntry(
            incident_id=self.incident_id,
            tenant_id=self.tenant_id,
            at=self.at,
            actor="system",
            kind="handoff",
            summary=f"shift hand-off from {self.from_analyst} to {target}",
            details={
                "from": self.from_analyst,
                "to": self.to_analyst,
                "note": self.note,
                "reason": self.reason,
            },
        )


def _note(
    incident: Incident,
    source: Analyst,
    target: Analyst | None,
    at: datetime,
    remaining: float | None,
    last: TimelineEntry | None,
) -> str:
    to = f"{target.id} ({target.region})" if target else "the queue (nobody on duty can take it)"
    sla = "no SLA target running"
    if remaining is not None:
        sla = (
            f"breached {format_seconds(-remaining)} ago"
            if remaining < 0
            else f"{format_seconds(remaining)} left"
        )
    if last is None:
        previous = "no timeline entries"
    else:
        previous = (
            f"{utc(last.at, 'entry time'):%Y-%m-%d %H:%M} UTC {last.actor} ({last.kind}): {last.summary}"
        )
    step = NEXT_STEPS[incident.state]
    if incident.state in ("investigating", "contained") and incident.notified_at is None:
        step += "; the customer has NOT been notified yet"
    header = (
        f"Hand-off {incident.id} [{incident.tenant_id}] {incident.severity}, {incident.state}, "
        f"queue {incident.queue_tier}: {incident.title}"
    )
    return "\n".join(
        (
            header,
            f"From {source.id} ({source.region}) to {to} at {at:%Y-%m-%d %H:%M} UTC.",
            f"SLA: {sla}.",
            f"Last: {previous}",
            f"Next step: {step}.",
        )
    )


def shift_handoff(
    incidents: Iterable[Incident],
    roster: SocRoster,
    at: datetime,
    *,
    timelines: Mapping[str, Sequence[TimelineEntry]] | None = None,
    sla_remaining: Callable[[Incident], float | None] | None = None,
    load: Mapping[str, int] | None = None,
    prefer_lowest_tier: bool = True,
) -> list[Handoff]:
    """Hand-offs for open work held by analysts not on duty at `at` (see the module docstring).

    `timelines`: incident id -> its entries (the last by time is quoted in the note); `sla_remaining`:
    seconds left on the incident's nearest SLA target (None: none running); `load`: open incidents per
    analyst before the hand-off (the moved incidents are counted off the outgoing analyst).
    """
    at = utc(at, "at")
    coming = on_duty(roster, at)
    coming_ids = {a.id for a in coming}
    current = dict(load or {})
    leaving: list[tuple[Incident, Analyst]] = []
    for incident in incidents:
        source = roster.analyst(incident.assignee) if incident.assignee else None
        if source is None or source.id in coming_ids or _closed_reason(incident) is not None:
            continue
        leaving.append((incident, source))
    remaining_of = {inc.id: sla_remaining(inc) if sla_remaining else None for inc, _ in leaving}
    order = rank(
        (QueueItem(incident=inc, sla_remaining_seconds=remaining_of[inc.id]) for inc, _ in leaving), at
    )
    source_of = {inc.id: src for inc, src in leaving}
    handoffs: list[Handoff] = []
    for item in order:
        incident, source = item.incident, source_of[item.incident.id]
        target, why = _pick(
            incident, item.needed_skills, coming, current, prefer_lowest_tier=prefer_lowest_tier
        )
        if target is not None:
            current[target.id] = current.get(target.id, 0) + 1
        if current.get(source.id, 0) > 0:
            current[source.id] -= 1
        entries = (timelines or {}).get(incident.id, ())
        last = max(entries, key=lambda e: e.at) if entries else None
        note = _note(incident, source, target, at, remaining_of[incident.id], last)
        handoffs.append(
            Handoff(
                incident_id=incident.id,
                tenant_id=incident.tenant_id,
                from_analyst=source.id,
                to_analyst=target.id if target else None,
                at=at,
                note=note,
                reason=why,
                details={"from_region": source.region, "to_region": target.region if target else None},
            )
        )
    return handoffs
