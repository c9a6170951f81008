"""`watchfloor health`: telemetry health per tenant and source (`status`), run the checker now (`check`),
and take a decommissioned source out of checking (`retire`, `restore`).

Same system-of-record options as the service commands (`--database-url`, `--data-dir`, `--config`).
Thresholds per service tier: the defaults of `watchfloor.health.model`, or a YAML file given with
`--thresholds` (`{premium: {silent_after_minutes: 30}, ...}`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
import yaml
from rich.table import Table

from watchfloor.cli.admin import ActorOpt, ConfigOpt, DataDirOpt, DbOpt, JsonOpt, _actor, _db, _tenant, out
from watchfloor.health.checker import HealthChecker
from watchfloor.health.model import HealthThresholds
from watchfloor.health.report import format_age, tenant_report

health_app = typer.Typer(
    no_args_is_help=True, help="Telemetry health: silent and low-volume sources per tenant."
)

ThresholdsOpt = Annotated[
    Path | None,
    typer.Option(
        "--thresholds", help="YAML: tier -> silent_after_minutes, low_volume_ratio, ...", exists=True
    ),
]
_STATUS_STYLE = {"ok": "green", "silent": "bold red", "low_volume": "yellow", "retired": "dim"}


def _thresholds(path: Path | None) -> HealthThresholds:
    if path is None:
        return HealthThresholds()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a mapping of tier -> thresholds")
    try:
        return HealthThresholds.from_mapping(data)
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: {exc}") from exc


def _json(value: object) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@health_app.command("status")
def status(
    tenant: Annotated[str, typer.Option("--tenant", help="tenant id")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Each source of a tenant: last event, age, events in the last hour against its baseline, status."""
    tid = _tenant(tenant)
    now = datetime.now(UTC)
    with _db(config, data_dir, database_url) as db:
        if db.tenants.get(tid) is None:
            raise typer.BadParameter(f"no tenant {tid!r}", param_hint="--tenant")
        reports = tenant_report(db.health, tid, now)
    if as_json:
        _json([r.to_json() for r in reports])
        return
    hour = reports[0].hour if reports else None
    title = f"telemetry health: {tid}" + (f" (last hour = {hour:%a %H:00} UTC)" if hour else "")
    table = Table(title=title)
    for column in ("source", "last seen (UTC)", "age", "last hour", "baseline", "status"):
        table.add_column(column, justify="right" if column in {"age", "last hour", "baseline"} else "left")
    for r in reports:
        baseline = "learning" if r.expected_hour is None else f"{r.expected_hour:.0f} ({r.baseline_weeks} wk)"
        style = _STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.source,
            f"{r.last_seen:%Y-%m-%d %H:%M:%S}",
            format_age(r.age),
            str(r.events_hour),
            baseline,
            f"[{style}]{r.status}[/]" if style else r.status,
        )
    out.print(table)
    if not reports:
        out.print(f"no telemetry seen for tenant {tid} yet")


@health_app.command("check")
def check(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    thresholds: ThresholdsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the checker now over every active tenant; print the status changes it made."""
    limits = _thresholds(thresholds)
    now = datetime.now(UTC)
    with _db(config, data_dir, database_url) as db:
        tiers = {t.id: t.tier for t in db.tenants.list()}
        changes = HealthChecker(db.health, limits).check(now, tiers)
    if as_json:
        _json([c.to_json() for c in changes])
        return
    if not changes:
        out.print(f"no changes ({len(tiers)} active tenants checked)")
        return
    table = Table(title=f"telemetry health changes at {now:%Y-%m-%d %H:%M} UTC")
    for column in ("tenant", "source", "from", "to", "tier", "why"):
        table.add_column(column)
    for c in changes:
        style = _STATUS_STYLE.get(c.status, "")
        table.add_row(c.tenant_id, c.source, c.previous, f"[{style}]{c.status}[/]", c.tier, c.reason)
    out.print(table)


@health_app.command("retire")
def retire(
    tenant: Annotated[str, typer.Option("--tenant", help="tenant id")],
    source: Annotated[str, typer.Argument(help="source name as `health status` shows it")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Stop checking a decommissioned source (its open alert closes); `restore` undoes it."""
    with _db(config, data_dir, database_url) as db:
        row = db.health.retire_source(_tenant(tenant), source, actor=_actor(actor))
    out.print(f"{row.tenant_id} {row.source}: {row.status}")


@health_app.command("restore")
def restore(
    tenant: Annotated[str, typer.Option("--tenant", help="tenant id")],
    source: Annotated[str, typer.Argument(help="source name as `health status` shows it")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Check a retired source again (it starts `ok`; the next check judges it)."""
    with _db(config, data_dir, database_url) as db:
        row = db.health.restore_source(_tenant(tenant), source, actor=_actor(actor))
    out.print(f"{row.tenant_id} {row.source}: {row.status}")
