"""Shared worlds for the triage-stage, case-service and SOC-scenario tests (a plain module, not a conftest).

Every test here runs on SQLite and PostgreSQL: the test modules import `db_url` and `pg_template` from
`tests/storage/conftest.py` (a fresh copy of a migrated template per PostgreSQL test); `pg_server` comes from
`tests/server/conftest.py` (one private cluster per xdist worker).

Helpers:
- `Rule` and `detection(...)` write detections the way the detection stage stores them;
- `ingest(db, clock, at, items)` stores detections 30 s before `at`, one by one so their ids follow the
  list's order, and moves the clock to `at`, so a `TriageWorker` run at `at` (lag 0) sees them:
  `stored_at` must be strictly before the run's lag horizon;
- `open_incident(...)` stores an incident directly (for case-service tests that need exact SLA clocks);
- `ROSTER` / `TIERS`: the shipped example roster and service catalog.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.storage.conftest import FakeClock
from watchfloor.cases.models import SYSTEM, Incident, TimelineEntry
from watchfloor.cases.soc import load_roster
from watchfloor.cases.tiers import load_tiers
from watchfloor.core.types import RuleId, RuleLevel, Severity, TenantId
from watchfloor.storage import Contact, Database, NewDetection
from watchfloor.storage.incidents import Change
from watchfloor.triage.models import Entity, RiskScore

ACTOR = "onboarding@mssp.test"
ROSTER = load_roster(Path(__file__).resolve().parents[2] / "content" / "soc" / "roster.example.yml")
TIERS = load_tiers()

_keys = itertools.count(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    id: str
    level: RuleLevel
    tags: tuple[str, ...] = ()
    title: str = ""

    @property
    def name(self) -> str:
        return self.title or self.id


def detection(rule: Rule, event_time: datetime, event: Mapping[str, Any]) -> NewDetection:
    """A stored-detection row for `rule` matching `event` (a nested ECS document) at `event_time`."""
    number = next(_keys)
    return NewDetection(
        rule_id=RuleId(rule.id),
        rule_version="1",
        rule_title=rule.name,
        rule_level=rule.level,
        event_key=f"test#{number}",
        source="test",
        record_id=str(number),
        event_time=event_time,
        matched_at=event_time + timedelta(seconds=5),
        event=dict(event),
        tags=rule.tags,
    )


def ingest(
    db: Database, clock: FakeClock, at: datetime, items: Sequence[tuple[TenantId, NewDetection]]
) -> datetime:
    """Store `items` at `at - 30 s` (their `stored_at`), then set the clock to `at`; returns `at`."""
    clock.now = at - timedelta(seconds=30)
    for tenant, row in items:  # one by one: ids follow the stream's order (a batch is stored sorted by rule)
        db.detections.insert_many(tenant, [row])
    clock.now = at
    return at


def host_event(host: str, user: str | None = None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"host": {"name": host}}
    if user is not None:
        event["user"] = {"name": user}
    event.update(extra)
    return event


def make_tenant(
    db: Database,
    tenant: str,
    *,
    tier: str,
    vertical: str = "other",
    contacts: Sequence[Contact] = (),
) -> TenantId:
    return db.tenants.create(
        tenant, name=tenant.title(), vertical=vertical, tier=tier, contacts=contacts, actor=ACTOR
    ).id


def open_incident(
    db: Database,
    tenant: TenantId,
    incident_id: str,
    *,
    severity: Severity,
    created_at: datetime,
    entities: tuple[Entity, ...] = (),
    techniques: tuple[str, ...] = (),
    tactics: tuple[str, ...] = (),
    assignee: str | None = None,
) -> Incident:
    """Store a `new` incident opened at `created_at` (with its `created` timeline entry)."""
    incident = Incident(
        id=incident_id,
        tenant_id=tenant,
        title=f"test incident {incident_id}",
        state="new",
        severity=severity,
        risk=RiskScore(score=50),
        created_at=created_at,
        updated_at=created_at,
        first_event_at=created_at - timedelta(minutes=2),
        entities=entities,
        techniques=techniques,
        tactics=tactics,
        assignee=assignee,
    )
    entry = TimelineEntry(
        incident_id=incident_id,
        tenant_id=tenant,
        at=created_at,
        actor=SYSTEM.id,
        kind="created",
        summary=f"test incident {incident_id} opened",
    )
    return db.incidents.create(Change(incident=incident, timeline=(entry,)), actor=SYSTEM.id)


@contextmanager
def opened(db_url: str, clock: FakeClock) -> Iterator[Database]:
    database = Database.open(db_url, clock=clock)
    try:
        yield database
    finally:
        database.close()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
