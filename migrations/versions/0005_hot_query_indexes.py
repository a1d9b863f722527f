"""Indexes for the inbox retention purge and the CRM sweep, found by the EXPLAIN test

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 23:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_inbox_processed_received",
        "webhook_inbox",
        ["received_at"],
        postgresql_where=sa.text("processed_at IS NOT NULL"),
        sqlite_where=sa.text("processed_at IS NOT NULL"),
    )
    op.create_index(
        "ix_message_events_tenant_created", "message_events", ["tenant_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_message_events_tenant_created", table_name="message_events")
    op.drop_index("ix_webhook_inbox_processed_received", table_name="webhook_inbox")
