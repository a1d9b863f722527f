"""consent records and suppressions, routing rules, erasures, message purpose, and the
tenant's consent policy, keywords, auto-replies and weekday quiet hours

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 19:49:28.303650
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_records",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("phone_index", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("jurisdiction", sa.String(length=8), nullable=True),
        sa.Column("evidence", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_consent_records_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_consent_records_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    op.create_index(op.f("ix_consent_records_contact_id"), "consent_records", ["contact_id"])
    op.create_index(
        "ix_consent_records_lookup", "consent_records", ["tenant_id", "phone_index", "id"]
    )
    op.create_table(
        "suppressions",
        sa.Column("phone_index", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_suppressions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("phone_index", "tenant_id", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("requested_by", sa.String(length=40), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_erasures_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_index(op.f("ix_erasures_tenant_id"), "erasures", ["tenant_id"])
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("match", sa.String(length=20), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_routing_rules_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rules")),
    )
    op.create_index(op.f("ix_routing_rules_tenant_id"), "routing_rules", ["tenant_id"])
    op.add_column("messages", sa.Column("purpose", sa.String(length=24), nullable=True))
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(
            sa.Column(
                "urgent_bypasses_quiet_hours",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
        batch_op.add_column(
            sa.Column(
                "consent_policy", sa.String(length=8), nullable=False, server_default="opt_out"
            )
        )
        batch_op.add_column(sa.Column("keywords", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(
            sa.Column("auto_replies", sa.JSON(), nullable=False, server_default="{}")
        )
        batch_op.alter_column(
            "quiet_hours",
            existing_type=sa.String(length=11),
            type_=sa.String(length=200),
            existing_nullable=True,
        )
    # The defaults were for the rows already there; new rows get theirs from the model.
    with op.batch_alter_table("tenants") as batch_op:
        for column in ("urgent_bypasses_quiet_hours", "consent_policy", "keywords", "auto_replies"):
            batch_op.alter_column(column, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.alter_column(
            "quiet_hours",
            existing_type=sa.String(length=200),
            type_=sa.String(length=11),
            existing_nullable=True,
        )
        batch_op.drop_column("auto_replies")
        batch_op.drop_column("keywords")
        batch_op.drop_column("consent_policy")
        batch_op.drop_column("urgent_bypasses_quiet_hours")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_column("purpose")
    op.drop_index(op.f("ix_routing_rules_tenant_id"), table_name="routing_rules")
    op.drop_table("routing_rules")
    op.drop_index(op.f("ix_erasures_tenant_id"), table_name="erasures")
    op.drop_table("erasures")
    op.drop_table("suppressions")
    op.drop_index("ix_consent_records_lookup", table_name="consent_records")
    op.drop_index(op.f("ix_consent_records_contact_id"), table_name="consent_records")
    op.drop_table("consent_records")
