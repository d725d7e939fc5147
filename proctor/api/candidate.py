"""Candidate routes: login, who am I, WebRTC offer, and the candidate's WebSocket."""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, Depends, Request, Response, WebSocket
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api.deps import (
    COOKIE,
    candidate,
    candidate_or_phone,
    db_session,
    exam_service,
    now,
    runtime,
    token_from,
)
from proctor.api.security import set_session_cookie
from proctor.api.sockets import accept_kind, pump
from proctor.api.wire_candidate import LoggedOut, LoginOut, Me, RtcAnswer
from proctor.auth.sessions import (
    CANDIDATE_SESSION_HOURS,
    Principal,
    logout_candidate,
)
from proctor.errors import Forbidden
from proctor.events.bus import candidate_channel
from proctor.flow import steps as flow
from proctor.flow.service import ExamService
from proctor.invigilation.supervision import mark_danmaku
from proctor.media import turn
from proctor.runtime import Runtime
from proctor.sitting.sittings import get_candidate
from proctor.store.tables import Candidate, Sitting

log = logging.getLogger(__name__)
router = APIRouter()


class LoginIn(BaseModel):
    sitting_password: str = Field(min_length=1, max_length=64)
    id_number: str = Field(min_length=1, max_length=32)
    # a solved login challenge (after too_many_attempts; see docs/api.md)
    challenge: str | None = Field(default=None, max_length=200)
    solution: str | None = Field(default=None, max_length=32)


class OfferIn(BaseModel):
    sdp: str = Field(min_length=1, max_length=200_000)
    type: str = Field(default="offer", pattern="^offer$")
    view: str = Field(default="first", max_length=16)


def _me_body(rt: Runtime, cand: Candidate, sitting: Sitting, until: datetime | None) -> dict:
    s = rt.settings
    return {
        "candidate": {"id": cand.id, "name": cand.name, "id_number": cand.id_number},
        "sitting": {
            "id": sitting.id,
            "name": sitting.name,
            "kind": sitting.kind,
            "analysis_fps": sitting.analysis_fps,
            "starts_at": sitting.starts_at.isoformat(),
            "ends_at": sitting.ends_at.isoformat(),
        },
        "media": {
            "width": s.capture_width,
            "height": s.capture_height,
            "fps": s.capture_fps,
            "ice_servers": turn.ice_servers(s, f"candidate-{cand.id}", until=until),
        },
    }


@router.post("/api/candidate/login", response_model=LoginOut, response_model_exclude_unset=True)
async def login(
    body: LoginIn,
    request: Request,
    response: Response,
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    exam: ExamService = Depends(exam_service),
    at: datetime = Depends(now),
) -> dict:
    """Step 1 of the flow (proctor.flow.steps.login): every refusal has its own code."""
    result = await flow.login(
        rt.db,
        password=body.sitting_password,
        id_number=body.id_number,
        now=at,
        client=request.client.host if request.client else "unknown",
        current_token=token_from(request),
        limits=exam.login_limits,
        challenge=body.challenge,
        solution=body.solution,
    )
    set_session_cookie(response, request, result.token)
    ctx = result.ctx
    return {
        "token": result.token,
        **_me_body(rt, ctx.candidate, ctx.sitting, turn.hours_from_now(CANDIDATE_SESSION_HOURS)),
        "step": ctx.attempt.step,
        "resumed": result.resumed,
    }


@router.post("/api/candidate/logout", response_model=LoggedOut)
async def logout(
    request: Request,
    response: Response,
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """End this session, so that the candidate can log in on another device at once."""
    token = token_from(request)
    if token:
        await logout_candidate(rt.db, token, at)
    response.delete_cookie(COOKIE)
    return {"ok": True}


@router.get("/api/candidate/me", response_model=Me, response_model_exclude_unset=True)
async def me(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    cand = await get_candidate(db, who.subject_id)
    sitting = await db.get(Sitting, cand.sitting_id)
    return _me_body(rt, cand, sitting, who.expires_at)


@router.post("/api/candidate/rtc/offer", response_model=RtcAnswer)
async def rtc_offer(
    body: OfferIn,
    who: Principal = Depends(candidate_or_phone),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    if who.kind == "phone" and body.view != "second":
        raise Forbidden("phone_second_view_only", "A paired phone streams the second view only.")
    cand = await get_candidate(db, who.subject_id)
    await flow.require_streaming(db, cand.id)  # 409 exam_over once the exam has ended
    # answering waits for ICE gathering (seconds through a relay): hold no pooled connection
    await db.close()
    return await rt.answer_offer(cand.id, body.view, body.sdp)


@router.websocket("/ws/candidate")
async def candidate_socket(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    who = await accept_kind(ws, rt, "candidate", "candidates only")
    if who is None:
        return
    cid = who.subject_id

    async def mark(danmaku_id: int, state: str) -> None:
        await mark_danmaku(rt.db, rt.bus, candidate_id=cid, danmaku_id=danmaku_id, state=state)

    async def on_out(msg: dict) -> None:
        if msg.get("type") == "danmaku":
            await mark(msg["id"], "delivered")

    async def on_in(msg: dict) -> None:
        if msg.get("type") == "danmaku_seen" and isinstance(msg.get("id"), int):
            await mark(msg["id"], "seen")

    async with rt.bus.subscribe(candidate_channel(cid)) as sub:
        await ws.send_json({"type": "hello", "candidate_id": cid})
        for message in rt.send_rate_messages(cid):  # issue 22: the rate to send at now
            await ws.send_json(message)
        await pump(ws, sub, on_out, on_in)


@router.websocket("/ws/phone")
async def phone_socket(ws: WebSocket) -> None:
    """The phone page's socket: told when the candidate's exam ends, so that it stops its
    camera and says so. Sends ``{"type": "hello", "step"}`` first, then each ``flow``
    message of the candidate (``{"type": "flow", "step", ...}``) and the second view's
    ``send_rate`` (issue 22: the rate to send at), and nothing else."""
    rt: Runtime = ws.app.state.runtime
    who = await accept_kind(ws, rt, "phone", "phones only")
    if who is None:
        return
    cid = who.subject_id

    async def only_flow(msg: dict) -> dict | None:
        if msg.get("type") == "send_rate" and msg.get("view") == "second":
            return msg
        if msg.get("type") != "flow":
            return None
        return {"type": "flow", "candidate_id": cid, "step": msg.get("step"), "at": msg.get("at")}

    async with rt.bus.subscribe(candidate_channel(cid)) as sub:
        async with rt.db.session() as db:
            ended = await flow.attempt_ended(db, cid)
            step = await flow.current_step(db, cid)
        await ws.send_json({"type": "hello", "candidate_id": cid, "step": step, "ended": ended})
        for message in rt.send_rate_messages(cid):  # issue 22: the rate to send at now
            if message["view"] == "second":
                await ws.send_json(message)
        await pump(ws, sub, select=only_flow)
