"""CRM budgets: each connection's limits (plan, overrides, what the CRM stated), its pause,
the lease of the drain that writes to it, and its due syncs in order

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("crm_connections") as batch:
        batch.add_column(sa.Column("limits", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("pause_reason", sa.String(120), nullable=True))
        batch.add_column(sa.Column("drain_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_crm_syncs_pending",
        "crm_syncs",
        ["connection_id", "id"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_crm_syncs_pending", table_name="crm_syncs")
    with op.batch_alter_table("crm_connections") as batch:
        batch.drop_column("drain_until")
        batch.drop_column("pause_reason")
        batch.drop_column("paused_until")
        batch.drop_column("limits")
