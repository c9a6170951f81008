"""The tables (SQLAlchemy Core). Changing one needs a new migration in `migrations/versions/`.

`tests/storage/test_database.py` checks that these definitions and the migrated database agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from watchfloor.storage.columns import BigId, Json, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

VERTICALS = ("healthcare", "legal", "manufacturing", "other")
TENANT_STATUSES = ("active", "retired")
ASSET_KINDS = ("host", "user")
CRITICALITIES = ("low", "medium", "high", "critical")
RULE_LEVELS = ("informational", "low", "medium", "high", "critical")
HASH_SCHEMES = ("sha256", "hmac-sha256")
DEAD_LETTER_STATUSES = ("pending", "replayed")

TENANT_ID_LENGTH = 63
TOKEN_ID_LENGTH = 8


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


def _tenant_fk() -> Column[str]:
    return Column("tenant_id", String(TENANT_ID_LENGTH), ForeignKey("tenants.id"), nullable=False)


tenants = Table(
    "tenants",
    metadata,
    Column("id", String(TENANT_ID_LENGTH), primary_key=True),
    Column("name", Text, nullable=False),
    Column("vertical", String(32), nullable=False),
    Column("tier", String(64), nullable=False),
    Column("contacts", Json, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),
    CheckConstraint(_one_of("vertical", VERTICALS), name="vertical"),
    CheckConstraint(_one_of("status", TENANT_STATUSES), name="status"),
)

assets = Table(
    "assets",
    metadata,
    _tenant_fk(),
    Column("kind", String(8), nullable=False),
    Column("name", Text, nullable=False),
    Column("criticality", String(16), nullable=False),
    Column("attributes", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "kind", "name"),
    CheckConstraint(_one_of("kind", ASSET_KINDS), name="kind"),
    CheckConstraint(_one_of("criticality", CRITICALITIES), name="criticality"),
)

intake_tokens = Table(
    "intake_tokens",
    metadata,
    Column("id", String(TOKEN_ID_LENGTH), primary_key=True),
    _tenant_fk(),
    Column("description", Text, nullable=False),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("hash_scheme", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    CheckConstraint(_one_of("hash_scheme", HASH_SCHEMES), name="hash_scheme"),
    Index(None, "tenant_id"),
)

detections = Table(
    "detections",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _tenant_fk(),
    Column("rule_id", Text, nullable=False),
    Column("rule_version", String(64), nullable=False),
    Column("rule_title", Text, nullable=False),
    Column("rule_level", String(16), nullable=False),
    Column("event_key", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("record_id", Text, nullable=True),
    Column("event_time", UTCDateTime, nullable=True),
    Column("matched_at", UTCDateTime, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
    Column("event", Json, nullable=False),
    Column("tags", Json, nullable=False),
    CheckConstraint(_one_of("rule_level", RULE_LEVELS), name="rule_level"),
    UniqueConstraint("tenant_id", "rule_id", "event_key"),
    Index(None, "tenant_id", "matched_at"),
    Index(None, "tenant_id", "event_time"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _tenant_fk(),
    Column("source", Text, nullable=False),
    Column("line", Integer, nullable=True),
    Column("record_id", BigInteger, nullable=True),
    Column("offset", BigInteger, nullable=True),
    Column("code", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("raw_length", BigInteger, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("replayed_at", UTCDateTime, nullable=True),
    CheckConstraint(_one_of("status", DEAD_LETTER_STATUSES), name="status"),
    Index(None, "tenant_id", "status", "id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", String(64), nullable=False),
    # No foreign key: the audit trail outlives whatever it describes.
    Column("tenant_id", String(TENANT_ID_LENGTH), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", Text, nullable=False),
    Column("details", Json, nullable=False),
    Index(None, "tenant_id", "id"),
)

# -- telemetry health (migration 0002) ---------------------------------------------------------------
SOURCE_STATUSES = ("ok", "silent", "low_volume", "retired")
HEALTH_ALERT_KINDS = ("silent", "low_volume", "recovered")
SOURCE_NAME_LENGTH = 255

source_health = Table(
    "source_health",
    metadata,
    _tenant_fk(),
    Column("source", String(SOURCE_NAME_LENGTH), nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("events_total", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_since", UTCDateTime, nullable=False),
    Column("baseline", Json, nullable=False),
    Column("baseline_through", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("tenant_id", "source"),
    CheckConstraint(_one_of("status", SOURCE_STATUSES), name="status"),
)

source_volume = Table(
    "source_volume",
    metadata,
    _tenant_fk(),
    Column("source", String(SOURCE_NAME_LENGTH), nullable=False),
    Column("hour", UTCDateTime, nullable=False),
    Column("events", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "source", "hour"),
    Index(None, "tenant_id", "hour"),
)

health_alerts = Table(
    "health_alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _tenant_fk(),
    Column("source", String(SOURCE_NAME_LENGTH), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("detail", Json, nullable=False),
    CheckConstraint(_one_of("kind", HEALTH_ALERT_KINDS), name="kind"),
    Index(None, "tenant_id", "source", "closed_at"),
    Index(None, "tenant_id", "id"),
)

# -- triage and cases (migration 0003) ---------------------------------------------------------------
SEVERITY_VALUES = ("low", "medium", "high", "critical")
ALERT_STATUSES = ("open", "incident", "suppressed", "auto_closed")
INCIDENT_STATE_VALUES = (
    "new",
    "acknowledged",
    "investigating",
    "awaiting_customer",
    "contained",
    "resolved",
    "closed_true_positive",
    "closed_false_positive",
)
ANALYST_TIER_VALUES = ("T1", "T2", "T3")
SLA_METRIC_VALUES = ("acknowledge", "notify", "contain")
SLA_EVENT_KINDS = ("sla_warning", "sla_breached")
OBJECT_ID_LENGTH = 96

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(OBJECT_ID_LENGTH), primary_key=True),
    _tenant_fk(),
    Column("dedup_key", Text, nullable=False),
    Column("rule_id", Text, nullable=False),
    Column("rule_title", Text, nullable=False),
    Column("rule_author", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("entities", Json, nullable=False),
    Column("techniques", Json, nullable=False),
    Column("tactics", Json, nullable=False),
    Column("detection_ids", Json, nullable=False),
    Column("risk", Json, nullable=False),
    Column("risk_score", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("incident_id", String(OBJECT_ID_LENGTH), nullable=True),
    Column("closed_reason", Text, nullable=True),
    CheckConstraint(_one_of("severity", SEVERITY_VALUES), name="severity"),
    CheckConstraint(_one_of("status", ALERT_STATUSES), name="status"),
    Index(None, "tenant_id", "last_seen"),
    Index(None, "tenant_id", "incident_id"),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(OBJECT_ID_LENGTH), primary_key=True),
    _tenant_fk(),
    Column("version", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("state", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("risk", Json, nullable=False),
    Column("risk_score", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("first_event_at", UTCDateTime, nullable=False),
    Column("alert_ids", Json, nullable=False),
    Column("entities", Json, nullable=False),
    Column("techniques", Json, nullable=False),
    Column("tactics", Json, nullable=False),
    Column("assignee", Text, nullable=True),
    Column("queue_tier", String(4), nullable=False),
    Column("triaged_at", UTCDateTime, nullable=True),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("acknowledged_by", Text, nullable=True),
    Column("notified_at", UTCDateTime, nullable=True),
    Column("contained_at", UTCDateTime, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("pauses", Json, nullable=False),
    Column("merged_into", String(OBJECT_ID_LENGTH), nullable=True),
    Column("linked", Json, nullable=False),
    Column("closure_reason", Text, nullable=True),
    CheckConstraint(_one_of("state", INCIDENT_STATE_VALUES), name="state"),
    CheckConstraint(_one_of("severity", SEVERITY_VALUES), name="severity"),
    CheckConstraint(_one_of("queue_tier", ANALYST_TIER_VALUES), name="queue_tier"),
    Index(None, "tenant_id", "state"),
    Index(None, "tenant_id", "created_at"),
    Index(None, "state", "created_at"),
)

incident_timeline = Table(
    "incident_timeline",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _tenant_fk(),
    Column("incident_id", String(OBJECT_ID_LENGTH), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("summary", Text, nullable=False),
    Column("details", Json, nullable=False),
    Index(None, "tenant_id", "incident_id", "id"),
    Index(None, "tenant_id", "at"),
)

incident_notes = Table(
    "incident_notes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _tenant_fk(),
    Column("incident_id", String(OBJECT_ID_LENGTH), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("author", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("visible_to_customer", Integer, nullable=False),
    Index(None, "tenant_id", "incident_id", "id"),
)

incident_evidence = Table(
    "incident_evidence",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _tenant_fk(),
    Column("incident_id", String(OBJECT_ID_LENGTH), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("author", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("reference", Text, nullable=False),
    Column("description", Text, nullable=False),
    Index(None, "tenant_id", "incident_id", "id"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", String(OBJECT_ID_LENGTH), primary_key=True),
    _tenant_fk(),
    Column("rule_id", Text, nullable=True),
    Column("conditions", Json, nullable=False),
    Column("reason", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("enabled", Integer, nullable=False),
    Column("hits", BigInteger, nullable=False),
    Column("last_hit_at", UTCDateTime, nullable=True),
    Index(None, "tenant_id", "enabled"),
)

sla_events = Table(
    "sla_events",
    metadata,
    _tenant_fk(),
    Column("incident_id", String(OBJECT_ID_LENGTH), nullable=False),
    Column("metric", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("target_seconds", BigInteger, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "incident_id", "metric", "kind"),
    CheckConstraint(_one_of("metric", SLA_METRIC_VALUES), name="metric"),
    CheckConstraint(_one_of("kind", SLA_EVENT_KINDS), name="kind"),
    Index(None, "tenant_id", "at"),
)

escalations = Table(
    "escalations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _tenant_fk(),
    Column("incident_id", String(OBJECT_ID_LENGTH), nullable=False),
    Column("step", Integer, nullable=False),
    Column("target", Text, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant_id", "incident_id", "step"),
)

tenant_settings = Table(
    "tenant_settings",
    metadata,
    Column("tenant_id", String(TENANT_ID_LENGTH), ForeignKey("tenants.id"), primary_key=True),
    Column("timezone", String(64), nullable=False),
    Column("escalation", Json, nullable=False),
    Column("contract", Json, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Where a stage that tails a table (triage tails `detections` by id) has got to; advanced in the same
# transaction as the stage's output, so a restart neither skips nor repeats work.
stage_cursors = Table(
    "stage_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# -- external dynamic lists (migration 0004) ---------------------------------------------------------
EDL_LIST_KINDS = ("ip", "domain", "url")

# What firewalls poll (see respond/edl.py): one row per blocked value; expired rows are not served.
edl_entries = Table(
    "edl_entries",
    metadata,
    _tenant_fk(),
    Column("list_kind", String(8), nullable=False),
    Column("value", String(1024), nullable=False),
    Column("reason", Text, nullable=False),
    Column("added_by", Text, nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("source_ref", Text, nullable=True),
    PrimaryKeyConstraint("tenant_id", "list_kind", "value"),
    CheckConstraint(_one_of("list_kind", EDL_LIST_KINDS), name="list_kind"),
)

# Read-only credentials firewalls poll the lists with; separate from intake tokens, which must not read lists.
edl_tokens = Table(
    "edl_tokens",
    metadata,
    Column("id", String(TOKEN_ID_LENGTH), primary_key=True),
    _tenant_fk(),
    Column("description", Text, nullable=False),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("hash_scheme", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    CheckConstraint(_one_of("hash_scheme", HASH_SCHEMES), name="hash_scheme"),
    Index(None, "tenant_id"),
)

# -- response runs (migration 0005) ------------------------------------------------------------------
RUN_STATES = (
    "pending",
    "running",
    "waiting_approval",
    "waiting",
    "succeeded",
    "failed",
    "failed_closed",
    "cancelled",
    "rolled_back",
)
STEP_STATES = (
    "pending",
    "running",
    "waiting_approval",
    "waiting",
    "succeeded",
    "failed",
    "skipped",
    "refused",
    "expired",
    "rejected",
    "rolled_back",
)
APPROVAL_DECISIONS = ("approved", "rejected", "expired")

# One playbook run against one incident; `state` moves only through respond/runs.py's rules.
response_runs = Table(
    "response_runs",
    metadata,
    Column("id", String(OBJECT_ID_LENGTH), primary_key=True),
    _tenant_fk(),
    Column("incident_id", String(OBJECT_ID_LENGTH), nullable=False),
    Column("playbook_id", String(128), nullable=False),
    Column("playbook_version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("not_before", UTCDateTime, nullable=True),  # a wait or a retry backoff: advance no earlier
    Column("error", Text, nullable=True),
    CheckConstraint(_one_of("state", RUN_STATES), name="state"),
    Index(None, "tenant_id", "incident_id"),
    Index(None, "state"),
)

# Each step of a run as it was executed: inputs (never secrets), the result, timing, who approved.
response_steps = Table(
    "response_steps",
    metadata,
    Column("run_id", String(OBJECT_ID_LENGTH), ForeignKey("response_runs.id"), nullable=False),
    Column("step_id", String(128), nullable=False),
    _tenant_fk(),
    Column("position", Integer, nullable=False),
    Column("action_id", String(128), nullable=True),
    Column("state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("idempotency_key", Text, nullable=True),
    Column("inputs", Json, nullable=True),
    Column("output", Json, nullable=True),  # the step record (status, summary, changed, output, ...)
    Column("external_ref", Text, nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("approved_by", Text, nullable=True),
    Column("error", Text, nullable=True),
    PrimaryKeyConstraint("run_id", "step_id"),
    CheckConstraint(_one_of("state", STEP_STATES), name="state"),
)

response_approvals = Table(
    "response_approvals",
    metadata,
    Column("run_id", String(OBJECT_ID_LENGTH), ForeignKey("response_runs.id"), nullable=False),
    Column("step_id", String(128), nullable=False),
    _tenant_fk(),
    Column("approvers", Json, nullable=False),
    Column("reason", Text, nullable=False),  # why an approval is asked (the policy's words)
    Column("requested_at", UTCDateTime, nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    Column("decision", String(16), nullable=True),
    Column("decided_by", Text, nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("decision_reason", Text, nullable=True),
    PrimaryKeyConstraint("run_id", "step_id"),
    CheckConstraint(_one_of("decision", APPROVAL_DECISIONS), name="decision"),
    Index(None, "decision", "deadline"),
)

# Connector configuration with secrets, sealed by the caller (AES-GCM, associated data tenant+connector).
connector_credentials = Table(
    "connector_credentials",
    metadata,
    _tenant_fk(),
    Column("connector", String(64), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("nonce", LargeBinary(12), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("keys", Json, nullable=False),  # which config keys are set (names only, never values)
    Column("updated_by", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "connector"),
)

response_policies = Table(
    "response_policies",
    metadata,
    Column("tenant_id", String(TENANT_ID_LENGTH), ForeignKey("tenants.id"), primary_key=True),
    Column("policy", Json, nullable=False),
    Column("updated_by", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# What blast-radius limits count: one row per action started against a target.
response_action_log = Table(
    "response_action_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _tenant_fk(),
    Column("action_id", String(128), nullable=False),
    Column("target_kind", String(16), nullable=False),
    Column("target", Text, nullable=False),
    Column("run_id", String(OBJECT_ID_LENGTH), nullable=False),
    Column("step_id", String(128), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index(None, "tenant_id", "at"),
)

# Platform-wide response switches (the kill switch): one row per name.
response_switches = Table(
    "response_switches",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("updated_by", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
