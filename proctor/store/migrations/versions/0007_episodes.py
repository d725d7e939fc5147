"""alerts as episodes (issue 18): last seen, end, peak score and the evidence of the worst
moment, and the cause within the type (for the candidate's hint)

Revision ID: 0007_episodes
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import proctor.store.tables

revision = "0007_episodes"
down_revision = "0001"  # the alerts table
branch_labels = ("episodes",)
depends_on = None

UTC = proctor.store.tables.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", UTC(), nullable=True))
        batch_op.add_column(sa.Column("ended_at", UTC(), nullable=True))
        batch_op.add_column(sa.Column("peak_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("peak_at", UTC(), nullable=True))
        batch_op.add_column(sa.Column("peak_evidence_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cause", sa.String(length=16), nullable=True))
        batch_op.create_foreign_key(
            "fk_alerts_peak_evidence_id_evidence", "evidence", ["peak_evidence_id"], ["id"]
        )
    # alerts raised before episodes keep NULLs (their audit records know no end): a moment,
    # not an episode, to the pages


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint("fk_alerts_peak_evidence_id_evidence", type_="foreignkey")
        batch_op.drop_column("cause")
        batch_op.drop_column("peak_evidence_id")
        batch_op.drop_column("peak_at")
        batch_op.drop_column("peak_score")
        batch_op.drop_column("ended_at")
        batch_op.drop_column("last_seen_at")
