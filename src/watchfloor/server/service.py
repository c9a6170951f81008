"""One process, every stage: the system of record, the spool, the detection stage, HTTP and syslog intake.

`Service(settings)` opens everything under `settings.data_dir`; `app` is the FastAPI application
(intake + operations endpoints); `start()`/`stop()` run the background stage and the syslog listeners.
`run(settings)` serves it with uvicorn until interrupted.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from watchfloor.api import build_api_router
from watchfloor.api.edl import build_edl_router
from watchfloor.archive import ArchiveWriter
from watchfloor.archive.retention import apply_retention_by_tier
from watchfloor.bus import SpoolBus, SpoolConfig
from watchfloor.cases.soc import load_roster
from watchfloor.cases.tiers import load_tiers
from watchfloor.core.errors import ConfigError
from watchfloor.core.types import TenantId, tenant_id
from watchfloor.detect.sigma.correlation import CorrelationEngine
from watchfloor.detect.sigma.engine import SigmaEngine, TenantRules
from watchfloor.detect.sigma.loader import RuleSet, load_rules
from watchfloor.health import HealthChecker, HealthThresholds, HealthTracker
from watchfloor.ingest import metrics as intake_metrics
from watchfloor.ingest.envelope import SUBJECT_RAW, Envelope
from watchfloor.ingest.http import IntakeSettings, build_intake_router
from watchfloor.ingest.syslog import SyslogParseError, parse_syslog
from watchfloor.ingest.syslog_server import Peer, SyslogTcpServer, SyslogUdpServer, Transport
from watchfloor.normalize.logsources import content_dir, default_logsource_map
from watchfloor.respond.engine import ConnectorConfigSource, RunEngine, StaticConfig
from watchfloor.respond.secrets import CredentialStore, load_keys
from watchfloor.server import logs
from watchfloor.server.cases import CaseService
from watchfloor.server.pipeline import MAX_UNACKED, DetectionWorker, dead_letter_envelopes, rule_versions
from watchfloor.server.response_stage import ResponseStage, build_response
from watchfloor.server.settings import ServeSettings
from watchfloor.server.triage_stage import TriageWorker
from watchfloor.storage import Database
from watchfloor.triage.conditions import load_autoclose

log = logging.getLogger(__name__)
HEALTH_SETTLE = timedelta(minutes=5)


FULL_COLLECTION_EVERY: Final = 100  # young collections between full ones (CPython's default: 10)


def tune_gc() -> None:
    """Full (oldest-generation) collections 10 times rarer than CPython's default. The triage stage keeps
    a large, slowly growing state (open alerts, the incident index); with the default thresholds a full
    collection walked it every few batches and took 35-45 % of the stage's time (bench_triage_stage.py,
    docs/benchmarks.md). Young collections, which free most garbage, are unchanged."""
    young, middle, _old = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def load_service_rules(paths: Iterable[Path]) -> RuleSet:
    """The operator's rule paths, or the project's own content/rules when none are configured."""
    chosen = list(paths) or [content_dir() / "rules"]
    return load_rules(chosen)


def correlation_engine(rules: RuleSet) -> CorrelationEngine | None:
    """The correlation rules of the base set over its base rules (state kept per tenant), if any."""
    if not rules.correlations:
        return None
    return CorrelationEngine([r for r, _ in rules.correlations], [r for r, _ in rules.rules])


def build_engine(settings: ServeSettings) -> tuple[SigmaEngine, RuleSet, dict[str, str]]:
    """The engine for the base rules and every tenant's overlay; rule versions for stored detections.
    Rule files that do not load are a configuration error (path:line and reason), not a silent skip."""
    base = load_service_rules(settings.rules)
    overlays: dict[TenantId, TenantRules] = {}
    metas = [m for _, m in [*base.rules, *base.correlations]]
    problems = [str(e) for e in base.errors]
    for name, overlay in settings.tenant_rules.items():
        extra = load_rules(overlay.extra) if overlay.extra else RuleSet()
        problems.extend(str(e) for e in extra.errors)
        metas.extend(m for _, m in extra.rules)
        overlays[tenant_id(name)] = TenantRules(
            placeholders=overlay.placeholders, disabled=frozenset(overlay.disabled), extra=tuple(extra.rules)
        )
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        msg = f"{len(problems)} rule files did not load: {shown}"
        raise ConfigError(msg)
    engine = SigmaEngine(base, default_logsource_map(), tenants=overlays)
    return engine, base, rule_versions(metas)


class _PipelineCollector(Collector):
    """The detection stage's counters and the spool's backlog, per tenant, for /metrics."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterable[Metric]:
        counters = self.service.worker.counters
        families = (
            ("watchfloor_detect_received", "events the detection stage evaluated", counters.received),
            ("watchfloor_detect_detections", "new detections stored", counters.detections),
            ("watchfloor_detect_duplicates", "detections already stored (replays)", counters.duplicates),
            ("watchfloor_detect_dead_letters", "events dead-lettered by the pipeline", counters.dead_letters),
        )
        for name, doc, values in families:
            family = CounterMetricFamily(name, doc, labels=["tenant"])
            for tenant, value in sorted(values.items()):
                family.add_metric([tenant], value)
            yield family
        stats = self.service.bus.stats()
        backlog = GaugeMetricFamily(
            "watchfloor_spool_pending_messages", "messages not yet acked", labels=["subject", "consumer"]
        )
        for (subject, durable), consumer in sorted(stats.consumers.items()):
            backlog.add_metric([subject, durable], consumer.pending)
        yield backlog


class Service:
    """The service's parts, opened from settings."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        pepper = settings.token_pepper.get_secret_value().encode() if settings.token_pepper else None
        self.db = Database.open(settings.resolved_database_url, token_pepper=pepper)
        config = SpoolConfig(max_bytes=settings.spool_max_bytes, min_free_bytes=settings.spool_min_free_bytes)
        self.bus = SpoolBus(settings.data_dir / "spool", config)
        self.engine, self.rules, versions = build_engine(settings)
        self.archive = (
            ArchiveWriter(settings.resolved_archive_dir, flush_rows=MAX_UNACKED, background_flush=False)
            if settings.archive_enabled
            else None
        )
        self.health = HealthTracker()
        self.health_checker = HealthChecker(
            self.db.health, HealthThresholds.from_mapping(settings.health_tiers)
        )
        self._health_stop = threading.Event()
        self._health_thread: threading.Thread | None = None
        self._sla_stop = threading.Event()
        self._sla_thread: threading.Thread | None = None
        self.worker = DetectionWorker(
            self.bus,
            self.db,
            self.engine,
            versions=versions,
            batch_size=settings.detect_batch_size,
            correlations=correlation_engine(self.rules),
            correlation_meta={m.id: m for _, m in self.rules.correlations},
            health=self.health,
            archive=self.archive,
            archive_flush_seconds=settings.archive_flush_seconds,
        )
        self.triage: TriageWorker | None = None
        self.cases = self._build_cases(settings)
        self.credentials = self._credential_store(settings)
        self.response: RunEngine | None = None
        self.response_stage: ResponseStage | None = None
        if settings.response_enabled:
            source: ConnectorConfigSource = self.credentials or StaticConfig({})
            self.response, self.response_stage = build_response(
                self.db,
                self.cases,
                source,
                playbooks_dir=settings.playbooks_dir,
                interval_seconds=settings.response_interval_seconds,
            )
        gc.freeze()  # the compiled rules live as long as the process: keep them out of every collection
        tune_gc()
        self.registry = CollectorRegistry()
        self.registry.register(_PipelineCollector(self))
        self._syslog: list[SyslogUdpServer | SyslogTcpServer] = []
        self.syslog_ports: dict[str, int] = {}
        self.app = self._build_app()

    def _build_cases(self, settings: ServeSettings) -> CaseService:
        """The triage stage (when enabled) and the case service over the same database."""
        metas = [m for _, m in [*self.rules.rules, *self.rules.correlations]]
        if settings.triage_enabled:
            self.triage = TriageWorker(
                self.db,
                policies=load_autoclose(settings.autoclose_file),
                rule_statuses={m.id: m.status for m in metas},
                rule_authors={m.id: m.author for m in metas},
                lag_seconds=settings.triage_lag_seconds,
            )
        worker = self.triage
        return CaseService(
            self.db,
            load_tiers(settings.tiers_file),
            roster=load_roster(settings.soc_roster) if settings.soc_roster else None,
            observer=worker.observe_incident if worker else None,
            alert_observer=worker.replace_alert if worker else None,
            suppressions_changed=worker.set_suppressions if worker else None,
        )

    def _credential_store(self, settings: ServeSettings) -> CredentialStore | None:
        """Sealed connector credentials, when a secrets key is configured (or dev_mode makes one); without,
        the service still runs: credential routes answer 503 and vendor steps fail for lack of config."""
        try:
            keys = load_keys(settings)
        except ConfigError as exc:
            log.warning("connector credentials are off: %s", exc)
            return None
        return CredentialStore(self.db, keys)

    def sla_tick(self) -> None:
        try:
            self.cases.sweep()
        except Exception:  # keep the service up; retried at the next tick
            log.exception("SLA sweep failed")

    def _sla_loop(self) -> None:
        while not self._sla_stop.wait(self.settings.sla_interval_seconds):
            self.sla_tick()

    # -- HTTP --------------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            self.start()
            await self.start_syslog()
            try:
                yield
            finally:
                await self.stop_syslog()
                self.stop()

        app = FastAPI(title="Watchfloor", lifespan=lifespan)
        intake = IntakeSettings(
            max_request_bytes=self.settings.max_request_bytes, max_event_bytes=self.settings.max_event_bytes
        )
        app.include_router(build_intake_router(self.bus, self.db, intake))
        app.include_router(build_edl_router(self.db))  # firewalls poll these with their own EDL tokens
        app.include_router(
            build_api_router(
                self.db,
                archive_root=self.settings.resolved_archive_dir,
                admin_token_sha256=self.settings.admin_token_sha256,
                replay=self.replay_dead_letters,
                cases=self.cases,
                credentials=self.credentials,
                response_engine=self.response,
            )
        )

        @app.get("/healthz")
        def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/readyz")
        def readyz(response: Response) -> dict[str, object]:
            checks = self.readiness()
            if not all(checks.values()):
                response.status_code = 503
            return {"ready": all(checks.values()), "checks": checks}

        @app.get("/metrics")
        def metrics() -> Response:
            body = generate_latest(intake_metrics.REGISTRY) + generate_latest(self.registry)
            return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

        return app

    def replay_dead_letters(self, tenant: TenantId, ids: list[int]) -> dict[str, object]:
        """The admin API's replay hook: the stored bytes go back on the spool for the running stage
        (the API marks them replayed once this returns)."""
        envelopes = dead_letter_envelopes(self.db, tenant, ids)
        if envelopes:
            self.bus.publish_batch(SUBJECT_RAW, [e.to_publish() for _id, e in envelopes])
        return {"published": len(envelopes)}

    def readiness(self) -> dict[str, bool]:
        try:
            self.db.tenants.list()
            database = True
        except Exception:  # noqa: BLE001 - readiness reports, never raises
            database = False
        return {
            "database": database,
            "spool": self.bus.pressure(SUBJECT_RAW).level != "full",
            "detect_stage": self.worker.alive,
            "triage_stage": self.triage is None or self.triage.alive,
            "response_stage": self.response_stage is None or self.response_stage.alive,
        }

    # -- syslog ------------------------------------------------------------------------------
    async def _on_frame(self, frame: bytes, peer: Peer, transport: Transport) -> None:
        tenant = await asyncio.to_thread(self._syslog_tenant, frame)
        if tenant is None:
            intake_metrics.REJECTED.labels(tenant="-", protocol="syslog", reason="no_tenant").inc()
            log.warning("syslog frame from %s:%s has no tenant (no listener tenant, no token)", *peer[:2])
            return
        env = Envelope(
            tenant=tenant,
            source=f"syslog:{transport}:{peer[0]}",
            format="syslog",
            body=frame,
            received_at=datetime.now(tz=UTC),
        )
        await asyncio.to_thread(self.bus.publish_batch, SUBJECT_RAW, [env.to_publish()])
        intake_metrics.ACCEPTED.labels(tenant=tenant, protocol="syslog").inc()

    def _syslog_tenant(self, frame: bytes) -> TenantId | None:
        """The listener's tenant, else an intake token in an RFC 5424 SD element (`[wf token="..."]`)."""
        if self.settings.syslog_tenant:
            return TenantId(self.settings.syslog_tenant)
        try:
            message = parse_syslog(frame, received_at=datetime.now(tz=UTC))
        except SyslogParseError:
            return None
        for params in message.structured_data.values():
            token = params.get("token")
            if token:
                return self.db.tokens.resolve(token)
        return None

    async def start_syslog(self) -> None:
        host = self.settings.syslog_host
        if self.settings.syslog_udp_port is not None:
            udp = SyslogUdpServer(self._on_frame)
            self.syslog_ports["udp"] = await udp.start(host, self.settings.syslog_udp_port)
            self._syslog.append(udp)
        if self.settings.syslog_tcp_port is not None:
            tcp = SyslogTcpServer(self._on_frame)
            self.syslog_ports["tcp"] = await tcp.start(host, self.settings.syslog_tcp_port)
            self._syslog.append(tcp)

    async def stop_syslog(self) -> None:
        for server in self._syslog:
            await server.stop()
        self._syslog.clear()

    # -- telemetry health --------------------------------------------------------------------
    def health_tick(self) -> None:
        """Persist what the stage saw; judge silent and low-volume sources (after a settling period);
        apply archive retention by tier."""
        now = datetime.now(tz=UTC)
        try:
            self.health.flush(self.db.health, now)
            tiers = {t.id: t.tier for t in self.db.tenants.list()}
            if now - self.health.started_at >= HEALTH_SETTLE:  # let spooled events land first
                self.health_checker.check(now, tiers)
            if self.archive is not None:
                keep = self.settings.retention_days_by_tier
                by_name = {str(tenant): tier for tenant, tier in tiers.items()}
                apply_retention_by_tier(self.settings.resolved_archive_dir, by_name, now.date(), keep)
        except Exception:  # keep the service up; retried at the next tick
            log.exception("telemetry health / retention tick failed")

    def _health_loop(self) -> None:
        while not self._health_stop.wait(self.settings.health_interval_seconds):
            self.health_tick()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.worker.start()
        self._health_stop.clear()
        self._health_thread = threading.Thread(
            target=self._health_loop, name="watchfloor-health", daemon=True
        )
        self._health_thread.start()
        if self.response_stage is not None:
            self.response_stage.start()
        if self.triage is not None:
            self.triage.start()
            self._sla_stop.clear()
            self._sla_thread = threading.Thread(target=self._sla_loop, name="watchfloor-sla", daemon=True)
            self._sla_thread.start()

    def stop(self) -> None:
        if self.response_stage is not None:
            self.response_stage.stop()
        self.worker.stop()
        if self.triage is not None:
            self.triage.stop()
        self._sla_stop.set()
        if self._sla_thread is not None:
            self._sla_thread.join(10.0)
            self._sla_thread = None
        self._health_stop.set()
        if self._health_thread is not None:
            self._health_thread.join(10.0)
            self._health_thread = None
            self.health_tick()  # final flush

    def close(self) -> None:
        if self.response_stage is not None:
            self.response_stage.stop()
        self.worker.stop()
        if self.triage is not None:
            self.triage.stop()
        if self.archive is not None:
            self.archive.close()
        self.bus.close()
        self.db.close()


def run(settings: ServeSettings) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM), then close everything cleanly."""
    log_config = logs.configure(settings.log_level)
    service = Service(settings)
    try:
        uvicorn.run(service.app, host=settings.host, port=settings.port, log_config=log_config)
    finally:
        service.close()
