"""The audit log: one entry per state change, in the change's transaction, never holding a token."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.storage.conftest import ACTOR, FakeClock, make_clinic
from watchfloor.core.types import TenantId
from watchfloor.storage import Database, SecretInAuditError
from watchfloor.storage.schema import audit_log


def test_every_state_change_through_storage_is_audited(db: Database, clock: FakeClock) -> None:
    clinic = make_clinic(db).id
    db.tenants.update(clinic, tier="premium", actor=ACTOR)
    token = db.tokens.create(clinic, description="relay", actor=ACTOR)
    db.tokens.revoke(clinic, token.token.id, actor=ACTOR)
    db.assets.upsert(clinic, kind="host", name="ws-01", criticality="low", actor=ACTOR)
    db.assets.upsert(clinic, kind="host", name="ws-01", criticality="high", actor=ACTOR)
    db.assets.delete(clinic, "host", "ws-01", actor=ACTOR)
    letter = db.dead_letters.add(clinic, source="s", code="c", message="m", raw=b"x", received_at=clock.now)
    db.dead_letters.mark_replayed(clinic, [letter], actor=ACTOR)
    db.tenants.retire(clinic, actor=ACTOR)
    actions = [entry.action for entry in reversed(db.audit.list(clinic))]
    assert actions == [
        "tenant.create",
        "tenant.update",
        "token.create",
        "token.revoke",
        "asset.create",
        "asset.update",
        "asset.delete",
        "dead_letter.replay",
        "tenant.retire",
    ]
    entries = db.audit.list(clinic)
    assert all(e.at == clock.now and e.actor == ACTOR and e.tenant_id == clinic for e in entries)


def test_append_records_changes_made_elsewhere(db: Database, tenant_clinic: TenantId) -> None:
    entry_id = db.audit.append(
        tenant_clinic,
        actor="portal:dana",
        action="case.acknowledge",
        object_type="case",
        object_id="C-17",
        details={"sla_minutes": 30},
    )
    (entry,) = db.audit.list(tenant_clinic, action="case.acknowledge")
    assert (entry.id, entry.actor, entry.object_type, entry.object_id) == (
        entry_id,
        "portal:dana",
        "case",
        "C-17",
    )
    assert entry.details == {"sla_minutes": 30}


def test_list_is_newest_first_and_limited(db: Database, tenant_clinic: TenantId) -> None:
    for n in range(5):
        db.audit.append(tenant_clinic, actor="a", action="x.test", object_type="x", object_id=str(n))
    assert [e.object_id for e in db.audit.list(tenant_clinic, limit=3)] == ["4", "3", "2"]


def test_details_shaped_like_a_token_are_refused_and_nothing_is_written(
    db: Database, tenant_clinic: TenantId
) -> None:
    plaintext = db.tokens.create(tenant_clinic, description="relay", actor=ACTOR).plaintext
    before = len(db.audit.list(tenant_clinic))
    with pytest.raises(SecretInAuditError):
        db.audit.append(
            tenant_clinic,
            actor="a",
            action="token.shown",
            object_type="intake_token",
            object_id="x",
            details={"nested": [{"oops": f"Bearer {plaintext}"}]},
        )
    with pytest.raises(SecretInAuditError):
        db.tokens.create(tenant_clinic, description=f"copy of {plaintext}", actor=ACTOR)
    assert len(db.audit.list(tenant_clinic)) == before
    assert len(db.tokens.list(tenant_clinic)) == 1  # the refused audit rolled back the token too


def test_an_actor_is_required(db: Database, tenant_clinic: TenantId) -> None:
    with pytest.raises(ValueError, match="actor"):
        db.audit.append(tenant_clinic, actor="", action="x", object_type="x", object_id="x")
    with db.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(audit_log)).scalar_one() == 1
