"""exam flow: attempts (the eight steps), question banks, papers, answers, time extensions,
login rate limit, phone pairing, device-check reports; sittings get an exam name and
flow rules, sessions a last-seen time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import proctor.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = ("exam_flow",)
depends_on = None

UTC = proctor.store.tables.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", UTC(), nullable=True))
    with op.batch_alter_table("sittings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("exam", sa.String(length=200), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("flow", sa.JSON(), nullable=True))

    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_failures_key_at", "login_failures", ["key", "at"], unique=False)
    op.create_table(
        "questions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bank", sa.String(length=100), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("occupation", sa.String(length=128), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("knowledge_point", sa.String(length=200), nullable=False),
        sa.Column("difficulty", sa.Integer(), nullable=False),
        sa.Column("stem", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bank", "external_id"),
    )
    op.create_index(
        "ix_questions_select", "questions", ["bank", "occupation", "level", "type"], unique=False
    )
    op.create_table(
        "papers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("blueprint", sa.JSON(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["staff_users.id"]),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sitting_id"),
    )
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column("logged_in_at", UTC(), nullable=False),
        sa.Column("info_confirmed_at", UTC(), nullable=True),
        sa.Column("pledge_signed_at", UTC(), nullable=True),
        sa.Column("pledge_refused_at", UTC(), nullable=True),
        sa.Column("identity_failures", sa.Integer(), nullable=False),
        sa.Column("identity_passed_at", UTC(), nullable=True),
        sa.Column("identity_method", sa.String(length=16), nullable=True),
        sa.Column("identity_distance", sa.Float(), nullable=True),
        sa.Column("identity_admitted_by", sa.Integer(), nullable=True),
        sa.Column("identity_admit_reason", sa.Text(), nullable=True),
        sa.Column("phone_paired_at", UTC(), nullable=True),
        sa.Column("phone_done_at", UTC(), nullable=True),
        sa.Column("answering_started_at", UTC(), nullable=True),
        sa.Column("question_order", sa.JSON(), nullable=True),
        sa.Column("submitted_at", UTC(), nullable=True),
        sa.Column("submit_kind", sa.String(length=16), nullable=True),
        sa.Column("objective_score", sa.Float(), nullable=True),
        sa.Column("manual_score", sa.Float(), nullable=True),
        sa.Column("total_score", sa.Float(), nullable=True),
        sa.Column("grading_pending", sa.Boolean(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("device_checked_at", UTC(), nullable=True),
        sa.Column("upload_bytes_per_s", sa.Float(), nullable=True),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["identity_admitted_by"], ["staff_users.id"]),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("candidate_id"),
    )
    op.create_index("ix_attempts_sitting_step", "attempts", ["sitting_id", "step"], unique=False)
    op.create_table(
        "device_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("camera_ok", sa.Boolean(), nullable=False),
        sa.Column("microphone_ok", sa.Boolean(), nullable=False),
        sa.Column("phone_ok", sa.Boolean(), nullable=False),
        sa.Column("upload_bytes_per_s", sa.Float(), nullable=True),
        sa.Column("upload_ok", sa.Boolean(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "pairing_tokens",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("expires_at", UTC(), nullable=False),
        sa.Column("used_at", UTC(), nullable=True),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    op.create_table(
        "time_extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.Integer(), nullable=False),
        sa.Column("granted_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["granted_by"], ["staff_users.id"]),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_time_extensions_sitting", "time_extensions", ["sitting_id"], unique=False)
    op.create_table(
        "answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("saved_at", UTC(), nullable=False),
        sa.Column("points", sa.Float(), nullable=True),
        sa.Column("graded_by", sa.Integer(), nullable=True),
        sa.Column("graded_at", UTC(), nullable=True),
        sa.Column("grade_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["attempt_id"], ["attempts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["graded_by"], ["staff_users.id"]),
        sa.ForeignKeyConstraint(["question_id"], ["questions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("attempt_id", "question_id"),
    )


def downgrade() -> None:
    op.drop_table("answers")
    op.drop_index("ix_time_extensions_sitting", table_name="time_extensions")
    op.drop_table("time_extensions")
    op.drop_table("pairing_tokens")
    op.drop_table("device_reports")
    op.drop_index("ix_attempts_sitting_step", table_name="attempts")
    op.drop_table("attempts")
    op.drop_table("papers")
    op.drop_index("ix_questions_select", table_name="questions")
    op.drop_table("questions")
    op.drop_index("ix_login_failures_key_at", table_name="login_failures")
    op.drop_table("login_failures")
    with op.batch_alter_table("sittings", schema=None) as batch_op:
        batch_op.drop_column("flow")
        batch_op.drop_column("exam")
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_column("last_seen_at")
