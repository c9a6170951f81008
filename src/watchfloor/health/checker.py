"""`HealthChecker`: turns stored last-seen times and hourly volumes into source statuses and alerts.

Rules, in order, for each source that is not retired, of each tenant passed in (retired tenants are not):

1. **silent**: no event for more than the tier's `silent_after_minutes` -> status `silent`, alert `silent`
   opened (a `low_volume` alert open at that moment is closed).
2. A `silent` source with a recent event again -> `ok`, its alert closed and a `recovered` row recorded.
3. **low volume**: the evaluated hour (the last UTC hour that ended at least `settle_minutes` ago) had fewer
   events than `low_volume_ratio` x that hour-of-week's baseline, the baseline being trustworthy (see
   `TierThresholds.is_low`) -> `low_volume`, alert `low_volume` opened. Only judged when the source held
   its current status for the whole evaluated hour (not in its first hour, not right after an outage), or is
   already `low_volume`.
4. A `low_volume` source whose evaluated hour is no longer low -> `ok`, alert closed, `recovered` recorded.

Every change is one transaction (status, alerts, audit entry by actor `health-checker`) made with
compare-and-set on the previous status, so `check` is idempotent: a second run, or a second checker running
at the same time, opens nothing twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from watchfloor.core.types import TenantId
from watchfloor.health.model import HOUR, Baseline, HealthThresholds, TierThresholds, hour_start
from watchfloor.storage.health import (
    AlertKind,
    HealthAlert,
    SourceHealth,
    SourceHealthRepository,
    SourceStatus,
)

log = logging.getLogger(__name__)

CHECKER_ACTOR: Final = "health-checker"
DEFAULT_SETTLE_MINUTES: Final = 5
DEFAULT_RETENTION_DAYS: Final = 35


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthChange:
    """One status change `check` made, with the alert rows it wrote (closed, recovered, opened)."""

    tenant_id: TenantId
    source: str
    previous: SourceStatus
    status: SourceStatus
    at: datetime
    tier: str
    last_seen: datetime
    reason: str
    alerts: tuple[HealthAlert, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "source": self.source,
            "from": self.previous,
            "to": self.status,
            "at": self.at.isoformat(),
            "tier": self.tier,
            "last_seen": self.last_seen.isoformat(),
            "reason": self.reason,
            "alert_ids": [alert.id for alert in self.alerts],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    """What a source's status should be now, and why (a sentence for the operator) plus details."""

    status: SourceStatus
    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def evaluated_hour(now: datetime, settle_minutes: int = DEFAULT_SETTLE_MINUTES) -> datetime:
    """The hour low volume is judged on: the last UTC hour that ended at least `settle_minutes` ago."""
    return hour_start(now - timedelta(minutes=settle_minutes)) - HOUR


def assess(
    row: SourceHealth,
    thresholds: TierThresholds,
    *,
    now: datetime,
    hour: datetime,
    events_in_hour: int,
) -> Assessment:
    """The status `row` should have at `now` (rules 1-4 of the module docstring). Pure."""
    age = now - row.last_seen
    if thresholds.is_silent(row.last_seen, now):
        minutes = int(age.total_seconds() // 60)
        return Assessment(
            status="silent",
            reason=f"no events for {minutes} min (tier threshold {thresholds.silent_after_minutes} min)",
            detail={
                "last_seen": row.last_seen.isoformat(),
                "silent_minutes": minutes,
                "silent_after_minutes": thresholds.silent_after_minutes,
            },
        )
    if row.status == "silent":
        return Assessment(
            status="ok",
            reason=f"events again (last {row.last_seen.isoformat()})",
            detail={"after": "silent", "silent_since": row.status_since.isoformat()},
        )
    baseline = Baseline.from_json(row.baseline)
    judged = row.status == "low_volume" or row.status_since <= hour
    if judged and thresholds.is_low(events_in_hour, baseline, hour):
        expected = baseline.expected(hour) or 0.0
        return Assessment(
            status="low_volume",
            reason=(
                f"{events_in_hour} events in {hour:%a %H:00} UTC, expected about {expected:.0f} "
                f"(below {thresholds.low_volume_ratio:.0%})"
            ),
            detail={
                "hour": hour.isoformat(),
                "events": events_in_hour,
                "expected": round(expected, 2),
                "low_volume_ratio": thresholds.low_volume_ratio,
            },
        )
    if row.status == "low_volume":
        learnt = baseline.expected(hour)
        return Assessment(
            status="ok",
            reason=f"{events_in_hour} events in {hour:%a %H:00} UTC, volume back to normal",
            detail={
                "after": "low_volume",
                "hour": hour.isoformat(),
                "events": events_in_hour,
                "expected": None if learnt is None else round(learnt, 2),
            },
        )
    return Assessment(status=row.status, reason="")


class HealthChecker:
    """Checks every source of the tenants it is given; records status changes and alerts."""

    __slots__ = ("_pruned_through", "repo", "retention_days", "settle_minutes", "thresholds")

    def __init__(
        self,
        repo: SourceHealthRepository,
        thresholds: HealthThresholds | None = None,
        *,
        settle_minutes: int = DEFAULT_SETTLE_MINUTES,
        retention_days: int = DEFAULT_RETENTION_DAYS,
    ) -> None:
        if settle_minutes < 0 or retention_days < 1:
            msg = "settle_minutes must be >= 0 and retention_days >= 1"
            raise ValueError(msg)
        self.repo = repo
        self.thresholds = thresholds or HealthThresholds()
        self.settle_minutes = settle_minutes
        self.retention_days = retention_days
        self._pruned_through: datetime | None = None

    def check(self, now: datetime, tenants_with_tiers: Mapping[TenantId, str]) -> list[HealthChange]:
        """Check the sources of the tenants in `tenants_with_tiers` (tenant -> service tier; pass active
        tenants only: sources of tenants not in it are ignored). Returns the changes made, by tenant and
        source. Also deletes hourly volume older than `retention_days`, once an hour per checker."""
        hour = evaluated_hour(now, self.settle_minutes)
        rows: dict[TenantId, list[SourceHealth]] = defaultdict(list)
        for row in self.repo.list_all_for_check():
            if row.tenant_id in tenants_with_tiers:
                rows[row.tenant_id].append(row)
        changes: list[HealthChange] = []
        for tenant, sources in sorted(rows.items()):
            tier = tenants_with_tiers[tenant]
            thresholds = self.thresholds.for_tier(tier)
            volume = {v.source: v.events for v in self.repo.volume(tenant, since=hour, until=hour + HOUR)}
            for row in sources:
                verdict = assess(
                    row, thresholds, now=now, hour=hour, events_in_hour=volume.get(row.source, 0)
                )
                if verdict.status == row.status:
                    continue
                change = self._apply(row, verdict, now=now, tier=tier)
                if change is not None:
                    changes.append(change)
        self._prune(now, tenants_with_tiers)
        return changes

    def _apply(
        self, row: SourceHealth, verdict: Assessment, *, now: datetime, tier: str
    ) -> HealthChange | None:
        open_alert: AlertKind | None = None
        if verdict.status in {"silent", "low_volume"}:
            open_alert = "silent" if verdict.status == "silent" else "low_volume"
        written = self.repo.change_status(
            row.tenant_id,
            row.source,
            expected=row.status,
            status=verdict.status,
            at=now,
            actor=CHECKER_ACTOR,
            open_alert=open_alert,
            recovered=verdict.status == "ok",
            detail={"tier": tier, "reason": verdict.reason, **verdict.detail},
        )
        if written is None:  # another checker changed it first
            return None
        log.info(
            "telemetry health: tenant=%s source=%s %s -> %s: %s",
            row.tenant_id,
            row.source,
            row.status,
            verdict.status,
            verdict.reason,
        )
        return HealthChange(
            tenant_id=row.tenant_id,
            source=row.source,
            previous=row.status,
            status=verdict.status,
            at=now,
            tier=tier,
            last_seen=row.last_seen,
            reason=verdict.reason,
            alerts=tuple(written),
        )

    def _prune(self, now: datetime, tenants: Mapping[TenantId, str]) -> None:
        current = hour_start(now)
        if self._pruned_through == current:
            return
        before = current - timedelta(days=self.retention_days)
        for tenant in sorted(tenants):
            try:
                self.repo.prune_volume(tenant, before=before)
            except Exception:
                log.exception("telemetry health: hourly volume of tenant %r not pruned", tenant)
                return
        self._pruned_through = current
