"""`watchfloor connectors list|set|delete` on a real SQLite system of record: values from arguments,
stdin, a hidden prompt or a YAML file; never in the output, the audit log or the raw row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from watchfloor.cli.connectors import register
from watchfloor.core.types import TenantId
from watchfloor.respond.secrets import CredentialStore, SecretsKey
from watchfloor.storage import Database

SECRET = "cli-s3cr3t-That-Must-Never-Leak"
CLINIC = TenantId("clinic")

app = typer.Typer()
register(app)
runner = CliRunner()


@pytest.fixture
def key() -> SecretsKey:
    return SecretsKey.generate()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "wf.db"


@pytest.fixture
def where(tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch, key: SecretsKey) -> list[str]:
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WATCHFLOOR_ACTOR", "tester")
    monkeypatch.setenv("WATCHFLOOR_SECRETS_KEY", key.to_base64())
    db = Database.open(f"sqlite:///{db_path}")
    try:
        db.tenants.create(
            "clinic", name="Northside Family Clinic", vertical="healthcare", tier="standard", actor="setup"
        )
    finally:
        db.close()
    return ["--database-url", f"sqlite:///{db_path}"]


def invoke(*args: str, stdin: str | None = None, code: int = 0) -> str:
    result = runner.invoke(app, list(args), input=stdin, catch_exceptions=False, env={"COLUMNS": "300"})
    assert result.exit_code == code, result.output
    assert SECRET not in result.output
    return result.output


def stored(db_path: Path, key: SecretsKey, connector: str) -> dict[str, str]:
    db = Database.open(f"sqlite:///{db_path}")
    try:
        return dict(CredentialStore(db, key).config_for(CLINIC, connector))
    finally:
        db.close()


def test_set_list_delete_without_showing_values(where: list[str], db_path: Path, key: SecretsKey) -> None:
    said = invoke(
        "connectors",
        "set",
        "clinic",
        "okta",
        "org_url=https://clinic.okta.com",
        "api_token=-",
        *where,
        stdin=SECRET + "\n",
    )
    assert "api_token" in said
    assert key.key_id in said
    assert stored(db_path, key, "okta") == {"org_url": "https://clinic.okta.com", "api_token": SECRET}

    listed = orjson.loads(invoke("connectors", "list", "clinic", "--json", *where))
    okta = next(c for c in listed if c["connector"] == "okta")
    assert okta["keys_set"] == ["api_token", "org_url"]
    assert okta["secret_keys"] == ["api_token"]
    table = invoke("connectors", "list", "clinic", *where)
    assert "okta" in table

    as_json = orjson.loads(
        invoke(
            "connectors",
            "set",
            "clinic",
            "okta",
            "api_token=-",
            "--json",
            *where,
            stdin="second-" + SECRET + "\n",
        )
    )
    assert as_json[0]["keys"] == ["api_token", "org_url"]  # merged into what was stored
    assert stored(db_path, key, "okta")["api_token"] == "second-" + SECRET

    invoke("connectors", "delete", "clinic", "okta", *where)
    invoke("connectors", "delete", "clinic", "okta", *where, code=1)
    assert stored(db_path, key, "okta") == {}

    with sqlite3.connect(db_path) as raw:
        audit = raw.execute("SELECT actor, action, details FROM audit_log").fetchall()
    assert ("tester", "response.credentials_put") in {(a, b) for a, b, _ in audit}
    assert SECRET not in repr(audit)


def test_a_bare_key_asks_with_hidden_input(where: list[str], db_path: Path, key: SecretsKey) -> None:
    invoke(
        "connectors",
        "set",
        "clinic",
        "okta",
        "org_url=https://clinic.okta.com",
        "api_token",
        *where,
        stdin=SECRET + "\n",
    )
    assert stored(db_path, key, "okta")["api_token"] == SECRET


def test_from_file_and_replace(where: list[str], tmp_path: Path, db_path: Path, key: SecretsKey) -> None:
    invoke(
        "connectors",
        "set",
        "clinic",
        "okta",
        "org_url=https://old.okta.com",
        "api_token=-",
        *where,
        stdin="old\n",
    )
    values = tmp_path / "okta.yml"
    values.write_text(f"org_url: https://clinic.okta.com\napi_token: {SECRET}\n", encoding="utf-8")
    invoke("connectors", "set", "clinic", "okta", "--from-file", str(values), "--replace", *where)
    assert stored(db_path, key, "okta") == {"org_url": "https://clinic.okta.com", "api_token": SECRET}
    broken = tmp_path / "broken.yml"
    broken.write_text(f"org_url: [unclosed\napi_token: {SECRET}\n", encoding="utf-8")
    said = invoke("connectors", "set", "clinic", "okta", "--from-file", str(broken), *where, code=2)
    assert "not valid YAML" in said


def test_refusals_name_keys_never_values(where: list[str], db_path: Path, key: SecretsKey) -> None:
    said = invoke("connectors", "set", "clinic", "okta", f"api_tokn={SECRET}", *where, code=2)
    assert "api_tokn" in said
    said = invoke("connectors", "set", "clinic", "nosuch", f"api_token={SECRET}", *where, code=2)
    assert "nosuch" in said
    invoke("connectors", "set", "clinic", "okta", f"{SECRET}!=x", *where, code=2)
    said = invoke("connectors", "set", "clinic", "okta", f"api_token={SECRET}", *where)
    assert "api_token was given on the command line" in said
    assert stored(db_path, key, "okta") == {"api_token": SECRET}
    invoke("connectors", "delete", "clinic", "okta", *where)
    assert stored(db_path, key, "okta") == {}


def test_without_a_key_it_refuses_and_says_how_to_make_one(
    where: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHFLOOR_SECRETS_KEY")
    said = invoke("connectors", "set", "clinic", "okta", f"api_token={SECRET}", *where, code=2)
    assert "os.urandom(32)" in said
    said = invoke("connectors", "list", "clinic", *where, code=2)
    assert "WATCHFLOOR_SECRETS_KEY" in said


def test_a_stored_record_under_a_lost_key_asks_for_replace(
    where: list[str], db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("connectors", "set", "clinic", "okta", "api_token=-", *where, stdin=SECRET + "\n")
    other = SecretsKey.generate()
    monkeypatch.setenv("WATCHFLOOR_SECRETS_KEY", other.to_base64())
    said = invoke("connectors", "set", "clinic", "okta", "org_url=https://x.okta.com", *where, code=2)
    assert "--replace" in said
    invoke("connectors", "set", "clinic", "okta", "org_url=https://x.okta.com", "--replace", *where)
    assert stored(db_path, other, "okta") == {"org_url": "https://x.okta.com"}


def test_rotate_reseals_under_the_current_key(
    where: list[str], db_path: Path, key: SecretsKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("connectors", "set", "clinic", "okta", "api_token=-", *where, stdin=SECRET + "\n")
    new = SecretsKey.generate()
    monkeypatch.setenv("WATCHFLOOR_SECRETS_KEY", f"{new.to_base64()},{key.to_base64()}")
    assert "1 connector credentials re-sealed" in invoke("connectors", "rotate", *where)
    assert "0 connector credentials re-sealed" in invoke("connectors", "rotate", "--tenant", "clinic", *where)
    assert stored(db_path, new, "okta") == {"api_token": SECRET}
