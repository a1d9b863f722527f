"""Campaigns: a send to a list of recipients, its recipients, each message's campaign, and
analytics by campaign

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("template_id", sa.String(40)),
        sa.Column("template_version", sa.Integer()),
        sa.Column("body", sa.Text()),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("account_id", sa.String(40)),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("ttl_seconds", sa.Integer()),
        sa.Column("send_at", sa.DateTime(timezone=True)),
        sa.Column("quiet_hours", sa.String(8), nullable=False),
        sa.Column("rate_per_second", sa.Float()),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("invalid_rows", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("duplicate_rows", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("row_errors", sa.JSON()),
        sa.Column("made", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_campaigns_tenant_id_idempotency_key"
        ),
    )
    op.create_index("ix_campaigns_tenant_status", "campaigns", ["tenant_id", "status", "id"])
    op.create_table(
        "campaign_recipients",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(40), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column("phone_index", sa.String(64), nullable=False),
        sa.Column("variables", sa.Text()),
        sa.Column("reference", sa.String(200)),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("message_id", sa.String(40)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "campaign_id", "phone_index", name="uq_campaign_recipients_campaign_id_phone_index"
        ),
    )
    op.create_index(
        "ix_campaign_recipients_state", "campaign_recipients", ["campaign_id", "state", "id"]
    )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("campaign_id", sa.String(40)))
    # A campaign's messages by status: its counts, and what a pause or a cancel holds back.
    op.create_index("ix_messages_campaign_status", "messages", ["campaign_id", "status"])
    # Analytics by campaign: the hourly rollup gains the campaign ('' for none) in its key.
    with op.batch_alter_table("delivery_rollups") as batch:
        batch.add_column(sa.Column("campaign_id", sa.String(40), nullable=False, server_default=""))
        batch.drop_constraint("pk_delivery_rollups", type_="primary")
        batch.create_primary_key(
            "pk_delivery_rollups", ["tenant_id", "hour", "account_id", "channel", "campaign_id"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM delivery_rollups")  # beat recomputes the recent hours
    with op.batch_alter_table("delivery_rollups") as batch:
        batch.drop_constraint("pk_delivery_rollups", type_="primary")
        batch.drop_column("campaign_id")
        batch.create_primary_key(
            "pk_delivery_rollups", ["tenant_id", "hour", "account_id", "channel"]
        )
    op.drop_index("ix_messages_campaign_status", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("campaign_id")
    op.drop_index("ix_campaign_recipients_state", table_name="campaign_recipients")
    op.drop_table("campaign_recipients")
    op.drop_index("ix_campaigns_tenant_status", table_name="campaigns")
    op.drop_table("campaigns")
