"""`HealthChecker` on the system of record: silent -> alert -> recovered, low volume, tiers, retirement,
idempotence and tenant isolation. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.health.conftest import ACTOR, MONDAY
from watchfloor.core.types import TenantId
from watchfloor.health import Baseline, HealthChecker, HealthThresholds, HealthTracker
from watchfloor.health.checker import CHECKER_ACTOR, evaluated_hour
from watchfloor.health.model import HOUR
from watchfloor.storage import Database, NotFoundError, TenantRetiredError

SEC = "windows/security"
OKTA = "okta/okta"


def seen(db: Database, tenant: TenantId, source: str, at: datetime, events: int = 1) -> None:
    tracker = HealthTracker(started_at=at)
    for i in range(events):
        tracker.observe(tenant, source, at + timedelta(microseconds=i))
    tracker.flush(db.health, at)


def tiers(db: Database) -> dict[TenantId, str]:
    return {t.id: t.tier for t in db.tenants.list()}


def test_silent_alert_then_recovered(db: Database, tenant_clinic: TenantId) -> None:
    checker = HealthChecker(db.health)
    seen(db, tenant_clinic, SEC, MONDAY)
    assert checker.check(MONDAY + timedelta(minutes=120), tiers(db)) == []  # standard: 120 min is still ok

    silent_at = MONDAY + timedelta(minutes=121)
    [change] = checker.check(silent_at, tiers(db))
    assert (change.source, change.previous, change.status, change.tier) == (SEC, "ok", "silent", "standard")
    assert "no events for 121 min" in change.reason
    [alert] = db.health.alerts(tenant_clinic, open_only=True)
    assert (alert.kind, alert.opened_at, alert.closed_at) == ("silent", silent_at, None)
    assert alert.detail["silent_after_minutes"] == 120
    assert db.health.get(tenant_clinic, SEC).status == "silent"  # type: ignore[union-attr]

    back = MONDAY + timedelta(hours=5)
    seen(db, tenant_clinic, SEC, back)
    [recovery] = checker.check(back + timedelta(minutes=1), tiers(db))
    assert (recovery.previous, recovery.status) == ("silent", "ok")
    assert db.health.alerts(tenant_clinic, open_only=True) == []
    kinds = [(a.kind, a.closed_at) for a in db.health.alerts(tenant_clinic)]
    assert kinds == [("recovered", back + timedelta(minutes=1)), ("silent", back + timedelta(minutes=1))]
    audit = db.audit.list(tenant_clinic, action="health.status")
    assert [(e.actor, e.details["from"], e.details["to"]) for e in audit] == [
        (CHECKER_ACTOR, "silent", "ok"),
        (CHECKER_ACTOR, "ok", "silent"),
    ]


def test_checking_twice_changes_nothing_twice(db: Database, tenant_clinic: TenantId) -> None:
    seen(db, tenant_clinic, SEC, MONDAY)
    now = MONDAY + timedelta(hours=3)
    assert len(HealthChecker(db.health).check(now, tiers(db))) == 1
    assert HealthChecker(db.health).check(now, tiers(db)) == []
    assert HealthChecker(db.health).check(now + timedelta(hours=5), tiers(db)) == []
    assert len(db.health.alerts(tenant_clinic)) == 1
    assert len(db.audit.list(tenant_clinic, action="health.status")) == 1


def test_a_checker_that_lost_the_race_writes_nothing(db: Database, tenant_clinic: TenantId) -> None:
    seen(db, tenant_clinic, SEC, MONDAY)
    at = MONDAY + timedelta(hours=3)
    first = db.health.change_status(
        tenant_clinic, SEC, expected="ok", status="silent", at=at, actor=CHECKER_ACTOR, open_alert="silent"
    )
    again = db.health.change_status(
        tenant_clinic, SEC, expected="ok", status="silent", at=at, actor=CHECKER_ACTOR, open_alert="silent"
    )
    assert first is not None
    assert again is None
    assert len(db.health.alerts(tenant_clinic)) == 1


def test_tiers_have_their_own_thresholds(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId
) -> None:
    seen(db, tenant_clinic, SEC, MONDAY)  # standard: 120 min
    seen(db, tenant_lawfirm, SEC, MONDAY)  # premium: 60 min
    changes = HealthChecker(db.health).check(MONDAY + timedelta(minutes=61), tiers(db))
    assert [(c.tenant_id, c.status) for c in changes] == [(tenant_lawfirm, "silent")]
    custom = HealthThresholds.from_mapping({"standard": {"silent_after_minutes": 30}})
    changes = HealthChecker(db.health, custom).check(MONDAY + timedelta(minutes=61), tiers(db))
    assert [(c.tenant_id, c.status) for c in changes] == [(tenant_clinic, "silent")]


def test_retired_tenants_are_ignored(db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId) -> None:
    seen(db, tenant_clinic, SEC, MONDAY)
    seen(db, tenant_lawfirm, SEC, MONDAY)
    everyone = tiers(db)
    db.tenants.retire(tenant_lawfirm, actor=ACTOR)
    changes = HealthChecker(db.health).check(MONDAY + timedelta(days=1), everyone)  # passed in by mistake
    assert [c.tenant_id for c in changes] == [tenant_clinic]
    assert db.health.alerts(tenant_lawfirm) == []


def test_a_retired_source_stops_alerting_and_can_come_back(db: Database, tenant_clinic: TenantId) -> None:
    checker = HealthChecker(db.health)
    seen(db, tenant_clinic, SEC, MONDAY)
    seen(db, tenant_clinic, OKTA, MONDAY)
    checker.check(MONDAY + timedelta(hours=3), tiers(db))
    assert len(db.health.alerts(tenant_clinic, open_only=True)) == 2

    retired = db.health.retire_source(tenant_clinic, SEC, actor=ACTOR)
    assert retired.status == "retired"
    assert [a.source for a in db.health.alerts(tenant_clinic, open_only=True)] == [OKTA]
    assert db.health.retire_source(tenant_clinic, SEC, actor=ACTOR).status == "retired"  # no-op
    entries = [e for e in db.audit.list(tenant_clinic, action="health.status") if e.object_id == SEC]
    assert [(e.actor, e.details["to"]) for e in entries] == [(ACTOR, "retired"), (CHECKER_ACTOR, "silent")]

    seen(db, tenant_clinic, SEC, MONDAY + timedelta(hours=4))  # the device is still counted ...
    assert checker.check(MONDAY + timedelta(days=2), tiers(db)) == []  # ... but never judged
    assert db.health.get(tenant_clinic, SEC).status == "retired"  # type: ignore[union-attr]

    assert db.health.restore_source(tenant_clinic, SEC, actor=ACTOR).status == "ok"
    [change] = checker.check(MONDAY + timedelta(days=2), tiers(db))
    assert (change.source, change.status) == (SEC, "silent")

    with pytest.raises(NotFoundError):
        db.health.retire_source(tenant_clinic, "never/seen", actor=ACTOR)
    db.tenants.retire(tenant_clinic, actor=ACTOR)
    with pytest.raises(TenantRetiredError):
        db.health.retire_source(tenant_clinic, OKTA, actor=ACTOR)


def test_sources_of_one_tenant_never_touch_another(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId
) -> None:
    seen(db, tenant_clinic, SEC, MONDAY)
    seen(db, tenant_lawfirm, SEC, MONDAY + timedelta(hours=3))
    [change] = HealthChecker(db.health).check(MONDAY + timedelta(hours=3), tiers(db))
    assert change.tenant_id == tenant_clinic
    assert db.health.get(tenant_lawfirm, SEC).status == "ok"  # type: ignore[union-attr]
    assert db.health.alerts(tenant_lawfirm) == []
    assert db.audit.list(tenant_lawfirm, action="health.status") == []


def _learn(db: Database, tenant: TenantId, source: str, hour: datetime, expected: float, weeks: int) -> None:
    baseline = Baseline().fold_many([(hour - timedelta(weeks=w + 1), round(expected)) for w in range(weeks)])
    row = db.health.get(tenant, source)
    assert row is not None
    assert db.health.update_baseline(
        tenant,
        source,
        baseline=baseline.to_json(),
        through=hour - HOUR,
        expected_through=row.baseline_through,
    )


def test_low_volume_against_the_same_hour_of_the_week(db: Database, tenant_lawfirm: TenantId) -> None:
    checker = HealthChecker(db.health)  # premium: low below 50% of a baseline of >= 20/hour over >= 2 weeks
    nine = MONDAY + 9 * HOUR
    seen(db, tenant_lawfirm, SEC, MONDAY + 8 * HOUR, events=100)
    seen(db, tenant_lawfirm, SEC, nine + timedelta(minutes=50), events=49)
    _learn(db, tenant_lawfirm, SEC, nine, expected=100, weeks=2)
    now = nine + timedelta(minutes=66)  # evaluated hour: 09:00 (ended 6 minutes ago)
    assert evaluated_hour(now) == nine
    [change] = checker.check(now, tiers(db))
    assert (change.previous, change.status) == ("ok", "low_volume")
    assert "49 events in Mon 09:00 UTC, expected about 100" in change.reason
    [alert] = db.health.alerts(tenant_lawfirm, open_only=True)
    assert (alert.kind, alert.detail["events"], alert.detail["expected"]) == ("low_volume", 49, 100)
    assert checker.check(now + timedelta(minutes=1), tiers(db)) == []

    # 10:00 has no baseline yet: nothing to judge on, so the source counts as normal again.
    seen(db, tenant_lawfirm, SEC, nine + timedelta(minutes=100))
    [recovered] = checker.check(nine + timedelta(minutes=126), tiers(db))
    assert (recovered.previous, recovered.status) == ("low_volume", "ok")
    assert [a.kind for a in db.health.alerts(tenant_lawfirm)] == ["recovered", "low_volume"]


def test_exactly_at_the_ratio_is_not_low(db: Database, tenant_lawfirm: TenantId) -> None:
    nine = MONDAY + 9 * HOUR
    seen(db, tenant_lawfirm, SEC, MONDAY + 8 * HOUR)
    seen(db, tenant_lawfirm, SEC, nine + timedelta(minutes=50), events=50)
    _learn(db, tenant_lawfirm, SEC, nine, expected=100, weeks=2)
    assert HealthChecker(db.health).check(nine + timedelta(minutes=66), tiers(db)) == []


def test_low_volume_escalates_to_silent(db: Database, tenant_lawfirm: TenantId) -> None:
    checker = HealthChecker(db.health)
    nine = MONDAY + 9 * HOUR
    seen(db, tenant_lawfirm, SEC, MONDAY + 8 * HOUR)
    seen(db, tenant_lawfirm, SEC, nine + timedelta(minutes=30), events=3)
    _learn(db, tenant_lawfirm, SEC, nine, expected=100, weeks=3)
    assert [c.status for c in checker.check(nine + timedelta(minutes=66), tiers(db))] == ["low_volume"]
    assert [c.status for c in checker.check(nine + timedelta(minutes=66 + 60), tiers(db))] == ["silent"]
    assert [(a.kind, a.closed_at is None) for a in db.health.alerts(tenant_lawfirm)] == [
        ("silent", True),
        ("low_volume", False),
    ]


def test_a_source_back_from_silence_is_not_called_low_in_its_first_hour(
    db: Database, tenant_lawfirm: TenantId
) -> None:
    checker = HealthChecker(db.health)
    nine = MONDAY + 9 * HOUR
    seen(db, tenant_lawfirm, SEC, MONDAY + 6 * HOUR)
    assert [c.status for c in checker.check(MONDAY + timedelta(hours=7, minutes=30), tiers(db))] == ["silent"]
    seen(db, tenant_lawfirm, SEC, nine + timedelta(minutes=58), events=2)
    _learn(db, tenant_lawfirm, SEC, nine, expected=100, weeks=2)
    now = nine + timedelta(minutes=66)
    assert [c.status for c in checker.check(now, tiers(db))] == ["ok"]
    assert checker.check(now + timedelta(minutes=1), tiers(db)) == []


def test_old_hourly_volume_is_pruned(db: Database, tenant_clinic: TenantId) -> None:
    seen(db, tenant_clinic, SEC, MONDAY)
    seen(db, tenant_clinic, SEC, MONDAY + timedelta(days=30))
    HealthChecker(db.health, retention_days=35).check(MONDAY + timedelta(days=35, minutes=30), tiers(db))
    assert len(db.health.volume(tenant_clinic, since=MONDAY - timedelta(days=1))) == 2
    HealthChecker(db.health, retention_days=35).check(MONDAY + timedelta(days=35, hours=1), tiers(db))
    assert [v.hour for v in db.health.volume(tenant_clinic, since=MONDAY - timedelta(days=1))] == [
        MONDAY + timedelta(days=30)
    ]
