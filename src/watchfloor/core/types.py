"""Named, constrained types shared by every stage (API DTOs, storage, rule files)."""

from __future__ import annotations

import re
from typing import Literal, NewType

TenantId = NewType("TenantId", str)
RuleId = NewType("RuleId", str)

RuleLevel = Literal["informational", "low", "medium", "high", "critical"]
RULE_LEVELS: tuple[RuleLevel, ...] = ("informational", "low", "medium", "high", "critical")

DEFAULT_TENANT = TenantId("default")

_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def tenant_id(value: str) -> TenantId:
    """Validate a tenant id: lower-case letters, digits, '-' and '_', 1-63 characters."""
    if not _TENANT_RE.fullmatch(value):
        msg = f"invalid tenant id {value!r}: use 1-63 of [a-z0-9_-], starting with a letter or digit"
        raise ValueError(msg)
    return TenantId(value)


def rule_level(value: object) -> RuleLevel:
    """Coerce a Sigma level to a RuleLevel; unknown or missing levels become 'informational'."""
    text = str(value).lower() if value is not None else "informational"
    for level in RULE_LEVELS:
        if text == level:
            return level
    return "informational"


# -- triage and cases ---------------------------------------------------------------------------------
Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")

AnalystTier = Literal["T1", "T2", "T3"]
ANALYST_TIERS: tuple[AnalystTier, ...] = ("T1", "T2", "T3")

IncidentState = Literal[
    "new",
    "acknowledged",
    "investigating",
    "awaiting_customer",
    "contained",
    "resolved",
    "closed_true_positive",
    "closed_false_positive",
]
INCIDENT_STATES: tuple[IncidentState, ...] = (
    "new",
    "acknowledged",
    "investigating",
    "awaiting_customer",
    "contained",
    "resolved",
    "closed_true_positive",
    "closed_false_positive",
)
CLOSED_STATES: frozenset[IncidentState] = frozenset({"closed_true_positive", "closed_false_positive"})

# SLA metrics a service tier sets targets for (seconds from incident creation to the milestone).
SlaMetric = Literal["acknowledge", "notify", "contain"]
SLA_METRICS: tuple[SlaMetric, ...] = ("acknowledge", "notify", "contain")


def severity_of(level: RuleLevel) -> Severity:
    """The alert severity a Sigma rule level starts at (informational counts as low)."""
    return "low" if level == "informational" else level


def severity_rank(severity: Severity) -> int:
    """0 for low ... 3 for critical, for ordering."""
    return SEVERITIES.index(severity)
