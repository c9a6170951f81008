"""Assets: hosts and users with a criticality, upserted, listed and deleted per tenant; changes audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.storage.conftest import ACTOR, FakeClock
from watchfloor.core.types import TenantId
from watchfloor.storage import Database, NotFoundError, TenantRetiredError


def test_upsert_creates_then_updates(db: Database, tenant_clinic: TenantId, clock: FakeClock) -> None:
    created = db.assets.upsert(
        tenant_clinic,
        kind="host",
        name="ehr-db01",
        criticality="critical",
        attributes={"os": "win"},
        actor=ACTOR,
    )
    assert (created.kind, created.name, created.criticality, dict(created.attributes)) == (
        "host",
        "ehr-db01",
        "critical",
        {"os": "win"},
    )
    later = clock.advance(timedelta(hours=1))
    updated = db.assets.upsert(tenant_clinic, kind="host", name="ehr-db01", criticality="high", actor=ACTOR)
    assert (updated.criticality, dict(updated.attributes)) == ("high", {})
    assert (updated.created_at, updated.updated_at) == (created.created_at, later)
    assert db.assets.get(tenant_clinic, "host", "ehr-db01") == updated


def test_an_upsert_that_changes_nothing_is_not_audited(db: Database, tenant_clinic: TenantId) -> None:
    first = db.assets.upsert(tenant_clinic, kind="user", name="dr.ruiz", criticality="high", actor=ACTOR)
    again = db.assets.upsert(tenant_clinic, kind="user", name="dr.ruiz", criticality="high", actor=ACTOR)
    assert again == first
    assert [e.action for e in db.audit.list(tenant_clinic, limit=2)] == ["asset.create", "tenant.create"]


def test_host_and_user_with_the_same_name_are_different_assets(db: Database, tenant_clinic: TenantId) -> None:
    db.assets.upsert(tenant_clinic, kind="host", name="reception", criticality="low", actor=ACTOR)
    db.assets.upsert(tenant_clinic, kind="user", name="reception", criticality="medium", actor=ACTOR)
    assert [(a.kind, a.criticality) for a in db.assets.list(tenant_clinic)] == [
        ("host", "low"),
        ("user", "medium"),
    ]


def test_list_filters_by_kind_and_criticality(db: Database, tenant_clinic: TenantId) -> None:
    for kind, name, level in [
        ("host", "ws-02", "low"),
        ("host", "ehr-db01", "critical"),
        ("user", "admin", "critical"),
        ("user", "frontdesk", "low"),
    ]:
        db.assets.upsert(tenant_clinic, kind=kind, name=name, criticality=level, actor=ACTOR)
    assert [a.name for a in db.assets.list(tenant_clinic)] == ["ehr-db01", "ws-02", "admin", "frontdesk"]
    assert [a.name for a in db.assets.list(tenant_clinic, kind="host")] == ["ehr-db01", "ws-02"]
    assert [a.name for a in db.assets.list(tenant_clinic, criticality="critical")] == ["ehr-db01", "admin"]
    assert [a.name for a in db.assets.list(tenant_clinic, kind="user", criticality="low")] == ["frontdesk"]


@pytest.mark.parametrize(("kind", "level"), [("server", "low"), ("host", "severe"), ("HOST", "low")])
def test_kind_and_criticality_are_validated(
    db: Database, tenant_clinic: TenantId, kind: str, level: str
) -> None:
    with pytest.raises(ValueError, match="unknown"):
        db.assets.upsert(tenant_clinic, kind=kind, name="x", criticality=level, actor=ACTOR)
    assert db.assets.list(tenant_clinic) == []


def test_delete_removes_one_asset(db: Database, tenant_clinic: TenantId) -> None:
    db.assets.upsert(tenant_clinic, kind="host", name="ws-01", criticality="low", actor=ACTOR)
    db.assets.upsert(tenant_clinic, kind="host", name="ws-02", criticality="low", actor=ACTOR)
    assert db.assets.delete(tenant_clinic, "host", "ws-01", actor=ACTOR)
    assert not db.assets.delete(tenant_clinic, "host", "ws-01", actor=ACTOR)
    assert db.assets.get(tenant_clinic, "host", "ws-01") is None
    assert [a.name for a in db.assets.list(tenant_clinic)] == ["ws-02"]


def test_asset_changes_are_audited(db: Database, tenant_clinic: TenantId) -> None:
    db.assets.upsert(tenant_clinic, kind="host", name="ws-01", criticality="low", actor=ACTOR)
    db.assets.upsert(tenant_clinic, kind="host", name="ws-01", criticality="high", actor="cmdb-sync")
    db.assets.delete(tenant_clinic, "host", "ws-01", actor=ACTOR)
    entries = db.audit.list(tenant_clinic, limit=3)
    assert [(e.action, e.actor, e.object_type, e.object_id) for e in entries] == [
        ("asset.delete", ACTOR, "host", "ws-01"),
        ("asset.update", "cmdb-sync", "host", "ws-01"),
        ("asset.create", ACTOR, "host", "ws-01"),
    ]
    assert entries[1].details == {"criticality": "high", "previous_criticality": "low", "attributes": []}


def test_unknown_and_retired_tenants_cannot_change_assets(db: Database, tenant_clinic: TenantId) -> None:
    with pytest.raises(NotFoundError):
        db.assets.upsert(TenantId("nobody"), kind="host", name="x", criticality="low", actor=ACTOR)
    db.assets.upsert(tenant_clinic, kind="host", name="ws-01", criticality="low", actor=ACTOR)
    db.tenants.retire(tenant_clinic, actor=ACTOR)
    with pytest.raises(TenantRetiredError):
        db.assets.upsert(tenant_clinic, kind="host", name="ws-02", criticality="low", actor=ACTOR)
    with pytest.raises(TenantRetiredError):
        db.assets.delete(tenant_clinic, "host", "ws-01", actor=ACTOR)
    assert [a.name for a in db.assets.list(tenant_clinic)] == ["ws-01"]
