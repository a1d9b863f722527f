"""rate limits (per-account buckets in segments, per-tenant API limits, reserved send slots),
and an index for the stuck report

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 17:07:37.407011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("tat", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_buckets")),
    )
    op.add_column("channel_accounts", sa.Column("rate_limit_burst", sa.Double(), nullable=True))
    op.add_column("messages", sa.Column("rate_slot_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("api_rate_per_second", sa.Double(), nullable=True))
    op.add_column("tenants", sa.Column("api_rate_burst", sa.Double(), nullable=True))
    op.create_index("ix_messages_status_updated", "messages", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_status_updated", table_name="messages")
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("api_rate_burst")
        batch_op.drop_column("api_rate_per_second")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_column("rate_slot_at")
    with op.batch_alter_table("channel_accounts") as batch_op:
        batch_op.drop_column("rate_limit_burst")
    op.drop_table("rate_buckets")
