"""The administration routes' answers (proctor.api.admin), as the OpenAPI document states
them (issue 19). Times are the strings the domain makes (ISO 8601 with the offset)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from proctor.api.wire import Wire
from proctor.api.wire_flow import DeviceReport, StateCandidate

#: a number as the domain computed it: an int stays an int on the wire (3, not 3.0)
Number = int | float
#: a question's key: "B" (single), ["A", "C"] (multiple), true/false, a reference text (short)
AnswerKey = str | bool | list[str] | None


# ------------------------------------------------------------------------- sittings


class AdminPaperSummary(Wire):
    questions: int
    blueprint: AdminBlueprint
    created_at: str | None


class AdminSitting(Wire):
    id: int
    name: str
    kind: str = Field(description="device_check | trial | formal")
    exam: str
    subject: str
    password: str = Field(description="the sitting's password (口令), handed to candidates")
    starts_at: str
    ends_at: str
    time_zone: str = Field(description="the sitting's IANA zone; the pages show times in it")
    utc_offset: str
    analysis_fps: Number
    flow: dict[str, Any] = Field(
        description="the exam-flow rules in full (proctor.sitting.policy.FlowRules)"
    )
    registered: int
    steps: dict[str, int] = Field(description="step → how many candidates are at it")
    paper: AdminPaperSummary | None


class AdminStaff(Wire):
    id: int
    username: str
    role: str


# ------------------------------------------------------------------------- roster


class AdminRosterImported(Wire):
    id: int
    line: int
    name: str
    id_number: str
    has_photo: bool


class AdminRosterImport(Wire):
    sitting_id: int
    added: int
    updated: int
    photos: int
    candidates: list[AdminRosterImported]


class AdminSeat(Wire):
    id: int = Field(description="the room's id")
    name: str = Field(description="the room's name")
    seat: int


class AdminRosterCandidate(StateCandidate):
    step: str | None
    room: AdminSeat | None = Field(description="None: in no room, no invigilator sees them")


# ------------------------------------------------------------------------- banks, papers


class AdminBankImport(Wire):
    bank: str
    added: int
    updated: int
    unchanged: int
    by_type: dict[str, int]


class AdminBankSummary(Wire):
    bank: str
    total: int
    by_type: dict[str, int] = Field(description="question type → count")
    occupations: dict[str, int] = Field(description="occupation/level → count")
    points: dict[str, int] = Field(description="knowledge point → count")


class AdminBlueprintSection(Wire):
    type: str
    count: int
    points: Number
    knowledge_point: str | None = None
    difficulty: int | None = None


class AdminBlueprint(Wire):
    bank: str
    occupation: str | None = None
    level: str | None = None
    sections: list[AdminBlueprintSection]


class AdminQuestionOption(Wire):
    key: str
    text: str


class AdminPaperQuestion(Wire):
    id: int
    bank: str
    external_id: str
    type: str
    knowledge_point: str
    difficulty: int
    stem: str
    options: list[AdminQuestionOption]
    answer: AnswerKey
    points: float
    section: int


class AdminPaper(Wire):
    sitting_id: int
    blueprint: AdminBlueprint
    total_points: float
    in_use: bool = Field(description="a candidate has started answering it: it is kept")
    questions: list[AdminPaperQuestion]


# ------------------------------------------------------------------------- results, grading


class AdminResult(Wire):
    candidate_id: int
    name: str
    id_number: str
    occupation: str
    level: str
    step: str = Field(description="the attempt's step, or absent")
    identity: str | None = Field(description="face | manual by USER: REASON; None: not checked")
    answering_started_at: str | None
    submitted_at: str | None
    submit_kind: str | None
    objective_score: Number | None
    manual_score: Number | None
    total_score: Number | None
    grading_pending: bool
    passed: bool | None
    termination: str | None = Field(description="the category if an invigilator ended it")
    termination_title: str | None
    terminated_at: str | None


class AdminGradingItem(Wire):
    answer_id: int
    question_id: int
    stem: str
    reference: AnswerKey
    answer: Any = Field(description="the candidate's answer (a text for a short answer)")
    max_points: Number


class AdminGradedAttempt(Wire):
    candidate_id: int
    total_score: Number | None
    grading_pending: bool
    passed: bool | None


class AdminGraded(Wire):
    answer_id: int
    points: Number | None
    attempt: AdminGradedAttempt


class AdminDeviceReport(DeviceReport):
    details: dict[str, Any] = Field(description="what the candidate's device measured")


AdminPaperSummary.model_rebuild()
