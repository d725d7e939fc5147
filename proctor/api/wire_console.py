"""The answers of the invigilator console's routes (proctor.api.console, console_manage,
console_voice): one model per shape, nested shapes in their own models (issue 19).

Times are the strings the domain makes (``proctor.times.iso``, or the sitting's zone in
the exam-room record), declared ``str``: the answer carries them as they were. A field that
is only there on some branch (the unseated candidate's detail, a timeline item's subject,
a record's ``alert_id``) has a default and its route answers with
``response_model_exclude_unset``, so that a field that was missing stays missing."""

from __future__ import annotations

from typing import Any

from proctor.api.wire import Wire, file_answer, text_answer

#: a number the domain rounds (``round(x, 1)``): an int when whole (0), else a float
Number = float | int


def files(description: str, *media_types: str, text: bool = False) -> dict[str, Any]:
    """A file's or a page's answer in the OpenAPI document (a route's ``responses``):
    its media types, each with a body of bytes (``text``: of text)."""
    if text:
        (media_type,) = media_types
        return text_answer(description, media_type)
    return file_answer(description, *media_types)


class ConsoleOk(Wire):
    ok: bool


# ----------------------------------------------------------------------------- staff


class ConsoleStaffUser(Wire):
    id: int
    username: str
    display_name: str
    role: str


class ConsoleStaffLogin(Wire):
    token: str
    user: ConsoleStaffUser


# ----------------------------------------------------------------------------- sittings, rooms


class ConsoleSitting(Wire):
    id: int
    name: str
    kind: str
    starts_at: str
    ends_at: str
    #: the sitting's zone (``Asia/Shanghai``) and its offset at the start (``UTC+08:00``)
    time_zone: str
    utc_offset: str


class ConsoleRoomInvigilator(Wire):
    id: int
    username: str
    display_name: str


class ConsoleRoom(Wire):
    id: int
    sitting_id: int
    name: str
    capacity: int
    seated: int
    invigilators_required: int
    invigilators: list[ConsoleRoomInvigilator]
    understaffed: bool


# ----------------------------------------------------------------------------- supervision log


class ConsoleAction(Wire):
    """An entry of the supervision log (who, when, why)."""

    id: int
    sitting_id: int
    room_id: int | None
    candidate_id: int | None
    staff_id: int | None
    staff_name: str | None
    kind: str
    alert_id: int | None
    evidence_id: int | None
    evidence_url: str | None
    reason: str
    data: dict[str, Any]  # free-form: what the kind of action records
    at: str


# ----------------------------------------------------------------------------- alerts, snoozes


class ConsoleAlertHandling(Wire):
    action: str  # acknowledge | dismiss
    by: int | None
    by_name: str | None
    at: str
    reason: str


class ConsoleSnoozeMark(Wire):
    """The snooze an alert was raised under."""

    id: int
    until: str
    ended_at: str | None
    by_name: str | None
    reason: str


class ConsoleAlert(Wire):
    id: int
    candidate_id: int
    candidate_name: str
    sitting_id: int
    type: str
    severity: str
    view: str | None
    message: str
    status: str
    started_at: str | None
    raised_at: str | None
    evidence_url: str | None
    last_seen_at: str | None
    ended_at: str | None
    ongoing: bool
    duration_seconds: Number | None
    peak_score: Number | None
    peak_at: str | None
    peak_evidence_url: str | None
    cause: str | None
    handling: ConsoleAlertHandling | None
    snooze: ConsoleSnoozeMark | None


class ConsoleSnooze(Wire):
    id: int
    sitting_id: int
    candidate_id: int
    type: str
    minutes: int
    reason: str
    staff_id: int
    staff_name: str | None
    created_at: str
    until: str
    ended_at: str | None
    ended_by: int | None
    ended_by_name: str | None
    active: bool


# ----------------------------------------------------------------------------- candidates


class ConsoleSeatRoom(Wire):
    id: int
    name: str
    seat: int


class ConsoleViewState(Wire):
    connected: bool
    #: went because the candidate's exam ended: not a lost connection
    ended: bool
    since: str | None
    last_frame_at: str | None


class ConsoleLadder(Wire):
    """The escalation ladder of a candidate with open alerts."""

    rungs: list[str]
    done: list[str]
    skipped: list[str]
    next: str | None
    since: str


class ConsoleScreenLeft(Wire):
    """Leaving the exam page (切屏): how often, how long in all, away since when."""

    count: int
    seconds: Number
    away_since: str | None


class ConsoleProgress(Wire):
    answered: int | None
    total: int | None


class ConsolePaused(Wire):
    since: str | None
    by: int | None
    by_name: str | None
    reason: str | None
    seconds_left: Number


class ConsoleTerminated(Wire):
    category: str | None
    category_title: str | None
    at: str | None
    by: int | None
    by_name: str | None
    reason: str | None


class ConsoleFlow(Wire):
    """Where the candidate is in the exam."""

    step: str | None
    step_title: str | None
    ended: bool
    logged_in_at: str | None
    phone_paired: bool
    progress: ConsoleProgress | None
    ends_at: str | None
    submitted_at: str | None
    paused: ConsolePaused | None
    terminated: ConsoleTerminated | None


class ConsoleTileVoice(Wire):
    call_id: str
    staff_id: int


class ConsoleCandidateTile(Wire):
    id: int
    name: str
    id_number: str
    sitting_id: int
    room: ConsoleSeatRoom | None
    views: dict[str, ConsoleViewState]  # by view: first, second
    second_view_ever: bool
    open_alerts: int
    open_by_severity: dict[str, int]
    snoozed_alerts: int
    ladder: ConsoleLadder | None
    screen_left: ConsoleScreenLeft
    flow: ConsoleFlow | None
    voice: ConsoleTileVoice | None
    thumbnail_urls: dict[str, str]  # by view


# ----------------------------------------------------------------------------- timeline


class ConsoleDanmaku(Wire):
    id: int
    candidate_id: int
    text: str
    sent_at: str
    delivered_at: str | None
    seen_at: str | None
    acknowledged_at: str | None


class ConsoleDanmakuSent(ConsoleDanmaku):
    #: stored but not pushed yet (the bus was down): the page loads it when back
    pending: bool


class ConsoleTimelineDanmaku(ConsoleDanmaku):
    sender_name: str | None


class ConsoleTimelineEvent(Wire):
    kind: str
    data: dict[str, Any]  # free-form: what the event records


class ConsoleTimelineItem(Wire):
    """One of: an alert, a console action, a danmaku, an event (by ``kind``)."""

    at: str | None
    kind: str  # alert | action | danmaku | event
    alert: ConsoleAlert | None = None
    action: ConsoleAction | None = None
    danmaku: ConsoleTimelineDanmaku | None = None
    event: ConsoleTimelineEvent | None = None


class ConsoleCandidateDetail(Wire):
    """A candidate's tile with their room and timeline; a candidate a chief sees unseated
    has only ``id``, ``name``, ``id_number`` and ``room`` of the tile."""

    id: int
    name: str
    id_number: str
    room: ConsoleSeatRoom | None
    sitting_id: int | None = None
    views: dict[str, ConsoleViewState] | None = None
    second_view_ever: bool | None = None
    open_alerts: int | None = None
    open_by_severity: dict[str, int] | None = None
    snoozed_alerts: int | None = None
    ladder: ConsoleLadder | None = None
    screen_left: ConsoleScreenLeft | None = None
    flow: ConsoleFlow | None = None
    voice: ConsoleTileVoice | None = None
    thumbnail_urls: dict[str, str] | None = None
    room_id: int | None
    timeline: list[ConsoleTimelineItem]


# ----------------------------------------------------------------------------- actions


class ConsoleEvidence(Wire):
    id: int
    candidate_id: int
    kind: str
    view: str | None
    alert_id: int | None
    mime: str
    sha256: str
    captured_at: str
    url: str


class ConsoleScreenshot(Wire):
    action: ConsoleAction
    evidence: ConsoleEvidence


class ConsolePhrase(Wire):
    id: int | None  # None: a built-in phrase
    text: str
    scope: str  # builtin | shared | own


class ConsoleSdpAnswer(Wire):
    sdp: str
    type: str


# ----------------------------------------------------------------------------- voice


class ConsoleVoiceAnswer(ConsoleSdpAnswer):
    call_id: str


class ConsoleCallSummary(Wire):
    call_id: str
    seconds: Number
    staff_connected: bool
    candidate_connected: bool
    candidate_audio: bool
    staff_audio_frames: int


class ConsoleVoiceEnded(Wire):
    ended: bool
    call: ConsoleCallSummary | None


class ConsoleVoiceCall(Wire):
    call_id: str
    candidate_id: int
    staff_id: int


# ----------------------------------------------------------------------------- the record


class ConsoleRecordSitting(Wire):
    id: int
    name: str
    kind: str
    kind_title: str
    subject: str
    starts_at: str
    ends_at: str
    #: when the last candidate's time is over (extensions, pauses)
    last_end: str
    over: bool
    time_zone: str
    utc_offset: str


class ConsoleRecordRoom(Wire):
    id: int
    name: str
    invigilators: list[str]  # display names


class ConsoleRecordSummary(Wire):
    expected: int
    present: int
    absent: int
    late: int
    alerts: int
    open_alerts: int
    violation_records: int
    warnings: int
    terminated: int
    incidents: int
    extensions: int
    help_requests: int


class ConsoleRecordCandidate(Wire):
    id: int
    name: str
    id_number: str
    room: str | None  # the room's name
    seat: int | None


class ConsoleAttendance(ConsoleRecordCandidate):
    present: bool
    arrived_at: str | None
    late: bool
    late_seconds: int
    first_view_at: str | None
    second_view_at: str | None
    step: str | None
    step_title: str | None
    submitted_at: str | None
    paused: bool
    terminated: str | None  # the termination's category
    alerts: int
    violations: int
    screen_left_count: int
    screen_left_seconds: Number


class ConsoleRecordHandling(Wire):
    kind: str
    what: str
    by: str | None  # a name
    at: str | None
    reason: str | None


class ConsoleRecordViolation(Wire):
    """An alert, or a violation the invigilators recorded, with its handling."""

    at: str | None
    candidate: ConsoleRecordCandidate | None
    source: str  # alert | invigilator
    type: str
    title: str
    #: the alert a violation record was kept from (violation records only)
    alert_id: int | None = None
    severity: str
    view: str | None
    status: str
    note: str | None
    evidence_url: str | None
    handling: list[ConsoleRecordHandling]


class ConsoleRecordLogEntry(Wire):
    at: str | None
    kind: str
    what: str
    candidate: ConsoleRecordCandidate | None
    by: str | None
    reason: str | None
    data: dict[str, Any]  # free-form: what the kind of entry records


class ConsoleRecordIncident(Wire):
    at: str | None
    category: str | None
    category_title: str
    room: str | None
    candidate: ConsoleRecordCandidate | None
    by: str | None
    description: str | None


class ConsoleRecordExtension(Wire):
    at: str | None
    candidate: ConsoleRecordCandidate | None
    everyone: bool
    minutes: Number
    by: str | None
    reason: str | None


class ConsoleRoomRecord(Wire):
    """The exam-room record (考场记录), its times in the sitting's zone."""

    sitting: ConsoleRecordSitting
    rooms: list[ConsoleRecordRoom]
    generated_at: str
    summary: ConsoleRecordSummary
    attendance: list[ConsoleAttendance]
    violations: list[ConsoleRecordViolation]
    log: list[ConsoleRecordLogEntry]
    incidents: list[ConsoleRecordIncident]
    extensions: list[ConsoleRecordExtension]
