"""What the exam-flow routes (proctor.api.flow) answer: the candidate's steps, the phone's
pairing and the invigilator's actions on the flow (issue 19; see proctor.api.wire).

Times are the strings the domain writes (``datetime.isoformat()``, proctor.times.iso), so
they are declared ``str``. A field a route leaves out on some answers has a default here
and the route is declared with ``response_model_exclude_unset=True``: it stays out (a field
sent as null is declared ``X | None`` without a default)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from proctor.api.wire import Wire, file_answer
from proctor.api.wire_candidate import CaptureMedia
from proctor.api.wire_console import (
    ConsoleAction,
    ConsoleDanmaku,
    ConsolePaused,
    ConsoleTerminated,
)

#: a registered photo is sent as the file it was imported as
REGISTERED_PHOTO = file_answer("The registered photo (as imported)", "image/jpeg", "image/png")


# ------------------------------------------------------------------------- the flow's state


class StateCandidate(Wire):
    id: int
    name: str
    id_number: str
    occupation: str
    level: str
    has_photo: bool


class StateSitting(Wire):
    id: int
    name: str
    kind: str
    subject: str
    exam: str
    starts_at: str
    ends_at: str
    #: the sitting's time zone (IANA name) and its UTC offset at the start, for the page
    time_zone: str
    utc_offset: str


class Timing(Wire):
    """The candidate's own clock: ``ends_at`` with extensions and paused time."""

    starts_at: str
    ends_at: str
    extension_seconds: int
    paused_seconds: float
    entry_closes_at: str | None
    answering_started_at: str | None
    earliest_submit_at: str | None
    seconds_to_start: float
    seconds_left: float


class Pledge(Wire):
    text: str


class IdentityState(Wire):
    failures: int
    max_failures: int
    needs_invigilator: bool
    passed: bool
    #: face | manual | refused (None before a decision)
    method: str | None


class PhoneState(Wire):
    required: bool
    paired: bool
    connected: bool


class DeviceVerdict(Wire):
    """The newest device check's verdict (the device-check sitting)."""

    passed: bool
    #: the parts that failed: camera, microphone, phone, upload
    failed: list[str]
    at: str


class Progress(Wire):
    answered: int
    total: int


class PausedState(Wire):
    since: str
    seconds_left: float


class Termination(Wire):
    """What the candidate is told of an ended exam: the category, not the staff's reason."""

    category: str
    zh: str
    en: str
    at: str | None


class Result(Wire):
    """The score, on a sitting that shows it to the candidate."""

    objective_score: float | None
    total_score: float | None
    grading_pending: bool
    passed: bool | None
    pass_score: float


class FlowRulesOut(Wire):
    """The sitting's flow rules (proctor.sitting.policy.FlowRules, without the pledge's
    text, which is ``pledge.text``)."""

    entry_opens_minutes_before: float
    entry_closes_minutes_after: float | None
    earliest_submit_minutes: float
    end_grace_seconds: float
    identity_max_failures: int
    require_phone: bool
    session_takeover_seconds: float
    pass_score: float
    show_score_to_candidate: bool
    shuffle_questions: bool
    shuffle_options: bool
    min_upload_bytes_per_s: float
    identity_max_distance: float | None


class PageWatch(Wire):
    """What the page watches of itself (issue 18)."""

    fullscreen_required: bool
    screen_left_alert_count: int


class FlowState(Wire):
    """Everything the candidate's page needs to show the current step, with the server's
    time for a synced countdown."""

    step: str
    steps: list[str]
    step_index: int | None
    step_title: str
    server_now: str
    candidate: StateCandidate
    sitting: StateSitting
    timing: Timing
    pledge: Pledge
    identity: IdentityState
    phone: PhoneState
    #: whether the sitting's paper is ready (None on a device check)
    paper_ready: bool | None
    #: the newest device check's verdict (None unless a device check with a report)
    device_check: DeviceVerdict | None
    progress: Progress
    submitted_at: str | None
    submit_kind: str | None
    paused: PausedState | None
    termination: Termination | None
    result: Result | None
    rules: FlowRulesOut
    page_watch: PageWatch


class PledgeRefused(Wire):
    """The candidate refused the pledge: the attempt ends here."""

    step: str
    message: str


#: the pledge's answer: the new state when signed, the refusal when not
PledgeAnswer = Annotated[FlowState | PledgeRefused, Field(union_mode="left_to_right")]


# ------------------------------------------------------------------------- candidate steps


class Reported(Wire):
    reported: bool


class CandidateRequest(Wire):
    """A candidate's reported problem with their details (``kind`` info_problem) or a
    raised hand (help_request), open or resolved."""

    id: int
    kind: str
    candidate_id: int
    candidate_name: str
    sitting_id: int
    text: str
    at: str | None
    #: open | resolved
    status: str
    resolved_at: str | None
    #: the resolving invigilator's name
    resolved_by: str | None
    note: str | None
    #: the note was sent to the candidate as a danmaku reply
    replied: bool


class Danmaku(ConsoleDanmaku):
    """An on-screen text warning (弹幕警告) and how far it got."""


class DanmakuSent(Danmaku):
    #: stored, but the bus was down: the candidate's page loads it when it is back
    pending: bool


class IdentityCheck(Wire):
    """The outcome of one photo check (step 4)."""

    passed: bool
    reason: str
    message: str
    distance: float | None
    failures: int
    max_failures: int
    needs_invigilator: bool
    step: str


class PhonePairing(Wire):
    """The QR code the phone scans (its one-time token, until ``expires_at``)."""

    url: str
    token: str
    expires_at: str
    qr_svg: str


class PaperOption(Wire):
    key: str
    text: str


class PaperQuestion(Wire):
    """A question as the candidate sees it: options in the candidate's order, no answer."""

    id: int
    number: int
    #: single | multiple | true_false | short
    type: str
    stem: str
    points: float
    options: list[PaperOption]


#: an answer's value: an option key (single), keys (multiple), true/false, a text (short),
#: or null (not answered)
AnswerValue = str | list[str] | bool | None


class StoredAnswer(Wire):
    value: AnswerValue
    seq: int
    saved_at: str


class Paper(Wire):
    """The candidate's paper with the answers saved so far (by question id) and the
    questions flagged for review."""

    questions: list[PaperQuestion]
    answers: dict[str, StoredAnswer]
    flagged: list[int]


class SavedAnswer(Wire):
    """Acknowledged after the commit; ``stale``: a newer save had been stored, which is the
    one returned."""

    question_id: int
    value: AnswerValue
    seq: int
    saved_at: str
    stale: bool


class FlagSaved(Wire):
    question_id: int
    flagged: bool
    #: every flagged question of the paper, in the paper's order
    all: list[int]


class PageEventsRecorded(Wire):
    recorded: int


class UploadMeasured(Wire):
    """The device check's upload measurement."""

    bytes: int
    seconds: float
    bytes_per_s: int
    required_bytes_per_s: float
    ok: bool


class PhoneDetails(Wire):
    server_receives_second_view: bool


class UploadDetails(Wire):
    bytes_per_s: int
    required_bytes_per_s: float


class DeviceDetails(Wire):
    """What the page found (its own free-form fields, bounded) next to what the server saw."""

    #: the page's camera findings and ``server_receives_first_view``
    camera: dict[str, Any]
    #: the page's microphone findings and ``min_level``
    microphone: dict[str, Any]
    phone: PhoneDetails
    upload: UploadDetails
    #: the page's description of the browser and machine
    client: dict[str, Any]


class DeviceReport(Wire):
    id: int
    candidate_id: int
    name: str
    id_number: str
    camera_ok: bool
    microphone_ok: bool
    phone_ok: bool
    upload_bytes_per_s: int
    upload_ok: bool
    passed: bool
    details: DeviceDetails
    created_at: str


class DeviceReported(Wire):
    report: DeviceReport
    state: FlowState


# ------------------------------------------------------------------------- the phone


class PhoneCandidate(Wire):
    id: int
    name: str


class PhoneSession(Wire):
    """A phone session (Bearer ``token``) for the candidate whose QR code was scanned."""

    token: str
    candidate: PhoneCandidate
    media: CaptureMedia


class PhoneMe(Wire):
    candidate: PhoneCandidate
    #: the candidate's step (None before their first login)
    step: str | None


# ------------------------------------------------------------------------- invigilators


class CandidateOverview(Wire):
    """A candidate of the sitting and where they are; one not logged in yet has only the
    first four fields (``step`` absent)."""

    candidate_id: int
    name: str
    id_number: str
    step: str
    step_title: str | None = None
    identity: IdentityState | None = None
    phone: PhoneState | None = None
    progress: Progress | None = None
    timing: Timing | None = None
    submitted_at: str | None = None
    submit_kind: str | None = None


class StepChanged(Wire):
    candidate_id: int
    step: str


class RetryAllowed(Wire):
    candidate_id: int
    failures: int


class IdentityCapture(Wire):
    id: int
    url: str
    captured_at: str | None
    #: the photo check's outcome (None when no check was recorded at that time)
    reason: str | None
    distance: float | None


class IdentityPhotos(Wire):
    """The registered photo, the captured photos (newest first) and the live face, to
    compare."""

    candidate_id: int
    candidate_name: str
    id_number: str
    step: str | None
    failures: int
    registered_url: str | None
    captures: list[IdentityCapture]
    live_url: str


class IdentityReview(Wire):
    """A candidate waiting for a manual identity check."""

    kind: str
    candidate_id: int
    candidate_name: str
    sitting_id: int
    failures: int
    max_failures: int
    has_photo: bool
    at: str | None


class OpenRequests(Wire):
    info_problems: list[CandidateRequest]
    help_requests: list[CandidateRequest]
    identity_reviews: list[IdentityReview]


class HelpResolved(CandidateRequest):
    """The raised hand, resolved; ``danmaku`` (the note sent as a reply) only when
    ``reply`` was asked."""

    danmaku: DanmakuSent | None = None


class SessionsReleased(Wire):
    candidate_id: int
    sessions_ended: int


class LoginLimitCleared(Wire):
    candidate_id: int
    failures_cleared: int


class ExtensionGranted(Wire):
    id: int
    #: None: the whole sitting
    candidate_id: int | None
    seconds: int
    reason: str
    granted_at: str


class ExtensionsGranted(Wire):
    extensions: list[ExtensionGranted]


class Extension(ExtensionGranted):
    granted_by: int


class ViolationCategory(Wire):
    """How a violation is handled (考生违规违纪处理)."""

    code: str
    zh: str
    en: str
    title: str
    ends_exam: bool


class SupervisionAction(ConsoleAction):
    """An entry of the console's supervision log (who, when, why)."""


class RoomPause(ConsolePaused):
    seconds_left: float


class RoomTermination(ConsoleTerminated):
    pass  # the same fields, under the name the room's schema has always used


class RoomFlow(Wire):
    """The candidate's flow as the console's room shows it."""

    step: str | None
    step_title: str | None
    ended: bool
    logged_in_at: str | None
    phone_paired: bool
    progress: Progress | None
    ends_at: str | None
    submitted_at: str | None
    paused: RoomPause | None
    terminated: RoomTermination | None


class Paused(Wire):
    candidate_id: int
    paused: bool
    seconds_left: float
    action: SupervisionAction
    flow: RoomFlow | None


class Resumed(Wire):
    candidate_id: int
    paused: bool
    paused_seconds: float
    ends_at: str
    seconds_left: float
    action: SupervisionAction
    flow: RoomFlow | None


class Terminated(Wire):
    """A warning recorded (``ended`` false) or the exam ended with the category."""

    candidate_id: int
    category: str
    ended: bool
    step: str
    action: SupervisionAction
    flow: RoomFlow | None
