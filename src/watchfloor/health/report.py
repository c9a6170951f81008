"""What an operator sees for one tenant: each source's last event, age, last hour against its baseline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from watchfloor.core.types import TenantId
from watchfloor.health.checker import DEFAULT_SETTLE_MINUTES, evaluated_hour
from watchfloor.health.model import HOUR, Baseline, hour_start
from watchfloor.storage.health import SourceHealthRepository, SourceStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceReport:
    """One row of `watchfloor health status`.

    `hour` is the evaluated hour (the last UTC hour that ended at least the settle time ago),
    `events_hour` its events and `expected_hour` that hour of the week's baseline (None: not learnt yet);
    `events_current_hour` counts the hour in progress so far (as of the last flush).
    """

    tenant_id: TenantId
    source: str
    status: SourceStatus
    status_since: datetime
    first_seen: datetime
    last_seen: datetime
    age: timedelta
    events_total: int
    hour: datetime
    events_hour: int
    expected_hour: float | None
    baseline_weeks: int
    events_current_hour: int

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "source": self.source,
            "status": self.status,
            "status_since": self.status_since.isoformat(),
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "age_seconds": int(self.age.total_seconds()),
            "events_total": self.events_total,
            "hour": self.hour.isoformat(),
            "events_hour": self.events_hour,
            "expected_hour": None if self.expected_hour is None else round(self.expected_hour, 2),
            "baseline_weeks": self.baseline_weeks,
            "events_current_hour": self.events_current_hour,
        }


def tenant_report(
    repo: SourceHealthRepository,
    tenant_id: TenantId,
    now: datetime,
    *,
    settle_minutes: int = DEFAULT_SETTLE_MINUTES,
) -> list[SourceReport]:
    """Every source of the tenant (retired ones included), by name."""
    hour = evaluated_hour(now, settle_minutes)
    current = hour_start(now)
    counts = {(v.source, v.hour): v.events for v in repo.volume(tenant_id, since=hour, until=current + HOUR)}
    reports: list[SourceReport] = []
    for row in repo.list(tenant_id):
        baseline = Baseline.from_json(row.baseline)
        reports.append(
            SourceReport(
                tenant_id=tenant_id,
                source=row.source,
                status=row.status,
                status_since=row.status_since,
                first_seen=row.first_seen,
                last_seen=row.last_seen,
                age=max(now - row.last_seen, timedelta(0)),
                events_total=row.events_total,
                hour=hour,
                events_hour=counts.get((row.source, hour), 0),
                expected_hour=baseline.expected(hour),
                baseline_weeks=baseline.samples(hour),
                events_current_hour=counts.get((row.source, current), 0),
            )
        )
    return reports


def format_age(age: timedelta) -> str:
    """`45s`, `12m`, `3h05m`, `2d04h`."""
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
