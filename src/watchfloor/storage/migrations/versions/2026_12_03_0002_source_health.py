"""Telemetry health: per-source last seen, status and baseline; hourly volume; health alerts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchfloor.storage.columns import BigId, Json, UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
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
        "source_health",
        _tenant_fk("source_health"),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("events_total", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_since", UTCDateTime(), nullable=False),
        sa.Column("baseline", Json, nullable=False),
        sa.Column("baseline_through", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "source", name="pk_source_health"),
        sa.CheckConstraint(
            _one_of("status", ("ok", "silent", "low_volume", "retired")), name="ck_source_health_status"
        ),
    )
    op.create_table(
        "source_volume",
        _tenant_fk("source_volume"),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "source", "hour", name="pk_source_volume"),
    )
    op.create_index("ix_source_volume_tenant_id_hour", "source_volume", ["tenant_id", "hour"])
    op.create_table(
        "health_alerts",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        _tenant_fk("health_alerts"),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("detail", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_health_alerts"),
        sa.CheckConstraint(
            _one_of("kind", ("silent", "low_volume", "recovered")), name="ck_health_alerts_kind"
        ),
    )
    op.create_index(
        "ix_health_alerts_tenant_id_source_closed_at", "health_alerts", ["tenant_id", "source", "closed_at"]
    )
    op.create_index("ix_health_alerts_tenant_id_id", "health_alerts", ["tenant_id", "id"])


def downgrade() -> None:
    for table in ("health_alerts", "source_volume", "source_health"):
        op.drop_table(table)
