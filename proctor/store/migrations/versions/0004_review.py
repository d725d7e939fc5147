"""after the exam: hash-chained audit log (with its genesis entry and head row), alert and
candidate verdicts, exam-room record and incident report, retention policies and purges

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import proctor.store.tables
from proctor.evidence.chain import HEAD_ID, RECORDED_TABLES, genesis_entry

revision = "0004"
down_revision = "0001"
branch_labels = ("review",)
depends_on = None

UTC = proctor.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=True),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("subject_type", sa.String(length=32), nullable=True),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash"),
    )
    op.create_index("ix_audit_log_sitting_seq", "audit_log", ["sitting_id", "seq"])
    op.create_index("ix_audit_log_candidate_seq", "audit_log", ["candidate_id", "seq"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject_type", "subject_id"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "alert_verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("decided_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_verdicts_alert", "alert_verdicts", ["alert_id", "id"])
    op.create_index("ix_alert_verdicts_sitting", "alert_verdicts", ["sitting_id"])
    op.create_table(
        "candidate_verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=24), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("alert_ids", sa.JSON(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("decided_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_candidate_verdicts_candidate", "candidate_verdicts", ["candidate_id", "id"])
    op.create_index("ix_candidate_verdicts_sitting", "candidate_verdicts", ["sitting_id"])
    op.create_table(
        "sitting_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("prefilled_at", UTC(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.Column("locked_by", sa.Integer(), nullable=True),
        sa.Column("locked_at", UTC(), nullable=True),
        sa.Column("locked_sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["updated_by"], ["staff_users.id"]),
        sa.ForeignKeyConstraint(["locked_by"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sitting_id", "kind"),
    )
    op.create_table(
        "retention_policies",
        sa.Column("sitting_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("years", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_by", sa.Integer(), nullable=False),
        sa.Column("set_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["sitting_id"], ["sittings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["set_by"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("sitting_id"),
    )
    op.create_table(
        "retention_purges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sitting_id", sa.Integer(), nullable=False),
        sa.Column("executed_at", UTC(), nullable=False),
        sa.Column("executed_by", sa.Integer(), nullable=False),
        sa.Column("approval", sa.Text(), nullable=False),
        sa.Column("operator", sa.String(length=200), nullable=False),
        sa.Column("retain_until", UTC(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["executed_by"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_retention_purges_sitting", "retention_purges", ["sitting_id"])

    # the log's first entry: which recorded rows existed before it (not in the log)
    bind = op.get_bind()
    baseline = {
        subject: int(bind.execute(sa.text(f"SELECT max(id) FROM {table}")).scalar() or 0)
        for subject, table in RECORDED_TABLES.items()
        if sa.inspect(bind).has_table(table)
    }
    for subject in RECORDED_TABLES:
        baseline.setdefault(subject, 0)
    genesis = genesis_entry(baseline, proctor.store.tables.utcnow())
    audit_log = sa.table(
        "audit_log",
        *(sa.column(name) for name in genesis if name != "at"),
        sa.column("at", UTC()),
    )
    op.execute(audit_log.insert().values(**genesis))
    audit_head = sa.table("audit_head", sa.column("id"), sa.column("seq"), sa.column("hash"))
    op.execute(audit_head.insert().values(id=HEAD_ID, seq=1, hash=genesis["hash"]))


def downgrade() -> None:
    op.drop_index("ix_retention_purges_sitting", table_name="retention_purges")
    op.drop_table("retention_purges")
    op.drop_table("retention_policies")
    op.drop_table("sitting_records")
    op.drop_index("ix_candidate_verdicts_sitting", table_name="candidate_verdicts")
    op.drop_index("ix_candidate_verdicts_candidate", table_name="candidate_verdicts")
    op.drop_table("candidate_verdicts")
    op.drop_index("ix_alert_verdicts_sitting", table_name="alert_verdicts")
    op.drop_index("ix_alert_verdicts_alert", table_name="alert_verdicts")
    op.drop_table("alert_verdicts")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_log_subject", table_name="audit_log")
    op.drop_index("ix_audit_log_candidate_seq", table_name="audit_log")
    op.drop_index("ix_audit_log_sitting_seq", table_name="audit_log")
    op.drop_table("audit_log")
