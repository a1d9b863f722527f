"""A campaign recipient's time zone, found once at upload

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 00:15:00.000000

The upload has already parsed each number; keeping its zone spares the expansion a decrypt
and a parse per recipient. '' is "no single zone" (the tenant's zone applies); NULL is a row
written before this column, whose zone the expansion still finds from the number.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_recipients") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("campaign_recipients") as batch:
        batch.drop_column("timezone")
