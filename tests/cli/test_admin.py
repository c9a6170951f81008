"""Service commands end to end on a real SQLite system of record: tenants, tokens, ingest, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from watchfloor.cli.main import app
from watchfloor.samples.windows import generate_windows_events, write_jsonl
from watchfloor.storage import Database

runner = CliRunner()


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WATCHFLOOR_ACTOR", "tester")
    return ["--database-url", f"sqlite:///{tmp_path / 'wf.db'}"]


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_tenant_lifecycle_and_tokens(where: list[str], tmp_path: Path) -> None:
    run(
        "tenant",
        "create",
        "clinic",
        "--name",
        "Riverside Clinic",
        "--vertical",
        "healthcare",
        "--tier",
        "premium",
        "--contact",
        "Dana Lee,dana@clinic.test,owner,1",
        *where,
    )
    listed = orjson.loads(run("tenant", "list", "--json", *where))
    assert [(t["id"], t["vertical"], t["tier"]) for t in listed] == [("clinic", "healthcare", "premium")]
    assert listed[0]["contacts"][0]["email"] == "dana@clinic.test"
    run("tenant", "update", "clinic", "--tier", "standard", *where)
    created = orjson.loads(run("token", "create", "clinic", "--description", "winlogbeat", "--json", *where))
    secret = created["token"]
    assert secret.startswith("wf_")
    tokens = run("token", "list", "clinic", "--json", *where)
    assert secret not in tokens  # shown once, never again
    db = Database.open(f"sqlite:///{tmp_path / 'wf.db'}")
    try:
        assert db.tokens.resolve(secret) == "clinic"
        run("token", "revoke", "clinic", created["id"], *where)
        assert db.tokens.resolve(secret) is None
        actions = [e.action for e in db.audit.list("clinic")]  # type: ignore[arg-type]
        assert len(actions) >= 4
        assert all(e.actor == "tester" for e in db.audit.list("clinic"))  # type: ignore[arg-type]
    finally:
        db.close()
    run("tenant", "retire", "clinic", *where)
    assert orjson.loads(run("tenant", "list", "--json", *where)) == []


def test_ingest_stores_detections_once_and_dead_letters_bad_lines(where: list[str], tmp_path: Path) -> None:
    run("tenant", "create", "lawfirm", "--name", "Law Firm", "--vertical", "legal", *where)
    events, _truth = generate_windows_events(
        seed=3, hosts=4, hours=3, start=datetime(2026, 11, 3, 8, tzinfo=UTC)
    )
    good = tmp_path / "good.jsonl"
    write_jsonl(events, good)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"broken": \n' + orjson.dumps(events[0]) + b"\n[1]\n")
    first = orjson.loads(run("ingest", str(good), str(bad), "--tenant", "lawfirm", "--json", *where))
    assert first["records"] == len(events) + 1
    assert first["detections_new"] > 0
    assert first["dead_letters"] == 2
    again = orjson.loads(run("ingest", str(good), "--tenant", "lawfirm", "--json", *where))
    assert again["detections_new"] == 0
    assert again["detections_already_stored"] == first["detections_new"]
    letters = orjson.loads(run("deadletter", "list", "--tenant", "lawfirm", "--json", *where))
    assert len(letters) == 2
    assert all("bad.jsonl" in d["source"] for d in letters)
    assert {d["line"] for d in letters if d["line"] is not None} <= {1, 3}
    replay = orjson.loads(run("deadletter", "replay", "--tenant", "lawfirm", "--json", *where))
    assert replay["replayed"] == 2
    assert replay["failed_again"] == 2  # still malformed: kept, with the reason, as new dead letters
    pending = orjson.loads(
        run("deadletter", "list", "--tenant", "lawfirm", "--status", "pending", "--json", *where)
    )
    assert len(pending) == 2


def test_ingest_refuses_an_unknown_tenant(where: list[str], tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("{}\n")
    result = runner.invoke(app, ["ingest", str(path), "--tenant", "nobody", *where])
    assert result.exit_code == 2
    assert "no tenant" in result.output


OWN_RULE = """title: Any logon to the file server (the law firm's own rule)
id: 00000000-0000-4000-8000-00000000f001
author: Law Firm IT
level: low
logsource: {product: windows, service: security}
detection:
  sel:
    EventID: 4624
    Computer|startswith: 'FS01'
  condition: sel
"""


def test_per_tenant_overlays_from_the_config_file(where: list[str], tmp_path: Path) -> None:
    own = tmp_path / "lawfirm-rules"
    own.mkdir()
    (own / "fs01.yml").write_text(OWN_RULE, encoding="utf-8")
    config = tmp_path / "watchfloor.yml"
    config.write_text(
        "tenant_rules:\n"
        f"  lawfirm:\n    extra: ['{own}']\n"
        "  clinic:\n    disabled: ['c45587b3-d755-43e0-9540-74b8d14186ca']\n",
        encoding="utf-8",
    )
    for tenant in ("lawfirm", "clinic"):
        run("tenant", "create", tenant, "--name", tenant.title(), *where)
    events, _truth = generate_windows_events(
        seed=3, hosts=4, hours=3, start=datetime(2026, 11, 3, 8, tzinfo=UTC)
    )
    path = tmp_path / "events.jsonl"
    write_jsonl(events, path)
    for tenant in ("lawfirm", "clinic"):
        run("ingest", str(path), "--tenant", tenant, "--config", str(config), *where)
    db = Database.open(f"sqlite:///{tmp_path / 'wf.db'}")
    try:
        by_tenant = {
            t: {d.rule_id for d in db.detections.list(t, limit=100_000)}  # type: ignore[arg-type]
            for t in ("lawfirm", "clinic")
        }
    finally:
        db.close()
    own_id = "00000000-0000-4000-8000-00000000f001"
    office = "c45587b3-d755-43e0-9540-74b8d14186ca"
    assert own_id in by_tenant["lawfirm"]
    assert own_id not in by_tenant["clinic"]
    assert office in by_tenant["lawfirm"]  # the sample day has the Office macro attack
    assert office not in by_tenant["clinic"]  # switched off for the clinic
