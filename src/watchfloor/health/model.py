"""Telemetry health: the pure parts. Source names, hour arithmetic, the weekly baseline, tier thresholds.

Everything here is a function of its arguments (no clock, no database), so it is tested with Hypothesis.

Time: every hour is a UTC hour, truncated (`hour_start`). The hour of the week is
`weekday * 24 + hour` in UTC, Monday 00:00-00:59 UTC being 0 and Sunday 23:00-23:59 UTC being 167. UTC has
no daylight saving time, so every week has exactly 168 buckets; a tenant whose traffic follows local
office hours sees its peak move by one bucket twice a year (the baseline re-learns it within weeks).

Baseline: per source and hour of the week, an exponentially weighted moving average over weeks
(`Baseline.fold`). With `x` the events counted in one completed hour and `b` the bucket's value:

    b' = x                      on the bucket's first observation
    b' = b + alpha * (x - b)    afterwards (= (1 - alpha) * b + alpha * x)

`alpha` = `EWMA_ALPHA` = 0.3: the last 4 weeks carry 1 - 0.7**4 = 76% of the weight. Each new value is a
convex combination of the previous one and the observation, so a bucket always lies between the smallest
and the largest value it has observed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

from watchfloor.normalize.model import SourceKey
from watchfloor.storage.schema import SOURCE_NAME_LENGTH

HOUR: Final = timedelta(hours=1)
HOURS_PER_WEEK: Final = 168
EWMA_ALPHA: Final = 0.3
SOURCE_NAME_MAX: Final = SOURCE_NAME_LENGTH
BASELINE_VERSION: Final = 1


# -- source names ----------------------------------------------------------------------------------
def source_name(key: SourceKey | None, envelope_source: str) -> str:
    """The name an operator recognises: the logsource `product/channel` (no event id: one Windows channel
    is one source), e.g. `windows/security`, `okta/okta`, `aws/cloudtrail`, `linux/auth`; for events no
    classifier recognised, the intake's own name (`syslog:udp:10.0.0.5`, `hec:ab12cd34`).

    Capped at `SOURCE_NAME_MAX` characters; an empty result becomes `unknown`.
    """
    if key is not None:
        name = f"{key.product}/{key.channel}" if key.channel else key.product
    else:
        name = envelope_source
    name = name.strip() or "unknown"
    return name[:SOURCE_NAME_MAX]


# -- hours -----------------------------------------------------------------------------------------
def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        msg = f"naive datetime {at.isoformat()}: telemetry health needs timezone-aware datetimes"
        raise ValueError(msg)
    return at.astimezone(UTC)


def hour_start(at: datetime) -> datetime:
    """The UTC hour `at` falls in, e.g. 09:59:59.999 -> 09:00 UTC. Naive datetimes raise."""
    return _utc(at).replace(minute=0, second=0, microsecond=0)


def hour_of_week(hour: datetime) -> int:
    """0 (Monday 00:00 UTC) .. 167 (Sunday 23:00 UTC)."""
    utc = _utc(hour)
    return utc.weekday() * 24 + utc.hour


def epoch_hour(at: datetime) -> int:
    """Whole hours since 1970-01-01 00:00 UTC (the tracker's cheap bucket key)."""
    return math.floor(_utc(at).timestamp() / 3600)


def from_epoch_hour(number: int) -> datetime:
    return datetime.fromtimestamp(number * 3600, tz=UTC)


# -- baseline --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Baseline:
    """Expected events per hour for each of the 168 hours of the week (None: not observed yet), and how
    many weeks fed each bucket. Stored as JSON (`to_json` / `from_json`)."""

    means: tuple[float | None, ...] = (None,) * HOURS_PER_WEEK
    weeks: tuple[int, ...] = (0,) * HOURS_PER_WEEK
    alpha: float = EWMA_ALPHA

    def __post_init__(self) -> None:
        if len(self.means) != HOURS_PER_WEEK or len(self.weeks) != HOURS_PER_WEEK:
            msg = f"a baseline has {HOURS_PER_WEEK} hours of the week"
            raise ValueError(msg)
        if not 0.0 < self.alpha <= 1.0:
            msg = f"EWMA alpha must be in (0, 1], got {self.alpha}"
            raise ValueError(msg)

    def expected(self, hour: datetime) -> float | None:
        """The expected events for the hour of the week `hour` falls in (None: never observed)."""
        return self.means[hour_of_week(hour)]

    def samples(self, hour: datetime) -> int:
        return self.weeks[hour_of_week(hour)]

    def fold(self, hour: datetime, events: int) -> Baseline:
        """The baseline after observing `events` in the completed hour `hour` (see the module docstring)."""
        if events < 0:
            msg = f"an hour cannot have {events} events"
            raise ValueError(msg)
        index = hour_of_week(hour)
        previous = self.means[index]
        value = float(events) if previous is None else previous + self.alpha * (events - previous)
        means = list(self.means)
        weeks = list(self.weeks)
        means[index] = value
        weeks[index] += 1
        return Baseline(tuple(means), tuple(weeks), self.alpha)

    def fold_many(self, hours: Sequence[tuple[datetime, int]]) -> Baseline:
        baseline = self
        for hour, events in hours:
            baseline = baseline.fold(hour, events)
        return baseline

    def to_json(self) -> dict[str, Any]:
        return {
            "version": BASELINE_VERSION,
            "alpha": self.alpha,
            "means": [None if m is None else round(m, 4) for m in self.means],
            "weeks": list(self.weeks),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Baseline:
        """A stored baseline; an empty, missing or other-version document is an empty baseline."""
        if not data or data.get("version") != BASELINE_VERSION:
            return cls()
        means = tuple(None if m is None else float(m) for m in data["means"])
        weeks = tuple(int(w) for w in data["weeks"])
        return cls(means, weeks, float(data.get("alpha", EWMA_ALPHA)))


# -- thresholds ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class TierThresholds:
    """When a source of a tenant of one service tier is silent or low on volume.

    - silent: no event for more than `silent_after_minutes` (exactly at the threshold is still ok);
    - low volume: the last completed hour had fewer than `low_volume_ratio` x the baseline of that hour of
      the week, and the baseline is trustworthy: at least `min_baseline_events_per_hour` expected and
      learnt over at least `min_baseline_weeks` weeks. Zero disables the low-volume check.
    """

    silent_after_minutes: int
    low_volume_ratio: float
    min_baseline_events_per_hour: float = 20.0
    min_baseline_weeks: int = 2

    def __post_init__(self) -> None:
        if self.silent_after_minutes < 1:
            msg = f"silent_after_minutes must be at least 1, got {self.silent_after_minutes}"
            raise ValueError(msg)
        if not 0.0 <= self.low_volume_ratio < 1.0:
            msg = f"low_volume_ratio must be in [0, 1), got {self.low_volume_ratio}"
            raise ValueError(msg)
        if self.min_baseline_events_per_hour < 0 or self.min_baseline_weeks < 1:
            msg = "min_baseline_events_per_hour must be >= 0 and min_baseline_weeks >= 1"
            raise ValueError(msg)

    @property
    def silent_after(self) -> timedelta:
        return timedelta(minutes=self.silent_after_minutes)

    def is_silent(self, last_seen: datetime, now: datetime) -> bool:
        return _utc(now) - _utc(last_seen) > self.silent_after

    def is_low(self, events: int, baseline: Baseline, hour: datetime) -> bool:
        """True when `events` in `hour` is below the ratio of a trustworthy baseline."""
        expected = baseline.expected(hour)
        if self.low_volume_ratio == 0.0 or expected is None:
            return False
        if expected < self.min_baseline_events_per_hour or baseline.samples(hour) < self.min_baseline_weeks:
            return False
        return events < self.low_volume_ratio * expected


DEFAULT_TIER_THRESHOLDS: Final[Mapping[str, TierThresholds]] = MappingProxyType(
    {
        "essentials": TierThresholds(silent_after_minutes=240, low_volume_ratio=0.2),
        "standard": TierThresholds(silent_after_minutes=120, low_volume_ratio=0.3),
        "premium": TierThresholds(silent_after_minutes=60, low_volume_ratio=0.5),
    }
)
DEFAULT_TIER: Final = "standard"


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthThresholds:
    """Thresholds per service tier; a tier not listed uses `default_tier`'s."""

    tiers: Mapping[str, TierThresholds] = field(default_factory=lambda: dict(DEFAULT_TIER_THRESHOLDS))
    default_tier: str = DEFAULT_TIER

    def __post_init__(self) -> None:
        if self.default_tier not in self.tiers:
            msg = f"default tier {self.default_tier!r} has no thresholds (tiers: {', '.join(self.tiers)})"
            raise ValueError(msg)

    def for_tier(self, tier: str) -> TierThresholds:
        return self.tiers.get(tier) or self.tiers[self.default_tier]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> HealthThresholds:
        """From configuration: `{tier: {silent_after_minutes: 60, low_volume_ratio: 0.5, ...}}`, merged over
        the defaults (a tier given in part keeps the other defaults of that tier, or of `standard`)."""
        tiers = dict(DEFAULT_TIER_THRESHOLDS)
        default_tier = str(data.get("default_tier", DEFAULT_TIER))
        for tier, values in data.items():
            if tier == "default_tier":
                continue
            if not isinstance(values, Mapping):
                msg = f"health thresholds for tier {tier!r} must be a mapping"
                raise TypeError(msg)
            unknown = set(values) - set(TierThresholds.__dataclass_fields__)
            if unknown:
                msg = f"tier {tier!r}: unknown threshold settings {sorted(unknown)}"
                raise ValueError(msg)
            base = tiers.get(str(tier)) or tiers[DEFAULT_TIER]
            tiers[str(tier)] = TierThresholds(
                silent_after_minutes=int(values.get("silent_after_minutes", base.silent_after_minutes)),
                low_volume_ratio=float(values.get("low_volume_ratio", base.low_volume_ratio)),
                min_baseline_events_per_hour=float(
                    values.get("min_baseline_events_per_hour", base.min_baseline_events_per_hour)
                ),
                min_baseline_weeks=int(values.get("min_baseline_weeks", base.min_baseline_weeks)),
            )
        return cls(tiers=tiers, default_tier=default_tier)
