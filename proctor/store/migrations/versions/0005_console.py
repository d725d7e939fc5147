"""console: exam rooms, seats, room staff, the supervision log, saved danmaku phrases

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import proctor.store.tables

revision = "0005"
down_revision = "0001"
branch_labels = ("console",)
depends_on = None

UTC = proctor.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("invigilators_required", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sitting_id", "name"),
    )
    op.create_table(
        "room_seats",
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("seat", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("candidate_id"),
        sa.UniqueConstraint("room_id", "seat"),
    )
    op.create_index("ix_room_seats_room_id", "room_seats", ["room_id"], unique=False)
    op.create_table(
        "room_staff",
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("assigned_at", UTC(), nullable=False),
        sa.Column("assigned_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["assigned_by"], ["staff_users.id"]),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("room_id", "staff_id"),
    )
    op.create_index("ix_room_staff_staff_id", "room_staff", ["staff_id"], unique=False)
    op.create_table(
        "console_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=True),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("evidence_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_console_actions_alert_id", "console_actions", ["alert_id"], unique=False)
    op.create_index(
        "ix_console_actions_candidate_at", "console_actions", ["candidate_id", "at"], unique=False
    )
    op.create_index(
        "ix_console_actions_sitting_at", "console_actions", ["sitting_id", "at"], unique=False
    )
    op.create_table(
        "danmaku_phrases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.String(length=400), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_danmaku_phrases_staff_id", "danmaku_phrases", ["staff_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_danmaku_phrases_staff_id", table_name="danmaku_phrases")
    op.drop_table("danmaku_phrases")
    op.drop_index("ix_console_actions_sitting_at", table_name="console_actions")
    op.drop_index("ix_console_actions_candidate_at", table_name="console_actions")
    op.drop_index("ix_console_actions_alert_id", table_name="console_actions")
    op.drop_table("console_actions")
    op.drop_index("ix_room_staff_staff_id", table_name="room_staff")
    op.drop_table("room_staff")
    op.drop_index("ix_room_seats_room_id", table_name="room_seats")
    op.drop_table("room_seats")
    op.drop_table("rooms")
