"""talking back (issue 23, gap 6): a candidate acknowledges an invigilator's warning
("我已知晓 I understand"); the time is kept beside delivered and seen.

Revision ID: 0008_talkback_acknowledge
Revises: 0007_alert_snoozes, 0007_episodes
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import proctor.store.tables

revision = "0008_talkback_acknowledge"
down_revision = ("0007_alert_snoozes", "0007_episodes")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("danmaku") as batch:
        batch.add_column(
            sa.Column("acknowledged_at", proctor.store.tables.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("danmaku") as batch:
        batch.drop_column("acknowledged_at")
