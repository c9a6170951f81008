"""`watchfloor demo`: generate a day of sample Windows logs, hunt them with content/rules, and say
which injected attacks were caught. Needs nothing but the repository (no ../shared, no network).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console
from rich.markup import escape

from watchfloor.cli.output import CsvWriter, JsonlWriter, MatchWriter, summary_table
from watchfloor.core.types import TenantId
from watchfloor.detect.sigma.engine import TenantRules
from watchfloor.detect.sigma.hunt import Hunter, HuntMatch, HuntSummary
from watchfloor.detect.sigma.loader import LoadError, load_rules
from watchfloor.normalize.deadletter import MemoryDeadLetters, ReadStats
from watchfloor.normalize.logsources import content_dir, default_logsource_map
from watchfloor.samples.truth import GroundTruth, Outcome, attack_records, score
from watchfloor.samples.windows import PLACEHOLDERS, generate_windows_events, write_jsonl

DEMO_START = datetime(2026, 12, 1, tzinfo=UTC)
DEMO_TENANT = TenantId("demo")
EVENTS_FILE = "windows-events.jsonl"
TRUTH_FILE = "ground-truth.json"
MATCHES_FILE = "matches.jsonl"
PLACEHOLDERS_FILE = "placeholders.yml"


class DemoFormat(StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


@dataclass(slots=True)
class DemoResult:
    """What one demo run produced: files, the hunt summary, and the outcome per injected attack step."""

    out_dir: Path
    rules_dir: Path
    events: int
    truths: list[GroundTruth]
    summary: HuntSummary
    outcomes: list[Outcome]
    load_errors: list[LoadError]
    stats: ReadStats
    rules: int = 0
    correlations: int = 0
    seconds: float = 0.0
    benign_matches: Counter[tuple[str, str]] = field(default_factory=Counter)  # (level, title) -> count

    @property
    def detected(self) -> int:
        return sum(1 for o in self.outcomes if o.detected)


def rules_dir() -> Path:
    """content/rules of this checkout, or of WATCHFLOOR_CONTENT_DIR when set."""
    return content_dir() / "rules"


def match_records(match: HuntMatch) -> list[int]:
    """The record ids behind a match: its own, or every event of a correlation."""
    if not match.correlation:
        return [match.record_id] if match.record_id is not None else []
    out: list[int] = []
    for ref in match.event_refs:
        _, _, tail = ref.rpartition(":")
        if tail.isdigit():
            out.append(int(tail))
    return out


def hits_by_record(matches: Iterable[HuntMatch]) -> dict[int, set[str]]:
    """Record id -> titles of the rules that matched it, directly or through a correlation."""
    hits: dict[int, set[str]] = {}
    for match in matches:
        for record in match_records(match):
            hits.setdefault(record, set()).add(match.rule_title)
    return hits


def run_demo(
    out_dir: Path,
    *,
    seed: int = 7,
    attacks: bool = True,
    rules: Path | None = None,
    on_match: Callable[[HuntMatch], None] | None = None,
) -> DemoResult:
    """Write the sample, ground truth and placeholders under `out_dir`, hunt, and write matches.jsonl."""
    out_dir.mkdir(parents=True, exist_ok=True)
    events, truths = generate_windows_events(seed=seed, start=DEMO_START, attacks=attacks)
    events_path = out_dir / EVENTS_FILE
    write_jsonl(events, events_path)
    (out_dir / TRUTH_FILE).write_bytes(
        orjson.dumps([t.to_dict() for t in truths], option=orjson.OPT_INDENT_2) + b"\n"
    )
    placeholders = {name: list(values) for name, values in PLACEHOLDERS.items()}
    (out_dir / PLACEHOLDERS_FILE).write_text(
        "# Placeholder values of the demo tenant, for rules with |expand (watchfloor hunt --placeholders)\n"
        + yaml.safe_dump(placeholders, sort_keys=True),
        encoding="utf-8",
    )
    rules_path = rules if rules is not None else rules_dir()
    started = time.perf_counter()
    ruleset = load_rules([rules_path])
    hunter = Hunter(
        ruleset, default_logsource_map(), tenant=DEMO_TENANT, overlay=TenantRules(placeholders=PLACEHOLDERS)
    )
    sink = MemoryDeadLetters()
    stats = ReadStats()
    attack = attack_records(truths)
    hits: dict[int, set[str]] = {}
    benign: Counter[tuple[str, str]] = Counter()
    with (out_dir / MATCHES_FILE).open("wb") as stream:
        writer = JsonlWriter(stream, with_event=True)
        for match in hunter.run([events_path], sink, stats):
            writer.write(match)
            records = match_records(match)
            for record in records:
                hits.setdefault(record, set()).add(match.rule_title)
            if not attack.intersection(records):
                benign[(match.rule_level, match.rule_title)] += 1
            if on_match is not None:
                on_match(match)
        writer.close()
    return DemoResult(
        out_dir=out_dir,
        rules_dir=rules_path,
        events=len(events),
        truths=truths,
        summary=hunter.summary,
        outcomes=score(truths, hits),
        load_errors=list(ruleset.errors),
        stats=stats,
        rules=len(ruleset.rules),
        correlations=len(ruleset.correlations),
        seconds=time.perf_counter() - started,
        benign_matches=benign,
    )


def _time(iso: str) -> str:
    return iso[11:19]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _short(path: Path) -> str:
    """`path` relative to the working directory when it is below it (shorter commands to copy)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def report(result: DemoResult, console: Console) -> None:
    """The summary by rule, one line per injected attack step, false positives, and where files are."""
    console.print(
        f"Hunted {result.stats.records:,} sample events with {_count(result.rules, 'rule')} and "
        f"{_count(result.correlations, 'correlation')} from {escape(_short(result.rules_dir))} "
        f"in {result.seconds:.1f}s"
    )
    console.print(summary_table(result.summary))
    console.print(
        f"\n[bold]Injected attacks[/]: {result.detected} of {len(result.outcomes)} steps detected "
        "(a step counts when a rule matched one of its events)"
    )
    for outcome in result.outcomes:
        truth = outcome.truth
        techniques = ", ".join(truth.techniques)
        where = f"{_time(truth.first_seen)} {truth.host:<5} {truth.story}/{truth.step} ({techniques})"
        if outcome.detected:
            console.print(f"  [green]DETECTED[/] {escape(where)} by {escape('; '.join(outcome.rules))}")
        else:
            console.print(f"  [red]MISSED[/]   {escape(where)}: {escape(truth.summary)}")
    benign = sum(result.benign_matches.values())
    console.print(f"\n[bold]Matches on background (benign) events[/]: {benign}")
    for (level, title), count in sorted(result.benign_matches.items()):
        console.print(f"  {count:>3} {level:<8} {escape(title)}")
    out = result.out_dir
    console.print(f"\n[bold]Outputs[/] in {escape(_short(out))}:")
    console.print(
        f"  {EVENTS_FILE:<22} {result.events:,} events (the sample, as the evtx package renders them)"
    )
    console.print(f"  {TRUTH_FILE:<22} {len(result.truths)} injected attack steps with their record ids")
    console.print(f"  {MATCHES_FILE:<22} {result.summary.matches} matches with their events")
    console.print(f"  {PLACEHOLDERS_FILE:<22} values for the |expand rules")
    console.print(
        "Hunt it again: "
        + escape(
            f"watchfloor hunt {_short(out / EVENTS_FILE)} --rules {_short(result.rules_dir)} "
            f"--placeholders {_short(out / PLACEHOLDERS_FILE)} --tenant {DEMO_TENANT}"
        )
    )


def demo(
    out_dir: Annotated[Path, typer.Option(help="Folder for the sample, ground truth and matches")] = Path(
        "out/demo"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the sample generator (same seed, same bytes)")] = 7,
    fmt: Annotated[
        DemoFormat,
        typer.Option(
            "--format",
            "-f",
            help="table: the report on stdout; jsonl/csv: matches on stdout, report on stderr",
        ),
    ] = DemoFormat.table,
    attacks: Annotated[
        bool,
        typer.Option(
            help="Inject the attack stories (--no-attacks: background only, to see false positives)"
        ),
    ] = True,
) -> None:
    """Generate a day of a small business's Windows logs with injected attacks, hunt it with
    content/rules, and show which attacks were detected. Works on a fresh clone."""
    stream: IO[Any] | None = None
    writer: MatchWriter | None = None
    if fmt is DemoFormat.jsonl:
        stream = sys.stdout.buffer
        writer = JsonlWriter(stream, with_event=False)
    elif fmt is DemoFormat.csv:
        stream = sys.stdout
        writer = CsvWriter(stream)
    console = Console(stderr=fmt is not DemoFormat.table)
    result = run_demo(
        out_dir, seed=seed, attacks=attacks, on_match=writer.write if writer is not None else None
    )
    if writer is not None:
        writer.close()
    for error in result.load_errors:
        console.print(f"[yellow]rule not loaded[/] {escape(str(error))}")
    report(result, console)
    if result.load_errors:
        raise typer.Exit(code=1)
