"""Telemetry health: per tenant and source, last seen and volume against its own weekly baseline; sources
that go silent (or low) beyond their tier's threshold raise alerts. See README.md."""

from watchfloor.health.checker import CHECKER_ACTOR, Assessment, HealthChange, HealthChecker, assess
from watchfloor.health.model import (
    DEFAULT_TIER_THRESHOLDS,
    Baseline,
    HealthThresholds,
    TierThresholds,
    hour_of_week,
    hour_start,
    source_name,
)
from watchfloor.health.report import SourceReport, tenant_report
from watchfloor.health.tracker import FlushResult, HealthTracker

__all__ = [
    "CHECKER_ACTOR",
    "DEFAULT_TIER_THRESHOLDS",
    "Assessment",
    "Baseline",
    "FlushResult",
    "HealthChange",
    "HealthChecker",
    "HealthThresholds",
    "HealthTracker",
    "SourceReport",
    "TierThresholds",
    "assess",
    "hour_of_week",
    "hour_start",
    "source_name",
    "tenant_report",
]
