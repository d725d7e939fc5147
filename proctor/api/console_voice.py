"""The console's link to a candidate's page: two-way voice (invigilator side and candidate
side) and the candidate page's socket that carries automatic hints and call notices
(``exam_client/static/console_link.js``)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, WebSocket
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api import wire_console as out
from proctor.api.deps import candidate, db_session, runtime
from proctor.api.scope import console_scope
from proctor.api.sockets import Merged, accept_kind, pump
from proctor.auth.sessions import Principal
from proctor.events.bus import Message, candidate_channel, sitting_channel
from proctor.invigilation import rooms, supervision, talkback
from proctor.invigilation.rooms import Scope
from proctor.media.voice import VoiceCall
from proctor.runtime import Runtime
from proctor.sitting.sittings import get_candidate

log = logging.getLogger(__name__)
#: the candidate page's socket; the routes of the two sides are in the routers below
router = APIRouter()
#: the invigilator's side: the caller's room scope first (401, 403 ``console_forbidden``)
console = APIRouter(dependencies=[Depends(console_scope)])
#: the candidate's side: a candidate's session (401, 403 ``candidates_only``)
page = APIRouter(dependencies=[Depends(candidate)])

#: candidate-channel messages for the console link (the rest are the exam page's)
LINK_TYPES = frozenset({"hint", "voice_call", "voice_ended"})


class VoiceOfferIn(BaseModel):
    sdp: str = Field(min_length=1, max_length=200_000)
    type: str = Field(default="offer", pattern="^offer$")


class CandidateVoiceOfferIn(VoiceOfferIn):
    call_id: str = Field(min_length=1, max_length=64)


def call_body(call: VoiceCall | None) -> dict | None:
    if call is None:
        return None
    return {"call_id": call.call_id, "candidate_id": call.candidate_id, "staff_id": call.staff_id}


def _ended_recorder(rt: Runtime):  # type: ignore[no-untyped-def]
    async def on_end(call: VoiceCall, reason: str) -> None:
        async with rt.db.session() as db:
            await talkback.call_ended(
                db,
                rt.bus,
                candidate_id=call.candidate_id,
                staff_id=call.staff_id,
                call_id=call.call_id,
                data=call.summary(),
                reason=reason,
            )

    return on_end


# ----------------------------------------------------------------------------- invigilator


@console.post(
    "/api/console/candidates/{candidate_id}/voice/offer", response_model=out.ConsoleVoiceAnswer
)
async def voice_offer(
    candidate_id: int,
    body: VoiceOfferIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """Start a voice call: the invigilator's offer (audio, sendrecv) is answered with the
    candidate's microphone; the candidate's page is then called."""
    cand = await rooms.check_candidate(db, scope, candidate_id)
    await db.close()  # no pooled connection held while ICE gathers (used again after)
    call, answer = await rt.voice.start(
        scope.staff_id, cand.id, body.sdp, on_end=_ended_recorder(rt)
    )
    await talkback.call_started(
        db, rt.bus, staff_id=scope.staff_id, candidate=cand, call_id=call.call_id
    )
    return {"sdp": answer.sdp, "type": answer.type, "call_id": call.call_id}


@console.delete(
    "/api/console/candidates/{candidate_id}/voice", response_model=out.ConsoleVoiceEnded
)
async def voice_end(
    candidate_id: int,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """End the candidate's call (any invigilator of the room may)."""
    await rooms.check_candidate(db, scope, candidate_id)
    call = await rt.voice.end(candidate_id, "ended by the invigilator")
    return {"ended": call is not None, "call": call.summary() if call else None}


@console.get("/api/console/voice", response_model=out.ConsoleVoiceCall | None)
async def my_call(
    scope: Scope = Depends(console_scope), rt: Runtime = Depends(runtime)
) -> dict | None:
    return call_body(rt.voice.of_staff(scope.staff_id))


# ----------------------------------------------------------------------------- candidate


@page.post("/api/candidate/voice/offer", response_model=out.ConsoleSdpAnswer)
async def candidate_voice_offer(
    body: CandidateVoiceOfferIn,
    who: Principal = Depends(candidate),
    rt: Runtime = Depends(runtime),
) -> dict:
    """The candidate page answers a call: its offer (audio, recvonly) gets the
    invigilator's voice."""
    answer = await rt.voice.answer_candidate(who.subject_id, body.call_id, body.sdp)
    return {"sdp": answer.sdp, "type": answer.type}


class Link:
    """One candidate page's console link: forwards hints and call notices, and turns the
    candidate's fixable alerts into automatic hints (the ladder's first rung)."""

    def __init__(self, rt: Runtime, candidate_id: int, sitting_id: int) -> None:
        self.rt = rt
        self.candidate_id = candidate_id
        self.sitting_id = sitting_id

    async def select(self, msg: Message) -> Message | None:
        channel = msg.pop("_channel", None)
        if channel == "candidate":
            return msg if msg.get("type") in LINK_TYPES else None
        await self.maybe_hint(msg)
        return None

    async def maybe_hint(self, msg: Message) -> None:
        """A fixable alert of this candidate becomes its hint (camera_blocked: by its cause).
        A lost view's connection alone is no hint (a new connection may already have
        replaced it): its ``*_view_lost`` alert, raised after the grace, is; and no
        reconnect hint goes out while the view is streaming."""
        if msg.get("type") != "alert":
            return
        alert = msg.get("alert") or {}
        if alert.get("candidate_id") != self.candidate_id or alert.get("status") != "open":
            return
        code = supervision.hint_code(alert.get("type"), alert.get("cause"))
        if code is None:
            return
        view = supervision.RECONNECT_HINTS.get(code)
        if view is not None and self.rt.view_streaming(self.candidate_id, view):
            return
        await supervision.auto_hint(
            self.rt.db, self.rt.bus, candidate_id=self.candidate_id, code=code,
            alert_id=alert.get("id"),
        )  # fmt: skip

    async def on_out(self, msg: Message) -> None:
        if msg.get("type") == "hint":
            await self.mark(msg["id"], "delivered")

    async def on_in(self, msg: dict) -> None:
        if msg.get("type") == "hint_seen" and isinstance(msg.get("id"), int):
            await self.mark(msg["id"], "seen")

    async def mark(self, hint_id: int, state: str) -> None:
        await supervision.mark_hint(
            self.rt.db, self.rt.bus, candidate_id=self.candidate_id, hint_id=hint_id, state=state
        )


@router.websocket("/ws/candidate/console")
async def candidate_link_socket(ws: WebSocket) -> None:
    """The candidate page's link to the console. Server → page: ``hint``, ``voice_call``,
    ``voice_ended`` (and ``link`` on connect, naming a call under way); page → server:
    ``hint_seen``."""
    rt: Runtime = ws.app.state.runtime
    who = await accept_kind(ws, rt, "candidate", "candidates only")
    if who is None:
        return
    async with rt.db.session() as db:
        cand = await get_candidate(db, who.subject_id)
    link = Link(rt, cand.id, cand.sitting_id)
    async with (
        rt.bus.subscribe(candidate_channel(cand.id)) as mine,
        rt.bus.subscribe(sitting_channel(cand.sitting_id)) as room,
    ):
        merged = Merged({"candidate": mine, "sitting": room})
        call = rt.voice.of_candidate(cand.id)
        try:
            await ws.send_json({"type": "link", "candidate_id": cand.id, "voice": call_body(call)})
            if call is not None:
                await ws.send_json({"type": "voice_call", "call_id": call.call_id, "from": ""})
            await pump(ws, merged, link.on_out, link.on_in, select=link.select)  # type: ignore[arg-type]
        finally:
            merged.close()


router.include_router(console)
router.include_router(page)
