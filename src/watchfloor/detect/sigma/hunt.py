"""Offline hunting: readers -> engine -> correlations -> matches with provenance and rule author."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchfloor.core.records import RawRecord
from watchfloor.core.types import TenantId
from watchfloor.detect.sigma.correlation import BaseMatch, CorrelationEngine, CorrelationMatch
from watchfloor.detect.sigma.engine import CompiledRule, SigmaEngine, TenantRules
from watchfloor.detect.sigma.loader import RuleMeta, RuleSet
from watchfloor.detect.sigma.values import EvalContext, to_datetime
from watchfloor.normalize.logsources import LogsourceMap
from watchfloor.normalize.readers import ReadSink, ReadStats, read_records
from watchfloor.normalize.shapes import record_id as doc_record_id
from watchfloor.normalize.shapes import timestamp as doc_timestamp


@dataclass(frozen=True, slots=True, kw_only=True)
class HuntMatch:
    """One (rule, event) match, or one correlation match with the ids of the events that made it."""

    tenant: TenantId
    rule_id: str
    rule_title: str
    rule_level: str
    rule_author: str
    tags: tuple[str, ...]
    source: str
    record_id: int | None
    line: int | None
    timestamp: str | None
    event: Mapping[str, Any] | None = None
    correlation: bool = False
    event_refs: tuple[str, ...] = ()
    group: tuple[tuple[str, str], ...] = ()
    value: float | int | None = None

    @property
    def event_ref(self) -> str:
        return f"{self.source}:{self.record_id if self.record_id is not None else self.line}"

    def to_dict(self, *, with_event: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tenant": self.tenant,
            "rule_id": self.rule_id,
            "rule_title": self.rule_title,
            "rule_level": self.rule_level,
            "rule_author": self.rule_author,
            "tags": list(self.tags),
            "source": self.source,
            "record_id": self.record_id if self.record_id is not None else self.line,
            "timestamp": self.timestamp,
        }
        if self.correlation:
            out["correlation"] = True
            out["event_refs"] = list(self.event_refs)
            out["group"] = dict(self.group)
            out["value"] = self.value
        if with_event and self.event is not None:
            out["event"] = self.event
        return out


@dataclass(slots=True)
class HuntSummary:
    """Per-rule counts for the summary table (level, count, ATT&CK tags, author)."""

    by_rule: Counter[str] = field(default_factory=Counter)
    meta: dict[str, RuleMeta] = field(default_factory=dict)
    events: int = 0
    matches: int = 0

    def add(self, match: HuntMatch, meta: RuleMeta) -> None:
        self.by_rule[match.rule_id] += 1
        self.meta.setdefault(match.rule_id, meta)
        self.matches += 1


def _epoch(ts: str | None) -> float:
    moment = to_datetime(ts) if ts is not None else None
    return moment.timestamp() if moment is not None else 0.0


class Hunter:
    """Runs a rule set over records for one tenant; feeds correlation rules per tenant."""

    def __init__(
        self,
        ruleset: RuleSet,
        logsources: LogsourceMap,
        *,
        tenant: TenantId,
        overlay: TenantRules | None = None,
    ) -> None:
        self.tenant = tenant
        self.engine = SigmaEngine(
            ruleset, logsources, tenants={tenant: overlay} if overlay is not None else None
        )
        self.correlations = CorrelationEngine(
            [r for r, _ in ruleset.correlations], [r for r, _ in ruleset.rules]
        )
        self.correlation_meta = {m.id: m for _, m in ruleset.correlations}
        self.summary = HuntSummary()

    def _emit(self, corr: CorrelationMatch) -> HuntMatch:
        """A correlation match as a HuntMatch, counted in the summary."""
        meta = self.correlation_meta.get(corr.rule_id)
        match = HuntMatch(
            tenant=self.tenant,
            rule_id=corr.rule_id,
            rule_title=corr.rule_title,
            rule_level=corr.level,
            rule_author=meta.author if meta is not None else "unknown",
            tags=meta.tags if meta is not None else (),
            source="<correlation>",
            record_id=None,
            line=None,
            timestamp=_iso(corr.last_timestamp),
            correlation=True,
            event_refs=corr.event_refs,
            group=corr.group,
            value=corr.value,
        )
        if meta is not None:
            self.summary.add(match, meta)
        return match

    def match_record(self, record: RawRecord) -> list[HuntMatch]:
        doc, matched = self.engine.evaluate(record.raw, self.tenant)
        self.summary.events += 1
        if not matched:
            return []
        prov = record.provenance
        rid = prov.record_id if prov.record_id is not None else doc_record_id(doc)
        ts = doc_timestamp(doc)
        out: list[HuntMatch] = []
        ctx: EvalContext | None = None
        for compiled in matched:
            meta = compiled.meta
            match = HuntMatch(
                tenant=self.tenant,
                rule_id=meta.id,
                rule_title=meta.title,
                rule_level=meta.level,
                rule_author=meta.author,
                tags=meta.tags,
                source=prov.source,
                record_id=rid,
                line=prov.line,
                timestamp=ts,
                event=doc,
            )
            if self.correlations.is_referenced(meta.id):
                ctx = ctx or EvalContext(doc)
                out.extend(self._feed(compiled, match, ctx))
                if not self.correlations.emits_base(meta.id):
                    continue
            self.summary.add(match, meta)
            out.append(match)
        return out

    def _feed(self, compiled: CompiledRule, match: HuntMatch, ctx: EvalContext) -> list[HuntMatch]:
        fields: dict[str, Any] = {}
        for name in self.correlations.needed_fields(compiled.meta.id):
            present, value = ctx.value(compiled.binding.native_names(name))
            if present:
                fields[name] = value
        base = BaseMatch(
            tenant=self.tenant,
            rule_id=compiled.meta.id,
            rule_name=compiled.meta.name,
            event_ref=match.event_ref,
            timestamp=_epoch(match.timestamp),
            fields=fields,
        )
        return [self._emit(c) for c in self.correlations.feed(base)]

    def finish(self) -> list[HuntMatch]:
        return [self._emit(c) for c in self.correlations.flush()]

    def run(
        self,
        paths: Sequence[Path],
        sink: ReadSink,
        stats: ReadStats,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[HuntMatch]:
        for record in read_records(paths, tenant=self.tenant, sink=sink, stats=stats):
            yield from self.match_record(record)
            if progress is not None:
                progress(len(record.raw))
        yield from self.finish()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")
