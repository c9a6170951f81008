"""Writers for hunt results: table (rich), jsonl, csv; and the per-rule summary."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Protocol

import orjson
from rich.console import Console
from rich.table import Table

from watchfloor.detect.sigma.hunt import HuntMatch, HuntSummary

CSV_COLUMNS = (
    "tenant",
    "timestamp",
    "rule_level",
    "rule_title",
    "rule_id",
    "rule_author",
    "tags",
    "source",
    "record_id",
    "event_refs",
)


class MatchWriter(Protocol):
    def write(self, match: HuntMatch) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    def __init__(self, stream: IO[bytes], *, with_event: bool) -> None:
        self.stream = stream
        self.with_event = with_event

    def write(self, match: HuntMatch) -> None:
        self.stream.write(orjson.dumps(match.to_dict(with_event=self.with_event)) + b"\n")

    def close(self) -> None:
        self.stream.flush()


class CsvWriter:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.writer = csv.writer(stream)
        self.writer.writerow(CSV_COLUMNS)

    def write(self, match: HuntMatch) -> None:
        row = match.to_dict()
        self.writer.writerow(
            [
                row["tenant"],
                row["timestamp"] or "",
                row["rule_level"],
                row["rule_title"],
                row["rule_id"],
                row["rule_author"],
                " ".join(row["tags"]),
                row["source"],
                "" if row["record_id"] is None else row["record_id"],
                " ".join(match.event_refs),
            ]
        )

    def close(self) -> None:
        self.stream.flush()


class TableWriter:
    """Collects matches and prints one table at the end (a terminal view, capped)."""

    def __init__(self, console: Console, limit: int = 200) -> None:
        self.console = console
        self.limit = limit
        self.rows: list[HuntMatch] = []
        self.total = 0

    def write(self, match: HuntMatch) -> None:
        self.total += 1
        if len(self.rows) < self.limit:
            self.rows.append(match)

    def close(self) -> None:
        table = Table(title=f"Matches ({self.total})", show_lines=False)
        for column in ("time", "level", "rule", "author", "source", "record"):
            table.add_column(column, overflow="fold")
        for m in self.rows:
            record = "" if m.record_id is None and m.line is None else str(m.record_id or m.line)
            if m.correlation:
                record = f"{len(m.event_refs)} events"
            table.add_row(m.timestamp or "", m.rule_level, m.rule_title, m.rule_author, m.source, record)
        self.console.print(table)
        if self.total > self.limit:
            self.console.print(f"... {self.total - self.limit} more; use --format jsonl or csv for all")


def summary_table(summary: HuntSummary) -> Table:
    """Per rule: level, count, ATT&CK tags, author (the Detection Rule License asks for the author)."""
    table = Table(title=f"Summary by rule: {summary.matches} matches over {summary.events} events")
    for column in ("level", "count", "rule", "ATT&CK", "author"):
        table.add_column(column, overflow="fold")
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}
    rows = sorted(
        summary.by_rule.items(),
        key=lambda kv: (order.get(summary.meta[kv[0]].level, 5), -kv[1], summary.meta[kv[0]].title),
    )
    for rule_id, count in rows:
        meta = summary.meta[rule_id]
        attack = " ".join(t.removeprefix("attack.") for t in meta.tags if t.startswith("attack."))
        table.add_row(meta.level, str(count), meta.title, attack, meta.author)
    return table


def write_all(writer: MatchWriter, matches: Iterable[HuntMatch]) -> int:
    count = 0
    for match in matches:
        writer.write(match)
        count += 1
    writer.close()
    return count
