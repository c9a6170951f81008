"""Triage and cases: alerts, incidents, timeline, notes, evidence, suppressions, SLA events, escalations,
tenant settings (time zone, escalation tree, contract), stage cursors.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchfloor.storage.columns import BigId, Json, UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("dedup_key", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("rule_title", sa.Text(), nullable=False),
        sa.Column("rule_author", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("entities", Json, nullable=False),
        sa.Column("techniques", Json, nullable=False),
        sa.Column("tactics", Json, nullable=False),
        sa.Column("detection_ids", Json, nullable=False),
        sa.Column("risk", Json, nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("incident_id", sa.String(length=96), nullable=True),
        sa.Column("closed_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "severity IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_alerts_severity")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'incident', 'suppressed', 'auto_closed')", name=op.f("ck_alerts_status")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_alerts_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alerts_tenant_id_incident_id"), ["tenant_id", "incident_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alerts_tenant_id_last_seen"), ["tenant_id", "last_seen"], unique=False
        )

    op.create_table(
        "escalations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("incident_id", sa.String(length=96), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_escalations_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalations")),
        sa.UniqueConstraint(
            "tenant_id", "incident_id", "step", name=op.f("uq_escalations_tenant_id_incident_id_step")
        ),
    )
    op.create_table(
        "incident_evidence",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("incident_id", sa.String(length=96), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_incident_evidence_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_evidence")),
    )
    with op.batch_alter_table("incident_evidence", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incident_evidence_tenant_id_incident_id_id"),
            ["tenant_id", "incident_id", "id"],
            unique=False,
        )

    op.create_table(
        "incident_notes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("incident_id", sa.String(length=96), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("visible_to_customer", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_incident_notes_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_notes")),
    )
    with op.batch_alter_table("incident_notes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incident_notes_tenant_id_incident_id_id"),
            ["tenant_id", "incident_id", "id"],
            unique=False,
        )

    op.create_table(
        "incident_timeline",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("incident_id", sa.String(length=96), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", Json, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_incident_timeline_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_timeline")),
    )
    with op.batch_alter_table("incident_timeline", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incident_timeline_tenant_id_at"), ["tenant_id", "at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_incident_timeline_tenant_id_incident_id_id"),
            ["tenant_id", "incident_id", "id"],
            unique=False,
        )

    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("risk", Json, nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("first_event_at", UTCDateTime(), nullable=False),
        sa.Column("alert_ids", Json, nullable=False),
        sa.Column("entities", Json, nullable=False),
        sa.Column("techniques", Json, nullable=False),
        sa.Column("tactics", Json, nullable=False),
        sa.Column("assignee", sa.Text(), nullable=True),
        sa.Column("queue_tier", sa.String(length=4), nullable=False),
        sa.Column("triaged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.Column("notified_at", UTCDateTime(), nullable=True),
        sa.Column("contained_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("pauses", Json, nullable=False),
        sa.Column("merged_into", sa.String(length=96), nullable=True),
        sa.Column("linked", Json, nullable=False),
        sa.Column("closure_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("queue_tier IN ('T1', 'T2', 'T3')", name=op.f("ck_incidents_queue_tier")),
        sa.CheckConstraint(
            "severity IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_incidents_severity")
        ),
        sa.CheckConstraint(
            "state IN ('new', 'acknowledged', 'investigating', 'awaiting_customer', 'contained', "
            "'resolved', 'closed_true_positive', 'closed_false_positive')",
            name=op.f("ck_incidents_state"),
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_incidents_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incidents_state_created_at"), ["state", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_incidents_tenant_id_created_at"), ["tenant_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_incidents_tenant_id_state"), ["tenant_id", "state"], unique=False
        )

    op.create_table(
        "sla_events",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("incident_id", sa.String(length=96), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("target_seconds", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('sla_warning', 'sla_breached')", name=op.f("ck_sla_events_kind")),
        sa.CheckConstraint(
            "metric IN ('acknowledge', 'notify', 'contain')", name=op.f("ck_sla_events_metric")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_sla_events_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "incident_id", "metric", "kind", name=op.f("pk_sla_events")),
    )
    with op.batch_alter_table("sla_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_events_tenant_id_at"), ["tenant_id", "at"], unique=False)

    op.create_table(
        "suppressions",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=True),
        sa.Column("conditions", Json, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("enabled", sa.Integer(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("last_hit_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_suppressions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
    )
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_suppressions_tenant_id_enabled"), ["tenant_id", "enabled"], unique=False
        )

    op.create_table(
        "tenant_settings",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("escalation", Json, nullable=False),
        sa.Column("contract", Json, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_settings_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_settings")),
    )
    op.create_table(
        "stage_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_stage_cursors")),
    )


def downgrade() -> None:
    op.drop_table("stage_cursors")
    op.drop_table("tenant_settings")
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suppressions_tenant_id_enabled"))

    op.drop_table("suppressions")
    with op.batch_alter_table("sla_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_events_tenant_id_at"))

    op.drop_table("sla_events")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_tenant_id_state"))
        batch_op.drop_index(batch_op.f("ix_incidents_tenant_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_incidents_state_created_at"))

    op.drop_table("incidents")
    with op.batch_alter_table("incident_timeline", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_timeline_tenant_id_incident_id_id"))
        batch_op.drop_index(batch_op.f("ix_incident_timeline_tenant_id_at"))

    op.drop_table("incident_timeline")
    with op.batch_alter_table("incident_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_notes_tenant_id_incident_id_id"))

    op.drop_table("incident_notes")
    with op.batch_alter_table("incident_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_evidence_tenant_id_incident_id_id"))

    op.drop_table("incident_evidence")
    op.drop_table("escalations")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_tenant_id_last_seen"))
        batch_op.drop_index(batch_op.f("ix_alerts_tenant_id_incident_id"))

    op.drop_table("alerts")
