"""evidence linked to its alert (alert clips); per-sitting evidence settings

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = ("evidence_links",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sittings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence", sa.JSON(), nullable=True))
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alert_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_evidence_alert_id", ["alert_id"], unique=False)
        batch_op.create_index("ix_evidence_candidate_kind", ["candidate_id", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sittings", schema=None) as batch_op:
        batch_op.drop_column("evidence")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_index("ix_evidence_candidate_kind")
        batch_op.drop_index("ix_evidence_alert_id")
        batch_op.drop_column("alert_id")
