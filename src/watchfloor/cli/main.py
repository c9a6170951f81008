"""`watchfloor` command line: one command per user verb. Only the CLI decides exit codes."""

from __future__ import annotations

import gc
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from watchfloor.cli import admin, cases, connectors, response
from watchfloor.cli.demo import demo
from watchfloor.cli.health import health_app
from watchfloor.cli.output import CsvWriter, JsonlWriter, MatchWriter, TableWriter, summary_table
from watchfloor.cli.search import search_app
from watchfloor.core.errors import WatchfloorError
from watchfloor.core.types import TenantId, tenant_id
from watchfloor.detect.sigma.engine import TenantRules
from watchfloor.detect.sigma.hunt import Hunter
from watchfloor.detect.sigma.loader import load_rules
from watchfloor.normalize.logsources import default_logsource_map
from watchfloor.normalize.readers import (
    JsonlDeadLetterStore,
    MemoryDeadLetters,
    ReadSink,
    ReadStats,
    iter_inputs,
)

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Watchfloor: managed detection and response."
)
rules_app = typer.Typer(no_args_is_help=True, help="Inspect and check detection rules.")
app.add_typer(rules_app, name="rules")
app.command(help="Generate a small business's Windows telemetry with attacks and hunt it (no data needed).")(
    demo
)
admin.register(app)
cases.register(app)  # triage, incidents, alerts, suppressions, queue, metrics, sla, soc
connectors.register(app)  # connectors list/set/delete/rotate
response.register(app)  # runs, approvals, response-policy, kill-switch
app.add_typer(health_app, name="health")
app.add_typer(search_app)  # `search` and `retrohunt` as top-level commands
err = Console(stderr=True)


class Format(StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


def _tenant(value: str) -> TenantId:
    try:
        return tenant_id(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _placeholders(path: Path | None) -> TenantRules | None:
    if path is None:
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a mapping of placeholder name -> list of values")
    values = {str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in data.items()}
    return TenantRules(placeholders=values)


@app.command()
def hunt(
    inputs: Annotated[list[Path], typer.Argument(help="EVTX/JSON/JSONL files or folders")],
    rules: Annotated[
        list[Path], typer.Option("--rules", "-r", help="Sigma rule file or folder (repeatable)")
    ],
    tenant: Annotated[str, typer.Option(help="Tenant id the input belongs to")] = "default",
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format")] = Format.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write matches here")] = None,
    placeholders: Annotated[
        Path | None, typer.Option(help="YAML mapping placeholder -> values for |expand rules")
    ] = None,
    dead_letters: Annotated[Path | None, typer.Option(help="Keep dead letters under this folder")] = None,
    with_event: Annotated[bool, typer.Option(help="Include the event in jsonl output")] = False,
    progress: Annotated[
        bool, typer.Option(help="Progress bar (default: when stderr is a terminal)")
    ] = sys.stderr.isatty(),
) -> None:
    """Hunt over files with Sigma rules, like Hayabusa, Chainsaw or Zircolite."""
    tid = _tenant(tenant)
    started = time.perf_counter()
    ruleset = load_rules(rules)
    for error in ruleset.errors:
        err.print(f"[yellow]rule not loaded[/] {error}")
    hunter = Hunter(ruleset, default_logsource_map(), tenant=tid, overlay=_placeholders(placeholders))
    # The compiled rules (millions of objects) live for the whole run: keep the cyclic collector off
    # them, so it walks only what each event allocates.
    gc.freeze()
    inactive = [s for s in hunter.engine.statuses if s.status != "active"]
    err.print(
        f"{len(ruleset.rules)} rules and {len(ruleset.correlations)} correlations "
        f"loaded from {ruleset.files} files "
        f"in {time.perf_counter() - started:.1f}s; {hunter.engine.active_rules(tid)} active, "
        f"{len(inactive)} cannot fire (see `watchfloor rules check`), {len(ruleset.errors)} load errors"
    )
    sink: ReadSink = JsonlDeadLetterStore(dead_letters) if dead_letters is not None else MemoryDeadLetters()
    stats = ReadStats()
    writer: MatchWriter
    out_stream: Any = None
    if fmt is Format.table:
        writer = TableWriter(Console(file=output.open("w", encoding="utf-8")) if output else Console())
    elif fmt is Format.jsonl:
        out_stream = output.open("wb") if output else sys.stdout.buffer
        writer = JsonlWriter(out_stream, with_event=with_event)
    else:
        out_stream = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        writer = CsvWriter(out_stream)
    paths = list(iter_inputs(inputs))
    total = sum(p.stat().st_size for p in paths if p.exists())
    hunt_started = time.perf_counter()
    with Progress(
        TextColumn("[bold]hunting"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not progress,
    ) as bar:
        task = bar.add_task("hunt", total=total or None)
        for match in hunter.run(inputs, sink, stats, progress=lambda n: bar.advance(task, n)):
            writer.write(match)
    writer.close()
    if out_stream is not None and output is not None:
        out_stream.close()
    elapsed = time.perf_counter() - hunt_started
    err.print(summary_table(hunter.summary))
    rate = stats.records / elapsed if elapsed > 0 else 0.0
    err.print(
        f"{stats.records} events from {stats.files} files in {elapsed:.1f}s ({rate:,.0f} events/s); "
        f"{hunter.summary.matches} matches; {stats.dead_letters} dead letters; {stats.diagnostics} warnings"
    )
    _report_bad_input(sink, stats)


def _report_bad_input(sink: ReadSink, stats: ReadStats) -> None:
    if isinstance(sink, MemoryDeadLetters):
        for item in sink.dead_letters[:20]:
            err.print(f"[red]dead letter[/] {item.where()}: [{item.code}] {item.reason}")
        for diag in sink.diagnostics[:20]:
            where = diag.source + (f":{diag.line}" if diag.line is not None else "")
            err.print(f"[yellow]warning[/] tenant={diag.tenant} {where}: [{diag.code}] {diag.message}")
    if stats.by_code:
        err.print("by code: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.by_code.items())))


@rules_app.command("check")
def rules_check(
    paths: Annotated[list[Path], typer.Argument(help="Sigma rule files or folders")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Load and compile rules; list every rule that does not load or cannot fire, with why."""
    ruleset = load_rules(paths)
    hunter = Hunter(ruleset, default_logsource_map(), tenant=TenantId("default"))
    problems = [s for s in hunter.engine.statuses if s.status != "active"]
    if as_json:
        doc = {
            "files": ruleset.files,
            "rules": len(ruleset.rules),
            "correlations": len(ruleset.correlations),
            "load_errors": [
                {"path": e.path, "line": e.line, "code": e.code, "reason": e.reason} for e in ruleset.errors
            ],
            "inactive": [
                {"rule_id": s.rule_id, "path": s.path, "line": s.line, "status": s.status, "reason": s.reason}
                for s in problems
            ],
        }
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        for error in ruleset.errors:
            print(f"LOAD  {error}")
        for status in problems:
            where = status.path if status.line is None else f"{status.path}:{status.line}"
            print(f"{status.status.upper():<11} {where}: {status.title}: {status.reason}")
        active = hunter.engine.active_rules()
        print(
            f"{ruleset.files} files, {len(ruleset.rules)} rules, {len(ruleset.correlations)} correlations; "
            f"{active} active, {len(problems)} cannot fire, {len(ruleset.errors)} load errors"
        )
    if ruleset.errors:
        raise typer.Exit(code=1)


def main() -> None:
    try:
        app()
    except WatchfloorError as exc:
        err.print(f"[red]error[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
