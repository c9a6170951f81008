"""Response from the command line on a real SQLite system of record: runs, approvals, the response policy
and the kill switch, as the operator and as roster analysts (`--as`), with Defender for Endpoint as a
loopback fake whose credentials come through `cli.response.config_source_for`.

The commands run on the wall clock (as `watchfloor` does), so the stored incident and the approvals are
recent whatever the date.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner, Result

from tests.server.test_response_stage import (
    CLINIC,
    ROSTER,
    ResponseWorld,
    response_world,
    store_incident,
)
from watchfloor.cli import response as response_cli
from watchfloor.respond.engine import ConnectorConfigSource
from watchfloor.server.settings import ServeSettings
from watchfloor.storage import Database
from watchfloor.storage.respond import PLATFORM_TENANT

runner = CliRunner()


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("noop", hidden=True)(lambda: None)  # a group, not a single command
    response_cli.register(app)
    return app


APP = make_app()


@dataclass
class Cli:
    """`cli(...)` runs a command with the database, roster and playbook options; `cli.bare(...)` with the
    database options only (`kill-switch`)."""

    world: ResponseWorld
    database: list[str]
    content: list[str]

    def bare(self, *args: str) -> Result:
        return runner.invoke(APP, [*args, *self.database], env={"COLUMNS": "250"})

    def __call__(self, *args: str) -> Result:
        return self.bare(*args, *self.content)

    def json(self, *args: str, bare: bool = False) -> Any:
        result = (self.bare if bare else self)(*args, "--json")
        assert result.exit_code == 0, result.output + str(result.exception)
        return orjson.loads(result.stdout)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    with response_world(tmp_path, start=datetime.now(tz=UTC)) as world:
        store_incident(world.db)

        def config_source(_db: Database, _settings: ServeSettings) -> ConnectorConfigSource:
            return world.config

        monkeypatch.setattr(response_cli, "config_source_for", config_source)
        database = ["--data-dir", str(tmp_path / "data"), "--database-url", f"sqlite:///{tmp_path / 'wf.db'}"]
        content = ["--roster", str(ROSTER), "--playbooks", str(world.playbooks)]
        yield Cli(world=world, database=database, content=content)


def test_start_approve_show_and_list(cli: Cli) -> None:
    started = cli.json("runs", "start", "clinic", "inc-1", "isolate-host", "--as", "frieda")
    run_id = started["run"]["id"]
    assert started["run"]["state"] == "waiting_approval"
    assert started["run"]["created_by"] == "frieda"

    (approval,) = cli.json("approvals", "list", "--as", "frieda")
    assert approval["run_id"] == run_id
    assert approval["actions"] == ["mde.isolate_machine"]
    assert cli.json("approvals", "list", "--as", "gus") == []  # outside gus' scope

    refused = cli("approvals", "approve", "clinic", run_id, "approve", "--reason", "go", "--as", "pia")
    assert refused.exit_code == 1
    assert "cases.permission_denied" in refused.output
    assert cli.world.mde.actions == []

    done = cli.json(
        "approvals", "approve", "clinic", run_id, "approve", "--reason", "confirmed", "--as", "frieda"
    )
    assert done["run"]["state"] == "succeeded"
    steps = {s["step_id"]: s for s in done["steps"]}
    assert steps["isolate"]["approved_by"] == "frieda"
    assert [a["type"] for a in cli.world.mde.actions] == ["Isolate"]

    shown = cli.json("runs", "show", "clinic", run_id)
    assert shown["approvals"][0]["decided_by"] == "frieda"
    listed = cli.json("runs", "list", "clinic", "--incident", "inc-1", "--state", "succeeded")
    assert [r["id"] for r in listed] == [run_id]
    table = cli("runs", "list", "clinic")
    assert table.exit_code == 0
    assert (
        "response runs of clinic" in table.stdout
    )  # cells fold with the terminal's width: JSON has the data
    assert run_id[:6] in table.stdout.replace("│", "").replace(" ", "").replace("\n", "")


def test_reject_and_cancel(cli: Cli) -> None:
    first = cli.json("runs", "start", "clinic", "inc-1", "isolate-host", "--as", "frieda")["run"]["id"]
    rejected = cli.json(
        "approvals", "reject", "clinic", first, "approve", "--reason", "a server", "--as", "dm-emea"
    )
    assert rejected["run"]["state"] == "failed_closed"
    second = cli.json("runs", "start", "clinic", "inc-1", "isolate-host")["run"]["id"]
    refused = cli("runs", "cancel", "clinic", second, "--reason", "x", "--as", "dora")
    assert refused.exit_code == 1
    cancelled = cli.json("runs", "cancel", "clinic", second, "--reason", "by phone")
    assert cancelled["run"]["state"] == "cancelled"
    assert cli.world.mde.actions == []


def test_dry_run_makes_no_write_call(cli: Cli) -> None:
    dry = cli.json("runs", "start", "clinic", "inc-1", "isolate-host", "--dry-run", "--as", "dora")
    assert dry["run"]["dry_run"] is True
    assert dry["run"]["state"] == "succeeded"
    assert cli.world.server.writes() == []
    real = cli("runs", "start", "clinic", "inc-1", "isolate-host", "--as", "dora")
    assert real.exit_code == 1  # a T1 may not contain
    assert cli.world.db.response.list_runs(CLINIC, states=["pending", "waiting_approval"]) == []


def test_kill_switch_refuses_new_containment(cli: Cli) -> None:
    roster = ("--roster", str(ROSTER))
    assert cli.json("kill-switch", "status", bare=True) == {"engaged": False}
    refused = cli.bare("kill-switch", "on", "--reason", "vendor outage", "--as", "frieda", *roster)
    assert refused.exit_code == 1
    assert "mssp_admin and soc_manager only" in refused.output
    on = cli.json("kill-switch", "on", "--reason", "vendor outage", "--as", "dm-emea", *roster, bare=True)
    assert on == {"engaged": True}
    assert cli.json("kill-switch", "status", bare=True) == {"engaged": True}
    (entry,) = cli.world.db.audit.list(PLATFORM_TENANT, action="response.switch_on")  # type: ignore[arg-type]
    assert entry.actor == "dm-emea"

    blocked = cli("runs", "start", "clinic", "inc-1", "isolate-host")
    assert blocked.exit_code == 1
    assert "response.kill_switch" in blocked.output
    assert cli.world.db.response.list_runs(CLINIC) == []
    dry = cli.json("runs", "start", "clinic", "inc-1", "isolate-host", "--dry-run")
    assert dry["run"]["state"] == "succeeded"

    off = cli.bare("kill-switch", "off", "--reason", "vendor fixed")
    assert off.exit_code == 0
    assert "released" in off.stdout


def test_response_policy_show_and_set(cli: Cli, tmp_path: Path) -> None:
    shown = cli.json("response-policy", "show", "clinic")
    assert shown["stored"] is None
    bad = tmp_path / "bad.yml"
    bad.write_text("risks:\n  containment: {mode: yolo}\n", encoding="utf-8")
    refused = cli("response-policy", "set", "clinic", "--file", str(bad))
    assert refused.exit_code == 1
    assert "risks.containment.mode" in refused.output
    good = tmp_path / "policy.json"
    good.write_text('{"limits_per_hour": {"host": 2}}', encoding="utf-8")
    denied = cli("response-policy", "set", "clinic", "--file", str(good), "--as", "frieda")
    assert denied.exit_code == 1
    stored = cli.json("response-policy", "set", "clinic", "--file", str(good))
    assert stored["stored"] == {"limits_per_hour": {"host": 2}}
    assert stored["effective"]["limits_per_hour"]["host"] == 2
    readable = cli("response-policy", "show", "clinic")
    assert readable.exit_code == 0
    assert "limits_per_hour:" in readable.stdout
    assert cli.world.db.response.get_policy(CLINIC) == {"limits_per_hour": {"host": 2}}
