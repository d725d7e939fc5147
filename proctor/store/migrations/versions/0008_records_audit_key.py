"""the audit chain keyed outside the database (issue 21 item 5): each entry names the key
its link was made with (``key_id``, a fingerprint of the key, never the key); entries made
before have none and keep verifying as plain sha256 links

Revision ID: 0008_records_audit_key
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_records_audit_key"
down_revision = "0004"  # the audit log (review branch); not below the 0007 heads: no need
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("key_id")
