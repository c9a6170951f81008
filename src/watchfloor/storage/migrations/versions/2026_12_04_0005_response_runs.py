"""Response runs: playbook runs and their steps, approvals, sealed connector credentials, per-tenant
response policies, the action log blast-radius limits count, and platform switches (the kill switch).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchfloor.storage.columns import BigId, Json, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_RUN_STATES = (
    "'pending', 'running', 'waiting_approval', 'waiting', 'succeeded', 'failed', 'failed_closed', "
    "'cancelled', 'rolled_back'"
)
_STEP_STATES = (
    "'pending', 'running', 'waiting_approval', 'waiting', 'succeeded', 'failed', 'skipped', 'refused', "
    "'expired', 'rejected', 'rolled_back'"
)


def upgrade() -> None:
    op.create_table(
        "response_runs",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("incident_id", sa.String(length=96), nullable=False),
        sa.Column("playbook_id", sa.String(length=128), nullable=False),
        sa.Column("playbook_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(f"state IN ({_RUN_STATES})", name=op.f("ck_response_runs_state")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_response_runs_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_response_runs")),
    )
    with op.batch_alter_table("response_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_response_runs_tenant_id_incident_id"), ["tenant_id", "incident_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_response_runs_state"), ["state"], unique=False)

    op.create_table(
        "response_steps",
        sa.Column("run_id", sa.String(length=96), nullable=False),
        sa.Column("step_id", sa.String(length=128), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("inputs", Json, nullable=True),
        sa.Column("output", Json, nullable=True),
        sa.Column("external_ref", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("approved_by", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(f"state IN ({_STEP_STATES})", name=op.f("ck_response_steps_state")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["response_runs.id"], name=op.f("fk_response_steps_run_id_response_runs")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_response_steps_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("run_id", "step_id", name=op.f("pk_response_steps")),
    )
    op.create_table(
        "response_approvals",
        sa.Column("run_id", sa.String(length=96), nullable=False),
        sa.Column("step_id", sa.String(length=128), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("approvers", Json, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("deadline", UTCDateTime(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "decision IN ('approved', 'rejected', 'expired')", name=op.f("ck_response_approvals_decision")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["response_runs.id"], name=op.f("fk_response_approvals_run_id_response_runs")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_response_approvals_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("run_id", "step_id", name=op.f("pk_response_approvals")),
    )
    with op.batch_alter_table("response_approvals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_response_approvals_decision_deadline"), ["decision", "deadline"], unique=False
        )

    op.create_table(
        "connector_credentials",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("keys", Json, nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_connector_credentials_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "connector", name=op.f("pk_connector_credentials")),
    )
    op.create_table(
        "response_policies",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("policy", Json, nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_response_policies_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_response_policies")),
    )
    op.create_table(
        "response_action_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("action_id", sa.String(length=128), nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(length=96), nullable=False),
        sa.Column("step_id", sa.String(length=128), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_response_action_log_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_response_action_log")),
    )
    with op.batch_alter_table("response_action_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_response_action_log_tenant_id_at"), ["tenant_id", "at"], unique=False
        )

    op.create_table(
        "response_switches",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_response_switches")),
    )


def downgrade() -> None:
    op.drop_table("response_switches")
    with op.batch_alter_table("response_action_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_response_action_log_tenant_id_at"))
    op.drop_table("response_action_log")
    op.drop_table("response_policies")
    op.drop_table("connector_credentials")
    with op.batch_alter_table("response_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_response_approvals_decision_deadline"))
    op.drop_table("response_approvals")
    op.drop_table("response_steps")
    with op.batch_alter_table("response_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_response_runs_state"))
        batch_op.drop_index(batch_op.f("ix_response_runs_tenant_id_incident_id"))
    op.drop_table("response_runs")
