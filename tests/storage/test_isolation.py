"""Tenant isolation: calls made for one tenant never read or change another tenant's rows."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.storage.conftest import ACTOR, FakeClock
from watchfloor.core.types import RuleId, TenantId
from watchfloor.storage import Database, NewDetection, NotFoundError

CLINIC = TenantId("clinic")
FIRM = TenantId("lawfirm")


@dataclass(frozen=True, slots=True)
class World:
    token_ids: dict[TenantId, str]
    dead_letter_ids: dict[TenantId, int]


def snapshot(db: Database, tenant: TenantId) -> tuple[object, ...]:
    return (
        db.tenants.get(tenant),
        db.assets.list(tenant),
        db.tokens.list(tenant),
        db.detections.list(tenant, limit=1000),
        db.dead_letters.list(tenant),
        db.audit.list(tenant, limit=1000),
    )


@pytest.fixture
def two_tenants(db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId, clock: FakeClock) -> World:
    token_ids, dead_letter_ids = {}, {}
    for tenant in (tenant_clinic, tenant_lawfirm):
        token_ids[tenant] = db.tokens.create(tenant, description=f"{tenant} relay", actor=ACTOR).token.id
        db.assets.upsert(tenant, kind="host", name="shared-name", criticality="high", actor=ACTOR)
        db.detections.insert_many(
            tenant,
            [
                NewDetection(
                    rule_id=RuleId("same_rule"),
                    rule_version="1",
                    rule_title="t",
                    rule_level="high",
                    event_key="same-source#1",
                    source="same-source",
                    record_id="1",
                    event_time=clock.now,
                    matched_at=clock.now,
                    event={"tenant": tenant},
                )
            ],
        )
        dead_letter_ids[tenant] = db.dead_letters.add(
            tenant, source="same", code="c", message=str(tenant), raw=tenant.encode(), received_at=clock.now
        )
    return World(token_ids=token_ids, dead_letter_ids=dead_letter_ids)


def test_reads_return_only_the_callers_rows(db: Database, two_tenants: World) -> None:
    for tenant in (CLINIC, FIRM):
        assert [t.tenant_id for t in db.tokens.list(tenant)] == [tenant]
        assert [a.tenant_id for a in db.assets.list(tenant)] == [tenant]
        (only,) = db.detections.list(tenant)
        assert (only.tenant_id, only.event) == (tenant, {"tenant": tenant})
        assert db.detections.count(tenant) == 1
        assert [d.message for d in db.dead_letters.list(tenant)] == [tenant]
        assert {e.tenant_id for e in db.audit.list(tenant)} == {tenant}
        other = FIRM if tenant == CLINIC else CLINIC
        assert db.dead_letters.get_raw(tenant, two_tenants.dead_letter_ids[other]) is None
        asset = db.assets.get(tenant, "host", "shared-name")
        assert asset is not None
        assert asset.tenant_id == tenant


def test_the_same_event_key_is_stored_once_per_tenant(db: Database, two_tenants: World) -> None:
    # Both tenants hold (same_rule, same-source#1): the unique key includes the tenant.
    assert db.detections.count(CLINIC) == db.detections.count(FIRM) == 1


def test_writes_for_one_tenant_cannot_touch_another(db: Database, two_tenants: World) -> None:
    firm_before = snapshot(db, FIRM)
    with pytest.raises(NotFoundError):
        db.tokens.revoke(CLINIC, two_tenants.token_ids[FIRM], actor=ACTOR)
    assert db.dead_letters.mark_replayed(CLINIC, [two_tenants.dead_letter_ids[FIRM]], actor=ACTOR) == 0
    assert db.assets.delete(CLINIC, "host", "shared-name", actor=ACTOR)
    db.assets.upsert(CLINIC, kind="host", name="shared-name", criticality="low", actor=ACTOR)
    db.tenants.update(CLINIC, tier="premium", actor=ACTOR)
    db.tenants.retire(CLINIC, actor=ACTOR)
    assert snapshot(db, FIRM) == firm_before


def test_tokens_resolve_to_their_own_tenant(db: Database, clock: FakeClock, two_tenants: World) -> None:
    clinic = db.tokens.create(CLINIC, description="second", actor=ACTOR)
    firm = db.tokens.create(FIRM, description="second", actor=ACTOR)
    assert db.tokens.resolve(clinic.plaintext) == CLINIC
    assert db.tokens.resolve(firm.plaintext) == FIRM
    # The firm's id with the clinic's secret is no one's token.
    assert db.tokens.resolve(f"wf_{firm.token.id}_{clinic.plaintext[12:]}") is None
