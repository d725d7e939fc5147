"""ORM tables. Times are stored as UTC and always returned timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))  # invigilator | chief | reviewer | admin
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sitting(Base):
    __tablename__ = "sittings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # device_check | trial | formal
    subject: Mapped[str] = mapped_column(String(200), default="")
    # the sitting's password (口令) is handed to every candidate, so it is kept readable
    # for the administrators who print it; unique so that a login names one sitting
    password: Mapped[str] = mapped_column(String(64), unique=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    analysis_fps: Mapped[float] = mapped_column(default=2.0)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # RuleSettings fields
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=dict)  # EvidenceSettings
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the exam this sitting belongs to (groups a device check, a trial and a formal sitting)
    exam: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # the exam-flow rules (proctor.sitting.policy.FlowRules fields), resolved at creation
    flow: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=dict)


class Candidate(Base):
    """A candidate registered for one sitting (the ID number is the admission ticket)."""

    __tablename__ = "candidates"
    __table_args__ = (UniqueConstraint("sitting_id", "id_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    id_number: Mapped[str] = mapped_column(String(32))
    occupation: Mapped[str] = mapped_column(String(128), default="")
    level: Mapped[str] = mapped_column(String(32), default="")
    photo_relpath: Mapped[str | None] = mapped_column(String(512), nullable=True)
    photo_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthSession(Base):
    """A login. Only the token's sha256 is stored."""

    __tablename__ = "auth_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # candidate | staff
    subject_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # last request made with this session (candidate sessions: a second login is refused
    # while the first one is alive)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Evidence(Base):
    __tablename__ = "evidence"
    __table_args__ = (Index("ix_evidence_candidate_kind", "candidate_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    # alert_screenshot | alert_clip | snapshot | alert_peak | recording
    kind: Mapped[str] = mapped_column(String(32))
    # the alert this file documents (clips; the screenshot is Alert.evidence_id)
    alert_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    view: Mapped[str] = mapped_column(String(16))
    relpath: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    mime: Mapped[str] = mapped_column(String(64))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # a file that spans a time (a recorded segment, issue 22): its end; NULL for a moment
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_sitting_raised", "sitting_id", "raised_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    view: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(
        String(16), default="open"
    )  # open | acknowledged | dismissed
    evidence_id: Mapped[int | None] = mapped_column(ForeignKey("evidence.id"), nullable=True)
    # the alert is an episode (issue 18): raised once, then kept up to date while the
    # condition lasts. last_seen_at moves while it is ongoing (not in the audit record);
    # ended_at is set when it closes. Alerts from before episodes have neither.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the worst moment: its score (comparable within a type) and screenshot
    peak_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    peak_evidence_id: Mapped[int | None] = mapped_column(
        ForeignKey("evidence.id", name="fk_alerts_peak_evidence_id_evidence"), nullable=True
    )
    cause: Mapped[str | None] = mapped_column(String(16), nullable=True)  # e.g. "frozen"


class Danmaku(Base):
    """An on-screen text warning (弹幕警告) sent by an invigilator to one candidate."""

    __tablename__ = "danmaku"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    sender_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    text: Mapped[str] = mapped_column(String(400))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: the candidate pressed "我已知晓 I understand" (issue 23): until then the warning
    #: stays on the candidate's screen
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CandidateEvent(Base):
    """Things that happened to a candidate (media connected/lost, login, ...): the
    raw material of the per-candidate timeline."""

    __tablename__ = "candidate_events"
    __table_args__ = (Index("ix_candidate_events_candidate_at", "candidate_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(48))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ------------------------------------------------------------------ the exam flow (issue 3)


class Attempt(Base):
    """One candidate's way through the sitting: the server-side state machine of the eight
    steps (proctor.flow.steps), with when each step was done and by whom."""

    __tablename__ = "attempts"
    __table_args__ = (Index("ix_attempts_sitting_step", "sitting_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), unique=True
    )
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(24))
    logged_in_at: Mapped[datetime] = mapped_column(UTCDateTime)
    info_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pledge_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pledge_refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    identity_failures: Mapped[int] = mapped_column(Integer, default=0)
    identity_passed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    identity_method: Mapped[str | None] = mapped_column(String(16), nullable=True)  # face|manual
    identity_distance: Mapped[float | None] = mapped_column(Float, nullable=True)
    identity_admitted_by: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id"), nullable=True
    )
    identity_admit_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    phone_paired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    phone_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answering_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # per-candidate order: [{"q": question id, "o": [option keys in display order]}]
    question_order: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submit_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # candidate|auto
    objective_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    manual_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    total_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    grading_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    device_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    upload_bytes_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)  # measured
    # paused by an invigilator (proctor.invigilation.control): the clock stops while
    # ``paused_at`` is set; the finished pauses add ``paused_seconds`` to the candidate's end
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paused_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    pause_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    paused_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    # ended by an invigilator with a category of the documents (step "terminated")
    terminated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    terminated_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    termination_category: Mapped[str | None] = mapped_column(String(24), nullable=True)
    termination_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginFailure(Base):
    """A refused login, kept for the rate limit (per ID number and per client address)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(96))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class PairingToken(Base):
    """A one-time token in the QR code that pairs the candidate's phone (second view).
    Only its sha256 is stored."""

    __tablename__ = "pairing_tokens"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Question(Base):
    """One question of a bank (题库). ``answer``: "B" (single), ["A", "C"] (multiple),
    true/false (true_false), a reference text (short)."""

    __tablename__ = "questions"
    __table_args__ = (
        UniqueConstraint("bank", "external_id"),
        Index("ix_questions_select", "bank", "occupation", "level", "type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bank: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))  # single | multiple | true_false | short
    occupation: Mapped[str] = mapped_column(String(128), default="")
    level: Mapped[str] = mapped_column(String(32), default="")
    knowledge_point: Mapped[str] = mapped_column(String(200), default="")
    difficulty: Mapped[int] = mapped_column(Integer, default=3)  # 1 (easy) - 5 (hard)
    stem: Mapped[str] = mapped_column(Text)
    options: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{"key", "text"}]
    answer: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Paper(Base):
    """The paper of a sitting, assembled from a bank by a blueprint: the questions and their
    points (summing to 100). Every candidate gets these questions in an order of their own."""

    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sitting_id: Mapped[int] = mapped_column(
        ForeignKey("sittings.id", ondelete="CASCADE"), unique=True
    )
    blueprint: Mapped[dict[str, Any]] = mapped_column(JSON)
    items: Mapped[list[Any]] = mapped_column(JSON)  # [{"question_id", "points"}]
    seed: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Answer(Base):
    """A candidate's newest answer to one question; ``seq`` is the page's counter, so an
    older save arriving late never overwrites a newer one."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("attempt_id", "question_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"))
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    points: Mapped[float | None] = mapped_column(Float, nullable=True)  # scored / graded
    graded_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    graded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    grade_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class TimeExtension(Base):
    """Time given back (顺延) to one candidate, or to the whole sitting (candidate_id NULL),
    with who granted it and why."""

    __tablename__ = "time_extensions"
    __table_args__ = (Index("ix_time_extensions_sitting", "sitting_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), nullable=True
    )
    seconds: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeviceReport(Base):
    """What a device-check sitting measured for one candidate."""

    __tablename__ = "device_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    camera_ok: Mapped[bool] = mapped_column(Boolean)
    microphone_ok: Mapped[bool] = mapped_column(Boolean)
    phone_ok: Mapped[bool] = mapped_column(Boolean)
    upload_bytes_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    upload_ok: Mapped[bool] = mapped_column(Boolean)
    passed: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ------------------------------------------------- after the exam: review, records (issue 6)


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit log (proctor.evidence.chain): every
    alert, evidence file, staff action and review access. ``payload`` is canonical JSON;
    ``hash`` = HMAC-SHA256 under the audit key (kept outside the database) of the previous
    hash and this entry's fields (plain sha256 for entries made before). Never updated."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_sitting_seq", "sitting_id", "seq"),
        Index("ix_audit_log_candidate_seq", "candidate_id", "seq"),
        Index("ix_audit_log_subject", "subject_type", "subject_id"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))  # system | staff:<id> | candidate:<id> | cli:..
    kind: Mapped[str] = mapped_column(String(48))  # alert.raised | evidence.stored | ...
    sitting_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    candidate_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subject_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    subject_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # the key the link was made with (issue 21): HMAC-SHA256 under the audit key whose
    # fingerprint this is; NULL: a plain sha256 link made before the chain was keyed
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)


class AuditHead(Base):
    """The single row (id 1) naming the newest audit entry; appends lock it, so they are
    serialised across server processes, and it tells when entries vanish from the end."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AlertVerdict(Base):
    """A reviewer's decision on one alert (confirmed / dismissed); the newest row counts,
    earlier rows are the history."""

    __tablename__ = "alert_verdicts"
    __table_args__ = (
        Index("ix_alert_verdicts_alert", "alert_id", "id"),
        Index("ix_alert_verdicts_sitting", "sitting_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    decision: Mapped[str] = mapped_column(String(16))  # confirmed | dismissed
    note: Mapped[str] = mapped_column(Text, default="")
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CandidateVerdict(Base):
    """A reviewer's decision on one candidate of a sitting: no issue, a violation with its
    category (proctor.review.verdicts), or a second review needed; newest row counts."""

    __tablename__ = "candidate_verdicts"
    __table_args__ = (
        Index("ix_candidate_verdicts_candidate", "candidate_id", "id"),
        Index("ix_candidate_verdicts_sitting", "sitting_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(16))  # no_issue | violation | second_review
    category: Mapped[str | None] = mapped_column(String(24), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    alert_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)  # confirmed alerts cited
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SittingRecord(Base):
    """The exam-room record (考场记录) or the incident report of a sitting: pre-filled from
    what the engine recorded, edited by staff, then locked (no change after)."""

    __tablename__ = "sitting_records"
    __table_args__ = (UniqueConstraint("sitting_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))  # room_record | incident_report
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    prefilled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    locked_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __mapper_args__ = {"version_id_col": version}  # concurrent edits fail, never vanish


class RetentionPolicy(Base):
    """How long a sitting's electronic records are kept, when not the default."""

    __tablename__ = "retention_policies"

    sitting_id: Mapped[int] = mapped_column(
        ForeignKey("sittings.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    years: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    set_by: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RetentionPurge(Base):
    """One execution of the retention procedure on one sitting: who, when, on what approval,
    and how many rows and files were destroyed. Kept for good (the sitting row stays)."""

    __tablename__ = "retention_purges"
    __table_args__ = (Index("ix_retention_purges_sitting", "sitting_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sitting_id: Mapped[int] = mapped_column(Integer)
    executed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    executed_by: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    approval: Mapped[str] = mapped_column(Text)
    operator: Mapped[str] = mapped_column(String(200), default="")  # OS user@host
    retain_until: Mapped[datetime] = mapped_column(UTCDateTime)
    rows: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # table -> rows deleted
    # {"deleted": n, "bytes": n, "failed": [relpath...]} once the files are gone
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    audit_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)


# ------------------------------------------------------------------ the console (issue 5)


class Room(Base):
    """An exam room (考场) of a sitting: up to ``capacity`` candidates, watched by the
    invigilators assigned to it (``invigilators_required`` of them by default)."""

    __tablename__ = "rooms"
    __table_args__ = (UniqueConstraint("sitting_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    capacity: Mapped[int] = mapped_column(Integer, default=30)
    invigilators_required: Mapped[int] = mapped_column(Integer, default=2)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoomSeat(Base):
    """A candidate's seat: each candidate sits in at most one room."""

    __tablename__ = "room_seats"
    __table_args__ = (UniqueConstraint("room_id", "seat"),)

    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), primary_key=True
    )
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    seat: Mapped[int] = mapped_column(Integer)


class RoomStaff(Base):
    """An invigilator assigned to a room, by whom and when."""

    __tablename__ = "room_staff"

    room_id: Mapped[int] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)


class ConsoleAction(Base):
    """The supervision log: what was done at the console, or by the console on its own
    (``staff_id`` NULL: the automatic hints), with who, when and why. ``kind``: hint,
    alert_acknowledged, alert_dismissed, violation (a screenshot with a note), voice_started,
    voice_ended, incident."""

    __tablename__ = "console_actions"
    __table_args__ = (
        Index("ix_console_actions_sitting_at", "sitting_id", "at"),
        Index("ix_console_actions_candidate_at", "candidate_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    room_id: Mapped[int | None] = mapped_column(
        ForeignKey("rooms.id", ondelete="SET NULL"), nullable=True
    )
    candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), nullable=True
    )
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    alert_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    evidence_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DanmakuPhrase(Base):
    """A saved danmaku text: an invigilator's own (``staff_id``) or shared (NULL)."""

    __tablename__ = "danmaku_phrases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    text: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertSnooze(Base):
    """An invigilator silences one candidate's alerts of one type for a while (静音), with
    a reason. Alerts raised meanwhile are still recorded (for review) but not pushed to the
    consoles as new. ``ended_at``: ended early by ``ended_by``; else it runs to ``until``."""

    __tablename__ = "alert_snoozes"
    __table_args__ = (Index("ix_alert_snoozes_sitting_until", "sitting_id", "until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(32))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    reason: Mapped[str] = mapped_column(Text)
    minutes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), nullable=True)
