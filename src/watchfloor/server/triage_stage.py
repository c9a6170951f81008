"""The triage stage: stored detections -> alerts -> incidents, exactly once, across restarts.

`TriageWorker.run_once(now)` reads the detections stored after the stage's cursor (all tenants, by id,
lagging the clock by `lag_seconds` so ids that commit out of order on PostgreSQL are not skipped), runs the
in-memory `triage.engine.Triage` over them, and writes in ONE transaction: the alerts (upserted on their
stable id), the incidents it creates, attaches to or reopens (each through `cases.lifecycle`, with their
timeline and audit entries), and the new cursor. A crash before the commit repeats the batch; a crash after
repeats nothing. When the write fails, the in-memory state (which ran ahead) is rebuilt from storage.

The in-memory state is a cache of storage (ADR 2026-12-04): at start it is seeded with the open alerts and
the open or recently closed incidents. Other writers (analysts, the SLA sweeper) tell it about changes via
`observe_incident`, `replace_alert` and `set_suppressions`; every entry point takes the stage's lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import Connection

from watchfloor.cases.lifecycle import DEFAULT_POLICY, IncidentPolicy, attach_alert, bounded_entities, link
from watchfloor.cases.models import SYSTEM, Incident, TimelineEntry
from watchfloor.core.types import CLOSED_STATES, INCIDENT_STATES, TenantId, severity_rank
from watchfloor.storage.alerts import upsert_alerts
from watchfloor.storage.cursors import advance_cursor, read_cursor
from watchfloor.storage.database import Database
from watchfloor.storage.errors import NotFoundError
from watchfloor.storage.incidents import Change, write_changes
from watchfloor.triage.conditions import Closer
from watchfloor.triage.engine import TenantContext, Triage, TriageConfig, TriageResult, new_incident
from watchfloor.triage.entities import from_detection
from watchfloor.triage.grouping import incident_id_for
from watchfloor.triage.models import Alert, AutoClosePolicy, EntityKind, Suppression

log = logging.getLogger(__name__)

CURSOR: Final = "triage"
OPEN_STATES: Final = tuple(s for s in INCIDENT_STATES if s not in CLOSED_STATES)
_SEED_CLOSED_DAYS: Final = 8  # the reopen window (7 days) and a margin
MAX_CACHED_INCIDENTS: Final = 20_000
CONTEXT_TTL_SECONDS: Final = 60.0  # how stale a tenant's vertical and asset criticality may be


@dataclass(slots=True)
class _Pending:
    """One incident touched by a batch: written once at the end."""

    incident: Incident
    new: bool
    timeline: list[TimelineEntry] = field(default_factory=list)
    alerts: dict[str, Alert] = field(default_factory=dict)
    _known: tuple[frozenset[object], ...] | None = None

    def plain_repeat(self, alert: Alert) -> bool:
        """True when `alert` is already on the open incident and brings nothing `attach_alert` would
        record: no new entity, ATT&CK id, higher severity or earlier event (the common case of a noisy
        rule repeating). The caller then only raises the risk and stores the alert."""
        incident = self.incident
        if incident.state in CLOSED_STATES or incident.merged_into is not None:
            return False
        if self._known is None:
            self._known = (
                frozenset(incident.alert_ids),
                frozenset(incident.entities),
                frozenset(incident.techniques),
                frozenset(incident.tactics),
            )
        ids, entities, techniques, tactics = self._known
        return (
            alert.id in ids
            and severity_rank(alert.severity) <= severity_rank(incident.severity)
            and alert.first_seen >= incident.first_event_at
            and (
                entities.issuperset(alert.entities)
                or bounded_entities(incident.entities, alert.entities) is incident.entities
            )
            and techniques.issuperset(alert.techniques)
            and tactics.issuperset(alert.tactics)
        )

    def set_incident(self, incident: Incident) -> None:
        self.incident = incident
        self._known = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult:
    detections: int
    alerts_written: int
    incidents_created: int
    incidents_updated: int
    cursor: int


def tenant_context(db: Database, tenant: TenantId) -> TenantContext:
    """Vertical and asset criticality from the tenant's record and inventory (unknown tenant: defaults)."""
    record = db.tenants.get(tenant)
    if record is None:
        return TenantContext()
    rows: list[tuple[EntityKind, str, str]] = [
        ("host" if a.kind == "host" else "user", a.name, a.criticality) for a in db.assets.list(tenant)
    ]
    return TenantContext.from_inventory(record.vertical, rows)


class TriageWorker:
    """Tails the detections table into alerts and incidents (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        policies: Iterable[AutoClosePolicy] = (),
        rule_statuses: Mapping[str, str] | None = None,
        rule_authors: Mapping[str, str] | None = None,
        config: TriageConfig | None = None,
        lifecycle: IncidentPolicy = DEFAULT_POLICY,
        lag_seconds: float | None = None,
        batch_size: int = 2000,
        interval_seconds: float = 0.5,
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self.db = db
        self._policies = tuple(policies)
        self._rule_statuses = dict(rule_statuses or {})
        self._rule_authors = dict(rule_authors or {})
        self._config = config
        self._lifecycle = lifecycle
        dialect = db.store.engine.dialect.name
        self.lag = timedelta(
            seconds=lag_seconds if lag_seconds is not None else (5.0 if dialect != "sqlite" else 0)
        )
        self.batch_size = batch_size
        self.interval_seconds = interval_seconds
        self.clock = clock
        self.lock = threading.RLock()
        self.counters: dict[TenantId, Counter[str]] = {}
        self.triage = self._fresh()
        self._seeded = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self._context_read: float | None = None
        # incident id -> (incident, version) as this stage last wrote it; dropped when a batch fails
        self._incidents: dict[str, tuple[Incident, int]] = {}

    # -- state -------------------------------------------------------------------------------------
    def _fresh(self) -> Triage:
        suppressions: dict[TenantId, list[Suppression]] = {}
        for item in self.db.suppressions.list_enabled_all():
            suppressions.setdefault(item.tenant_id, []).append(item)
        return Triage(
            context=lambda tenant: tenant_context(self.db, tenant),
            policies=self._policies,
            suppressions=suppressions,
            rule_statuses=self._rule_statuses,
            config=self._config,
        )

    def seed(self, now: datetime | None = None) -> None:
        """Load open alerts and open or recently closed incidents into a fresh engine."""
        now = now or self.clock()
        with self.lock:
            triage = self._fresh()
            horizon = now - timedelta(seconds=2 * triage.config.alert_max_span_seconds)
            for tenant in self.db.tenants.list():
                triage.seed_alerts(reversed(self.db.alerts.list(tenant.id, since=horizon, limit=5000)))
            recent = now - timedelta(days=_SEED_CLOSED_DAYS)
            triage.seed_incidents(self.db.incidents.list(None, states=OPEN_STATES, limit=None), now)
            closed = self.db.incidents.list(None, states=CLOSED_STATES, closed_since=recent, limit=None)
            triage.seed_incidents(closed, now)
            self.triage = triage
            self._seeded = True

    def observe_incident(self, incident: Incident) -> None:
        with self.lock:
            self.triage.observe_incident(incident, self.clock())

    def replace_alert(self, alert: Alert, closer: Closer | None = None) -> None:
        with self.lock:
            self.triage.replace_alert(alert, closer)

    def set_suppressions(self, tenant: TenantId) -> None:
        """Reload the tenant's enabled suppressions from storage."""
        with self.lock:
            self.triage.set_suppressions(tenant, self.db.suppressions.list(tenant, enabled_only=True))

    def refresh_context(self, tenant: TenantId | None = None) -> None:
        with self.lock:
            self.triage.refresh_context(tenant)

    # -- processing --------------------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> BatchResult:
        """Triage one batch of stored detections (see the module docstring)."""
        with self.lock:
            if not self._seeded:
                self.seed(now)
            now = now or self.clock()
            wall = time.monotonic()  # wall time, not `now`: a replay of old detections is not slower
            if self._context_read is None or wall - self._context_read >= CONTEXT_TTL_SECONDS:
                if self._context_read is not None:
                    self.triage.refresh_context()  # asset criticality and vertical changed meanwhile
                self._context_read = wall
            store = self.db.store
            with store.read() as connection:
                cursor = read_cursor(connection, CURSOR)
            found = self.db.detections.after_all_tenants(
                cursor, stored_before=now - self.lag, limit=self.batch_size
            )
            if not found:
                return BatchResult(
                    detections=0, alerts_written=0, incidents_created=0, incidents_updated=0, cursor=cursor
                )
            authors = self._rule_authors
            inputs = [from_detection(d, rule_author=authors.get(d.rule_id, "")) for d in found]
            try:
                results = self.triage.process_many(inputs, now)
                with store.write() as connection:
                    written = self._write(connection, results_alerts(results), now)
                    advance_cursor(connection, CURSOR, found[-1].id, at=now)
            except Exception:
                log.exception("triage batch after detection %s failed; state rebuilt from storage", cursor)
                self._seeded = False
                self._incidents.clear()
                raise
            for result in results:
                if not result.replay:
                    counter = self.counters.setdefault(result.alert.tenant_id, Counter())
                    counter["detections"] += 1
                    counter[f"alerts_{result.alert.status}"] += int(result.is_new)
            created, updated, alerts_written = written
            return BatchResult(
                detections=len(found),
                alerts_written=alerts_written,
                incidents_created=created,
                incidents_updated=updated,
                cursor=found[-1].id,
            )

    def _write(
        self, connection: Connection, items: list[tuple[Alert, str | None]], now: datetime
    ) -> tuple[int, int, int]:
        """Persist one batch's alerts and incident changes on `connection`."""
        pending: dict[str, _Pending] = {}
        loose: dict[TenantId, dict[str, Alert]] = {}
        repo = self.db.incidents
        # lock every incident the batch names, per tenant in id order, and learn their versions: an
        # incident cached at its current version is not read again (large incidents cost the most)
        wanted = {(alert.tenant_id, incident_id) for alert, incident_id in items if incident_id is not None}
        versions = {key[1]: version for key, version in repo.lock_versions(connection, wanted).items()}
        cache = self._incidents

        def current(tenant: TenantId, incident_id: str) -> _Pending | None:
            entry = pending.get(incident_id)
            if entry is None:
                version = versions.get(incident_id)
                if version is None:
                    try:  # not locked above (a merge target): lock and read it now
                        incident = repo.locked(connection, tenant, incident_id)
                    except NotFoundError:
                        return None
                else:
                    cached = cache.get(incident_id)
                    if cached is not None and cached[1] == version and cached[0].tenant_id == tenant:
                        incident = cached[0]
                    else:
                        incident = repo.locked(connection, tenant, incident_id)
                entry = pending[incident_id] = _Pending(incident=incident, new=False)
            return entry

        for alert, incident_id in items:
            tenant = alert.tenant_id
            if incident_id is None or alert.status != "incident":
                loose.setdefault(tenant, {})[alert.id] = alert
                continue
            # create, attach, reopen, or a repeat of an alert already on the incident ("none"); a create
            # whose incident exists already (a batch repeated after a crash) attaches instead
            entry = current(tenant, incident_id)
            if entry is None:
                entry = self._open(pending, alert, incident_id, now)
                continue
            if entry.plain_repeat(alert):
                incident = entry.incident
                if alert.risk.score > incident.risk.score:
                    entry.set_incident(replace(incident, risk=alert.risk))
                entry.alerts[alert.id] = replace(alert, incident_id=incident.id, status="incident")
                continue
            target = entry
            hops = 0
            while target.incident.merged_into is not None and hops < 8:  # follow merges to the survivor
                followed = current(tenant, target.incident.merged_into)
                if followed is None:
                    break
                target, hops = followed, hops + 1
            if target is not entry:
                alert = replace(alert, incident_id=target.incident.id)
                self.triage.replace_alert(alert)
                entry = target
                if entry.plain_repeat(alert):
                    entry.alerts[alert.id] = replace(alert, status="incident")
                    continue
            result = attach_alert(entry.incident, alert, now, policy=self._lifecycle)
            if result.attached:
                entry.set_incident(result.incident)
                entry.timeline.extend(result.entries)
                entry.alerts[alert.id] = result.alert
                continue
            # refused (a long-closed or merged incident): a new incident, linked to the old one
            entry.timeline.extend(result.entries)
            fresh_id = incident_id_for(replace(alert, incident_id=incident_id))
            opened = pending.get(fresh_id) or self._open(pending, alert, fresh_id, now)
            if opened.new and entry.incident.id not in opened.incident.linked:
                linked = link(opened.incident, entry.incident, SYSTEM, now)
                opened.set_incident(linked.a)
                entry.set_incident(linked.b)
                opened.timeline.extend(linked.entries[:1])
                entry.timeline.extend(linked.entries[1:])
            self.triage.observe_incident(opened.incident, now)
            # the alert's repeats go to the new incident from now on (not one new incident per repeat)
            self.triage.replace_alert(replace(alert, incident_id=opened.incident.id, status="incident"))
        alerts_written = 0
        mixed = [alert for batch in loose.values() for alert in batch.values()]  # tenants checked above
        upsert_alerts(connection, None, mixed)
        alerts_written += len(mixed)
        created = updated = 0
        changes: list[tuple[Change, bool]] = []
        for entry in pending.values():
            if not entry.new and not entry.timeline and not entry.alerts:
                continue
            change = Change(
                incident=entry.incident, timeline=tuple(entry.timeline), alerts=tuple(entry.alerts.values())
            )
            changes.append((change, entry.new))
            alerts_written += len(entry.alerts)
            created += int(entry.new)
            updated += int(not entry.new)
        write_changes(connection, self.db.store, changes, actor=SYSTEM.id)
        for change, new_incident_ in changes:  # their versions after this transaction commits
            incident = change.incident
            cache.pop(incident.id, None)
            previous = versions.get(incident.id)
            if new_incident_ or previous is not None:
                cache[incident.id] = (incident, 1 if new_incident_ else (previous or 0) + 1)
        while len(cache) > MAX_CACHED_INCIDENTS:
            del cache[next(iter(cache))]
        return created, updated, alerts_written

    def _open(self, pending: dict[str, _Pending], alert: Alert, incident_id: str, now: datetime) -> _Pending:
        incident = new_incident(alert, incident_id, now)
        pointed = replace(alert, incident_id=incident_id, status="incident")
        created = TimelineEntry(
            incident_id=incident_id,
            tenant_id=alert.tenant_id,
            at=now,
            actor=SYSTEM.id,
            kind="created",
            summary=f"incident opened from alert {alert.id} ({alert.rule_title}, {alert.severity})",
            details={"alert_id": alert.id, "rule_id": alert.rule_id, "risk": alert.risk.score},
        )
        entry = pending[incident_id] = _Pending(incident=incident, new=True, timeline=[created])
        entry.alerts[alert.id] = pointed
        return entry

    # -- thread --------------------------------------------------------------------------------------
    def drain(self, now: datetime | None = None) -> int:
        """Run batches until none is left; the number of detections triaged."""
        total = 0
        while True:
            batch = self.run_once(now)
            total += batch.detections
            if batch.detections < self.batch_size:
                return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self.run_once()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - logged in run_once; retried after a pause
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(5.0)
                continue
            if batch.detections < self.batch_size:
                self._stop.wait(self.interval_seconds)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.alive:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="watchfloor-triage", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None


def results_alerts(results: Iterable[TriageResult]) -> list[tuple[Alert, str | None]]:
    """(alert, incident id of its grouping decision) per non-replayed result, in order."""
    return [(r.alert, r.decision.incident_id) for r in results if not r.replay]
