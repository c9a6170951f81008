"""External dynamic lists: per-tenant block list entries (ip, domain, url) and the read-only tokens
firewalls poll them with.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchfloor.storage.columns import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "edl_entries",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("list_kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_by", sa.Text(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("source_ref", sa.Text(), nullable=True),
        sa.CheckConstraint("list_kind IN ('ip', 'domain', 'url')", name=op.f("ck_edl_entries_list_kind")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_edl_entries_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "list_kind", "value", name=op.f("pk_edl_entries")),
    )
    op.create_table(
        "edl_tokens",
        sa.Column("id", sa.String(length=8), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hash_scheme", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "hash_scheme IN ('sha256', 'hmac-sha256')", name=op.f("ck_edl_tokens_hash_scheme")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_edl_tokens_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edl_tokens")),
    )
    with op.batch_alter_table("edl_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_edl_tokens_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("edl_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_edl_tokens_tenant_id"))

    op.drop_table("edl_tokens")
    op.drop_table("edl_entries")
