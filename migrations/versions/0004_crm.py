"""CRM connections (credentials encrypted) and the syncs owed to them

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 20:31:53.949997
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crm_connections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_crm_connections_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_connections")),
    )
    op.create_index(
        op.f("ix_crm_connections_tenant_id"), "crm_connections", ["tenant_id"], unique=False
    )
    op.create_table(
        "crm_syncs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("source_key", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("throttles", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["crm_connections.id"],
            name=op.f("fk_crm_syncs_connection_id_crm_connections"),
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_crm_syncs_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_crm_syncs_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_syncs")),
        sa.UniqueConstraint(
            "connection_id", "source_key", name=op.f("uq_crm_syncs_connection_id_source_key")
        ),
    )
    op.create_index(
        "ix_crm_syncs_contact",
        "crm_syncs",
        ["connection_id", "contact_id", "status", "id"],
        unique=False,
    )
    op.create_index("ix_crm_syncs_due", "crm_syncs", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_crm_syncs_due", table_name="crm_syncs")
    op.drop_index("ix_crm_syncs_contact", table_name="crm_syncs")
    op.drop_table("crm_syncs")
    op.drop_index(op.f("ix_crm_connections_tenant_id"), table_name="crm_connections")
    op.drop_table("crm_connections")
