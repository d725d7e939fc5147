"""console triage: an invigilator snoozes one candidate's alerts of one type (静音)

Revision ID: 0007_alert_snoozes
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import proctor.store.tables

revision = "0007_alert_snoozes"
down_revision = "0005"  # the console branch (rooms, supervision log)
branch_labels = None
depends_on = None

UTC = proctor.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "alert_snoozes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("until", UTC(), nullable=False),
        sa.Column("ended_at", UTC(), nullable=True),
        sa.Column("ended_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"]),
        sa.ForeignKeyConstraint(["ended_by"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_alert_snoozes_sitting_until", "alert_snoozes", ["sitting_id", "until"], unique=False
    )
    op.create_index(
        "ix_alert_snoozes_candidate_id", "alert_snoozes", ["candidate_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_alert_snoozes_candidate_id", table_name="alert_snoozes")
    op.drop_index("ix_alert_snoozes_sitting_until", table_name="alert_snoozes")
    op.drop_table("alert_snoozes")
