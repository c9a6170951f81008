"""Initial schema: tenants, assets, intake tokens, detections, dead letters, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchfloor.storage.columns import BigId, Json, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


def _tenant_fk(table: str) -> sa.Column[str]:
    return sa.Column(
        "tenant_id",
        sa.String(63),
        sa.ForeignKey("tenants.id", name=f"fk_{table}_tenant_id_tenants"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("vertical", sa.String(32), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("contacts", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.CheckConstraint(
            _one_of("vertical", ("healthcare", "legal", "manufacturing", "other")), name="ck_tenants_vertical"
        ),
        sa.CheckConstraint(_one_of("status", ("active", "retired")), name="ck_tenants_status"),
    )
    op.create_table(
        "assets",
        _tenant_fk("assets"),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("criticality", sa.String(16), nullable=False),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "name", name="pk_assets"),
        sa.CheckConstraint(_one_of("kind", ("host", "user")), name="ck_assets_kind"),
        sa.CheckConstraint(
            _one_of("criticality", ("low", "medium", "high", "critical")), name="ck_assets_criticality"
        ),
    )
    op.create_table(
        "intake_tokens",
        sa.Column("id", sa.String(8), nullable=False),
        _tenant_fk("intake_tokens"),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("hash_scheme", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_intake_tokens"),
        sa.CheckConstraint(
            _one_of("hash_scheme", ("sha256", "hmac-sha256")), name="ck_intake_tokens_hash_scheme"
        ),
    )
    op.create_index("ix_intake_tokens_tenant_id", "intake_tokens", ["tenant_id"])
    op.create_table(
        "detections",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        _tenant_fk("detections"),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("rule_version", sa.String(64), nullable=False),
        sa.Column("rule_title", sa.Text(), nullable=False),
        sa.Column("rule_level", sa.String(16), nullable=False),
        sa.Column("event_key", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Text(), nullable=True),
        sa.Column("event_time", UTCDateTime(), nullable=True),
        sa.Column("matched_at", UTCDateTime(), nullable=False),
        sa.Column("stored_at", UTCDateTime(), nullable=False),
        sa.Column("event", Json, nullable=False),
        sa.Column("tags", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_detections"),
        sa.UniqueConstraint(
            "tenant_id", "rule_id", "event_key", name="uq_detections_tenant_id_rule_id_event_key"
        ),
        sa.CheckConstraint(
            _one_of("rule_level", ("informational", "low", "medium", "high", "critical")),
            name="ck_detections_rule_level",
        ),
    )
    op.create_index("ix_detections_tenant_id_matched_at", "detections", ["tenant_id", "matched_at"])
    op.create_index("ix_detections_tenant_id_event_time", "detections", ["tenant_id", "event_time"])
    op.create_table(
        "dead_letters",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        _tenant_fk("dead_letters"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("record_id", sa.BigInteger(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("raw_length", sa.BigInteger(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("replayed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.CheckConstraint(_one_of("status", ("pending", "replayed")), name="ck_dead_letters_status"),
    )
    op.create_index("ix_dead_letters_tenant_id_status_id", "dead_letters", ["tenant_id", "status", "id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("details", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_tenant_id_id", "audit_log", ["tenant_id", "id"])


def downgrade() -> None:
    for table in ("audit_log", "dead_letters", "detections", "intake_tokens", "assets", "tenants"):
        op.drop_table(table)
