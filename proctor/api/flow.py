"""The candidate's steps after login (docs/api.md "Exam flow"), the phone's pairing, and
the invigilator's actions on the flow (admit after failed photo checks, extend time,
release a session). Parse, authorise, call proctor.exam, answer."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api.deps import (
    candidate,
    db_session,
    exam_service,
    invigilator,
    now,
    phone,
    runtime,
)
from proctor.errors import DomainError, NotFound
from proctor.events.bus import candidate_channel, sitting_channel
from proctor.exam import answering, auth, device, flow, identity
from proctor.exam import phone as phone_pairing
from proctor.exam.auth import Principal
from proctor.exam.policy import rules_of
from proctor.exam.service import ExamService
from proctor.runtime import Runtime
from proctor.store.tables import Attempt, Candidate, Sitting, TimeExtension

router = APIRouter()

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
    return await flow.state_body(db, await flow.load(db, cid), at)


# ------------------------------------------------------------------------- candidate steps


@router.get("/api/flow/state")
async def state(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    return await _state(db, who.subject_id, at)


@router.post("/api/flow/confirm")
async def confirm(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.load(db, who.subject_id, lock=True)
    await flow.confirm_info(db, ctx, at)
    await db.commit()
    await flow.publish_step(rt.bus, ctx, at)
    return await _state(db, who.subject_id, at)


class ProblemIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


@router.post("/api/flow/report-problem")
async def report_problem(
    body: ProblemIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.load(db, who.subject_id)
    await flow.report_info_problem(db, rt.bus, ctx, body.text, at)
    return {"reported": True}


class PledgeIn(BaseModel):
    accept: bool


@router.post("/api/flow/pledge")
async def pledge(
    body: PledgeIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.load(db, who.subject_id, lock=True)
    await flow.answer_pledge(db, ctx, body.accept, at)
    await db.commit()
    await flow.publish_step(rt.bus, ctx, at)
    if not body.accept:
        return {"step": "refused", "message": flow.STEP_TITLES["refused"]}
    return await _state(db, who.subject_id, at)


@router.post("/api/flow/identity")
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
    ctx = await flow.load(db, who.subject_id)
    before = identity.before_check(ctx, rt.storage, image)
    await db.rollback()  # no transaction is held while the face model runs
    if before.registered is None:
        outcome: dict[str, Any] = {"passed": False, "reason": "no_registered_photo"}
    elif exam.identity is None:
        outcome = {"passed": False, "reason": "unavailable"}
    else:
        outcome = await exam.identity.check(before.registered, image)
    ctx = await flow.load(db, who.subject_id, lock=True)
    result = await identity.record_check(db, ctx, rt.storage, image, outcome, exam.clock.now())
    await db.commit()
    await flow.publish_step(
        rt.bus,
        ctx,
        at,
        identity={k: result[k] for k in ("passed", "reason", "failures", "needs_invigilator")},
    )
    return result


@router.post("/api/flow/phone/pairing")
async def phone_pairing_token(
    request: Request,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.load(db, who.subject_id, lock=True)
    base = rt.settings.public_url or str(request.base_url)
    pairing = await phone_pairing.create_pairing(db, ctx, base, at)
    await db.commit()
    return {
        "url": pairing.url,
        "token": pairing.token,
        "expires_at": pairing.expires_at.isoformat(),
        "qr_svg": pairing.qr_svg,
    }


@router.post("/api/flow/phone/done")
async def phone_done(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.load(db, who.subject_id, lock=True)
    await flow.phone_done(db, ctx, at)
    await db.commit()
    await flow.publish_step(rt.bus, ctx, at)
    return await _state(db, who.subject_id, at)


@router.post("/api/flow/start")
async def start(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.load(db, who.subject_id, lock=True)
    await answering.start_answering(db, ctx, at)
    await db.commit()
    await flow.publish_step(rt.bus, ctx, at)
    return await _state(db, who.subject_id, at)


@router.get("/api/flow/paper")
async def paper(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
) -> dict:
    return await answering.paper_body(db, await flow.load(db, who.subject_id))


class AnswerIn(BaseModel):
    value: Any = None
    seq: int = Field(ge=0, le=2**31 - 1)


@router.put("/api/flow/answers/{question_id}")
async def save_answer(
    question_id: int,
    body: AnswerIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    """Acknowledged (200) only after the answer is committed."""
    ctx = await flow.load(db, who.subject_id, lock=True)
    saved = await answering.save_answer(db, ctx, question_id, body.value, body.seq, at)
    await db.commit()
    return saved


@router.post("/api/flow/submit")
async def submit(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.load(db, who.subject_id, lock=True)
    await answering.submit(db, ctx, at)
    await db.commit()
    await flow.publish_step(rt.bus, ctx, at, submit_kind="candidate")
    return await _state(db, who.subject_id, at)


class PageEvent(BaseModel):
    kind: str = Field(max_length=40)
    at: str | None = Field(default=None, max_length=40)
    detail: str | None = Field(default=None, max_length=400)


class PageEventsIn(BaseModel):
    events: list[PageEvent] = Field(max_length=200)


@router.post("/api/flow/events")
async def page_events(
    body: PageEventsIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.load(db, who.subject_id)
    n = await flow.record_page_events(db, rt.bus, ctx, [e.model_dump() for e in body.events], at)
    return {"recorded": n}


@router.post("/api/flow/device/upload")
async def device_upload(
    request: Request,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    """The upload measurement: the server times the body from its first to its last
    chunk."""
    ctx = await flow.load(db, who.subject_id)
    flow.require_step(ctx, "device_check")
    await db.rollback()
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
    ctx = await flow.load(db, who.subject_id, lock=True)
    result = await device.record_upload(db, ctx, size, seconds, at)
    await db.commit()
    return result


class DeviceReportIn(BaseModel):
    camera: dict[str, Any] = Field(default_factory=dict)
    microphone: dict[str, Any] = Field(default_factory=dict)
    client: dict[str, Any] = Field(default_factory=dict)


@router.post("/api/flow/device/report")
async def device_report(
    body: DeviceReportIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.load(db, who.subject_id, lock=True)
    report = await device.report(
        db, ctx, camera=body.camera, microphone=body.microphone, client=body.client, now=at
    )
    await db.commit()
    await flow.publish_step(rt.bus, ctx, at, device_passed=report["passed"])
    return {"report": report, "state": await _state(db, who.subject_id, at)}


# ------------------------------------------------------------------------- the phone


class PairIn(BaseModel):
    token: str = Field(min_length=8, max_length=200)


@router.post("/api/phone/pair")
async def phone_pair(
    body: PairIn,
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """The phone page exchanges the QR code's one-time token for a phone session (Bearer
    token; no cookie, so a phone page in the candidate's own browser leaves the
    candidate's session alone)."""
    token, cand = await phone_pairing.pair(db, body.token, at)
    await db.commit()
    s = rt.settings
    return {
        "token": token,
        "candidate": {"id": cand.id, "name": cand.name},
        "media": {
            "width": s.capture_width,
            "height": s.capture_height,
            "fps": s.capture_fps,
            "ice_servers": [u.strip() for u in s.ice_servers.split(",") if u.strip()],
        },
    }


@router.get("/api/phone/me")
async def phone_me(who: Principal = Depends(phone), db: AsyncSession = Depends(db_session)) -> dict:
    cand = await db.get(Candidate, who.subject_id)
    if cand is None:
        raise NotFound("unknown_candidate", "This phone's candidate is gone.")
    attempt = await db.scalar(select(Attempt).where(Attempt.candidate_id == cand.id))
    return {
        "candidate": {"id": cand.id, "name": cand.name},
        "step": attempt.step if attempt else None,
    }


# ------------------------------------------------------------------------- invigilators


@router.get("/api/invigilate/candidates")
async def flow_overview(
    sitting_id: int = Query(ge=1),
    _: Principal = Depends(invigilator),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> list[dict]:
    """Every candidate of the sitting with their step, identity state, phone, progress
    and time left."""
    sitting = await db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound("unknown_sitting", f"No sitting {sitting_id}.")
    rows = await db.execute(
        select(Candidate, Attempt)
        .outerjoin(Attempt, Attempt.candidate_id == Candidate.id)
        .where(Candidate.sitting_id == sitting_id)
        .order_by(Candidate.name)
    )
    out = []
    for cand, att in rows.all():
        if att is None:
            out.append(
                {
                    "candidate_id": cand.id,
                    "name": cand.name,
                    "id_number": cand.id_number,
                    "step": "absent",
                }
            )
            continue
        body = await flow.state_body(
            db, flow.Ctx(cand, sitting, att, rules_of(sitting.kind, sitting.flow)), at
        )
        out.append(
            {
                "candidate_id": cand.id,
                "name": cand.name,
                "id_number": cand.id_number,
                "step": att.step,
                "step_title": body["step_title"],
                "identity": body["identity"],
                "phone": body["phone"],
                "progress": body["progress"],
                "timing": body["timing"],
                "submitted_at": body["submitted_at"],
                "submit_kind": body["submit_kind"],
            }
        )
    return out


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/api/invigilate/candidates/{candidate_id}/admit")
async def admit(
    candidate_id: int,
    body: ReasonIn,
    who: Principal = Depends(invigilator),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.get_ctx_for_staff(db, candidate_id, lock=True)
    await identity.admit(db, ctx, staff_id=who.subject_id, reason=body.reason, now=at)
    await db.commit()
    await flow.publish_step(rt.bus, ctx, at, admitted_by=who.subject_id)
    return {"candidate_id": candidate_id, "step": ctx.attempt.step}


@router.post("/api/invigilate/candidates/{candidate_id}/identity-retry")
async def identity_retry(
    candidate_id: int,
    body: ReasonIn,
    who: Principal = Depends(invigilator),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    ctx = await flow.get_ctx_for_staff(db, candidate_id, lock=True)
    await identity.allow_retry(db, ctx, staff_id=who.subject_id, reason=body.reason, now=at)
    await db.commit()
    return {"candidate_id": candidate_id, "failures": ctx.attempt.identity_failures}


@router.post("/api/invigilate/candidates/{candidate_id}/release")
async def release(
    candidate_id: int,
    who: Principal = Depends(invigilator),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    """End the candidate's sessions so they can log in again on another device now."""
    if await db.get(Candidate, candidate_id) is None:
        raise NotFound("unknown_candidate", f"No candidate {candidate_id}.")
    n = await auth.release_candidate(db, candidate_id, at)
    await flow.record_event(db, candidate_id, "session_released", at, by=who.subject_id)
    await db.commit()
    return {"candidate_id": candidate_id, "sessions_ended": n}


class ExtensionIn(BaseModel):
    sitting_id: int = Field(ge=1)
    candidate_ids: list[int] | None = Field(default=None, max_length=1000)
    minutes: float
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/api/invigilate/extensions")
async def extend(
    body: ExtensionIn,
    who: Principal = Depends(invigilator),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """Give time back to some candidates, or to the whole sitting (``candidate_ids``
    null), with a reason."""
    rows = await answering.extend(
        db,
        sitting_id=body.sitting_id,
        candidate_ids=body.candidate_ids,
        minutes=body.minutes,
        reason=body.reason,
        staff_id=who.subject_id,
        now=at,
    )
    await db.commit()
    message = {"type": "extension", "sitting_id": body.sitting_id, "extensions": rows}
    await rt.bus.publish(sitting_channel(body.sitting_id), message)
    for row in rows:
        if row["candidate_id"] is not None:
            await rt.bus.publish(
                candidate_channel(row["candidate_id"]), {**message, "type": "time"}
            )
    return {"extensions": rows}


@router.get("/api/invigilate/extensions")
async def extensions(
    sitting_id: int = Query(ge=1),
    _: Principal = Depends(invigilator),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    rows = await db.scalars(
        select(TimeExtension)
        .where(TimeExtension.sitting_id == sitting_id)
        .order_by(TimeExtension.granted_at)
    )
    return [
        {
            "id": r.id,
            "candidate_id": r.candidate_id,
            "seconds": r.seconds,
            "reason": r.reason,
            "granted_by": r.granted_by,
            "granted_at": r.granted_at.isoformat(),
        }
        for r in rows
    ]
