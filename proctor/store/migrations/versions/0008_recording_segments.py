"""whole-session recording (issue 22 item 3): an evidence file may span a time (a recorded
segment of a view: captured_at is its start, ended_at its end); other evidence keeps NULL

Revision ID: 0008_recording_segments
Revises: 0007_alert_snoozes, 0007_episodes
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import proctor.store.tables

revision = "0008_recording_segments"
down_revision = ("0007_alert_snoozes", "0007_episodes")
branch_labels = None
depends_on = None

UTC = proctor.store.tables.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", UTC(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_column("ended_at")
