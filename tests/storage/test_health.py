"""Telemetry health repository and migration 0002, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect, text

from tests.storage.conftest import ACTOR, FakeClock
from watchfloor.core.types import TenantId
from watchfloor.storage import Database, NotFoundError
from watchfloor.storage.engine import create_store_engine, head_revision, migration_config
from watchfloor.storage.health import SourceObservation

HOUR = timedelta(hours=1)
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SEC = "windows/security"


def obs(source: str, *times: datetime) -> SourceObservation:
    hours: dict[datetime, int] = {}
    for at in times:
        start = at.replace(minute=0, second=0, microsecond=0)
        hours[start] = hours.get(start, 0) + 1
    return SourceObservation(source=source, first_seen=min(times), last_seen=max(times), hours=hours)


def test_migration_0002_applies_on_top_of_0001_with_data(empty_db_url: str) -> None:
    engine = create_store_engine(empty_db_url)
    try:
        with engine.begin() as connection:
            config = migration_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO tenants (id, name, vertical, tier, contacts, status, created_at, "
                    "updated_at) VALUES ('clinic', 'C', 'healthcare', 'standard', '[]', 'active', :t, :t)"
                ),
                {"t": T0.isoformat() if connection.dialect.name == "sqlite" else T0},
            )
            assert not inspect(connection).has_table("source_health")
    finally:
        engine.dispose()
    with Database.open(empty_db_url) as db:
        assert head_revision() == "0005"
        assert db.schema_revision() == "0005"
        assert db.tenants.get(TenantId("clinic")) is not None
        tables = set(inspect(db.engine).get_table_names())
        assert {"source_health", "source_volume", "health_alerts"} <= tables
        db.health.record(TenantId("clinic"), [obs(SEC, T0)])
        assert db.health.get(TenantId("clinic"), SEC) is not None


def test_migration_0002_downgrades_to_0001(empty_db_url: str) -> None:
    Database.open(empty_db_url).close()
    engine = create_store_engine(empty_db_url)
    try:
        with engine.begin() as connection:
            config = migration_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
        with engine.connect() as connection:
            assert not inspect(connection).has_table("health_alerts")
            assert inspect(connection).has_table("tenants")
    finally:
        engine.dispose()


def test_record_upserts_counts_and_widens_first_and_last_seen(db: Database, tenant_clinic: TenantId) -> None:
    assert (
        db.health.record(tenant_clinic, [obs(SEC, T0, T0 + timedelta(minutes=5)), obs("okta/okta", T0)]) == 3
    )
    assert db.health.record(tenant_clinic, [obs(SEC, T0 - timedelta(minutes=1), T0 + HOUR)]) == 2
    row = db.health.get(tenant_clinic, SEC)
    assert row is not None
    assert (row.first_seen, row.last_seen, row.events_total) == (T0 - timedelta(minutes=1), T0 + HOUR, 4)
    assert (row.status, row.status_since, row.baseline, row.baseline_through) == (
        "ok",
        T0,
        {},
        None,
    )
    assert [(v.source, v.hour, v.events) for v in db.health.volume(tenant_clinic, since=T0 - HOUR)] == [
        ("okta/okta", T0, 1),
        (SEC, T0 - HOUR, 1),
        (SEC, T0, 2),
        (SEC, T0 + HOUR, 1),
    ]
    assert [v.hour for v in db.health.volume(tenant_clinic, since=T0, until=T0 + HOUR, source=SEC)] == [T0]
    assert [s.source for s in db.health.list(tenant_clinic)] == ["okta/okta", SEC]
    assert db.health.record(tenant_clinic, []) == 0
    assert db.audit.list(tenant_clinic, action="health.status") == []  # counting is not a status change


def test_record_for_an_unknown_tenant_writes_nothing(db: Database) -> None:
    with pytest.raises(NotFoundError):
        db.health.record(TenantId("nobody"), [obs(SEC, T0)])


def test_late_events_of_a_retired_tenant_are_still_counted(db: Database, tenant_clinic: TenantId) -> None:
    db.tenants.retire(tenant_clinic, actor=ACTOR)
    assert db.health.record(tenant_clinic, [obs(SEC, T0)]) == 1
    assert db.health.list_all_for_check() == []


def test_baseline_updates_are_compare_and_set(db: Database, tenant_clinic: TenantId) -> None:
    db.health.record(tenant_clinic, [obs(SEC, T0)])
    doc = {"version": 1, "means": [None] * 168, "weeks": [0] * 168, "alpha": 0.3}
    assert db.health.update_baseline(tenant_clinic, SEC, baseline=doc, through=T0, expected_through=None)
    assert not db.health.update_baseline(tenant_clinic, SEC, baseline={}, through=T0, expected_through=None)
    assert db.health.update_baseline(tenant_clinic, SEC, baseline=doc, through=T0 + HOUR, expected_through=T0)
    row = db.health.get(tenant_clinic, SEC)
    assert row is not None
    assert (row.baseline, row.baseline_through) == (doc, T0 + HOUR)


def test_a_status_change_writes_alerts_and_audit_in_one_go(
    db: Database, tenant_clinic: TenantId, clock: FakeClock
) -> None:
    db.health.record(tenant_clinic, [obs(SEC, T0)])
    at = T0 + 3 * HOUR
    opened = db.health.change_status(
        tenant_clinic,
        SEC,
        expected="ok",
        status="silent",
        at=at,
        actor="health-checker",
        open_alert="silent",
        detail={"reason": "quiet"},
    )
    assert opened is not None
    assert [(a.kind, a.opened_at, a.closed_at, a.open) for a in opened] == [("silent", at, None, True)]
    closed = db.health.change_status(
        tenant_clinic,
        SEC,
        expected="silent",
        status="ok",
        at=at + HOUR,
        actor="health-checker",
        recovered=True,
    )
    assert closed is not None
    assert [(a.kind, a.closed_at) for a in closed] == [("silent", at + HOUR), ("recovered", at + HOUR)]
    [entry, first] = db.audit.list(tenant_clinic, action="health.status")
    assert (first.object_type, first.object_id, first.details["reason"]) == ("source", SEC, "quiet")
    assert entry.details["alert_ids"] == [a.id for a in closed]
    with pytest.raises(ValueError, match="can be opened"):
        db.health.change_status(
            tenant_clinic, SEC, expected="ok", status="ok", at=at, actor="x", open_alert="recovered"
        )
    assert clock.now == T0


def test_every_call_is_scoped_to_its_tenant(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId
) -> None:
    db.health.record(tenant_clinic, [obs(SEC, T0)])
    db.health.change_status(
        tenant_clinic, SEC, expected="ok", status="silent", at=T0 + HOUR, actor="c", open_alert="silent"
    )
    firm = tenant_lawfirm
    assert db.health.get(firm, SEC) is None
    assert db.health.list(firm) == []
    assert db.health.volume(firm, since=T0 - HOUR) == []
    assert db.health.alerts(firm) == []
    assert db.health.change_status(firm, SEC, expected="silent", status="ok", at=T0, actor="c") is None
    assert not db.health.update_baseline(firm, SEC, baseline={}, through=T0, expected_through=None)
    assert db.health.prune_volume(firm, before=T0 + 10 * HOUR) == 0
    with pytest.raises(NotFoundError):
        db.health.retire_source(firm, SEC, actor=ACTOR)
    assert db.health.get(tenant_clinic, SEC).status == "silent"  # type: ignore[union-attr]
    assert len(db.health.volume(tenant_clinic, since=T0)) == 1
    assert [(s.tenant_id, s.source) for s in db.health.list_all_for_check()] == [(tenant_clinic, SEC)]


def test_list_all_for_check_skips_retired_tenants_and_sources(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId
) -> None:
    for tenant in (tenant_clinic, tenant_lawfirm):
        db.health.record(tenant, [obs(SEC, T0), obs("okta/okta", T0)])
    db.health.retire_source(tenant_clinic, "okta/okta", actor=ACTOR)
    db.tenants.retire(tenant_lawfirm, actor=ACTOR)
    assert [(s.tenant_id, s.source) for s in db.health.list_all_for_check()] == [(tenant_clinic, SEC)]
    assert [s.source for s in db.health.list(tenant_clinic, include_retired=False)] == [SEC]


def test_prune_deletes_old_hours_only(db: Database, tenant_clinic: TenantId) -> None:
    db.health.record(tenant_clinic, [obs(SEC, T0 - timedelta(days=40), T0 - timedelta(days=2), T0)])
    assert db.health.prune_volume(tenant_clinic, before=T0 - timedelta(days=35)) == 1
    assert len(db.health.volume(tenant_clinic, since=T0 - timedelta(days=100))) == 2
    assert db.health.get(tenant_clinic, SEC).events_total == 3  # type: ignore[union-attr]
