"""Candidate routes: login, who am I, WebRTC offer, and the candidate's WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, Depends, Response, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api.deps import COOKIE, candidate, db_session, runtime, token_from
from proctor.errors import DomainError
from proctor.events.bus import candidate_channel
from proctor.exam.auth import Principal, login_candidate, resolve_token
from proctor.exam.sittings import get_candidate
from proctor.exam.supervision import mark_danmaku
from proctor.runtime import Runtime
from proctor.store.tables import Candidate, Sitting

log = logging.getLogger(__name__)
router = APIRouter()


class LoginIn(BaseModel):
    sitting_password: str = Field(min_length=1, max_length=64)
    id_number: str = Field(min_length=1, max_length=32)


class OfferIn(BaseModel):
    sdp: str = Field(min_length=1, max_length=200_000)
    type: str = Field(default="offer", pattern="^offer$")
    view: str = Field(default="first", max_length=16)


def _me_body(rt: Runtime, cand: Candidate, sitting: Sitting) -> dict:
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
            "ice_servers": [u.strip() for u in s.ice_servers.split(",") if u.strip()],
        },
    }


@router.post("/api/candidate/login")
async def login(
    body: LoginIn,
    response: Response,
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    token, cand, sitting = await login_candidate(db, body.sitting_password, body.id_number)
    await db.commit()
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=12 * 3600)
    return {"token": token, **_me_body(rt, cand, sitting)}


@router.get("/api/candidate/me")
async def me(
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    cand = await get_candidate(db, who.subject_id)
    sitting = await db.get(Sitting, cand.sitting_id)
    return _me_body(rt, cand, sitting)


@router.post("/api/candidate/rtc/offer")
async def rtc_offer(
    body: OfferIn,
    who: Principal = Depends(candidate),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    cand = await get_candidate(db, who.subject_id)
    sitting = await db.get(Sitting, cand.sitting_id)
    answer = await rt.peers.answer(rt.candidate_ref(cand, sitting), body.view, body.sdp)
    return {"sdp": answer.sdp, "type": answer.type}


@router.websocket("/ws/candidate")
async def candidate_socket(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    token = token_from(ws)
    try:
        async with rt.db.session() as db:
            who = await resolve_token(db, token or "")
    except DomainError:
        await ws.close(code=4401, reason="not authenticated")
        return
    if who.kind != "candidate":
        await ws.close(code=4403, reason="candidates only")
        return
    await ws.accept()
    cid = who.subject_id
    async with rt.bus.subscribe(candidate_channel(cid)) as sub:
        await ws.send_json({"type": "hello", "candidate_id": cid})

        async def forward() -> None:
            while True:
                msg = await sub.get()
                await ws.send_json(msg)
                if msg.get("type") == "danmaku":
                    async with rt.db.session() as db:
                        await mark_danmaku(
                            db, rt.bus, candidate_id=cid, danmaku_id=msg["id"], state="delivered"
                        )

        sender = asyncio.create_task(forward())
        try:
            while True:
                msg = await ws.receive_json()
                if not isinstance(msg, dict):
                    continue
                if msg.get("type") == "danmaku_seen" and isinstance(msg.get("id"), int):
                    async with rt.db.session() as db:
                        await mark_danmaku(
                            db, rt.bus, candidate_id=cid, danmaku_id=msg["id"], state="seen"
                        )
        except (WebSocketDisconnect, ValueError, RuntimeError):
            pass  # closed, or sent something that is not JSON: end this socket only
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
