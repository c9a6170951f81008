"""SOC metrics as data and pure functions: MTTD, MTTT, MTTA, MTTN, MTTC, MTTR and SLA attainment.

The definitions (`METRICS`) are written out for people in `docs/metrics.md`; keep both in step. In short,
each metric is the wall-clock seconds between two incident timestamps:

| metric | from | to | incidents counted (besides having both timestamps) |
|---|---|---|---|
| MTTD time to detect | `first_event_at` | `created_at` | all |
| MTTT time to triage | `created_at` | `triaged_at` | all |
| MTTA time to acknowledge | `created_at` | `acknowledged_at` | all |
| MTTN time to notify | `created_at` | `notified_at` | not false positives |
| MTTC time to contain | `created_at` | `contained_at` | not false positives |
| MTTR time to resolve | `created_at` | `resolved_at` | not false positives |

- **Merged incidents** (`merged_into` set) count nowhere: their alerts live on in the target incident,
  and counting both would count one attack twice.
- **False positives** (`state == "closed_false_positive"`) count for detect, triage and acknowledge (the SOC
  had to do that work) but not for notify, contain and resolve (there was nothing to tell, contain or fix).
- **Missing milestones**: an incident without the end timestamp is left out of that metric (MTTC is over
  the incidents that were contained); `count` says how many contributed.
- **Wall clock**: pauses (awaiting the customer) and nights are *included*; these are the times the customer
  lives through. SLA attainment is where working calendars and pauses apply (through `met`).
- **Resolve, not close**: MTTR ends at `resolved_at`; `closed_at` of a high/critical incident includes the
  watch period after resolution (`lifecycle.WatchBeforeClosing`), which is not response time.
- A negative duration (clock skew: an event stamped after its incident was opened) counts as 0.

Statistics per metric: count, mean, median (the mean of the two middle values for an even count), p90
(nearest rank: the smallest observed value with at least 90 % of values at or below it), min, max.

**SLA attainment** per SLA metric (`acknowledge`, `notify`, `contain`): the share of decided outcomes that
met the target, from `met(incident, metric) -> bool | None` (None = no target, or not decided yet:
excluded). `met` comes from the SLA engine (`cases.sla`), so working calendars and pauses apply there.
Merged incidents are excluded; everything else is left to `met`.

**Grouping** (`compute`): by `tenant`, service `tier` (`tier_of(tenant_id)`), `analyst` (`acknowledged_by`,
else the `assignee`, else `"unassigned"`), `period` (the UTC `day`, ISO `week` starting Monday, or `month`
of `created_at`, as the ISO date of its first day), or None for one overall row.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import median
from types import MappingProxyType
from typing import Final, Literal

from watchfloor.cases.models import Incident
from watchfloor.core.types import SLA_METRICS, SlaMetric, TenantId

__all__ = [
    "METRICS",
    "Attainment",
    "GroupBy",
    "MetricDefinition",
    "MetricName",
    "MetricRow",
    "MetricStats",
    "Period",
    "attainment",
    "compute",
    "duration_seconds",
    "period_start",
    "stats",
]

MetricName = Literal["mttd", "mttt", "mtta", "mttn", "mttc", "mttr"]
Milestone = Literal[
    "first_event_at",
    "created_at",
    "triaged_at",
    "acknowledged_at",
    "notified_at",
    "contained_at",
    "resolved_at",
]
GroupBy = Literal["tenant", "tier", "analyst", "period"]
Period = Literal["day", "week", "month"]
MetCallable = Callable[[Incident, SlaMetric], "bool | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricDefinition:
    name: MetricName
    title: str
    start: Milestone
    end: Milestone
    include_false_positives: bool
    description: str


METRICS: Final[tuple[MetricDefinition, ...]] = (
    MetricDefinition(
        name="mttd",
        title="Mean time to detect",
        start="first_event_at",
        end="created_at",
        include_false_positives=True,
        description="From the earliest event of the incident's alerts to the incident being opened.",
    ),
    MetricDefinition(
        name="mttt",
        title="Mean time to triage",
        start="created_at",
        end="triaged_at",
        include_false_positives=True,
        description="From the incident being opened to its first triage decision.",
    ),
    MetricDefinition(
        name="mtta",
        title="Mean time to acknowledge",
        start="created_at",
        end="acknowledged_at",
        include_false_positives=True,
        description="From the incident being opened to an analyst taking it.",
    ),
    MetricDefinition(
        name="mttn",
        title="Mean time to notify",
        start="created_at",
        end="notified_at",
        include_false_positives=False,
        description="From the incident being opened to the customer first being told.",
    ),
    MetricDefinition(
        name="mttc",
        title="Mean time to contain",
        start="created_at",
        end="contained_at",
        include_false_positives=False,
        description="From the incident being opened to the threat first being contained.",
    ),
    MetricDefinition(
        name="mttr",
        title="Mean time to resolve",
        start="created_at",
        end="resolved_at",
        include_false_positives=False,
        description="From the incident being opened to it first being resolved (not closed).",
    ),
)
_BY_NAME: Final[Mapping[MetricName, MetricDefinition]] = MappingProxyType({m.name: m for m in METRICS})


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricStats:
    """Wall-clock seconds; every statistic is None when `count` is 0."""

    count: int
    mean: float | None = None
    median: float | None = None
    p90: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attainment:
    met: int
    missed: int
    excluded: int  # `met` returned None (no target / not decided)

    @property
    def share(self) -> float | None:
        decided = self.met + self.missed
        return self.met / decided if decided else None


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricRow:
    group_by: GroupBy | None
    group: str | None  # tenant id, tier name, analyst id, ISO date of the period's first day; None overall
    incidents: int  # unmerged incidents in the group
    metrics: Mapping[MetricName, MetricStats]
    sla: Mapping[SlaMetric, Attainment]


def _counts(definition: MetricDefinition, incident: Incident) -> bool:
    if incident.merged_into is not None:
        return False
    return definition.include_false_positives or incident.state != "closed_false_positive"


def duration_seconds(incident: Incident, name: MetricName) -> float | None:
    """The incident's value for one metric, or None when it does not count (module docstring)."""
    definition = _BY_NAME[name]
    if not _counts(definition, incident):
        return None
    start: datetime | None = getattr(incident, definition.start)
    end: datetime | None = getattr(incident, definition.end)
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def stats(values: Sequence[float]) -> MetricStats:
    """count, mean, median, p90 (nearest rank), min, max of `values`."""
    if not values:
        return MetricStats(count=0)
    ordered = sorted(values)
    n = len(ordered)
    mean = math.fsum(ordered) / n
    mean = min(max(mean, ordered[0]), ordered[-1])  # float rounding never leaves [min, max]
    return MetricStats(
        count=n,
        mean=mean,
        median=float(median(ordered)),
        p90=ordered[math.ceil(0.9 * n) - 1],
        min=ordered[0],
        max=ordered[-1],
    )


def attainment(incidents: Iterable[Incident], metric: SlaMetric, met: MetCallable) -> Attainment:
    """Met / missed / excluded counts of one SLA metric over the unmerged incidents."""
    hit = miss = skip = 0
    for incident in incidents:
        if incident.merged_into is not None:
            continue
        outcome = met(incident, metric)
        if outcome is None:
            skip += 1
        elif outcome:
            hit += 1
        else:
            miss += 1
    return Attainment(met=hit, missed=miss, excluded=skip)


def period_start(at: datetime, period: Period) -> date:
    """The first UTC day of the day / ISO week (Monday) / month containing `at`."""
    if at.tzinfo is None:
        raise ValueError(f"time {at.isoformat()} must be timezone-aware")
    day = at.astimezone(UTC).date()
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _group_key(
    incident: Incident, group_by: GroupBy, period: Period, tier_of: Callable[[TenantId], str] | None
) -> str:
    if group_by == "tenant":
        return incident.tenant_id
    if group_by == "tier":
        if tier_of is None:
            raise ValueError("group_by='tier' needs tier_of(tenant_id) -> service tier name")
        return tier_of(incident.tenant_id)
    if group_by == "analyst":
        return incident.acknowledged_by or incident.assignee or "unassigned"
    return period_start(incident.created_at, period).isoformat()


def _row(
    group_by: GroupBy | None, group: str | None, incidents: Sequence[Incident], met: MetCallable | None
) -> MetricRow:
    metrics: dict[MetricName, MetricStats] = {}
    for definition in METRICS:
        values = [v for i in incidents if (v := duration_seconds(i, definition.name)) is not None]
        metrics[definition.name] = stats(values)
    sla = {m: attainment(incidents, m, met) for m in SLA_METRICS} if met is not None else {}
    return MetricRow(
        group_by=group_by,
        group=group,
        incidents=sum(1 for i in incidents if i.merged_into is None),
        metrics=MappingProxyType(metrics),
        sla=MappingProxyType(sla),
    )


def compute(
    incidents: Iterable[Incident],
    group_by: GroupBy | None = None,
    period: Period = "month",
    tier_of: Callable[[TenantId], str] | None = None,
    met: MetCallable | None = None,
) -> list[MetricRow]:
    """One `MetricRow` per group (sorted by group key), or one overall row when `group_by` is None.

    Groups with only merged incidents still get a row (with zero counts). Without `met`, `sla` is empty.
    """
    listed = list(incidents)
    if group_by is None:
        return [_row(None, None, listed, met)]
    groups: dict[str, list[Incident]] = defaultdict(list)
    for incident in listed:
        groups[_group_key(incident, group_by, period, tier_of)].append(incident)
    return [_row(group_by, key, groups[key], met) for key in sorted(groups)]
