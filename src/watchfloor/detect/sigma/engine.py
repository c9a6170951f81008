"""The fast Sigma engine: route by source, prefilter by literals, evaluate the few candidates.

Per event: parse the JSON line once, classify its source (product, channel, event id), fetch the
cached route (the rules whose logsource accepts that source, compiled for that binding), scan
the raw line once for all gate literals, and evaluate only the rules whose gate was hit plus the
rules without a gate. Rules with placeholders are compiled per tenant; tenants may disable rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sigma.rule import SigmaRule

from watchfloor.core.errors import PlaceholderError, RuleError
from watchfloor.core.types import TenantId
from watchfloor.detect.sigma.compiler import Placeholders, RuleCompiler, parse_conditions
from watchfloor.detect.sigma.loader import RuleMeta, RuleSet
from watchfloor.detect.sigma.prefilter import GateExpr, LiteralScanner, choose, gate_literals, literal_cost
from watchfloor.detect.sigma.values import EvalContext, Matcher
from watchfloor.normalize.logsources import LogsourceMap
from watchfloor.normalize.model import Binding, SourceKey
from watchfloor.normalize.shapes import classify


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantRules:
    """A tenant's overlay on the base rule set: placeholder values, rules switched off (by id), and
    rules of its own (`extra`, evaluated for this tenant only)."""

    placeholders: Placeholders = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    extra: tuple[tuple[SigmaRule, RuleMeta], ...] = ()


@dataclass(eq=False, slots=True, kw_only=True)
class CompiledRule:
    index: int
    meta: RuleMeta
    binding: Binding
    matcher: Matcher
    gate: GateExpr
    event_ids: frozenset[int] | None = None
    tenant: TenantId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleStatus:
    """Why a loaded rule will or will not fire."""

    rule_id: str
    title: str
    path: str
    line: int | None
    status: str  # active | no_source | unsupported | placeholder
    reason: str = ""
    tenant: TenantId | None = None


@dataclass(slots=True)
class Route:
    """The rules one (tenant, source key) can fire, and how the prefilter selects among them."""

    by_literal: dict[int, tuple[CompiledRule, ...]]
    always: tuple[CompiledRule, ...]
    everything: tuple[CompiledRule, ...]
    census: Counter[int] = field(default_factory=Counter)  # census literal id -> sampled events hit
    census_events: int = 0
    ungated: int = 0  # rules whose chosen gate is missing from the scan database (run always)
    chosen: dict[int, frozenset[str] | None] = field(default_factory=dict)  # rule index -> gate


# Gate choice adapts to the data: a sample of events is also scanned for every alternative literal
# (the census), and at each checkpoint (events seen) every route re-chooses its gates by observed
# hit rates and the scan database is rebuilt. A route's prior is the hit rate observed over every
# route (itself with a prior of literal_cost), weighing PRIOR_WEIGHT events. The census samples
# every CENSUS_EVERY[i]-th event before checkpoint i and stops after the last one. A route first
# seen later chooses with the all-route rates; rules whose chosen literals are not in the scan
# database yet run ungated until the next rebuild, checked every LATE_REGATE_EVERY events.
CHECKPOINTS = (2_000, 20_000, 200_000)
CENSUS_EVERY = (2, 8, 64)
PRIOR_WEIGHT = 20.0
LATE_REGATE_EVERY = 500_000
# A gate expected to hit nearly every event filters nothing and costs a scan callback: run the
# rule without one instead.
USELESS_GATE = 0.9


def useful_gate(expr: GateExpr, cost: Any) -> frozenset[str] | None:
    """The chosen gate, or None when one of its literals alone hits nearly every event (a union
    hits at least as often as its most frequent member)."""
    gate, _expected = choose(expr, cost)
    if gate is None or any(cost(literal) >= USELESS_GATE for literal in gate):
        return None
    return gate


@dataclass(slots=True)
class EngineStats:
    regates: int = 0
    late_routes: int = 0
    events: int = 0
    unrouted: int = 0
    poisoned: int = 0
    candidates: int = 0
    matches: int = 0


class SigmaEngine:
    """Compiled SigmaHQ-style rules for many tenants, evaluated on raw JSON event lines."""

    def __init__(
        self,
        ruleset: RuleSet,
        logsources: LogsourceMap,
        *,
        tenants: Mapping[TenantId, TenantRules] | None = None,
    ) -> None:
        self.logsources = logsources
        self.tenants = dict(tenants or {})
        self.statuses: list[RuleStatus] = []
        self.stats = EngineStats()
        self._base: list[CompiledRule] = []
        self._tenant_rules: dict[TenantId, list[CompiledRule]] = {t: [] for t in self.tenants}
        self._routes: dict[tuple[TenantId | None, SourceKey], Route] = {}
        for index, (rule, meta) in enumerate(ruleset.rules):
            self._compile(index, rule, meta)
        next_index = len(ruleset.rules)
        for tenant, overlay in self.tenants.items():
            for rule, meta in overlay.extra:
                self._compile_extra(next_index, rule, meta, tenant, overlay)
                next_index += 1
        everything: set[str] = set()
        static: set[str] = set()
        for compiled in self._all_compiled():
            everything |= gate_literals(compiled.gate)
            static |= useful_gate(compiled.gate, literal_cost) or set()
        self.census_scanner = LiteralScanner.build(everything, poison=False)
        self._census_ids = {lit: i for i, lit in enumerate(self.census_scanner.literals)}
        self._census_all: Counter[int] = Counter()  # over every route's sampled events
        self._census_all_events = 0
        self.scanner = LiteralScanner.build(static)
        self._literal_ids = {lit: i for i, lit in enumerate(self.scanner.literals)}
        self._next_checkpoint = 0
        self._late_check = CHECKPOINTS[-1] + LATE_REGATE_EVERY

    # -- compilation -------------------------------------------------------------------------
    def _all_compiled(self) -> Iterable[CompiledRule]:
        yield from self._base
        for rules in self._tenant_rules.values():
            yield from rules

    def _bindings(self, rule: SigmaRule) -> tuple[Binding, ...]:
        ls = rule.logsource
        return self.logsources.bindings_for(ls.product, ls.category, ls.service)

    def _status(self, meta: RuleMeta, status: str, reason: str = "", tenant: TenantId | None = None) -> None:
        self.statuses.append(
            RuleStatus(
                rule_id=meta.id,
                title=meta.title,
                path=meta.path,
                line=meta.line,
                status=status,
                reason=reason,
                tenant=tenant,
            )
        )

    def _no_source(self, meta: RuleMeta, tenant: TenantId | None) -> None:
        product, category, service = meta.logsource
        reason = f"no source provides logsource product={product} category={category} service={service}"
        self._status(meta, "no_source", reason, tenant)

    def _compile(self, index: int, rule: SigmaRule, meta: RuleMeta) -> None:
        bindings = self._bindings(rule)
        if not bindings:
            self._no_source(meta, None)
            return
        trees = parse_conditions(rule)
        try:
            compiled = [self._compile_one(index, trees, meta, b, None, None) for b in bindings]
        except PlaceholderError:
            self._compile_per_tenant(index, trees, meta, bindings)
            return
        except RuleError as exc:
            self._status(meta, "unsupported", exc.message)
            return
        self._base.extend(compiled)
        self._status(meta, "active")

    def _compile_per_tenant(
        self, index: int, trees: list[Any], meta: RuleMeta, bindings: Sequence[Binding]
    ) -> None:
        if not self.tenants:
            self._status(meta, "placeholder", "placeholder rule: needs per-tenant values (none configured)")
        for tenant, overlay in self.tenants.items():
            try:
                compiled = [
                    self._compile_one(index, trees, meta, b, overlay.placeholders, tenant) for b in bindings
                ]
            except RuleError as exc:
                self._status(meta, "placeholder", exc.message, tenant)
                continue
            self._tenant_rules[tenant].extend(compiled)
            self._status(meta, "active", "", tenant)

    def _compile_extra(
        self, index: int, rule: SigmaRule, meta: RuleMeta, tenant: TenantId, overlay: TenantRules
    ) -> None:
        """One of a tenant's own rules, compiled for that tenant only."""
        bindings = self._bindings(rule)
        if not bindings:
            self._no_source(meta, tenant)
            return
        trees = parse_conditions(rule)
        try:
            compiled = [
                self._compile_one(index, trees, meta, b, overlay.placeholders, tenant) for b in bindings
            ]
        except RuleError as exc:
            self._status(meta, "unsupported", exc.message, tenant)
            return
        self._tenant_rules[tenant].extend(compiled)
        self._status(meta, "active", "", tenant)

    @staticmethod
    def _compile_one(
        index: int,
        trees: list[Any],
        meta: RuleMeta,
        binding: Binding,
        placeholders: Placeholders | None,
        tenant: TenantId | None,
    ) -> CompiledRule:
        compiled = RuleCompiler(binding, placeholders).compile_trees(trees)
        return CompiledRule(
            index=index,
            meta=meta,
            binding=binding,
            matcher=compiled.matcher,
            gate=compiled.gate,
            event_ids=compiled.event_ids,
            tenant=tenant,
        )

    # -- routing -----------------------------------------------------------------------------
    def _route(self, tenant: TenantId | None, key: SourceKey) -> Route:
        overlay = self.tenants.get(tenant) if tenant is not None else None
        route_key = (tenant if overlay is not None else None, key)
        route = self._routes.get(route_key)
        if route is not None:
            return route
        chosen: dict[int, CompiledRule] = {}
        candidates: list[CompiledRule] = list(self._base)
        if overlay is not None and tenant is not None:
            candidates.extend(self._tenant_rules.get(tenant, ()))
        for compiled in candidates:
            if overlay is not None and compiled.meta.id in overlay.disabled:
                continue
            if compiled.event_ids is not None and key.event_id not in compiled.event_ids:
                continue
            if compiled.index not in chosen and compiled.binding.accepts(key):
                chosen[compiled.index] = compiled
        rules = tuple(sorted(chosen.values(), key=lambda c: c.index))
        route = Route({}, (), rules)
        if self.stats.regates:
            self.stats.late_routes += 1
        self._choose_gates(route, self._all_routes_cost())
        self._index_route(route)
        self._routes[route_key] = route
        return route

    def _choose_gates(self, route: Route, cost: Any) -> None:
        route.chosen = {c.index: useful_gate(c.gate, cost) for c in route.everything}

    def _index_route(self, route: Route) -> None:
        """Map scan-database literal ids to the route's rules (after a choice or a rebuild)."""
        by_literal: dict[int, list[CompiledRule]] = {}
        always: list[CompiledRule] = []
        ids = self._literal_ids
        route.ungated = 0
        for compiled in route.everything:
            gate = route.chosen.get(compiled.index)
            if gate is not None and not all(literal in ids for literal in gate):
                route.ungated += 1  # chosen after the last rebuild: exact without a gate until the next
                gate = None
            if gate is None:
                always.append(compiled)
                continue
            for literal in gate:
                by_literal.setdefault(ids[literal], []).append(compiled)
        route.by_literal = {k: tuple(v) for k, v in by_literal.items()}
        route.always = tuple(always)

    def _census(self, route: Route, raw: bytes) -> None:
        hits = self.census_scanner.scan(raw)
        if hits is None:
            return
        route.census_events += 1
        route.census.update(hits)
        self._census_all_events += 1
        self._census_all.update(hits)

    def _all_routes_cost(self) -> Callable[[str], float]:
        """Hit rate of a literal over every route's sampled events (literal_cost before any)."""
        ids, census, events = self._census_ids, self._census_all, self._census_all_events
        if events == 0:
            return literal_cost

        def observed_all(literal: str) -> float:
            hits = census.get(ids[literal], 0)
            return (hits + PRIOR_WEIGHT * literal_cost(literal)) / (events + PRIOR_WEIGHT)

        return observed_all

    def regate(self) -> None:
        """Re-choose every route's gates by observed literal hit rates; rebuild the scan database
        with exactly the literals some route's gates need."""
        ids = self._census_ids
        prior = self._all_routes_cost()
        wanted: set[str] = set()
        for route in self._routes.values():
            if route.census_events == 0:
                self._choose_gates(route, prior)
                wanted |= {lit for gate in route.chosen.values() for lit in gate or ()}
                continue
            census, events = route.census, route.census_events

            def observed(literal: str, census: Counter[int] = census, events: int = events) -> float:
                hits = census.get(ids[literal], 0)
                return (hits + PRIOR_WEIGHT * prior(literal)) / (events + PRIOR_WEIGHT)

            self._choose_gates(route, observed)
            wanted |= {lit for gate in route.chosen.values() for lit in gate or ()}
        self.scanner = LiteralScanner.build(wanted)
        self._literal_ids = {lit: i for i, lit in enumerate(self.scanner.literals)}
        for route in self._routes.values():
            self._index_route(route)
        self.stats.regates += 1

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(
        self, raw: bytes, tenant: TenantId | None = None, doc: Mapping[str, Any] | None = None
    ) -> tuple[Mapping[str, Any], list[CompiledRule]]:
        """Parse (unless `doc` is given), route and match one event; returns (doc, matching rules)."""
        stats = self.stats
        stats.events += 1
        if doc is None:
            doc = orjson.loads(raw)
        key = classify(doc)
        if key is None:
            stats.unrouted += 1
            return doc, []
        route = self._route(tenant, key)
        if not route.everything:
            return doc, []
        if self._next_checkpoint < len(CHECKPOINTS):
            if stats.events % CENSUS_EVERY[self._next_checkpoint] == 0:
                self._census(route, raw)
            if stats.events >= CHECKPOINTS[self._next_checkpoint]:
                self._next_checkpoint += 1
                self.regate()
        elif stats.events >= self._late_check:
            self._late_check += LATE_REGATE_EVERY
            if any(r.ungated for r in self._routes.values()):
                self.regate()
        hits = self.scanner.scan(raw)
        candidates: Collection[CompiledRule]
        if hits is None:
            stats.poisoned += 1
            candidates = route.everything
        else:
            by_literal = route.by_literal
            picked: set[CompiledRule] = set(route.always)
            for hit in hits:
                rules = by_literal.get(hit)
                if rules is not None:
                    picked.update(rules)
            if not picked:
                return doc, []
            candidates = picked
        ctx = EvalContext(doc)
        matched = [c for c in candidates if c.matcher(ctx)]
        if len(matched) > 1:
            matched.sort(key=_index)  # rule order, whatever order the candidate set had
        stats.candidates += len(candidates)
        stats.matches += len(matched)
        return doc, matched

    def evaluate_all(self, doc: Mapping[str, Any], tenant: TenantId | None = None) -> list[CompiledRule]:
        """Every rule of the route, no prefilter: the exact slow path (for tests and debugging)."""
        key = classify(doc)
        if key is None:
            return []
        ctx = EvalContext(doc)
        return [c for c in self._route(tenant, key).everything if c.matcher(ctx)]

    def active_rules(self, tenant: TenantId | None = None) -> int:
        base = len({c.index for c in self._base})
        extra = len({c.index for c in self._tenant_rules.get(tenant, ())}) if tenant is not None else 0
        return base + extra


def _index(compiled: CompiledRule) -> int:
    return compiled.index
