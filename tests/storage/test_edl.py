"""External dynamic lists in storage, on SQLite and PostgreSQL: idempotent adds that extend expiry, expiry,
removal, audit, tenant isolation, and the read-only poll tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.storage.conftest import ACTOR, FakeClock
from watchfloor.core.types import TenantId
from watchfloor.respond.edl import EdlValueError
from watchfloor.storage import Database, NotFoundError, TenantRetiredError
from watchfloor.storage.edl import parse_edl_token


def audit_actions(db: Database, tenant: TenantId) -> list[str]:
    return [e.action for e in db.audit.list(tenant) if e.action.startswith("edl.")]


def test_add_lists_and_is_idempotent(db: Database, tenant_clinic: TenantId, clock: FakeClock) -> None:
    first = db.edl.add(
        tenant_clinic, kind="ip", value="2001:DB8::7", reason="C2 in inc-1", actor=ACTOR, source_ref="inc-1"
    )
    assert first.outcome == "added"
    assert first.entry.value == "2001:db8::7"
    assert first.entry.added_at == clock.now
    assert first.entry.expires_at is None
    again = db.edl.add(tenant_clinic, kind="ip", value="2001:db8::7", reason="other words", actor="someone")
    assert (again.outcome, again.changed) == ("unchanged", False)
    assert again.entry.reason == "C2 in inc-1"
    (listed,) = db.edl.list_active(tenant_clinic)
    assert (listed.value, listed.source_ref, listed.added_by) == ("2001:db8::7", "inc-1", ACTOR)
    assert db.edl.count(tenant_clinic) == 1
    assert db.edl.count(tenant_clinic, kind="domain") == 0
    assert audit_actions(db, tenant_clinic) == ["edl.add"]  # the no-op wrote nothing
    (entry,) = db.audit.list(tenant_clinic, action="edl.add")
    assert entry.object_id == "ip:2001:db8::7"
    assert entry.details["reason"] == "C2 in inc-1"


def test_re_adding_extends_expiry_and_never_shortens_it(
    db: Database, tenant_clinic: TenantId, clock: FakeClock
) -> None:
    hour, day = clock.now + timedelta(hours=1), clock.now + timedelta(days=1)
    db.edl.add(
        tenant_clinic, kind="domain", value="evil.example", reason="phish", actor=ACTOR, expires_at=hour
    )
    extended = db.edl.add(
        tenant_clinic, kind="domain", value="EVIL.example", reason="phish", actor=ACTOR, expires_at=day
    )
    assert (extended.outcome, extended.entry.expires_at) == ("extended", day)
    shorter = db.edl.add(
        tenant_clinic, kind="domain", value="evil.example", reason="phish", actor=ACTOR, expires_at=hour
    )
    assert (shorter.outcome, shorter.entry.expires_at) == ("unchanged", day)
    forever = db.edl.add(tenant_clinic, kind="domain", value="evil.example", reason="phish", actor=ACTOR)
    assert (forever.outcome, forever.entry.expires_at) == ("extended", None)
    assert (
        db.edl.add(
            tenant_clinic, kind="domain", value="evil.example", reason="phish", actor=ACTOR, expires_at=day
        ).outcome
        == "unchanged"
    )
    assert audit_actions(db, tenant_clinic) == ["edl.extend", "edl.extend", "edl.add"]
    latest = db.audit.list(tenant_clinic, action="edl.extend")[0]
    assert latest.details["previous_expires_at"] == day.isoformat()
    assert latest.details["expires_at"] is None


def test_expired_entries_are_not_active_and_re_adding_starts_a_new_block(
    db: Database, tenant_clinic: TenantId, clock: FakeClock
) -> None:
    db.edl.add(
        tenant_clinic,
        kind="url",
        value="https://evil.example/login",
        reason="old",
        actor=ACTOR,
        expires_at=clock.now + timedelta(minutes=30),
    )
    db.edl.add(tenant_clinic, kind="url", value="evil.example/other", reason="kept", actor=ACTOR)
    assert db.edl.count(tenant_clinic, kind="url") == 2
    clock.advance(timedelta(minutes=30))
    assert [e.value for e in db.edl.list_active(tenant_clinic, kind="url")] == ["evil.example/other"]
    assert db.edl.count(tenant_clinic) == 1
    expired = db.edl.get(tenant_clinic, kind="url", value="evil.example/login")
    assert expired is not None
    assert not expired.active(clock.now)

    renewed = db.edl.add(
        tenant_clinic, kind="url", value="evil.example/login", reason="seen again", actor="t2"
    )
    assert renewed.outcome == "added"
    assert (renewed.entry.reason, renewed.entry.added_by, renewed.entry.added_at) == (
        "seen again",
        "t2",
        clock.now,
    )
    assert db.edl.count(tenant_clinic) == 2


def test_remove(db: Database, tenant_clinic: TenantId) -> None:
    db.edl.add(tenant_clinic, kind="ip", value="198.51.100.0/24", reason="scanner", actor=ACTOR)
    assert db.edl.remove(tenant_clinic, kind="ip", value="198.51.100.0/24", actor=ACTOR)
    assert not db.edl.remove(tenant_clinic, kind="ip", value="198.51.100.0/24", actor=ACTOR)
    assert db.edl.list_active(tenant_clinic) == []
    assert audit_actions(db, tenant_clinic) == ["edl.remove", "edl.add"]


def test_values_and_expiries_are_checked(db: Database, tenant_clinic: TenantId, clock: FakeClock) -> None:
    with pytest.raises(EdlValueError, match=r"'10\.0\.0\.256' is not a valid ip list entry"):
        db.edl.add(tenant_clinic, kind="ip", value="10.0.0.256", reason="x", actor=ACTOR)
    with pytest.raises(EdlValueError, match="unknown list kind"):
        db.edl.add(tenant_clinic, kind="hash", value="abc", reason="x", actor=ACTOR)
    with pytest.raises(ValueError, match="not in the future"):
        db.edl.add(tenant_clinic, kind="ip", value="10.0.0.1", reason="x", actor=ACTOR, expires_at=clock.now)
    with pytest.raises(ValueError, match="reason"):
        db.edl.add(tenant_clinic, kind="ip", value="10.0.0.1", reason=" ", actor=ACTOR)
    with pytest.raises(ValueError, match="actor"):
        db.edl.add(tenant_clinic, kind="ip", value="10.0.0.1", reason="x", actor=" ")
    assert db.edl.count(tenant_clinic) == 0


def test_lists_are_per_tenant(db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId) -> None:
    db.edl.add(tenant_clinic, kind="ip", value="203.0.113.7", reason="clinic", actor=ACTOR)
    db.edl.add(tenant_lawfirm, kind="ip", value="203.0.113.7", reason="lawfirm", actor=ACTOR)
    assert db.edl.remove(tenant_lawfirm, kind="ip", value="203.0.113.7", actor=ACTOR)
    assert [e.reason for e in db.edl.list_active(tenant_clinic)] == ["clinic"]
    assert db.edl.list_active(tenant_lawfirm) == []
    assert db.edl.get(tenant_lawfirm, kind="ip", value="203.0.113.7") is None


def test_retired_tenants_lists_cannot_change(db: Database, tenant_clinic: TenantId) -> None:
    db.edl.add(tenant_clinic, kind="ip", value="203.0.113.7", reason="x", actor=ACTOR)
    db.tenants.retire(tenant_clinic, actor=ACTOR)
    with pytest.raises(TenantRetiredError):
        db.edl.add(tenant_clinic, kind="ip", value="203.0.113.8", reason="x", actor=ACTOR)
    with pytest.raises(TenantRetiredError):
        db.edl.remove(tenant_clinic, kind="ip", value="203.0.113.7", actor=ACTOR)
    with pytest.raises(TenantRetiredError):
        db.edl.create_token(tenant_clinic, description="fw", actor=ACTOR)


# -- poll tokens -----------------------------------------------------------------------------------
def test_tokens_read_only_their_own_tenant(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId, clock: FakeClock
) -> None:
    created = db.edl.create_token(tenant_clinic, description="PA-440 at the clinic", actor=ACTOR)
    assert created.plaintext.startswith("wfe_")
    assert created.plaintext not in repr(created)
    assert parse_edl_token(created.plaintext) == (created.token.id, created.plaintext.split("_", 2)[2])
    assert db.edl.check_token(tenant_clinic, created.plaintext)
    assert not db.edl.check_token(tenant_lawfirm, created.plaintext)
    assert not db.edl.check_token(
        tenant_clinic, created.plaintext[:-1] + ("A" if created.plaintext[-1] != "A" else "B")
    )
    assert not db.edl.check_token(tenant_clinic, "")
    (listed,) = db.edl.list_tokens(tenant_clinic)
    assert listed.last_used_at == clock.now
    assert db.edl.list_tokens(tenant_lawfirm) == []
    assert audit_actions(db, tenant_clinic) == ["edl.token_create"]


def test_intake_and_edl_tokens_do_not_cross(db: Database, tenant_clinic: TenantId) -> None:
    intake = db.tokens.create(tenant_clinic, description="relay", actor=ACTOR)
    edl = db.edl.create_token(tenant_clinic, description="firewall", actor=ACTOR)
    assert not db.edl.check_token(tenant_clinic, intake.plaintext)
    assert db.tokens.resolve(edl.plaintext) is None
    # Same id and secret, the other prefix: still not an intake token.
    assert db.tokens.resolve("wf_" + edl.plaintext.removeprefix("wfe_")) is None


def test_revoked_tokens_and_retired_tenants_stop_reading(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId
) -> None:
    first = db.edl.create_token(tenant_clinic, description="fw1", actor=ACTOR)
    second = db.edl.create_token(tenant_clinic, description="fw2", actor=ACTOR)
    revoked = db.edl.revoke_token(tenant_clinic, first.token.id, actor=ACTOR)
    assert revoked.revoked
    assert db.edl.revoke_token(tenant_clinic, first.token.id, actor=ACTOR).revoked_at == revoked.revoked_at
    assert not db.edl.check_token(tenant_clinic, first.plaintext)
    assert db.edl.check_token(tenant_clinic, second.plaintext)
    assert [t.id for t in db.edl.list_tokens(tenant_clinic, include_revoked=False)] == [second.token.id]
    with pytest.raises(NotFoundError):
        db.edl.revoke_token(tenant_lawfirm, second.token.id, actor=ACTOR)
    assert audit_actions(db, tenant_clinic).count("edl.token_revoke") == 1
    db.tenants.retire(tenant_clinic, actor=ACTOR)
    assert not db.edl.check_token(tenant_clinic, second.plaintext)


def test_peppered_tokens_need_the_pepper(
    db_url: str, open_db: Callable[..., Database], tenant_clinic: TenantId
) -> None:
    pepper = b"0123456789abcdef-pepper"
    peppered = open_db(token_pepper=pepper)
    created = peppered.edl.create_token(tenant_clinic, description="fw", actor=ACTOR)
    assert created.token.hash_scheme == "hmac-sha256"
    assert peppered.edl.check_token(tenant_clinic, created.plaintext)
    assert not open_db().edl.check_token(tenant_clinic, created.plaintext)
    assert not open_db(token_pepper=b"another-pepper-of-16+").edl.check_token(
        tenant_clinic, created.plaintext
    )
