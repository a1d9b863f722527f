"""Message templates and their versions; what a message records of its template;
a contact's locale; short links

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_templates_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_templates_tenant_id_name")),
    )
    op.create_index(op.f("ix_templates_tenant_id"), "templates", ["tenant_id"])
    op.create_table(
        "template_versions",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("template_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("default_locale", sa.String(35), nullable=False),
        sa.Column("locales", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_template_versions_template_id_templates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_versions")),
        sa.UniqueConstraint(
            "template_id", "version", name=op.f("uq_template_versions_template_id_version")
        ),
    )

    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("template_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("template_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("template_locale", sa.String(35), nullable=True))
        batch.add_column(sa.Column("alternates", sa.Text(), nullable=True))
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("locale", sa.String(35), nullable=True))
    op.create_table(
        "short_links",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_short_links")),
    )


def downgrade() -> None:
    op.drop_table("short_links")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("locale")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("alternates")
        batch.drop_column("template_locale")
        batch.drop_column("template_version")
        batch.drop_column("template_id")
    op.drop_table("template_versions")
    op.drop_index(op.f("ix_templates_tenant_id"), table_name="templates")
    op.drop_table("templates")
