"""Intake tokens: shown once, stored as a hash, resolved in constant time, stopped by revoke and retire."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.storage.conftest import ACTOR, FakeClock
from watchfloor.core.types import TenantId
from watchfloor.storage import Database, NotFoundError, TenantRetiredError
from watchfloor.storage.schema import audit_log, intake_tokens
from watchfloor.storage.tokens import LAST_USED_RESOLUTION, parse_token

TOKEN_FORMAT = re.compile(r"wf_[a-z0-9]{8}_[A-Za-z0-9_-]{43}")
PEPPER = b"server-pepper-0123456789abcdef"


def test_create_returns_a_well_formed_plaintext_that_resolves(db: Database, tenant_clinic: TenantId) -> None:
    created = db.tokens.create(tenant_clinic, description="clinic syslog relay", actor=ACTOR)
    assert TOKEN_FORMAT.fullmatch(created.plaintext)
    assert created.plaintext.split("_")[1] == created.token.id
    assert created.token.tenant_id == tenant_clinic
    assert created.token.hash_scheme == "sha256"
    assert db.tokens.resolve(created.plaintext) == tenant_clinic


def test_the_plaintext_is_shown_once_and_never_printed(db: Database, tenant_clinic: TenantId) -> None:
    created = db.tokens.create(tenant_clinic, description="relay", actor=ACTOR)
    _, secret = created.plaintext[3:11], created.plaintext[12:]
    assert secret not in repr(created)
    listed = db.tokens.list(tenant_clinic)
    assert listed == [created.token]
    assert secret not in repr(listed)


def test_only_the_hash_of_the_secret_is_stored(db: Database, tenant_clinic: TenantId) -> None:
    created = db.tokens.create(tenant_clinic, description="relay", actor=ACTOR)
    secret = created.plaintext[12:]
    with db.engine.connect() as connection:
        row = connection.execute(select(intake_tokens)).mappings().one()
        audit_rows = connection.execute(select(audit_log)).mappings().all()
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    stored_text = repr(dict(row)) + repr([dict(r) for r in audit_rows])
    assert secret not in stored_text
    assert created.plaintext not in stored_text


def test_a_pepper_makes_the_hash_an_hmac_and_is_needed_to_resolve(
    open_db: Callable[..., Database], tenant_clinic: TenantId, db: Database
) -> None:
    peppered = open_db(token_pepper=PEPPER)
    created = peppered.tokens.create(tenant_clinic, description="relay", actor=ACTOR)
    assert created.token.hash_scheme == "hmac-sha256"
    with db.engine.connect() as connection:
        stored = connection.execute(select(intake_tokens.c.secret_hash)).scalar_one()
    assert bytes(stored) == hmac.new(PEPPER, created.plaintext[12:].encode(), hashlib.sha256).digest()
    assert peppered.tokens.resolve(created.plaintext) == tenant_clinic
    assert db.tokens.resolve(created.plaintext) is None
    assert open_db(token_pepper=b"another-pepper-0123456789").tokens.resolve(created.plaintext) is None


def test_a_short_pepper_is_refused(db_url: str) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Database.open(db_url, token_pepper=b"short")


def test_a_tenant_holds_several_tokens(db: Database, tenant_clinic: TenantId) -> None:
    tokens = [db.tokens.create(tenant_clinic, description=f"relay {n}", actor=ACTOR) for n in range(3)]
    assert len({t.token.id for t in tokens}) == 3
    # Same clock tick: listed by created_at, then id.
    assert sorted((t.token for t in tokens), key=lambda t: t.id) == db.tokens.list(tenant_clinic)
    assert all(db.tokens.resolve(t.plaintext) == tenant_clinic for t in tokens)


def test_revoke_stops_that_token_only(db: Database, tenant_clinic: TenantId, clock: FakeClock) -> None:
    keep = db.tokens.create(tenant_clinic, description="keep", actor=ACTOR)
    drop = db.tokens.create(tenant_clinic, description="drop", actor=ACTOR)
    when = clock.advance(timedelta(minutes=5))
    revoked = db.tokens.revoke(tenant_clinic, drop.token.id, actor=ACTOR)
    assert revoked.revoked
    assert revoked.revoked_at == when
    assert db.tokens.resolve(drop.plaintext) is None
    assert db.tokens.resolve(keep.plaintext) == tenant_clinic
    clock.advance(timedelta(minutes=5))
    assert db.tokens.revoke(tenant_clinic, drop.token.id, actor=ACTOR).revoked_at == when
    assert [t.id for t in db.tokens.list(tenant_clinic, include_revoked=False)] == [keep.token.id]


def test_revoking_an_unknown_token_raises(db: Database, tenant_clinic: TenantId) -> None:
    with pytest.raises(NotFoundError):
        db.tokens.revoke(tenant_clinic, "zzzzzzzz", actor=ACTOR)


def test_retiring_the_tenant_stops_its_tokens_and_refuses_new_ones(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId
) -> None:
    clinic_token = db.tokens.create(tenant_clinic, description="relay", actor=ACTOR)
    firm_token = db.tokens.create(tenant_lawfirm, description="relay", actor=ACTOR)
    db.tenants.retire(tenant_clinic, actor=ACTOR)
    assert db.tokens.resolve(clinic_token.plaintext) is None
    assert db.tokens.resolve(firm_token.plaintext) == tenant_lawfirm
    with pytest.raises(TenantRetiredError):
        db.tokens.create(tenant_clinic, description="again", actor=ACTOR)
    assert not db.tokens.list(tenant_clinic)[0].revoked  # history is kept as it was


def test_tokens_of_unknown_tenants_cannot_be_created(db: Database) -> None:
    with pytest.raises(NotFoundError):
        db.tokens.create(TenantId("nobody"), description="x", actor=ACTOR)


def test_malformed_and_tampered_tokens_do_not_resolve(db: Database, tenant_clinic: TenantId) -> None:
    plaintext = db.tokens.create(tenant_clinic, description="relay", actor=ACTOR).plaintext
    last = "A" if plaintext[-1] != "A" else "B"
    for candidate in [
        "",
        "wf_",
        plaintext[:-1],
        plaintext + "x",
        plaintext[:-1] + last,
        plaintext.upper(),
        " " + plaintext,
        plaintext + "\n",
        plaintext.replace("wf_", "wx_", 1),
        "wf_" + "a" * 8 + "_" + "A" * 43,
    ]:
        assert db.tokens.resolve(candidate) is None, candidate
    assert db.tokens.resolve(plaintext) == tenant_clinic


def test_last_used_is_recorded_at_most_once_a_minute(
    db: Database, tenant_clinic: TenantId, clock: FakeClock
) -> None:
    created = db.tokens.create(tenant_clinic, description="relay", actor=ACTOR)
    assert db.tokens.list(tenant_clinic)[0].last_used_at is None
    first = clock.advance(timedelta(seconds=5))
    db.tokens.resolve(created.plaintext)
    assert db.tokens.list(tenant_clinic)[0].last_used_at == first
    clock.advance(LAST_USED_RESOLUTION / 2)
    db.tokens.resolve(created.plaintext)
    assert db.tokens.list(tenant_clinic)[0].last_used_at == first
    later = clock.advance(LAST_USED_RESOLUTION)
    db.tokens.resolve(created.plaintext)
    assert db.tokens.list(tenant_clinic)[0].last_used_at == later
    clock.advance(LAST_USED_RESOLUTION * 2)
    db.tokens.resolve(created.plaintext, touch=False)
    assert db.tokens.list(tenant_clinic)[0].last_used_at == later


def test_token_changes_are_audited_without_secrets(db: Database, tenant_clinic: TenantId) -> None:
    created = db.tokens.create(tenant_clinic, description="relay", actor=ACTOR)
    db.tokens.revoke(tenant_clinic, created.token.id, actor=ACTOR)
    entries = db.audit.list(tenant_clinic, limit=2)
    assert [(e.action, e.object_type, e.object_id) for e in entries] == [
        ("token.revoke", "intake_token", created.token.id),
        ("token.create", "intake_token", created.token.id),
    ]
    assert entries[1].details == {"description": "relay", "hash_scheme": "sha256"}
    assert created.plaintext[12:] not in repr(entries)


def test_parse_token_never_raises() -> None:
    assert parse_token("wf_abcdefgh_" + "x" * 43) == ("abcdefgh", "x" * 43)
    assert parse_token("wf_ABCDEFGH_" + "x" * 43) is None


token_like = st.builds(
    lambda token_id, secret: f"wf_{token_id}_{secret}",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=8),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=43, max_size=43
    ),
)


def test_property_only_created_tokens_resolve(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId
) -> None:
    created = {
        db.tokens.create(tenant, description="relay", actor=ACTOR).plaintext: tenant
        for tenant in (tenant_clinic, tenant_clinic, tenant_lawfirm)
    }
    ids = [plaintext[3:11] for plaintext in created]
    known_id_wrong_secret = st.builds(
        lambda token_id, secret: f"wf_{token_id}_{secret}",
        st.sampled_from(ids),
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            min_size=43,
            max_size=43,
        ),
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(st.text(), token_like, known_id_wrong_secret, st.sampled_from(sorted(created))))
    def resolves_only_created(candidate: str) -> None:
        assert db.tokens.resolve(candidate, touch=False) == created.get(candidate)

    resolves_only_created()
