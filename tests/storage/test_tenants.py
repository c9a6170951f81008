"""Tenant admin: create, get, list, partial update, soft retire, each audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.storage.conftest import ACTOR, FakeClock, make_clinic
from watchfloor.core.types import TenantId
from watchfloor.storage import AlreadyExistsError, Contact, Database, NotFoundError, TenantRetiredError


def test_create_then_get_returns_the_same_tenant(db: Database, clock: FakeClock) -> None:
    created = make_clinic(db)
    assert created.id == "clinic"
    assert created.status == "active"
    assert created.active
    assert created.created_at == created.updated_at == clock.now
    assert created.retired_at is None
    assert db.tenants.get(created.id) == created


def test_contacts_come_back_in_escalation_order(db: Database) -> None:
    clinic = make_clinic(db)
    stored = db.tenants.get(clinic.id)
    assert stored is not None
    assert [c.name for c in stored.contacts] == ["Sam Ng", "Dana Ruiz"]
    assert stored.contacts[0].phone == "+1 555 0100"
    assert stored.contacts[1].phone is None


@pytest.mark.parametrize("bad_id", ["", "Clinic", "-clinic", "clinic one", "a" * 64, "ünï"])
def test_tenant_ids_are_validated_slugs(db: Database, bad_id: str) -> None:
    with pytest.raises(ValueError, match="invalid tenant id"):
        db.tenants.create(bad_id, name="X", vertical="other", tier="x", actor=ACTOR)
    assert db.tenants.list(include_retired=True) == []


def test_vertical_must_be_known(db: Database) -> None:
    with pytest.raises(ValueError, match="unknown vertical"):
        db.tenants.create("shop", name="Shop", vertical="retail", tier="x", actor=ACTOR)


@pytest.mark.parametrize(
    "contact",
    [
        {"name": " ", "email": "a@b", "role": "r", "escalation_order": 1},
        {"name": "A", "email": "not-an-email", "role": "r", "escalation_order": 1},
        {"name": "A", "email": "a@b", "role": "r", "escalation_order": 0},
    ],
)
def test_contacts_are_validated(contact: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"contact|name"):
        Contact(**contact)  # type: ignore[arg-type]


def test_a_taken_id_is_refused(db: Database) -> None:
    make_clinic(db)
    with pytest.raises(AlreadyExistsError) as caught:
        db.tenants.create("clinic", name="Other", vertical="other", tier="x", actor=ACTOR)
    assert caught.value.code == "storage.already_exists"
    assert caught.value.location is not None
    assert caught.value.location.tenant == "clinic"


def test_get_of_an_unknown_tenant_is_none(db: Database) -> None:
    assert db.tenants.get(TenantId("nobody")) is None


def test_update_changes_only_the_given_fields(db: Database, clock: FakeClock) -> None:
    clinic = make_clinic(db)
    later = clock.advance(timedelta(hours=1))
    updated = db.tenants.update(clinic.id, tier="premium", actor=ACTOR)
    assert updated.tier == "premium"
    assert (updated.name, updated.vertical, updated.contacts) == (
        clinic.name,
        clinic.vertical,
        clinic.contacts,
    )
    assert updated.created_at == clinic.created_at
    assert updated.updated_at == later
    assert db.tenants.get(clinic.id) == updated

    contact = Contact(name="New", email="new@clinic.example", role="owner", escalation_order=1)
    again = db.tenants.update(clinic.id, name="Northside", vertical="other", contacts=[contact], actor=ACTOR)
    assert (again.name, again.vertical, again.tier, again.contacts) == (
        "Northside",
        "other",
        "premium",
        (contact,),
    )


def test_update_with_nothing_to_change_writes_nothing(db: Database) -> None:
    clinic = make_clinic(db)
    assert db.tenants.update(clinic.id, actor=ACTOR) == clinic
    assert [e.action for e in db.audit.list(clinic.id)] == ["tenant.create"]


def test_update_of_an_unknown_tenant_raises(db: Database) -> None:
    with pytest.raises(NotFoundError):
        db.tenants.update(TenantId("nobody"), tier="x", actor=ACTOR)


def test_retire_is_soft_and_final(db: Database, clock: FakeClock) -> None:
    clinic = make_clinic(db)
    when = clock.advance(timedelta(days=30))
    retired = db.tenants.retire(clinic.id, actor=ACTOR)
    assert (retired.status, retired.retired_at, retired.active) == ("retired", when, False)
    assert db.tenants.get(clinic.id) == retired
    clock.advance(timedelta(days=1))
    assert db.tenants.retire(clinic.id, actor=ACTOR) == retired  # idempotent, keeps the first time
    with pytest.raises(TenantRetiredError):
        db.tenants.update(clinic.id, tier="x", actor=ACTOR)


def test_list_hides_retired_tenants_unless_asked(db: Database, tenant_lawfirm: TenantId) -> None:
    clinic = make_clinic(db)
    db.tenants.retire(clinic.id, actor=ACTOR)
    assert [t.id for t in db.tenants.list()] == ["lawfirm"]
    assert [t.id for t in db.tenants.list(include_retired=True)] == ["clinic", "lawfirm"]


def test_create_update_and_retire_are_audited(db: Database) -> None:
    clinic = make_clinic(db)
    db.tenants.update(clinic.id, tier="premium", actor="ops@watchfloor.test")
    db.tenants.retire(clinic.id, actor=ACTOR)
    db.tenants.retire(clinic.id, actor=ACTOR)
    entries = db.audit.list(clinic.id)
    assert [(e.action, e.actor) for e in entries] == [
        ("tenant.retire", ACTOR),
        ("tenant.update", "ops@watchfloor.test"),
        ("tenant.create", ACTOR),
    ]
    assert all((e.object_type, e.object_id) == ("tenant", "clinic") for e in entries)
    assert entries[1].details == {"changed": ["tier"], "tier": "premium"}
    assert entries[2].details["contacts"] == 2


def test_every_change_needs_an_actor(db: Database) -> None:
    with pytest.raises(ValueError, match="actor"):
        db.tenants.create("clinic", name="C", vertical="other", tier="x", actor=" ")
    assert db.tenants.get(TenantId("clinic")) is None
