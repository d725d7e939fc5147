"""Staff routes of the invigilator console: login, sittings and rooms, the candidates of
the invigilator's rooms (thumbnails, connection, flow, alerts, escalation ladder), alert
handling, evidence, danmaku and saved phrases, violation screenshots, live view, and the
console's WebSocket. Every route and the socket ask the caller's room scope
(proctor.invigilation.rooms) first: an invigilator sees and acts on their own rooms only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api import console_manage, console_voice
from proctor.api import wire_console as out
from proctor.api.deps import (
    COOKIE,
    STAFF_ROLES,
    db_session,
    exam_service,
    now,
    runtime,
    staff,
    token_from,
)
from proctor.api.scope import check_console_candidate, console_scope
from proctor.api.security import set_session_cookie
from proctor.api.sockets import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    Merged,
    accept_kind,
    pump,
    session_alive,
)
from proctor.auth.sessions import Principal
from proctor.errors import Conflict, DomainError, Forbidden, NotFound
from proctor.events.bus import Message, sitting_channel
from proctor.flow.service import ExamService
from proctor.invigilation import console_view, rooms, staff_session, supervision
from proctor.invigilation.rooms import Scope
from proctor.media.peers import VIEWS
from proctor.review.access import evidence_opened
from proctor.runtime import Runtime

router = APIRouter()

#: what an evidence file is: a screenshot, or a clip (an alert's, a view's recording)
EVIDENCE_MIMES = ("image/jpeg", "video/webm")


class StaffLoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    # a solved login challenge (after too_many_attempts; see docs/api.md)
    challenge: str | None = Field(default=None, max_length=200)
    solution: str | None = Field(default=None, max_length=32)


class DanmakuIn(BaseModel):
    text: str = Field(min_length=1, max_length=1000)  # the domain checks 1-200 after trimming


class HandleIn(BaseModel):
    action: Literal["acknowledge", "dismiss"]
    reason: str = Field(max_length=2000)
    # acknowledge and keep the alert as a violation record (违纪记录)
    record_violation: bool = False


class SnoozeIn(BaseModel):
    type: str = Field(min_length=1, max_length=32)
    minutes: int  # the domain checks 1-120
    reason: str = Field(max_length=2000)


class SnoozeEndIn(BaseModel):
    reason: str = Field(default="", max_length=2000)


class ScreenshotIn(BaseModel):
    view: Literal["first", "second"] = "first"
    note: str = Field(max_length=2000)


class PhraseIn(BaseModel):
    text: str = Field(min_length=1, max_length=1000)
    shared: bool = False


# ----------------------------------------------------------------------------- session


@router.post("/api/staff/login", response_model=out.ConsoleStaffLogin)
async def staff_login(
    body: StaffLoginIn,
    request: Request,
    response: Response,
    rt: Runtime = Depends(runtime),
    exam: ExamService = Depends(exam_service),
    at: datetime = Depends(now),
) -> dict:
    session = await staff_session.login(
        rt.db,
        body.username,
        body.password,
        checker=exam.passwords,
        limits=exam.login_limits,
        client=request.client.host if request.client else "unknown",
        now=at,
        challenge=body.challenge,
        solution=body.solution,
    )
    set_session_cookie(response, request, session["token"])
    return session


@router.get("/api/staff/me", response_model=out.ConsoleStaffUser)
async def staff_me(who: Principal = Depends(staff), db: AsyncSession = Depends(db_session)) -> dict:
    return await staff_session.me(db, who.subject_id)


@router.post("/api/staff/logout", response_model=out.ConsoleOk)
async def staff_logout(
    request: Request, response: Response, db: AsyncSession = Depends(db_session)
) -> dict:
    token = token_from(request)
    if token:
        await staff_session.logout(db, token)
        request.app.state.console_grants.revoke(token)
    response.delete_cookie(COOKIE)
    return {"ok": True}


# ----------------------------------------------------------------------------- the desk

#: the console's routes proper: each asks the caller's room scope first (401 without a
#: session, 403 ``console_forbidden`` for a role the roles table keeps off the console);
#: a route that needs the scope's value asks it again (the same, cached per request)
desk = APIRouter(dependencies=[Depends(console_scope)])


@desk.get("/api/console/sittings", response_model=list[out.ConsoleSitting])
async def sittings(
    scope: Scope = Depends(console_scope), db: AsyncSession = Depends(db_session)
) -> list[dict]:
    return await console_view.sittings(db, scope)


@desk.get("/api/console/rooms", response_model=list[out.ConsoleRoom])
async def room_list(
    sitting_id: int = Query(ge=1),
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    return await console_view.rooms_of(db, scope, sitting_id)


# ----------------------------------------------------------------------------- candidates


class RuntimeLive:
    """A candidate's live state in this process (console_view.Live): the views'
    connections and newest thumbnails, a call under way."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def views(self, candidate_id: int) -> dict[str, Any]:
        rt = self.rt
        found = {}
        for view in VIEWS:
            thumb = rt.thumbnails.get(candidate_id, view)
            connected, since = rt.peers.view_state(candidate_id, view)
            found[view] = {
                "connected": connected,
                # went because the candidate's exam ended: not a lost connection
                "ended": not connected and rt.peers.view_ended(candidate_id, view),
                "since": since.isoformat() if since else None,
                "last_frame_at": (
                    datetime.fromtimestamp(thumb.captured_at, UTC).isoformat() if thumb else None
                ),
            }
        return found

    def voice(self, candidate_id: int) -> dict[str, Any] | None:
        call = self.rt.voice.of_candidate(candidate_id)
        return {"call_id": call.call_id, "staff_id": call.staff_id} if call else None


@desk.get("/api/console/candidates", response_model=list[out.ConsoleCandidateTile])
async def candidates(
    sitting_id: int = Query(ge=1),
    room_id: int | None = Query(None, ge=1),
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> list[dict]:
    return await console_view.candidates(db, RuntimeLive(rt), scope, sitting_id, room_id)


@desk.get(
    "/api/console/candidates/{candidate_id}",
    response_model=out.ConsoleCandidateDetail,
    response_model_exclude_unset=True,
)
async def candidate_detail(
    candidate_id: int,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """One candidate as in the list, with the alert timeline."""
    return await console_view.candidate(db, RuntimeLive(rt), scope, candidate_id)


@desk.get(
    "/api/console/candidates/{candidate_id}/timeline",
    response_model=list[out.ConsoleTimelineItem],
    response_model_exclude_unset=True,
)
async def candidate_timeline(
    candidate_id: int,
    limit: int = Query(300, ge=1, le=1000),
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    return await console_view.timeline(db, scope, candidate_id, limit)


@router.get(
    "/api/console/candidates/{candidate_id}/thumbnail/{view}.jpg",
    response_class=Response,
    responses={200: out.files("The view's newest small picture", "image/jpeg")},
)
async def thumbnail(
    candidate_id: int, view: str, request: Request, rt: Runtime = Depends(runtime)
) -> Response:
    # the console's hot path: the room check is remembered for a few seconds per session
    # (so not the desk's dependency, which would ask the database each time)
    if not request.app.state.console_grants.allowed(token_from(request), candidate_id):
        async with rt.db.session() as db:
            await check_console_candidate(request, db, candidate_id)
    thumb = rt.thumbnails.get(candidate_id, view)
    if thumb is None:
        raise NotFound("no_frame", "No picture from this view yet.")
    return Response(thumb.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


# ----------------------------------------------------------------------------- alerts


@desk.get("/api/console/alerts", response_model=list[out.ConsoleAlert])
async def alerts(
    sitting_id: int = Query(ge=1),
    limit: int = Query(100, ge=1, le=1000),
    room_id: int | None = Query(None, ge=1),
    status: Literal["open", "acknowledged", "dismissed"] | None = None,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    return await console_view.alerts(
        db, scope, sitting_id, room_id=room_id, limit=limit, status=status
    )


@desk.post("/api/console/alerts/{alert_id}/handle", response_model=out.ConsoleAlert)
async def handle_alert(
    alert_id: int,
    body: HandleIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """Acknowledge or dismiss one alert, with a reason (recorded: who, when, why)."""
    alert = await supervision.get_alert(db, alert_id)
    await rooms.check_candidate(db, scope, alert.candidate_id)
    (handled,) = await supervision.handle_alerts(
        rt.db,
        rt.bus,
        staff_id=scope.staff_id,
        alert_ids=[alert.id],
        action=body.action,
        reason=body.reason,
        record_violation=body.record_violation,
    )
    return handled


@desk.post(
    "/api/console/candidates/{candidate_id}/alerts/handle",
    response_model=list[out.ConsoleAlert],
)
async def handle_candidate_alerts(
    candidate_id: int,
    body: HandleIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> list[dict]:
    """Acknowledge or dismiss every open alert of one candidate (the grouped feed)."""
    await rooms.check_candidate(db, scope, candidate_id)
    return await supervision.handle_alerts(
        rt.db,
        rt.bus,
        staff_id=scope.staff_id,
        alert_ids=[a.id for a in await supervision.open_alerts_of(db, candidate_id)],
        action=body.action,
        reason=body.reason,
        record_violation=body.record_violation,
    )


# ----------------------------------------------------------------------------- snoozes


@desk.get("/api/console/snoozes", response_model=list[out.ConsoleSnooze])
async def snoozes(
    sitting_id: int = Query(ge=1),
    room_id: int | None = Query(None, ge=1),
    include_ended: bool = False,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    """The running snoozes of the caller's candidates (with ``include_ended``: all)."""
    return await console_view.snoozes(
        db, scope, sitting_id, room_id=room_id, include_ended=include_ended
    )


@desk.post("/api/console/candidates/{candidate_id}/snoozes", response_model=out.ConsoleSnooze)
async def snooze(
    candidate_id: int,
    body: SnoozeIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """Snooze one candidate's alerts of one type for N minutes, with a reason."""
    cand = await rooms.check_candidate(db, scope, candidate_id)
    return await supervision.snooze_alerts(
        db,
        rt.bus,
        staff_id=scope.staff_id,
        candidate=cand,
        alert_type=body.type,
        minutes=body.minutes,
        reason=body.reason,
    )


@desk.post("/api/console/snoozes/{snooze_id}/end", response_model=out.ConsoleSnooze)
async def end_snooze(
    snooze_id: int,
    body: SnoozeEndIn | None = None,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    row = await supervision.get_snooze(db, snooze_id)
    await rooms.check_candidate(db, scope, row.candidate_id)
    return await supervision.end_snooze(
        db, rt.bus, staff_id=scope.staff_id, snooze=row, reason=body.reason if body else ""
    )


# ----------------------------------------------------------------------------- evidence


@router.get(
    "/api/evidence/{evidence_id}",
    response_class=FileResponse,
    responses={
        200: out.files("The evidence file (a screenshot or a clip)", *EVIDENCE_MIMES),
        206: out.files("The byte range asked for (Range: bytes=...)", *EVIDENCE_MIMES),
    },
)
async def evidence(
    evidence_id: int,
    who: Principal = Depends(staff),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> FileResponse:
    """Staff of the candidate's room (reviewers: every sitting's, after the exam); every
    access is in the audit chain."""
    row = await supervision.get_evidence_row(db, evidence_id)
    if who.role != "reviewer":  # reviewers see every sitting's evidence after the exam
        await rooms.check_candidate(db, await rooms.scope_of(db, who), row.candidate_id)
    await evidence_opened(rt.db, who.subject_id, row, via="console")
    try:
        path = rt.storage.open(row.relpath)
    except (ValueError, FileNotFoundError) as exc:
        raise NotFound("evidence_missing", "The evidence file is missing from storage.") from exc
    return FileResponse(path, media_type=row.mime)


# ----------------------------------------------------------------------------- actions


@desk.post("/api/console/candidates/{candidate_id}/danmaku", response_model=out.ConsoleDanmakuSent)
async def danmaku(
    candidate_id: int,
    body: DanmakuIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    await rooms.check_candidate(db, scope, candidate_id)
    return await supervision.send_danmaku(
        rt.db, rt.bus, sender_id=scope.staff_id, candidate_id=candidate_id, text=body.text
    )


class FreeNoteIn(BaseModel):
    # checked by the domain (bad_note with the bounds), here only bounded
    text: str = Field(default="", max_length=4000)


@desk.get("/api/console/candidates/{candidate_id}/notes", response_model=list[out.ConsoleAction])
async def notes(
    candidate_id: int,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    """The invigilators' notes on one candidate (issue 23), oldest first."""
    await rooms.check_candidate(db, scope, candidate_id)
    return await supervision.list_notes(db, candidate_id=candidate_id)


@desk.post("/api/console/candidates/{candidate_id}/notes", response_model=out.ConsoleAction)
async def add_note(
    candidate_id: int,
    body: FreeNoteIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    candidate = await rooms.check_candidate(db, scope, candidate_id)
    return await supervision.add_note(
        db, rt.bus, staff_id=scope.staff_id, candidate=candidate, text=body.text
    )


@desk.get("/api/console/rooms/{room_id}/handover", response_model=list[out.ConsoleAction])
async def handover_notes(
    room_id: int,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    """The room's handover notes (交接说明), newest first."""
    await rooms.check_room(db, scope, room_id)
    return await supervision.list_handovers(db, room_id=room_id)


@desk.post("/api/console/rooms/{room_id}/handover", response_model=out.ConsoleAction)
async def add_handover_note(
    room_id: int,
    body: FreeNoteIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    room = await rooms.check_room(db, scope, room_id)
    return await supervision.add_handover(
        db,
        rt.bus,
        staff_id=scope.staff_id,
        room_id=room.id,
        sitting_id=room.sitting_id,
        text=body.text,
    )


@desk.get("/api/console/phrases", response_model=list[out.ConsolePhrase])
async def phrases(
    scope: Scope = Depends(console_scope), db: AsyncSession = Depends(db_session)
) -> list[dict]:
    return await supervision.list_phrases(db, scope.staff_id)


@desk.post("/api/console/phrases", response_model=out.ConsolePhrase)
async def add_phrase(
    body: PhraseIn, scope: Scope = Depends(console_scope), db: AsyncSession = Depends(db_session)
) -> dict:
    return await supervision.add_phrase(
        db, staff_id=scope.staff_id, text=body.text, shared=body.shared, manager=scope.manager
    )


@desk.delete("/api/console/phrases/{phrase_id}", response_model=out.ConsoleOk)
async def delete_phrase(
    phrase_id: int, scope: Scope = Depends(console_scope), db: AsyncSession = Depends(db_session)
) -> dict:
    await supervision.delete_phrase(
        db, staff_id=scope.staff_id, manager=scope.manager, phrase_id=phrase_id
    )
    return {"ok": True}


@desk.post(
    "/api/console/candidates/{candidate_id}/screenshot", response_model=out.ConsoleScreenshot
)
async def screenshot(
    candidate_id: int,
    body: ScreenshotIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """Keep the newest full-size frame of a view as a violation record with a note."""
    cand = await rooms.check_candidate(db, scope, candidate_id)
    supervision.check_note(body.note)
    monitor = rt.peers.monitors.get(cand.id)
    state = monitor.views.get(body.view) if monitor is not None else None
    frame = state.ring.newest() if state is not None else None
    if frame is None:
        if rt.cluster.distributed and await rt.cluster.owner(cand.id) != rt.cluster.worker_id:
            raise Conflict(
                "not_on_this_server",
                "This candidate streams to another server process; open the console there.",
            )
        raise Conflict("not_streaming", "This view of the candidate is not streaming now.")
    return await supervision.save_violation(
        db,
        rt.bus,
        rt.storage,
        staff_id=scope.staff_id,
        candidate=cand,
        view=body.view,
        jpeg=frame.jpeg,
        captured_at=datetime.fromtimestamp(frame.ts, UTC),
        note=body.note,
    )


# ----------------------------------------------------------------------------- live view


class LiveOfferIn(BaseModel):
    sdp: str = Field(min_length=1, max_length=200_000)
    type: str = Field(default="offer", pattern="^offer$")
    view: str = Field(default="first", max_length=16)


@desk.post("/api/console/candidates/{candidate_id}/live/offer", response_model=out.ConsoleSdpAnswer)
async def live_offer(
    candidate_id: int,
    body: LiveOfferIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """Live video (and the microphone, on the first view) of one candidate."""
    await rooms.check_candidate(db, scope, candidate_id)
    await db.close()  # no pooled connection held while ICE gathers
    return await rt.answer_live(f"staff-{scope.staff_id}", candidate_id, body.view, body.sdp)


@router.delete("/api/console/live", response_model=out.ConsoleOk)
async def live_close(who: Principal = Depends(staff), rt: Runtime = Depends(runtime)) -> dict:
    await rt.live.close_viewer(f"staff-{who.subject_id}")
    return {"ok": True}


# ----------------------------------------------------------------------------- socket


def subject_of(msg: Message) -> tuple[int | None, int | None]:
    """(candidate id, room id) a sitting-channel message is about."""
    for key in ("alert", "danmaku", "evidence", "action", "snooze", "problem"):
        inner = msg.get(key)
        if isinstance(inner, dict):
            return inner.get("candidate_id"), inner.get("room_id")
    return msg.get("candidate_id"), msg.get("room_id")


class SocketScope:
    """What one console socket may see: the candidates of the caller's rooms in the
    sitting (optionally one room), reloaded when rooms change."""

    def __init__(self, rt: Runtime, who: Principal, sitting_id: int, room_id: int | None):
        self.rt = rt
        self.who = who
        self.sitting_id = sitting_id
        self.room_id = room_id
        self.scope: Scope | None = None
        self.candidates: set[int] = set()
        self.snoozes = supervision.SnoozeBook()

    async def load(self) -> None:
        async with self.rt.db.session() as db:
            self.scope = await rooms.scope_of(db, self.who)
            await rooms.check_sitting(db, self.scope, self.sitting_id)
            if self.room_id is not None:
                room = await rooms.check_room(db, self.scope, self.room_id)
                if room.sitting_id != self.sitting_id:
                    raise NotFound("unknown_room", "That room is not in this sitting.")
            self.candidates = await rooms.visible_candidates(
                db, self.scope, self.sitting_id, self.room_id
            )
            self.snoozes = await supervision.snooze_book(db, self.sitting_id)

    def sees(self, msg: Message) -> bool:
        if msg.get("type") == "extension":  # the flow's: several candidates, or everyone
            rows = msg.get("extensions") or []
            return any(
                r.get("candidate_id") is None or r.get("candidate_id") in self.candidates
                for r in rows
            )
        cid, room_id = subject_of(msg)
        if cid is not None:
            return int(cid) in self.candidates
        if room_id is not None and self.scope is not None and not self.scope.everything:
            return room_id in (self.scope.room_ids or ())
        return True  # sitting-wide (health, flow without a candidate, overflow)

    async def select(self, msg: Message) -> Message | None:
        if msg.get("type") == "rooms":
            try:
                await self.load()
            except DomainError:
                self.candidates = set()  # no longer theirs: they see no candidate any more
                return None
        if msg.get("type") == "snooze" and isinstance(msg.get("snooze"), dict):
            self.snoozes.update(msg["snooze"])
        if msg.get("type") in ("alert", "alert_update") and isinstance(msg.get("alert"), dict):
            # recorded, not pushed as new; an episode still seen after the snooze comes back
            if self.snoozes.hides(msg["alert"]):
                return None
        return msg if self.sees(msg) else None


@router.websocket("/ws/console")
async def console_socket(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    who = await accept_kind(ws, rt, "staff", "staff only", STAFF_ROLES)
    if who is None:
        return
    try:
        sitting_id = int(ws.query_params.get("sitting_id", ""))
        room_id = int(ws.query_params["room_id"]) if ws.query_params.get("room_id") else None
    except ValueError:
        sitting_id, room_id = 0, None
    if sitting_id <= 0:
        await ws.close(code=CLOSE_NOT_FOUND, reason="unknown sitting (give ?sitting_id=N)")
        return
    watch = SocketScope(rt, who, sitting_id, room_id)
    async with rt.bus.subscribe(sitting_channel(sitting_id)) as sub:
        try:
            await watch.load()
        except NotFound as exc:
            await ws.close(code=CLOSE_NOT_FOUND, reason=exc.message[:120])
            return
        except Forbidden as exc:
            await ws.close(code=CLOSE_FORBIDDEN, reason=exc.code)
            return
        await ws.send_json({"type": "health", **(await rt.health())})
        # issue 22: which thumbnails changed, so that the console fetches only those
        thumbs = rt.thumbnails.watch()
        merged = Merged({"bus": sub, "thumbnails": thumbs})  # type: ignore[dict-item]

        async def select(msg: Message) -> Message | None:
            if msg.pop("_channel", None) == "thumbnails":
                return thumbnail_notice(msg, watch.candidates)
            return await watch.select(msg)

        try:
            await pump(ws, merged, select=select, alive=session_alive(rt, ws))  # type: ignore[arg-type]
        finally:
            merged.close()
            thumbs.close()


def thumbnail_notice(msg: Message, candidates: set[int]) -> Message | None:
    """A ``thumbnails`` notice with only the caller's candidates (None: none of them)."""
    mine = [t for t in msg["thumbnails"] if t["candidate_id"] in candidates]
    return {"type": "thumbnails", "thumbnails": mine} if mine else None


router.include_router(desk)
router.include_router(console_manage.router)
router.include_router(console_voice.router)
