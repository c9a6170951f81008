"""Sealed connector credentials: AES-GCM round trips, refusals (wrong key, tampering, another tenant or
connector), key rotation, key loading (dev-mode key file, refusal without a key), the store over a real
SQLite database (audit rows and raw columns hold no plaintext), and the run engine acting on a loopback
Defender fake with credentials that went through seal and open."""

from __future__ import annotations

import logging
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from tests.respond.fakes.mde import MDE_SCOPE, FakeMde
from tests.respond.fakes.msgraph import CLIENT_ID, CLIENT_SECRET, DIRECTORY_ID, FakeEntra
from tests.respond.fakes.server import LoopbackServer
from tests.respond.test_engine import AUTOMATIC, CLINIC, PLAYBOOK_HEAD, T0, playbook, store_incident
from tests.storage.conftest import FakeClock, make_clinic
from watchfloor.cases.tiers import load_tiers
from watchfloor.core.errors import ConfigError
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import ConnectorConfigError
from watchfloor.respond.connectors.mde import GetMachineAction, IsolateMachine, ReleaseMachine
from watchfloor.respond.engine import RunEngine
from watchfloor.respond.http import HttpOptions, TokenCache
from watchfloor.respond.registry import ActionRegistry
from watchfloor.respond.secrets import (
    DEV_KEY_FILE,
    MAKE_KEY_COMMAND,
    CredentialsInvalidError,
    CredentialStore,
    Keyring,
    RedactedConfig,
    Sealed,
    SealedOpenError,
    SecretsKey,
    UnknownConnectorError,
    load_key,
    load_keys,
    open_sealed,
    rotate,
    seal,
)
from watchfloor.server.cases import CaseService
from watchfloor.server.settings import ServeSettings
from watchfloor.storage import Database

SECRET = "s3cr3t-Value-That-Must-Never-Leak"
LAWFIRM = TenantId("lawfirm")


@pytest.fixture
def key() -> SecretsKey:
    return SecretsKey.generate()


def reseal(sealed: Sealed, **changes: Any) -> Sealed:
    return Sealed(
        ciphertext=changes.get("ciphertext", sealed.ciphertext),
        nonce=changes.get("nonce", sealed.nonce),
        key_id=changes.get("key_id", sealed.key_id),
    )


# -- seal / open -------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(values=st.dictionaries(st.text(max_size=40), st.text(max_size=200), max_size=8))
def test_seal_then_open_round_trips_any_mapping_of_strings(values: dict[str, str]) -> None:
    key = SecretsKey.generate()
    sealed = seal(key, "clinic", "mde", values)
    assert len(sealed.nonce) == 12
    assert sealed.key_id == key.key_id
    assert dict(open_sealed(key, "clinic", "mde", sealed)) == values


def test_every_seal_uses_a_fresh_nonce(key: SecretsKey) -> None:
    first = seal(key, "clinic", "mde", {"client_secret": SECRET})
    second = seal(key, "clinic", "mde", {"client_secret": SECRET})
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext
    assert SECRET.encode() not in first.ciphertext


def test_a_wrong_key_is_refused_without_the_secret(key: SecretsKey) -> None:
    sealed = seal(key, "clinic", "mde", {"client_secret": SECRET})
    other = SecretsKey.generate()
    with pytest.raises(SealedOpenError, match="not configured") as unknown:
        open_sealed(other, "clinic", "mde", sealed)
    # the same key id but other key material (a key replaced under the same id): the tag does not match
    impostor = SecretsKey(key_id=key.key_id, material=other.material)
    with pytest.raises(SealedOpenError, match="do not open") as wrong:
        open_sealed(impostor, "clinic", "mde", sealed)
    for exc in (unknown.value, wrong.value):
        assert SECRET not in str(exc)
        assert exc.location is not None
        assert exc.location.tenant == "clinic"
        assert exc.location.path == "connector_credentials/mde"


@pytest.mark.parametrize("part", ["ciphertext", "nonce"])
def test_tampering_is_refused(key: SecretsKey, part: str) -> None:
    sealed = seal(key, "clinic", "mde", {"client_secret": SECRET})
    original: bytes = getattr(sealed, part)
    flipped = bytes([original[0] ^ 0x01]) + original[1:]
    with pytest.raises(SealedOpenError, match="altered") as caught:
        open_sealed(key, "clinic", "mde", reseal(sealed, **{part: flipped}))
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(("tenant", "connector"), [("lawfirm", "mde"), ("clinic", "okta")])
def test_a_ciphertext_moved_to_another_tenant_or_connector_does_not_open(
    key: SecretsKey, tenant: str, connector: str
) -> None:
    sealed = seal(key, "clinic", "mde", {"client_secret": SECRET})
    with pytest.raises(SealedOpenError, match="another tenant or connector"):
        open_sealed(key, tenant, connector, sealed)


def test_repr_of_everything_holding_a_secret_is_redacted(key: SecretsKey, db: Database) -> None:
    sealed = seal(key, "clinic", "mde", {"client_secret": SECRET})
    opened = open_sealed(key, "clinic", "mde", sealed)
    store = CredentialStore(db, key)
    for thing in (key, Keyring((key,)), sealed, opened, store):
        text = repr(thing)
        assert SECRET not in text
        assert key.to_base64() not in text
        assert key.material.hex() not in text
    assert "[redacted]" in repr(key)
    assert "[redacted]" in repr(opened)
    assert "[redacted]" in str(opened)
    assert "client_secret" in repr(opened)
    assert isinstance(opened, RedactedConfig)


# -- rotation ----------------------------------------------------------------------------------------------


def test_rotation_opens_with_an_older_key_and_reseals_under_the_current(key: SecretsKey) -> None:
    old_sealed = seal(key, "clinic", "mde", {"client_secret": SECRET})
    new = SecretsKey.generate()
    ring = Keyring((new, key))
    assert dict(open_sealed(ring, "clinic", "mde", old_sealed)) == {"client_secret": SECRET}
    moved = rotate(ring, "clinic", "mde", old_sealed)
    assert moved.key_id == new.key_id
    assert dict(open_sealed(new, "clinic", "mde", moved)) == {"client_secret": SECRET}
    with pytest.raises(SealedOpenError):
        open_sealed(key, "clinic", "mde", moved)


def test_store_rotation_reseals_every_record_under_the_current_key(db: Database, key: SecretsKey) -> None:
    CredentialStore(db, key).put(
        CLINIC, "okta", {"org_url": "https://x.okta.com", "api_token": SECRET}, actor="t"
    )
    new = SecretsKey.generate()
    store = CredentialStore(db, [new, key])
    assert store.rotate([CLINIC], actor="rotator") == 1
    assert store.rotate([CLINIC], actor="rotator") == 0
    assert db.response.list_credentials(CLINIC)[0].key_id == new.key_id
    assert CredentialStore(db, new).config_for(CLINIC, "okta")["api_token"] == SECRET


# -- loading keys ------------------------------------------------------------------------------------------


def settings_with(tmp_path: Path, **values: Any) -> ServeSettings:
    return ServeSettings(data_dir=tmp_path / "data", **values)


def test_without_a_key_outside_dev_mode_it_refuses_and_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHFLOOR_SECRETS_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_key(settings_with(tmp_path))
    assert MAKE_KEY_COMMAND in caught.value.message
    assert "WATCHFLOOR_SECRETS_KEY" in caught.value.message
    assert not (tmp_path / "data" / DEV_KEY_FILE).exists()


def test_the_key_comes_from_the_environment_and_a_list_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    current, older = SecretsKey.generate(), SecretsKey.generate()
    monkeypatch.setenv("WATCHFLOOR_SECRETS_KEY", f"{current.to_base64()}, {older.to_base64()}")
    ring = load_keys(settings_with(tmp_path))
    assert [k.key_id for k in ring.keys] == [current.key_id, older.key_id]
    assert load_key(settings_with(tmp_path)) == current


@pytest.mark.parametrize("bad", ["not base64!!", "c2hvcnQ="])  # the second decodes to 5 bytes
def test_a_malformed_key_is_refused_without_echoing_it(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_key(settings_with(tmp_path, secrets_key=SecretStr(bad)))
    assert bad not in str(caught.value)
    assert MAKE_KEY_COMMAND in caught.value.message


def test_dev_mode_makes_a_0600_key_file_once_and_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("WATCHFLOOR_SECRETS_KEY", raising=False)
    caplog.set_level(logging.DEBUG)
    first = load_key(settings_with(tmp_path, dev_mode=True))
    path = tmp_path / "data" / DEV_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_key(settings_with(tmp_path, dev_mode=True))
    assert again == first
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all(str(path) in r.getMessage() for r in warnings)
    assert first.to_base64() not in caplog.text
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(settings_with(tmp_path, dev_mode=True))


# -- the store over a database -----------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "wf.db"


@pytest.fixture
def db(db_path: Path, clock: FakeClock) -> Iterator[Database]:
    database = Database.open(f"sqlite:///{db_path}", clock=clock)
    make_clinic(database)
    database.tenants.create("lawfirm", name="Hart & Gale LLP", vertical="legal", tier="premium", actor="t")
    try:
        yield database
    finally:
        database.close()


OKTA = {"org_url": "https://clinic.okta.com", "api_token": SECRET}


def test_put_keys_set_config_for_and_delete(db: Database, key: SecretsKey) -> None:
    store = CredentialStore(db, key)
    info = store.put(CLINIC, "okta", OKTA, actor="sam@mssp")
    assert info.keys == ("api_token", "org_url")
    assert info.key_id == key.key_id
    assert store.keys_set(CLINIC, "okta") == ("api_token", "org_url")
    assert store.keys_set(LAWFIRM, "okta") == ()
    assert dict(store.config_for(CLINIC, "okta")) == OKTA
    assert dict(store.config_for(LAWFIRM, "okta")) == {}  # another tenant sees nothing
    store.put(CLINIC, "okta", {"api_token": "rotated-token"}, actor="sam@mssp", merge=True)
    assert dict(store.config_for(CLINIC, "okta")) == {**OKTA, "api_token": "rotated-token"}
    store.put(CLINIC, "okta", {"org_url": "https://other.okta.com"}, actor="sam@mssp")  # replaces
    assert store.keys_set(CLINIC, "okta") == ("org_url",)
    assert store.delete(CLINIC, "okta", actor="sam@mssp")
    assert not store.delete(CLINIC, "okta", actor="sam@mssp")
    assert dict(store.config_for(CLINIC, "okta")) == {}


@pytest.mark.parametrize(
    ("connector", "values", "error", "text"),
    [
        ("okta", {"api_tokn": SECRET}, CredentialsInvalidError, "no config key api_tokn"),
        ("okta", {SECRET + " =": "x"}, CredentialsInvalidError, "not a config key name"),
        ("okta", {"api_token": ""}, CredentialsInvalidError, "is empty"),
        ("okta", {}, CredentialsInvalidError, "no values"),
        ("nosuch", {"api_token": SECRET}, UnknownConnectorError, "no response action uses"),
    ],
)
def test_bad_values_are_refused_without_echoing_them(
    db: Database, key: SecretsKey, connector: str, values: dict[str, str], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text) as caught:
        CredentialStore(db, key).put(CLINIC, connector, values, actor="t")
    assert SECRET not in str(caught.value)
    assert db.response.list_credentials(CLINIC) == []


def test_the_row_and_the_audit_log_hold_no_plaintext(db: Database, db_path: Path, key: SecretsKey) -> None:
    store = CredentialStore(db, key)
    store.put(CLINIC, "okta", OKTA, actor="sam@mssp")
    store.put(CLINIC, "okta", {"api_token": SECRET + "2"}, actor="sam@mssp", merge=True)
    store.delete(CLINIC, "okta", actor="sam@mssp")
    store.put(CLINIC, "okta", OKTA, actor="sam@mssp")
    with sqlite3.connect(db_path) as raw:
        rows = raw.execute("SELECT * FROM connector_credentials").fetchall()
        audit = raw.execute("SELECT * FROM audit_log").fetchall()
    assert len(rows) == 1
    for column in rows[0]:
        blob = column if isinstance(column, bytes) else str(column).encode()
        assert SECRET.encode() not in blob
        assert b"clinic.okta.com" not in blob  # not a secret, but sealed all the same
    assert SECRET not in repr(audit)
    entries = db.audit.list(CLINIC, limit=50)
    actions = [e.action for e in entries]
    assert actions.count("response.credentials_put") == 3
    assert "response.credentials_delete" in actions
    for entry in entries:
        assert SECRET not in repr(entry.details)
    put = next(e for e in entries if e.action == "response.credentials_put")
    assert put.details["keys"] == ["api_token", "org_url"]
    assert put.actor == "sam@mssp"


def test_a_row_copied_to_another_tenant_does_not_open(db: Database, db_path: Path, key: SecretsKey) -> None:
    store = CredentialStore(db, key)
    store.put(CLINIC, "okta", OKTA, actor="t")
    store.put(LAWFIRM, "okta", {"org_url": "https://law.okta.com"}, actor="t")
    with sqlite3.connect(db_path) as raw:
        raw.execute(
            "UPDATE connector_credentials SET ciphertext = (SELECT ciphertext FROM connector_credentials "
            "WHERE tenant_id = 'clinic'), nonce = (SELECT nonce FROM connector_credentials "
            "WHERE tenant_id = 'clinic') WHERE tenant_id = 'lawfirm'"
        )
    with pytest.raises(SealedOpenError) as caught:
        store.config_for(LAWFIRM, "okta")
    assert caught.value.location is not None
    assert caught.value.location.tenant == "lawfirm"
    assert SECRET not in str(caught.value)


def test_nothing_is_logged_with_a_value(
    db: Database, key: SecretsKey, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    store = CredentialStore(db, key)
    store.put(CLINIC, "okta", OKTA, actor="t")
    store.config_for(CLINIC, "okta")
    with pytest.raises(CredentialsInvalidError):
        store.put(CLINIC, "okta", {"bad_key": SECRET}, actor="t")
    store.rotate([CLINIC], actor="t")
    load_key(settings_with(tmp_path, dev_mode=True))
    assert SECRET not in caplog.text
    assert key.to_base64() not in caplog.text


# -- the run engine with the store as its config source -------------------------------------------------

ISOLATE = (
    PLAYBOOK_HEAD
    + """
  - id: isolate
    kind: contain
    action: mde.isolate_machine
    with: {host: "{{ incident.entities.host[0] }}", comment: "incident {{ incident.id }}"}
"""
)


@dataclass
class World:
    db: Database
    registry: ActionRegistry
    server: LoopbackServer
    mde: FakeMde
    clock: FakeClock

    def engine(self, store: CredentialStore) -> RunEngine:
        pb = playbook(self.registry, ISOLATE)
        cases = CaseService(self.db, load_tiers(), auto_route=False, clock=self.clock)
        return RunEngine(
            self.db, self.registry, playbooks={pb.id: pb}, secrets=store, cases=cases, clock=self.clock
        )


@pytest.fixture
def world(db: Database, clock: FakeClock) -> Iterator[World]:
    fake = FakeMde(FakeEntra(scopes=(MDE_SCOPE,)))
    fake.add_machine("ws-17.clinic.local", last_seen="2026-12-04T08:00:00Z")
    http = HttpOptions(sleep=lambda _: None, token_cache=TokenCache())
    registry = ActionRegistry(
        [IsolateMachine, ReleaseMachine, GetMachineAction],
        factory=lambda cls: cls(http=http),  # type: ignore[call-arg]
    )
    store_incident(db)
    db.response.put_policy(CLINIC, AUTOMATIC, actor="admin")
    with LoopbackServer(fake.app()) as server:
        yield World(db=db, registry=registry, server=server, mde=fake, clock=clock)


def test_the_engine_acts_with_credentials_that_were_sealed_and_opened(
    world: World, key: SecretsKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = CredentialStore(world.db, key, registry=world.registry)
    store.put(
        CLINIC,
        "mde",
        {
            "tenant_id": DIRECTORY_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authority": world.server.url,
            "mde_base": world.server.url,
        },
        actor="sam@mssp",
    )
    engine = world.engine(CredentialStore(world.db, key, registry=world.registry))  # a fresh handle
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", playbook(world.registry, ISOLATE)).id)
    assert run.state == "succeeded", run
    (action,) = world.mde.actions
    assert action["type"] == "Isolate"
    assert world.db.incidents.get(CLINIC, "inc-1").state == "contained"
    assert CLIENT_SECRET not in caplog.text
    for entry in world.db.audit.list(CLINIC, limit=200):
        assert CLIENT_SECRET not in repr(entry.details)
    for step in world.db.response.steps(CLINIC, run.id):
        assert CLIENT_SECRET not in repr(step)


def test_without_stored_credentials_the_step_fails_with_a_config_error(world: World, key: SecretsKey) -> None:
    engine = world.engine(CredentialStore(world.db, key, registry=world.registry))
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", playbook(world.registry, ISOLATE)).id)
    assert run.state == "failed"
    assert world.mde.actions == []
    assert world.server.writes() == []


def test_credentials_that_do_not_open_make_no_vendor_call(world: World, key: SecretsKey) -> None:
    CredentialStore(world.db, key, registry=world.registry).put(
        CLINIC, "mde", {"tenant_id": DIRECTORY_ID, "client_secret": CLIENT_SECRET}, actor="t"
    )
    engine = world.engine(CredentialStore(world.db, SecretsKey.generate(), registry=world.registry))
    run = engine.start(CLINIC, "inc-1", playbook(world.registry, ISOLATE))
    failure: SealedOpenError | None = None
    state = ""
    try:
        state = engine.advance(CLINIC, run.id).state
    except SealedOpenError as exc:  # today's engine opens the config outside its ConnectorError handling
        failure = exc
    if failure is not None:
        assert CLIENT_SECRET not in str(failure)
        assert isinstance(failure, ConnectorConfigError)
        assert not failure.retryable
    else:
        assert state == "failed"
    assert world.mde.actions == []
    assert world.server.writes() == []
