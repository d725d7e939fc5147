"""candidate page: questions flagged for review (标记) kept with the attempt (issue 23)

Revision ID: 0008_pages_flagged
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_pages_flagged"
down_revision = "0006"  # the attempts table (exam_flow branch)
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("flagged", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("flagged")
