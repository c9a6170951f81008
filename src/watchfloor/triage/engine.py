"""The triage engine: detections in, alerts and grouping decisions out, per tenant, in memory.

`Triage.process(inp, now)` for one `DetectionInput` (from `entities.from_detection`):

1. A detection id the tenant's state has seen already is a replay: nothing changes, the result says
   `replay=True` and the caller stores nothing.
2. Rarity is counted (`scoring.RarityTracker`) and the risk scored with the tenant's context (vertical and
   asset criticality from the `context` provider, cached per tenant until `refresh_context`), the rule's
   Sigma status (`rule_statuses`) and the event's intel hits (`intel`, default: ECS `threat.enrichments`).
3. The detection updates the current alert of its series when it continues it (`alerts.continues`), else
   opens a new alert. A new alert is checked against the tenant's suppressions, then the auto-close
   policies; the first match closes it with the reason in words (`conditions.closing_reason`). A closed
   alert absorbs later detections only while they match the same suppression or policy: Defender's own
   MpCmdRun on ws-17 stays closed, an attacker's PowerShell on ws-17 a minute later opens its own alert
   (its dedup key gets `|2` when the window is the same). Repeats of an open alert are not re-checked:
   a suppression applies to alerts opened after it (the caller closes the alert it was made from).
4. Grouping (`grouping.decide`) attaches, reopens, creates or keeps; the index records the decision and
   the alert points at its incident (`status="incident"`).

The caller persists the alert (upsert on its id), creates incidents from `create` decisions with
`new_incident`, attaches with `cases.lifecycle.attach_alert` (which also reopens), and tells the engine
about changes made elsewhere: `observe_incident` (closure, merge, seeding), `replace_alert` (an analyst
suppressed or closed it), `set_suppressions`. At start it seeds open alerts and open or recently closed
incidents from storage (`seed_alerts`, `seed_incidents`). State is bounded per tenant: alerts idle for
two dedup windows are pruned (and at most `max_alerts_per_tenant`), and the last
`remember_detections_per_tenant` detection ids are remembered for replays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from watchfloor.cases.models import Incident
from watchfloor.core.errors import ConfigError, Location
from watchfloor.core.types import CLOSED_STATES, TenantId
from watchfloor.triage.alerts import (
    DEFAULT_MAX_SPAN_SECONDS,
    DEFAULT_WINDOW_SECONDS,
    continues,
    open_alert,
    series_key,
    series_of,
    update_alert,
    with_status,
)
from watchfloor.triage.conditions import (
    Closer,
    ConditionError,
    auto_close_policy,
    check,
    closes,
    closing_reason,
    suppressed_by,
)
from watchfloor.triage.entities import normalize, primary_entity
from watchfloor.triage.grouping import (
    DEFAULT_GROUPING,
    GroupingDecision,
    GroupingPolicy,
    IncidentIndex,
    IncidentRef,
    decide,
    grouping_keys,
)
from watchfloor.triage.models import (
    Alert,
    AlertStatus,
    AutoClosePolicy,
    DetectionInput,
    Entity,
    EntityKind,
    RiskScore,
    Suppression,
)
from watchfloor.triage.scoring import DEFAULT_WEIGHTS, RarityTracker, ScoreWeights, score

__all__ = [
    "TenantContext",
    "Triage",
    "TriageConfig",
    "TriageResult",
    "incident_ref",
    "new_incident",
    "threat_enrichments",
]

_PRUNE_EVERY: Final = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantContext:
    """What scoring needs to know of a tenant: its vertical and its asset inventory's criticality."""

    vertical: str = "general"
    criticality: Mapping[Entity, str] = field(default_factory=dict)  # normalized entities -> low..critical

    @classmethod
    def from_inventory(cls, vertical: str, assets: Iterable[tuple[EntityKind, str, str]]) -> TenantContext:
        """From (kind, name as the inventory writes it, criticality) rows; names are normalized, so
        `WS-17.corp.local` in the inventory matches `ws-17` in events."""
        table: dict[Entity, str] = {}
        for kind, name, level in assets:
            value = normalize(kind, name)
            if value:
                table[Entity(kind, value)] = level.lower()
        return cls(vertical=vertical.lower(), criticality=table)


@dataclass(frozen=True, slots=True, kw_only=True)
class TriageConfig:
    dedup_window_seconds: int = DEFAULT_WINDOW_SECONDS
    alert_max_span_seconds: int = DEFAULT_MAX_SPAN_SECONDS
    grouping: GroupingPolicy = DEFAULT_GROUPING
    weights: ScoreWeights = DEFAULT_WEIGHTS
    rarity_window_seconds: int = 7 * 86400
    max_alerts_per_tenant: int = 20_000
    remember_detections_per_tenant: int = 50_000

    def __post_init__(self) -> None:
        if not 0 < self.dedup_window_seconds <= self.alert_max_span_seconds:
            msg = "TriageConfig: need 0 < dedup_window_seconds <= alert_max_span_seconds"
            raise ConfigError(msg, code="triage.config_invalid")


@dataclass(frozen=True, slots=True, kw_only=True)
class TriageResult:
    alert: Alert  # the alert after this detection (persist it: upsert on alert.id)
    is_new: bool  # this detection opened the alert
    decision: GroupingDecision  # create (new incident id) | attach | reopen | none, with the reason
    replay: bool = False  # the detection was triaged before: nothing changed

    @property
    def status(self) -> AlertStatus:
        return self.alert.status

    @property
    def closed_reason(self) -> str | None:
        return self.alert.closed_reason


def threat_enrichments(inp: DetectionInput) -> int:
    """Intel hits of an ECS event: the entries of `threat.enrichments` (nested or flat), else 1 when a
    `threat.indicator` is present."""
    event = inp.event
    threat = event.get("threat")
    if threat is None and "threat.enrichments" not in event and "threat.indicator" not in event:
        return 0
    found: Any = event.get("threat.enrichments")
    if found is None and isinstance(threat, Mapping):
        found = threat.get("enrichments")
    if isinstance(found, list):
        return len(found)
    if found is not None:
        return 1
    indicator = event.get("threat.indicator")
    if indicator is None and isinstance(threat, Mapping):
        indicator = threat.get("indicator")
    return 1 if indicator else 0


class _Tenant:
    __slots__ = (
        "alerts",
        "closed",
        "context",
        "global_suppressions",
        "ids",
        "index",
        "newest",
        "policies",
        "processed",
        "rule_suppressions",
        "seen",
    )

    def __init__(self, index: IncidentIndex, context: TenantContext) -> None:
        self.index = index
        self.context = context
        self.alerts: dict[str, Alert] = {}  # series key -> current open (or incident) alert
        self.closed: dict[str, tuple[Alert, Closer | None]] = {}  # series key -> closed alert, its closer
        self.seen: dict[int, None] = {}  # detection ids, oldest first
        self.ids: dict[str, None] = {}  # alert ids handed out, oldest first
        self.global_suppressions: list[Suppression] = []
        self.rule_suppressions: dict[str, list[Suppression]] = {}
        self.policies: tuple[list[AutoClosePolicy], dict[str, list[AutoClosePolicy]]] = ([], {})
        self.newest: datetime | None = None
        self.processed = 0


def _no_context(_tenant: TenantId) -> TenantContext:
    return TenantContext()


def _remember(items: dict[Any, None], item: object, limit: int) -> None:
    items[item] = None
    if len(items) > limit:
        del items[next(iter(items))]


_CLOSED: Final = ("suppressed", "auto_closed")


class Triage:
    """Per-tenant triage state and the `process` loop (see the module docstring)."""

    def __init__(
        self,
        *,
        context: Callable[[TenantId], TenantContext] = _no_context,
        policies: Sequence[AutoClosePolicy] = (),
        suppressions: Mapping[TenantId, Sequence[Suppression]] | None = None,
        rule_statuses: Mapping[str, str] | None = None,
        intel: Callable[[DetectionInput], int] = threat_enrichments,
        config: TriageConfig | None = None,
    ) -> None:
        self.config = config if config is not None else TriageConfig()
        self._context = context
        self._policies = tuple(policies)
        for policy in self._policies:
            check(policy.conditions)
        self._suppressions: dict[TenantId, tuple[Suppression, ...]] = {}
        self._rule_statuses = rule_statuses or {}
        self._intel = intel
        self._tenants: dict[TenantId, _Tenant] = {}
        self.rarity = RarityTracker(window_seconds=self.config.rarity_window_seconds)
        self.counters: dict[TenantId, Counter[str]] = {}
        for tenant, items in (suppressions or {}).items():
            self.set_suppressions(tenant, items)

    # -- state -----------------------------------------------------------------------------------
    def _tenant(self, tenant: TenantId) -> _Tenant:
        state = self._tenants.get(tenant)
        if state is None:
            index = IncidentIndex(tenant, policy=self.config.grouping)
            state = self._tenants[tenant] = _Tenant(index, self._context(tenant))
            self._file_suppressions(state, self._suppressions.get(tenant, ()))
            mine = [p for p in self._policies if p.tenant_id is None or p.tenant_id == tenant]
            by_rule: dict[str, list[AutoClosePolicy]] = {}
            for policy in mine:
                if policy.rule_id is not None:
                    by_rule.setdefault(policy.rule_id, []).append(policy)
            state.policies = ([p for p in mine if p.rule_id is None], by_rule)
            self.counters[tenant] = Counter()
        return state

    @staticmethod
    def _file_suppressions(state: _Tenant, items: Sequence[Suppression]) -> None:
        state.global_suppressions = [s for s in items if s.rule_id is None]
        state.rule_suppressions = {}
        for item in items:
            if item.rule_id is not None:
                state.rule_suppressions.setdefault(item.rule_id, []).append(item)

    def index(self, tenant: TenantId) -> IncidentIndex:
        """The tenant's incident index (created empty when the tenant is new)."""
        return self._tenant(tenant).index

    def set_suppressions(self, tenant: TenantId, suppressions: Sequence[Suppression]) -> None:
        """Replace the tenant's suppressions (they apply to alerts opened from now on)."""
        items = tuple(suppressions)
        for item in items:
            if item.tenant_id != tenant:
                msg = f"suppression {item.id} belongs to tenant {item.tenant_id}, not {tenant}"
                raise ConditionError(msg, location=Location(tenant=tenant))
            check(item.conditions)
        self._suppressions[tenant] = items
        state = self._tenants.get(tenant)
        if state is not None:
            self._file_suppressions(state, items)

    def refresh_context(self, tenant: TenantId | None = None) -> None:
        """Ask the context provider again (one tenant, or all) on the next detection."""
        for tid in [tenant] if tenant is not None else list(self._tenants):
            state = self._tenants.get(tid)
            if state is not None:
                state.context = self._context(tid)

    def seed_alerts(self, alerts: Iterable[Alert]) -> None:
        """Load recent alerts from storage (at start), open and closed: repeats then update them instead
        of opening new ones, and their detections count as triaged."""
        limit = self.config.remember_detections_per_tenant
        for alert in alerts:
            state = self._tenant(alert.tenant_id)
            self.replace_alert(alert)
            for detection_id in alert.detection_ids:
                _remember(state.seen, detection_id, limit)
            self._saw(state, alert.last_seen)

    def seed_incidents(self, incidents: Iterable[Incident], now: datetime) -> None:
        """Load open and recently closed incidents from storage (at start)."""
        for incident in incidents:
            self.observe_incident(incident, now)

    def observe_incident(self, incident: Incident, now: datetime) -> None:
        """Tell the index about an incident changed outside triage (closed, reopened, merged, edited)."""
        index = self._tenant(incident.tenant_id).index
        if incident.merged_into is not None:
            index.remove(incident.id)
            return
        index.upsert(incident_ref(incident), now)

    def replace_alert(self, alert: Alert, closer: Closer | None = None) -> None:
        """Take an alert changed outside triage (an analyst closed it, attached it, ...) as its series'
        current alert. A closed alert keeps absorbing repeats only while they match `closer` (default:
        the suppression or policy its `closed_reason` names); other repeats open a new alert."""
        state = self._tenant(alert.tenant_id)
        key = series_of(alert.dedup_key)
        _remember(state.ids, alert.id, self.config.max_alerts_per_tenant * 4)
        if alert.status in _CLOSED:
            current = state.closed.get(key)
            if current is None or current[0].id == alert.id or alert.last_seen >= current[0].last_seen:
                state.closed[key] = (alert, closer or self._closer_named(state, alert.closed_reason))
            if key in state.alerts and state.alerts[key].id == alert.id:
                del state.alerts[key]
            return
        current_open = state.alerts.get(key)
        if current_open is None or current_open.id == alert.id or alert.last_seen >= current_open.last_seen:
            state.alerts[key] = alert
        if key in state.closed and state.closed[key][0].id == alert.id:
            del state.closed[key]

    def _closer_named(self, state: _Tenant, reason: str | None) -> Closer | None:
        """The suppression or policy a `closing_reason` names, if the tenant still has it."""
        if not reason:
            return None
        for items in (state.global_suppressions, *state.rule_suppressions.values()):
            for suppression in items:
                if reason.startswith(f"suppressed by {suppression.id} "):
                    return suppression
        general, by_rule = state.policies
        for policies in (general, *by_rule.values()):
            for policy in policies:
                if reason.startswith(f"auto-closed by policy {policy.name}:"):
                    return policy
        return None

    # -- processing ------------------------------------------------------------------------------
    def process_many(self, inputs: Iterable[DetectionInput], now: datetime) -> list[TriageResult]:
        """`process` each input in order."""
        process = self.process
        return [process(inp, now) for inp in inputs]

    def process(self, inp: DetectionInput, now: datetime) -> TriageResult:
        """Triage one detection (see the module docstring)."""
        tenant = inp.tenant_id
        state = self._tenants.get(tenant) or self._tenant(tenant)
        counters = self.counters[tenant]
        config = self.config
        key = series_key(inp)
        seen = state.seen
        if inp.detection_id in seen:
            counters["replays"] += 1
            return self._replay(state, key, inp, now)
        seen[inp.detection_id] = None
        if len(seen) > config.remember_detections_per_tenant:
            del seen[next(iter(seen))]
        counters["detections"] += 1
        context = state.context
        risk = score(
            inp,
            criticality=context.criticality,
            vertical=context.vertical,
            rarity=self.rarity.observe(tenant, inp.rule_id, now),
            intel_hits=self._intel(inp),
            confidence=self._rule_statuses.get(inp.rule_id),
            weights=config.weights,
        )
        window, span = config.dedup_window_seconds, config.alert_max_span_seconds
        closed = state.closed.get(key)
        if closed is not None:
            done, closer = closed
            if (
                closer is not None
                and continues(done, inp, now, window_seconds=window, max_span_seconds=span)
                and closes(closer, done, inp.event, now)
            ):  # the same benign activity again: it stays closed
                counters["alert_updates"] += 1
                alert = update_alert(done, inp, risk, now)
                del state.closed[key]
                state.closed[key] = (alert, closer)
                self._tick(state, alert, now)
                reason = alert.closed_reason or alert.status
                decision = GroupingDecision(action="none", incident_id=None, reason=reason)
                return TriageResult(alert=alert, is_new=False, decision=decision)
        alerts = state.alerts
        existing = alerts.get(key)
        index = state.index
        if existing is not None and continues(
            existing, inp, now, window_seconds=window, max_span_seconds=span
        ):
            is_new = False
            alert = update_alert(existing, inp, risk, now)
            counters["alert_updates"] += 1
            del alerts[key]  # re-inserted below: the dict stays in least-recently-updated order
            decision = decide(alert, index, now)
        else:
            is_new = True
            alert = self._open(state, inp, risk, now)
            counters["alerts"] += 1
            found = self._closer(state, alert, inp, now)
            if found is not None:
                status: AlertStatus = "suppressed" if isinstance(found, Suppression) else "auto_closed"
                counters[status] += 1
                alert = with_status(alert, status, closed_reason=closing_reason(found))
                state.closed[key] = (alert, found)
                self._tick(state, alert, now)
                decision = GroupingDecision(
                    action="none", incident_id=None, reason=alert.closed_reason or status
                )
                return TriageResult(alert=alert, is_new=True, decision=decision)
            decision = decide(alert, index, now)
        action = decision.action
        if action != "none":
            counters[f"incidents_{action}"] += 1
            alert = with_status(alert, "incident", incident_id=decision.incident_id)
            index.apply(decision, alert, now)
        elif decision.incident_id is not None:
            index.apply(decision, alert, now)
        alerts[key] = alert
        self._tick(state, alert, now)
        return TriageResult(alert=alert, is_new=is_new, decision=decision)

    def _tick(self, state: _Tenant, alert: Alert, now: datetime) -> None:
        if state.newest is None or alert.last_seen > state.newest:
            state.newest = alert.last_seen
        state.processed += 1
        limit = self.config.max_alerts_per_tenant
        if len(state.alerts) > limit or len(state.closed) > limit or state.processed % _PRUNE_EVERY == 0:
            self._prune(state, now)

    def _open(self, state: _Tenant, inp: DetectionInput, risk: RiskScore, now: datetime) -> Alert:
        """A new alert whose id no recent alert of the tenant has (the second alert of a series in one
        window, after the first was closed, gets `|2` on its dedup key)."""
        window = self.config.dedup_window_seconds
        alert = open_alert(inp, risk, now, window_seconds=window)
        nth = 1
        while alert.id in state.ids:
            nth += 1
            alert = open_alert(inp, risk, now, window_seconds=window, nth=nth)
        _remember(state.ids, alert.id, self.config.max_alerts_per_tenant * 4)
        return alert

    @staticmethod
    def _closer(state: _Tenant, alert: Alert, inp: DetectionInput, now: datetime) -> Closer | None:
        """The first matching suppression (the tenant's word), else auto-close policy; else None."""
        for group in (state.rule_suppressions.get(alert.rule_id), state.global_suppressions):
            if group:
                found = suppressed_by(group, alert, inp.event, now)
                if found is not None:
                    return found
        general, by_rule = state.policies
        for policies in (by_rule.get(alert.rule_id), general):
            if policies:
                policy = auto_close_policy(policies, alert, inp.event)
                if policy is not None:
                    return policy
        return None

    def _replay(self, state: _Tenant, key: str, inp: DetectionInput, now: datetime) -> TriageResult:
        alert = state.alerts.get(key)
        closed = state.closed.get(key)
        if closed is not None and inp.detection_id in closed[0].detection_ids:
            alert = closed[0]
        if alert is None:  # forgotten since: show what the detection was about, change nothing
            window = self.config.dedup_window_seconds
            alert = open_alert(inp, RiskScore(score=0), now, window_seconds=window)
        reason = "detection already triaged: nothing changed"
        decision = GroupingDecision(action="none", incident_id=alert.incident_id, reason=reason)
        return TriageResult(alert=alert, is_new=False, decision=decision, replay=True)

    @staticmethod
    def _saw(state: _Tenant, moment: datetime) -> None:
        if state.newest is None or moment > state.newest:
            state.newest = moment

    def _prune(self, state: _Tenant, now: datetime) -> None:
        """Forget alerts no detection can continue (idle for two dedup windows before the newest event
        seen), then the least recently updated above the cap."""
        alerts, closed = state.alerts, state.closed
        if state.newest is not None:
            horizon = state.newest - timedelta(seconds=2 * self.config.dedup_window_seconds)
            for key in [k for k, a in alerts.items() if a.last_seen < horizon]:
                del alerts[key]
            for key in [k for k, (a, _) in closed.items() if a.last_seen < horizon]:
                del closed[key]
        limit = self.config.max_alerts_per_tenant
        for table in (alerts, closed):
            extra = len(table) - limit
            if extra > 0:
                for key in list(table)[:extra]:
                    del table[key]
        state.index.prune(now)


def new_incident(alert: Alert, incident_id: str, now: datetime) -> Incident:
    """The incident a `create` decision opens, from its first alert (state `new`, SLA clocks from `now`)."""
    primary = primary_entity(alert.entities)
    title = alert.rule_title if primary is None else f"{alert.rule_title} on {primary.kind} {primary.value}"
    return Incident(
        id=incident_id,
        tenant_id=alert.tenant_id,
        title=title,
        state="new",
        severity=alert.severity,
        risk=alert.risk,
        created_at=now,
        updated_at=now,
        first_event_at=alert.first_seen,
        alert_ids=(alert.id,),
        entities=alert.entities,
        techniques=alert.techniques,
        tactics=alert.tactics,
    )


def incident_ref(incident: Incident) -> IncidentRef:
    """What grouping needs of a stored incident. Last activity is its `updated_at`; a closed incident's
    closure time is `closed_at` (else `updated_at`). Merged incidents take no alerts: `observe_incident`
    drops them instead."""
    closed_at = None
    if incident.state in CLOSED_STATES:
        closed_at = incident.closed_at or incident.updated_at
    return IncidentRef(
        id=incident.id,
        tenant_id=incident.tenant_id,
        entity_keys=frozenset(grouping_keys(incident.entities)),
        techniques=frozenset(incident.techniques),
        tactics=frozenset(incident.tactics),
        last_activity=incident.updated_at,
        closed_at=closed_at,
    )
