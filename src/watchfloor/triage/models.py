"""The frozen records triage works on: entities, alerts, risk scores, suppressions and auto-close policies.

Triage turns stored detections into alerts (deduplicated on a stable key) and groups alerts into incidents.
Everything here is a value: functions take records and return new ones; storage persists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from watchfloor.core.types import RuleId, RuleLevel, Severity, TenantId

EntityKind = Literal["host", "user", "ip", "process", "file", "hash", "domain", "url", "cloud_account", "app"]
ENTITY_KINDS: tuple[EntityKind, ...] = (
    "host",
    "user",
    "ip",
    "process",
    "file",
    "hash",
    "domain",
    "url",
    "cloud_account",
    "app",
)

# Entities that identify *where* and *who*: the ones incidents are grouped by. A file path or a hash shared
# by two alerts is weak evidence they are one incident (every host runs powershell.exe).
GROUPING_KINDS: frozenset[EntityKind] = frozenset({"host", "user", "ip", "process", "cloud_account"})


@dataclass(frozen=True, slots=True, order=True)
class Entity:
    """Something an alert is about. `value` is normalized (see `triage.entities.normalize`)."""

    kind: EntityKind
    value: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.value}"


AlertStatus = Literal["open", "incident", "suppressed", "auto_closed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectionInput:
    """What triage needs from one stored detection (see `triage.entities.from_detection`)."""

    tenant_id: TenantId
    detection_id: int
    rule_id: RuleId
    rule_title: str
    rule_level: RuleLevel
    rule_author: str = ""
    tags: tuple[str, ...] = ()  # Sigma tags: attack.t1059.001, attack.execution, ...
    event_time: datetime  # when it happened (falls back to matched_at when the event had no time)
    matched_at: datetime  # when the engine matched it
    entities: tuple[Entity, ...] = ()
    event: dict[str, Any] = field(default_factory=dict, compare=False)  # the ECS-named event document


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskFactor:
    """One named contribution to a risk score, shown to the analyst as is."""

    name: str  # rule_level, confidence, asset_criticality, intel, vertical, rarity, ...
    points: float  # contribution to the 0-100 score
    detail: str  # a sentence: "host ws-17 is critical in the tenant's inventory"


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskScore:
    score: int  # 0..100
    factors: tuple[RiskFactor, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """Repeats of the same rule on the same entity within the dedup window update one alert."""

    id: str  # stable: derived from dedup_key, so replays land on the same alert
    tenant_id: TenantId
    dedup_key: str  # rule + primary entity + window start
    rule_id: RuleId
    rule_title: str
    rule_author: str
    severity: Severity
    first_seen: datetime
    last_seen: datetime
    count: int
    entities: tuple[Entity, ...]
    techniques: tuple[str, ...]  # ATT&CK technique ids, upper-case: T1059.001
    tactics: tuple[str, ...]  # ATT&CK tactic short names: execution, persistence, ...
    detection_ids: tuple[int, ...]  # the first few (bounded), for drill-down
    risk: RiskScore
    status: AlertStatus = "open"
    incident_id: str | None = None
    closed_reason: str | None = None  # suppression or auto-close policy that closed it, in words


ConditionOp = Literal["equals", "contains", "startswith", "endswith", "regex", "in", "cidr"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """A test on one field of the alert's event (dotted ECS name) or on the alert itself (`alert.rule_id`,
    `alert.entity.host`, ...). Strings compare case-insensitively."""

    field: str
    op: ConditionOp
    value: str | tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Suppression:
    """Alerts that match every condition (within scope and before expiry) are closed with the reason."""

    id: str
    tenant_id: TenantId
    conditions: tuple[Condition, ...]
    rule_id: RuleId | None  # scope: one rule, or every rule when None
    reason: str
    author: str
    created_at: datetime
    expires_at: datetime | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoClosePolicy:
    """A known-benign pattern (content file or tenant setting) closed automatically, recording why."""

    name: str
    conditions: tuple[Condition, ...]
    reason: str
    tenant_id: TenantId | None = None  # None: applies to every tenant
    rule_id: RuleId | None = None
