"""Indexes for the inbox retention purge and the CRM sweep, found by the EXPLAIN test;
two redundant indexes of message_events dropped (each was one more write per event)

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
    # (message_id, dedupe_key) and (tenant_id, created_at) lead with these columns.
    op.drop_index("ix_message_events_message_id", table_name="message_events")
    op.drop_index("ix_message_events_tenant_id", table_name="message_events")


def downgrade() -> None:
    op.create_index("ix_message_events_tenant_id", "message_events", ["tenant_id"])
    op.create_index("ix_message_events_message_id", "message_events", ["message_id"])
    op.drop_index("ix_message_events_tenant_created", table_name="message_events")
    op.drop_index("ix_webhook_inbox_processed_received", table_name="webhook_inbox")
