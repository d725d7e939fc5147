"""The candidate's steps after login (docs/api.md "Exam flow"), the phone's pairing, and
the invigilator's actions on the flow (admit after failed photo checks, extend time,
release a session; pause, resume and terminate one candidate's exam, within the
invigilator's rooms). Parse, authorise, call proctor.flow, answer."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api.deps import (
    candidate,
    db_session,
    exam_service,
    now,
    phone,
    runtime,
)
from proctor.api.scope import console_scope
from proctor.api.wire_flow import (
    REGISTERED_PHOTO,
    CandidateOverview,
    CandidateRequest,
    Danmaku,
    DeviceReported,
    Extension,
    ExtensionsGranted,
    FlagSaved,
    FlowState,
    HelpResolved,
    IdentityCheck,
    IdentityPhotos,
    LoginLimitCleared,
    OpenRequests,
    PageEventsRecorded,
    Paper,
    Paused,
    PhoneMe,
    PhonePairing,
    PhoneSession,
    PledgeAnswer,
    Reported,
    Resumed,
    RetryAllowed,
    SavedAnswer,
    SessionsReleased,
    StepChanged,
    Terminated,
    UploadMeasured,
    ViolationCategory,
)
from proctor.auth import sessions as auth
from proctor.auth.sessions import Principal
from proctor.errors import DomainError, NotFound
from proctor.flow import answering, device, identity, machine
from proctor.flow import phone as phone_pairing
from proctor.flow import steps as flow
from proctor.flow.service import ExamService
from proctor.invigilation import control, requests, rooms, supervision
from proctor.invigilation.room_record import flow_body, flow_facts
from proctor.invigilation.rooms import Scope
from proctor.media import turn
from proctor.review.access import record_access
from proctor.runtime import Runtime
from proctor.sitting import violations
from proctor.store.tables import Candidate

#: the phone's routes; the candidate's steps and the invigilators' routes are included at
#: the end, each router declaring its role once (a route still names it for its value)
router = APIRouter()
steps = APIRouter(dependencies=[Depends(candidate)])
invigilate = APIRouter(dependencies=[Depends(console_scope)])

MAX_UPLOAD_SAMPLE = 16 * 1024 * 1024


class TooLarge(DomainError):
    status = 413


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge("too_large", f"At most {limit // (1024 * 1024)} MB may be sent here.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge("too_large", f"At most {limit // (1024 * 1024)} MB may be sent here.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _state(db: AsyncSession, cid: int, at: datetime) -> dict[str, Any]:
    return await flow.state_body(db, await machine.load(db, cid), at)


# ------------------------------------------------------------------------- candidate steps


@steps.get("/api/flow/state", response_model=FlowState)
async def state(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    return await _state(db, who.subject_id, at)


@steps.post("/api/flow/confirm", response_model=FlowState)
async def confirm(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    await machine.act(
        rt.db, rt.bus, who.subject_id, lambda s, ctx: flow.confirm_info(s, ctx, at), now=at
    )
    return await _state(db, who.subject_id, at)


class ProblemIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


@steps.post("/api/flow/report-problem", response_model=Reported)
async def report_problem(
    body: ProblemIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await machine.load(db, who.subject_id)
    await flow.report_info_problem(db, rt.bus, ctx, body.text, at)
    return {"reported": True}


class HandIn(BaseModel):
    # bounded by the domain (help_text_too_long); here only a hard cap
    text: str = Field(default="", max_length=2000)


@steps.post("/api/flow/help", response_model=CandidateRequest)
async def raise_hand(
    body: HandIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """The candidate raises a hand (求助) with a short message for the invigilators of
    their room."""
    return await requests.raise_hand(
        rt.db, rt.bus, candidate_id=who.subject_id, text=body.text, now=at
    )


@steps.get("/api/flow/help", response_model=list[CandidateRequest])
async def my_help(who: Principal = Depends(candidate), db: AsyncSession = Depends(db_session)):
    """The candidate's own raised hands, newest first (at most 20)."""
    ctx = await machine.load(db, who.subject_id)
    return await requests.my_help_requests(db, ctx.candidate)


@steps.get("/api/flow/warnings", response_model=list[Danmaku])
async def warnings(who: Principal = Depends(candidate), db: AsyncSession = Depends(db_session)):
    """The candidate's warnings (danmaku) not yet acknowledged, oldest first."""
    return await supervision.pending_danmaku(db, who.subject_id)


@steps.post("/api/flow/warnings/{danmaku_id}/acknowledge", response_model=Danmaku)
async def acknowledge_warning(
    danmaku_id: int,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """The candidate says "我已知晓 I understand": acknowledges one of their warnings."""
    return await supervision.acknowledge_danmaku(
        rt.db, rt.bus, candidate_id=who.subject_id, danmaku_id=danmaku_id, now=at
    )


class PledgeIn(BaseModel):
    accept: bool


@steps.post("/api/flow/pledge", response_model=PledgeAnswer)
async def pledge(
    body: PledgeIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    await machine.act(
        rt.db,
        rt.bus,
        who.subject_id,
        lambda s, ctx: flow.answer_pledge(s, ctx, body.accept, at),
        now=at,
    )
    if not body.accept:
        return {"step": "refused", "message": machine.STEP_TITLES["refused"]}
    return await _state(db, who.subject_id, at)


@steps.post("/api/flow/identity", response_model=IdentityCheck)
async def identity_check(
    request: Request,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    exam: ExamService = Depends(exam_service),
    at: datetime = Depends(now),
) -> dict:
    """Body: the live capture, one JPEG or PNG picture (any content type)."""
    image = await read_body(request, identity.MAX_IMAGE_BYTES)
    return await identity.photo_check(
        rt.db,
        rt.bus,
        exam.identity,
        rt.storage,
        who.subject_id,
        image,
        now=at,
        clock=exam.clock.now,
    )


@steps.post("/api/flow/phone/pairing", response_model=PhonePairing)
async def phone_pairing_token(
    request: Request,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    base = rt.settings.public_url or str(request.base_url)
    _, pairing = await machine.act(
        rt.db,
        rt.bus,
        who.subject_id,
        lambda s, ctx: phone_pairing.create_pairing(s, ctx, base, at),
        now=at,
        publish=False,
    )
    return {
        "url": pairing.url,
        "token": pairing.token,
        "expires_at": pairing.expires_at.isoformat(),
        "qr_svg": pairing.qr_svg,
    }


@steps.post("/api/flow/phone/done", response_model=FlowState)
async def phone_done(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    await machine.act(
        rt.db, rt.bus, who.subject_id, lambda s, ctx: flow.phone_done(s, ctx, at), now=at
    )
    return await _state(db, who.subject_id, at)


@steps.post("/api/flow/start", response_model=FlowState)
async def start(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    await machine.act(
        rt.db, rt.bus, who.subject_id, lambda s, ctx: answering.start_answering(s, ctx, at), now=at
    )
    return await _state(db, who.subject_id, at)


@steps.get("/api/flow/paper", response_model=Paper)
async def paper(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
) -> dict:
    return await answering.paper_body(db, await machine.load(db, who.subject_id))


class AnswerIn(BaseModel):
    value: Any = None
    seq: int = Field(ge=0, le=2**31 - 1)


@steps.put("/api/flow/answers/{question_id}", response_model=SavedAnswer)
async def save_answer(
    question_id: int,
    body: AnswerIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """Acknowledged (200) only after the answer is committed."""
    _, saved = await machine.act(
        rt.db,
        rt.bus,
        who.subject_id,
        lambda s, ctx: answering.save_answer(s, ctx, question_id, body.value, body.seq, at),
        now=at,
        publish=False,
    )
    return saved


class FlagIn(BaseModel):
    flagged: bool


@steps.put("/api/flow/flags/{question_id}", response_model=FlagSaved)
async def flag_question(
    question_id: int,
    body: FlagIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """Flag a question for review (标记) or clear the flag; acknowledged after the commit."""
    _, saved = await machine.act(
        rt.db,
        rt.bus,
        who.subject_id,
        lambda s, ctx: answering.flag_question(s, ctx, question_id, body.flagged, at),
        now=at,
        publish=False,
    )
    return saved


@steps.post("/api/flow/submit", response_model=FlowState)
async def submit(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    await machine.act(
        rt.db,
        rt.bus,
        who.subject_id,
        lambda s, ctx: answering.submit(s, ctx, at),
        now=at,
        publish=lambda _: {"submit_kind": "candidate"},
    )
    return await _state(db, who.subject_id, at)


class PageEvent(BaseModel):
    kind: str = Field(max_length=40)
    at: str | None = Field(default=None, max_length=40)
    detail: str | None = Field(default=None, max_length=400)


class PageEventsIn(BaseModel):
    events: list[PageEvent] = Field(max_length=200)


@steps.post("/api/flow/events", response_model=PageEventsRecorded)
async def page_events(
    body: PageEventsIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await machine.load(db, who.subject_id)

    async def hint(cand: Candidate, code: str) -> None:
        await supervision.auto_hint(rt.db, rt.bus, candidate_id=cand.id, code=code)

    events = [e.model_dump() for e in body.events]
    n = await flow.record_page_events(rt.db, rt.bus, ctx, events, at, hint=hint)
    return {"recorded": n}


@steps.post("/api/flow/device/upload", response_model=UploadMeasured)
async def device_upload(
    request: Request,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """The upload measurement: the server times the body from its first to its last
    chunk."""
    await device.before_upload(db, who.subject_id)
    size, first, last = 0, None, None
    async for chunk in request.stream():
        if not chunk:
            continue
        stamp = time.perf_counter()
        if first is None:
            first = stamp
        last = stamp
        size += len(chunk)
        if size > MAX_UPLOAD_SAMPLE:
            raise TooLarge("too_large", "Send at most 16 MB for the upload measurement.")
    # the first chunk's own bytes arrived before the clock started: time the rest
    seconds = (last - first) if first is not None and last is not None else 0.0
    _, result = await machine.act(
        rt.db,
        rt.bus,
        who.subject_id,
        lambda s, ctx: device.record_upload(s, ctx, size, seconds, at),
        now=at,
        publish=False,
    )
    return result


class DeviceReportIn(BaseModel):
    camera: dict[str, Any] = Field(default_factory=dict)
    microphone: dict[str, Any] = Field(default_factory=dict)
    client: dict[str, Any] = Field(default_factory=dict)


@steps.post("/api/flow/device/report", response_model=DeviceReported)
async def device_report(
    body: DeviceReportIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    _, report = await machine.act(
        rt.db,
        rt.bus,
        who.subject_id,
        lambda s, ctx: device.report(
            s, ctx, camera=body.camera, microphone=body.microphone, client=body.client, now=at
        ),
        now=at,
        publish=lambda r: {"device_passed": r["passed"]},
    )
    return {"report": report, "state": await _state(db, who.subject_id, at)}


# ------------------------------------------------------------------------- the phone


class PairIn(BaseModel):
    token: str = Field(min_length=8, max_length=200)


@router.post("/api/phone/pair", response_model=PhoneSession, response_model_exclude_unset=True)
async def phone_pair(
    body: PairIn,
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """The phone page exchanges the QR code's one-time token for a phone session (Bearer
    token; no cookie, so a phone page in the candidate's own browser leaves the
    candidate's session alone)."""
    token, cand = await phone_pairing.pair(rt.db, body.token, at)
    s = rt.settings
    return {
        "token": token,
        "candidate": {"id": cand.id, "name": cand.name},
        "media": {
            "width": s.capture_width,
            "height": s.capture_height,
            "fps": s.phone_capture_fps,
            # the phone session just made lasts PHONE_SESSION_HOURS
            "ice_servers": turn.ice_servers(
                s, f"phone-{cand.id}", until=turn.hours_from_now(auth.PHONE_SESSION_HOURS)
            ),
        },
    }


@router.get("/api/phone/me", response_model=PhoneMe)
async def phone_me(who: Principal = Depends(phone), db: AsyncSession = Depends(db_session)) -> dict:
    return await phone_pairing.phone_me(db, who.subject_id)


# ------------------------------------------------------------------------- invigilators


@invigilate.get(
    "/api/invigilate/candidates",
    response_model=list[CandidateOverview],
    response_model_exclude_unset=True,
)
async def flow_overview(
    sitting_id: int = Query(ge=1),
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> list[dict]:
    """Every candidate of the sitting in the caller's rooms with their step, identity
    state, phone, progress and time left."""
    sitting = await rooms.check_sitting(db, scope, sitting_id)
    visible = await rooms.visible_candidates(db, scope, sitting_id)
    return await flow.overview(db, sitting, visible, at)


class ReasonIn(BaseModel):
    # checked by the domain (reason_required, in Chinese and English), not here
    reason: str = Field(default="", max_length=2000)


@invigilate.post("/api/invigilate/candidates/{candidate_id}/admit", response_model=StepChanged)
async def admit(
    candidate_id: int,
    body: ReasonIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx, _ = await _staff_act(
        db,
        rt,
        scope,
        candidate_id,
        lambda s, ctx: identity.admit(s, ctx, staff_id=scope.staff_id, reason=body.reason, now=at),
        at,
        publish=lambda _: {"admitted_by": scope.staff_id},
    )
    return {"candidate_id": candidate_id, "step": ctx.attempt.step}


@invigilate.post(
    "/api/invigilate/candidates/{candidate_id}/identity-retry", response_model=RetryAllowed
)
async def identity_retry(
    candidate_id: int,
    body: ReasonIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx, _ = await _staff_act(
        db,
        rt,
        scope,
        candidate_id,
        lambda s, ctx: identity.allow_retry(
            s, ctx, staff_id=scope.staff_id, reason=body.reason, now=at
        ),
        at,
        publish=False,
    )
    return {"candidate_id": candidate_id, "failures": ctx.attempt.identity_failures}


@invigilate.post(
    "/api/invigilate/candidates/{candidate_id}/identity-refuse", response_model=StepChanged
)
async def identity_refuse(
    candidate_id: int,
    body: ReasonIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """Not admitted after the manual check: the candidate's attempt ends (refused)."""
    ctx, _ = await _staff_act(
        db,
        rt,
        scope,
        candidate_id,
        lambda s, ctx: identity.refuse(s, ctx, staff_id=scope.staff_id, reason=body.reason, now=at),
        at,
        publish=lambda _: {"refused_by": scope.staff_id},
    )
    return {"candidate_id": candidate_id, "step": ctx.attempt.step}


@invigilate.get(
    "/api/invigilate/candidates/{candidate_id}/identity-photos", response_model=IdentityPhotos
)
async def identity_photos(
    candidate_id: int,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> dict:
    """The registered photo, the captured photos and the live face, to compare."""
    cand = await rooms.check_candidate(db, scope, candidate_id)
    return await requests.identity_photos(db, cand)


@invigilate.get(
    "/api/invigilate/candidates/{candidate_id}/registered-photo",
    response_class=FileResponse,
    responses={200: REGISTERED_PHOTO},
)
async def registered_photo(
    candidate_id: int,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> FileResponse:
    cand = await rooms.check_candidate(db, scope, candidate_id)
    if not cand.photo_relpath:
        raise NotFound("no_registered_photo", "This candidate has no registered photo.")
    await record_access(
        rt.db,
        scope.staff_id,
        "registered_photo",
        sitting_id=cand.sitting_id,
        candidate_id=cand.id,
        detail={"via": "console"},
    )
    try:
        path = rt.storage.open(cand.photo_relpath)
    except (ValueError, FileNotFoundError) as exc:
        raise NotFound("photo_missing", "The registered photo is missing from storage.") from exc
    return FileResponse(path, headers={"Cache-Control": "no-store"})


@invigilate.get("/api/invigilate/requests", response_model=OpenRequests)
async def open_requests(
    sitting_id: int = Query(ge=1),
    room_id: int | None = Query(None, ge=1),
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> dict:
    """What candidates of the caller's rooms wait for: reported problems with their
    details (open) and manual identity checks."""
    sitting = await rooms.check_sitting(db, scope, sitting_id)
    visible = await rooms.visible_candidates(db, scope, sitting_id, room_id)
    return {
        "info_problems": await requests.info_problems(db, visible),
        "help_requests": await requests.info_problems(db, visible, kind="help_request"),
        "identity_reviews": await requests.identity_reviews(db, sitting, visible),
    }


class NoteIn(BaseModel):
    # checked by the domain (note_required, in Chinese and English), not here
    note: str = Field(default="", max_length=2000)


@invigilate.post(
    "/api/invigilate/info-problems/{problem_id}/resolve", response_model=CandidateRequest
)
async def resolve_info_problem(
    problem_id: int,
    body: NoteIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """The invigilator has dealt with a candidate's "my details are wrong", with a note."""
    event = await requests.get_info_problem(db, problem_id)
    await rooms.check_candidate(db, scope, event.candidate_id)
    return await requests.resolve_info_problem(
        rt.db, rt.bus, event.id, staff_id=scope.staff_id, note=body.note, now=at
    )


@invigilate.post(
    "/api/invigilate/candidates/{candidate_id}/reopen-pledge", response_model=StepChanged
)
async def reopen_pledge(
    candidate_id: int,
    body: ReasonIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """Undo a refused pledge: the candidate signs it on their next login."""
    ctx, _ = await _staff_act(
        db,
        rt,
        scope,
        candidate_id,
        lambda s, ctx: flow.undo_pledge_refusal(s, ctx, at, by=scope.staff_id, reason=body.reason),
        at,
        publish=lambda _: {"reopened_by": scope.staff_id},
    )
    return {"candidate_id": candidate_id, "step": ctx.attempt.step}


@invigilate.post(
    "/api/invigilate/candidates/{candidate_id}/release", response_model=SessionsReleased
)
async def release(
    candidate_id: int,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    """End the candidate's sessions so they can log in again on another device now."""
    await rooms.check_candidate(db, scope, candidate_id)
    n = await flow.release_sessions(db, candidate_id, at, by=scope.staff_id)
    return {"candidate_id": candidate_id, "sessions_ended": n}


@invigilate.post(
    "/api/invigilate/candidates/{candidate_id}/clear-login-limit", response_model=LoginLimitCleared
)
async def clear_login_limit(
    candidate_id: int,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    """Forget the refused logins typed with the candidate's ID number (any address), so
    that a candidate kept waiting by the rate limit may log in at once."""
    await rooms.check_candidate(db, scope, candidate_id)
    n = await flow.clear_login_limit(db, candidate_id, at, by=scope.staff_id)
    return {"candidate_id": candidate_id, "failures_cleared": n}


class ExtensionIn(BaseModel):
    sitting_id: int = Field(ge=1)
    candidate_ids: list[int] | None = Field(default=None, max_length=1000)
    minutes: float
    reason: str = Field(min_length=1, max_length=2000)


@invigilate.post("/api/invigilate/extensions", response_model=ExtensionsGranted)
async def extend(
    body: ExtensionIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """Give time back to some candidates (each in one of the caller's rooms), or to
    everyone (``candidate_ids`` null): the whole sitting for a chief examiner, every
    candidate of their rooms for an invigilator; with a reason."""
    await rooms.check_sitting(db, scope, body.sitting_id)
    candidate_ids = body.candidate_ids
    if candidate_ids is None and not scope.everything:
        candidate_ids = sorted(await rooms.visible_candidates(db, scope, body.sitting_id))
    elif candidate_ids is not None:
        for candidate_id in candidate_ids:
            await rooms.check_candidate(db, scope, candidate_id)
    rows = await answering.grant_extension(
        db,
        rt.bus,
        sitting_id=body.sitting_id,
        candidate_ids=candidate_ids,
        minutes=body.minutes,
        reason=body.reason,
        staff_id=scope.staff_id,
        now=at,
    )
    return {"extensions": rows}


@invigilate.get("/api/invigilate/extensions", response_model=list[Extension])
async def extensions(
    sitting_id: int = Query(ge=1),
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    """Extensions of the sitting: the whole sitting's and those of the caller's rooms."""
    await rooms.check_sitting(db, scope, sitting_id)
    visible = await rooms.visible_candidates(db, scope, sitting_id)
    return await answering.list_extensions(db, sitting_id, visible)


# ------------------------------------------------------------------------- pause, terminate


class PauseIn(BaseModel):
    reason: str = Field(default="", max_length=2000)  # the domain requires 2-500 chars


class ResolveIn(NoteIn):
    # send the note to the candidate as a danmaku reply as well
    reply: bool = False


@invigilate.post(
    "/api/invigilate/help-requests/{request_id}/resolve",
    response_model=HelpResolved,
    response_model_exclude_unset=True,
)
async def resolve_help_request(
    request_id: int,
    body: ResolveIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """The invigilator has answered a raised hand (求助): with a note, sent to the candidate
    as a danmaku reply when ``reply`` (a voice call is started from the candidate's panel)."""
    event = await requests.get_info_problem(db, request_id, kind="help_request")
    await rooms.check_candidate(db, scope, event.candidate_id)
    out = await requests.resolve_info_problem(
        rt.db, rt.bus, event.id, staff_id=scope.staff_id, note=body.note, now=at,
        replied=body.reply, kind="help_request",
    )  # fmt: skip
    if body.reply:
        out["danmaku"] = await supervision.send_danmaku(
            rt.db,
            rt.bus,
            sender_id=scope.staff_id,
            candidate_id=event.candidate_id,
            text=out["note"],
        )
    return out


class ResumeIn(BaseModel):
    reason: str = Field(default="", max_length=2000)


class TerminateIn(BaseModel):
    category: str = Field(max_length=40)  # warning | paper_voided | score_cancelled | ...
    reason: str = Field(default="", max_length=2000)


async def _staff_act(
    db: AsyncSession,
    rt: Runtime,
    scope: Scope,
    candidate_id: int,
    action: Any,
    at: datetime,
    *,
    publish: Any,
) -> tuple[machine.Ctx, Any]:
    """``machine.act`` for an invigilator, if the candidate is in one of their rooms."""
    await rooms.check_candidate(db, scope, candidate_id)
    return await machine.act(
        rt.db, rt.bus, candidate_id, action, now=at, staff=True, publish=publish
    )


async def _with_flow(db: AsyncSession, ctx: machine.Ctx, out: dict, at: datetime) -> dict:
    facts = await flow_facts(db, ctx.sitting, at)
    return {**out, "flow": flow_body(facts.get(ctx.candidate.id))}


@invigilate.get("/api/invigilate/violation-categories", response_model=list[ViolationCategory])
async def violation_categories(_: Scope = Depends(console_scope)) -> list[dict]:
    """How a violation is handled (考生违规违纪处理): the categories of the documents."""
    return violations.as_list()


@invigilate.post("/api/invigilate/candidates/{candidate_id}/pause", response_model=Paused)
async def pause(
    candidate_id: int,
    body: PauseIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """Stop the candidate's clock (a reason is required); answers are refused until the
    exam resumes."""
    await rooms.check_candidate(db, scope, candidate_id)
    ctx, out = await control.pause(
        rt.db, rt.bus, candidate_id, staff_id=scope.staff_id, reason=body.reason, now=at
    )
    return await _with_flow(db, ctx, out, at)


@invigilate.post("/api/invigilate/candidates/{candidate_id}/resume", response_model=Resumed)
async def resume(
    candidate_id: int,
    body: ResumeIn | None = None,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """Restart the clock; the candidate's end moves by the paused duration."""
    await rooms.check_candidate(db, scope, candidate_id)
    ctx, out = await control.resume(
        rt.db, rt.bus, candidate_id, staff_id=scope.staff_id,
        reason=body.reason if body else "", now=at,
    )  # fmt: skip
    return await _with_flow(db, ctx, out, at)


@invigilate.post("/api/invigilate/candidates/{candidate_id}/terminate", response_model=Terminated)
async def terminate(
    candidate_id: int,
    body: TerminateIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """Handle a violation with a category of the documents and a reason: a warning is
    recorded; the other categories end the candidate's exam at once."""
    await rooms.check_candidate(db, scope, candidate_id)
    ctx, out = await control.terminate(
        rt.db,
        rt.bus,
        candidate_id,
        staff_id=scope.staff_id,
        category=body.category,
        reason=body.reason,
        now=at,
    )
    return await _with_flow(db, ctx, out, at)


router.include_router(steps)
router.include_router(invigilate)
