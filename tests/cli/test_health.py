"""`watchfloor health status|check|retire|restore` end to end on a real SQLite system of record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from watchfloor.cli.health import health_app
from watchfloor.core.types import TenantId
from watchfloor.health import HealthTracker
from watchfloor.storage import Database

runner = CliRunner()
app = typer.Typer()
app.add_typer(health_app, name="health")  # as `watchfloor health` once cli/main.py registers it
CLINIC = TenantId("clinic")
FIRM = TenantId("lawfirm")


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WATCHFLOOR_ACTOR", "tester")
    url = f"sqlite:///{tmp_path / 'wf.db'}"
    now = datetime.now(UTC)
    with Database.open(url) as db:
        db.tenants.create(CLINIC, name="Clinic", vertical="healthcare", tier="standard", actor="t")
        db.tenants.create(FIRM, name="Firm", vertical="legal", tier="premium", actor="t")
        tracker = HealthTracker(started_at=now - timedelta(days=1))
        tracker.observe(CLINIC, "windows/security", now - timedelta(minutes=3))
        tracker.observe(CLINIC, "syslog:udp:10.0.0.5", now - timedelta(hours=5))
        tracker.observe(FIRM, "okta/okta", now - timedelta(minutes=90))
        tracker.flush(db.health, now)
    return ["--database-url", url]


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_status_lists_each_source_with_its_age(where: list[str]) -> None:
    rows = orjson.loads(run("health", "status", "--tenant", "clinic", "--json", *where))
    assert [(r["source"], r["status"]) for r in rows] == [
        ("syslog:udp:10.0.0.5", "ok"),
        ("windows/security", "ok"),
    ]
    assert rows[0]["age_seconds"] >= 5 * 3600
    assert {"events_hour", "expected_hour", "last_seen", "hour"} <= set(rows[0])
    table = run("health", "status", "--tenant", "clinic", *where)
    assert "syslog" in table  # rich wraps long names at 80 columns
    assert "learning" in table


def test_check_reports_changes_once(where: list[str]) -> None:
    changes = orjson.loads(run("health", "check", "--json", *where))
    assert sorted((c["tenant"], c["source"], c["to"]) for c in changes) == [
        ("clinic", "syslog:udp:10.0.0.5", "silent"),  # standard: 120 min
        ("lawfirm", "okta/okta", "silent"),  # premium: 60 min
    ]
    assert orjson.loads(run("health", "check", "--json", *where)) == []
    assert "no changes" in run("health", "check", *where)
    rows = orjson.loads(run("health", "status", "--tenant", "clinic", "--json", *where))
    assert [r["status"] for r in rows] == ["silent", "ok"]


def test_thresholds_file_changes_the_tiers(where: list[str], tmp_path: Path) -> None:
    limits = tmp_path / "health.yaml"
    limits.write_text("premium:\n  silent_after_minutes: 600\nstandard:\n  silent_after_minutes: 600\n")
    assert orjson.loads(run("health", "check", "--json", "--thresholds", str(limits), *where)) == []
    limits.write_text("premium: 3\n")
    result = runner.invoke(app, ["health", "check", "--thresholds", str(limits), *where])
    assert result.exit_code != 0


def test_retire_stops_alerts_for_a_decommissioned_device(where: list[str]) -> None:
    run("health", "check", *where)
    assert "retired" in run("health", "retire", "--tenant", "clinic", "syslog:udp:10.0.0.5", *where)
    rows = orjson.loads(run("health", "status", "--tenant", "clinic", "--json", *where))
    assert rows[0]["status"] == "retired"
    assert "ok" in run("health", "restore", "--tenant", "clinic", "syslog:udp:10.0.0.5", *where)


def test_status_of_an_unknown_tenant_is_a_usage_error(where: list[str]) -> None:
    result = runner.invoke(app, ["health", "status", "--tenant", "nobody", *where])
    assert result.exit_code == 2
