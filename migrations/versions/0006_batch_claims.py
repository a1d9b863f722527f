"""Batch claims: a tenant's dispatch weight, the lanes' queued messages by tenant, and the
inbox's unprocessed rows by arrival

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column("dispatch_weight", sa.Integer(), nullable=False, server_default="1")
        )
    op.create_index(
        "ix_messages_queued_lane",
        "messages",
        ["priority", "tenant_id", "id"],
        postgresql_where=sa.text("status = 'queued'"),
        sqlite_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_webhook_inbox_unprocessed",
        "webhook_inbox",
        ["received_at"],
        postgresql_where=sa.text("processed_at IS NULL"),
        sqlite_where=sa.text("processed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_inbox_unprocessed", table_name="webhook_inbox")
    op.drop_index("ix_messages_queued_lane", table_name="messages")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("dispatch_weight")
