"""Retro-hunt: run a rule set over one tenant's archived raw events, as if they arrived again.

Events stream from the archive in time order, each `event_key` once, in Arrow batches (memory bounded, see
`search.iter_rows`), through a fresh `SigmaEngine` built for this tenant only. The engine sees the raw bytes
exactly as received, so a retro-hunt matches what live detection would have matched with these rules.

Pushdown: unless `prefilter=False`, only events whose archived `logsource` could satisfy some rule's Sigma
logsource (through the logsource map's bindings) are read, plus events archived as `unknown`. The engine
still routes every event itself; the pushdown only skips reading events no rule can see.

Correlation rules are not evaluated here (base rules only); `RetroHuntStats.correlations_skipped` counts them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from watchfloor.archive.model import valid_tenant
from watchfloor.archive.query import And, Condition, Node, Not, Or, parse_where
from watchfloor.archive.search import DEFAULT_MEMORY_LIMIT, ArchiveRow, iter_rows
from watchfloor.core.types import TenantId
from watchfloor.detect.sigma.engine import SigmaEngine, TenantRules
from watchfloor.detect.sigma.loader import RuleMeta, RuleSet, load_rules
from watchfloor.normalize.logsources import LogsourceMap, default_logsource_map

__all__ = ["RetroHit", "RetroHuntStats", "logsource_pushdown", "retrohunt"]


class RetroHit(NamedTuple):
    """One archived event and the rules it matched (unpacks as `(row, rules)`)."""

    row: ArchiveRow
    rules: tuple[RuleMeta, ...]


@dataclass(slots=True)
class RetroHuntStats:
    events: int = 0
    hits: int = 0
    matches: int = 0
    active_rules: int = 0
    inactive_rules: int = 0
    correlations_skipped: int = 0


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def logsource_pushdown(ruleset: RuleSet, logsources: LogsourceMap) -> Node | None:
    """A condition on the `logsource` column selecting events some rule's logsource accepts.

    None when no rule can fire (the caller then reads nothing). Archived `unknown` events are always kept.
    """
    pairs: set[tuple[str, str]] = set()
    for rule, _meta in ruleset.rules:
        ls = rule.logsource
        for binding in logsources.bindings_for(ls.product, ls.category, ls.service):
            pairs.add((binding.product, binding.channel))
    if not pairs:
        return None
    items: list[Node] = [Condition("logsource", "=", "unknown")]
    for product, channel in sorted(pairs):
        exact = _escape(f"{product}/{channel}")
        items.append(Condition("logsource", "=", exact))
        items.append(Condition("logsource", "=", exact + "/*"))
    return Or(tuple(items))


def retrohunt(
    root: Path,
    tenant: str,
    rules: RuleSet | Sequence[Path],
    since: datetime,
    until: datetime,
    *,
    logsources: LogsourceMap | None = None,
    overlay: TenantRules | None = None,
    where: Sequence[Condition] | Node | str | None = None,
    prefilter: bool = True,
    batch_rows: int = 5_000,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    temp_directory: Path | None = None,
    stats: RetroHuntStats | None = None,
) -> Iterator[RetroHit]:
    """Yield `(row, matched rule metas)` for every archived event of `tenant` that some rule matches.

    `rules` is a loaded `RuleSet` or rule files/folders (loaded with `load_rules`); `logsources` defaults to
    `default_logsource_map()`. `where` narrows the events further (the `search` condition language).
    """
    tid: TenantId = valid_tenant(tenant)
    ruleset = rules if isinstance(rules, RuleSet) else load_rules(list(rules))
    mapping = logsources if logsources is not None else default_logsource_map()
    engine = SigmaEngine(ruleset, mapping, tenants={tid: overlay} if overlay is not None else None)
    counters = stats if stats is not None else RetroHuntStats()
    counters.active_rules = engine.active_rules(tid)
    counters.inactive_rules = sum(1 for s in engine.statuses if s.status != "active")
    counters.correlations_skipped = len(ruleset.correlations)
    conditions: list[Node] = []
    if where is not None:
        if isinstance(where, str):
            conditions.append(parse_where(where))
        elif isinstance(where, Condition | And | Or | Not):
            conditions.append(where)
        else:
            conditions.extend(where)
    if prefilter:
        pushdown = logsource_pushdown(ruleset, mapping)
        if pushdown is None:
            return
        conditions.append(pushdown)
    rows = iter_rows(
        root,
        tid,
        since=since,
        until=until,
        where=And(tuple(conditions)) if len(conditions) > 1 else (conditions[0] if conditions else None),
        batch_rows=batch_rows,
        memory_limit=memory_limit,
        temp_directory=temp_directory,
    )
    for row in rows:
        counters.events += 1
        try:
            _doc, matched = engine.evaluate(row.raw, tid)
        except ValueError:  # orjson.JSONDecodeError: archived as received, not JSON
            continue
        if not matched:
            continue
        metas = tuple(dict.fromkeys(c.meta for c in matched))
        counters.hits += 1
        counters.matches += len(metas)
        yield RetroHit(row, metas)
