"""exam flow: an invigilator pauses, resumes and ends one candidate's exam (who, when, why)

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import proctor.store.tables

revision = "0006"
down_revision = "0002"  # the attempts table (exam_flow branch)
branch_labels = None
depends_on = None

UTC = proctor.store.tables.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_at", UTC(), nullable=True))
        batch_op.add_column(sa.Column("paused_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pause_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("paused_seconds", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("terminated_at", UTC(), nullable=True))
        batch_op.add_column(sa.Column("terminated_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("termination_category", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("termination_reason", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            "fk_attempts_paused_by_staff_users", "staff_users", ["paused_by"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_attempts_terminated_by_staff_users", "staff_users", ["terminated_by"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_constraint("fk_attempts_terminated_by_staff_users", type_="foreignkey")
        batch_op.drop_constraint("fk_attempts_paused_by_staff_users", type_="foreignkey")
        batch_op.drop_column("termination_reason")
        batch_op.drop_column("termination_category")
        batch_op.drop_column("terminated_by")
        batch_op.drop_column("terminated_at")
        batch_op.drop_column("paused_seconds")
        batch_op.drop_column("pause_reason")
        batch_op.drop_column("paused_by")
        batch_op.drop_column("paused_at")
