"""The review routes' answers (proctor.api.review), as the OpenAPI document states them
(issue 19). Times are the strings the domain makes (ISO 8601 with the offset; None where
the moment has not come)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from proctor.api.wire import Wire

#: a number as the domain computed it: an int stays an int on the wire (3, not 3.0)
Number = int | float


# ---------------------------------------------------------------- who and where


class ReviewSitting(Wire):
    id: int
    name: str
    kind: str
    subject: str
    starts_at: str
    ends_at: str
    time_zone: str = Field(description="the sitting's IANA zone; the pages show times in it")
    utc_offset: str


class ReviewRetention(Wire):
    sitting_id: int
    sitting_name: str
    ends_at: str
    years: int
    retain_until: str
    source: str = Field(description="default | policy")
    purged_at: str | None = Field(description="when its records were destroyed")


class ReviewSittingOverview(ReviewSitting):
    candidates: int
    alerts: int
    retention: ReviewRetention


class ReviewCandidate(Wire):
    id: int
    name: str
    id_number: str
    sitting_id: int


# ---------------------------------------------------------------- risk and verdicts


class ReviewRiskLine(Wire):
    """One alert's points: type weight × severity × duration × views × repeat."""

    alert_id: int
    type: str
    severity: str
    view: str
    weight: Number
    severity_factor: Number
    duration_s: Number
    duration_factor: Number
    views_agree: bool
    views_factor: Number
    repeat: int
    repeat_factor: Number
    decision: str | None
    points: Number


class ReviewRiskOfType(Wire):
    count: int
    dismissed: int
    points: Number


class ReviewRisk(Wire):
    score: Number
    formula: str
    alerts: list[ReviewRiskLine]
    by_type: dict[str, ReviewRiskOfType]
    counted: int
    dismissed: int


class ReviewAlertVerdict(Wire):
    id: int
    alert_id: int
    decision: str = Field(description="confirmed | dismissed")
    note: str
    reviewer_id: int
    reviewer: str
    decided_at: str


class ReviewCandidateVerdict(Wire):
    id: int
    candidate_id: int
    outcome: str = Field(description="no_issue | violation | second_review")
    outcome_label: str
    category: str | None
    category_label: str | None
    note: str
    alert_ids: list[int]
    reviewer_id: int
    reviewer: str
    decided_at: str


class ReviewDismissedRate(Wire):
    type: str
    alerts: int
    reviewed: int
    confirmed: int
    dismissed: int
    dismissed_rate: Number | None = Field(description="None: none reviewed yet")


# ---------------------------------------------------------------- the queue


class ReviewAlertCounts(Wire):
    total: int
    confirmed: int
    dismissed: int
    unreviewed: int


class ReviewQueueRow(Wire):
    candidate: ReviewCandidate
    risk: ReviewRisk
    alerts: ReviewAlertCounts
    verdict: ReviewCandidateVerdict | None


class ReviewQueue(Wire):
    sitting: ReviewSitting
    candidates: list[ReviewQueueRow] = Field(description="highest risk first")
    dismissed_rates: list[ReviewDismissedRate]


# ---------------------------------------------------------------- the timeline


class ReviewEvidenceFile(Wire):
    """An evidence file as the timeline lists it (under an alert, or on its own)."""

    id: int
    view: str
    alert_id: int | None
    mime: str
    sha256: str
    size: int
    captured_at: str | None
    url: str


class ReviewEvidence(ReviewEvidenceFile):
    kind: str


class ReviewRecording(Wire):
    """A recorded segment of a view, from ``start`` to ``end``, played at ``url``."""

    id: int
    view: str
    start: str | None
    end: str | None
    size: int
    sha256: str
    mime: str
    url: str


class ReviewSnooze(Wire):
    id: int
    minutes: int
    created_at: str | None
    until: str | None


class ReviewAlertItem(Wire):
    kind: Literal["alert"]
    id: int
    at: str | None
    end: str | None
    ongoing: bool
    last_seen_at: str | None
    ended_at: str | None
    peak_score: Number | None
    peak_at: str | None
    cause: str | None
    type: str
    severity: str
    view: str
    message: str
    status: str
    raised_at: str | None
    evidence: list[ReviewEvidence]
    verdict: ReviewAlertVerdict | None
    snoozed: ReviewSnooze | None = Field(description="the console's snooze it was raised under")


class ReviewEvidenceItem(ReviewEvidenceFile):
    kind: Literal["evidence"]
    at: str | None
    type: str = Field(description="the evidence's kind")


class ReviewStaffActionItem(Wire):
    """What staff did to the candidate: by ``type`` a danmaku, time given back, a console
    action, a manual identity admission, or another entry of the audit chain."""

    kind: Literal["staff_action"]
    type: str
    at: str | None
    by: str | None
    id: int | None = None
    # danmaku
    text: str | None = None
    delivered_at: str | None = None
    seen_at: str | None = None
    acknowledged_at: str | None = None
    # time given back
    seconds: Number | None = None
    whole_sitting: bool | None = None
    reason: str | None = None
    # console actions
    alert_id: int | None = None
    evidence_id: int | None = None
    data: dict[str, Any] | None = Field(default=None, description="as the action recorded it")
    # other audit entries
    audit_seq: int | None = None


class ReviewEventItem(Wire):
    """The exam flow's events (login, identity check, submit, ...) and the console's
    automatic actions (``by``: automatic)."""

    kind: Literal["event"]
    type: str
    at: str | None
    id: int | None = None
    data: dict[str, Any] | None = Field(default=None, description="as the event recorded it")
    reason: str | None = None
    alert_id: int | None = None
    evidence_id: int | None = None
    by: str | None = None


class ReviewConnectionLossItem(Wire):
    kind: Literal["connection_loss"]
    type: str
    view: str
    at: str | None
    end: str | None = Field(description="None: not restored while the exam ran")
    seconds: Number
    restored: bool


ReviewTimelineItem = Annotated[
    ReviewAlertItem
    | ReviewEvidenceItem
    | ReviewStaffActionItem
    | ReviewEventItem
    | ReviewConnectionLossItem,
    Field(discriminator="kind"),
]


class ReviewAxis(Wire):
    start: str
    end: str


class ReviewAttemptSummary(Wire):
    step: str | None
    logged_in_at: str | None
    identity_passed_at: str | None
    identity_method: str | None
    phone_paired_at: str | None
    answering_started_at: str | None
    submitted_at: str | None
    submit_kind: str | None


class ReviewTimeline(Wire):
    candidate: ReviewCandidate
    sitting: ReviewSitting
    axis: ReviewAxis
    items: list[ReviewTimelineItem] = Field(description="in time order")
    alerts: list[ReviewAlertItem]
    recordings: list[ReviewRecording] = Field(description="the whole-session recording's segments")
    risk: ReviewRisk
    verdict: ReviewCandidateVerdict | None
    verdict_history: list[ReviewCandidateVerdict]
    attempt: ReviewAttemptSummary | None = Field(
        description="None: no exam flow for this candidate"
    )


# ---------------------------------------------------------------- the supervision summary


class ReviewSupervisionItem(Wire):
    key: str
    label: str
    max: Number
    points: Number | None = Field(description="None: not measured")
    value: str
    detail: str


class ReviewSupervisionFacts(Wire):
    registered: int
    present: int
    absent: int
    submitted: int
    alerts: int
    alerts_by_type: dict[str, int]
    connection_losses: int
    time_lost_seconds: Number
    outages: int
    extensions: int
    extension_seconds: Number
    staff_who_acted: int
    candidates_per_acting_staff: Number | None


class ReviewSupervision(Wire):
    sitting_id: int
    items: list[ReviewSupervisionItem]
    points: Number
    max: Number
    sheet_max: Number
    not_measured: list[str]
    facts: ReviewSupervisionFacts


# ---------------------------------------------------------------- records


class ReviewRecord(Wire):
    sitting_id: int
    kind: str = Field(description="room_record | incident_report")
    label: str
    content: dict[str, Any] = Field(
        description="the record as pre-filled from the engine and edited by staff "
        "(proctor.review.records); ``text`` holds the narrative fields"
    )
    text_fields: dict[str, str] = Field(description="narrative field → its label")
    version: int
    prefilled_at: str | None
    updated_at: str | None
    updated_by: str | None
    locked: bool
    locked_at: str | None
    locked_by: str | None
    locked_sha256: str | None
