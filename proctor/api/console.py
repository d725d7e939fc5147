"""Staff routes: login, the console's lists, thumbnails, evidence, danmaku, the console's
WebSocket."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api.deps import COOKIE, STAFF_ROLES, db_session, runtime, staff, token_from
from proctor.api.sockets import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, accept_principal, pump
from proctor.errors import NotFound
from proctor.events.bus import sitting_channel
from proctor.exam.auth import Principal, login_staff, revoke_token
from proctor.exam.sittings import get_candidate, list_candidates, list_sittings
from proctor.exam.supervision import (
    get_evidence_row,
    list_alerts,
    open_alert_counts,
    send_danmaku,
)
from proctor.runtime import Runtime
from proctor.store.tables import Sitting, StaffUser

router = APIRouter()


class StaffLoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class DanmakuIn(BaseModel):
    text: str = Field(min_length=1, max_length=1000)  # the domain checks 1-200 after trimming


@router.post("/api/staff/login")
async def staff_login(
    body: StaffLoginIn, response: Response, db: AsyncSession = Depends(db_session)
) -> dict:
    token, user = await login_staff(db, body.username, body.password)
    await db.commit()
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=12 * 3600)
    return {
        "token": token,
        "user": {
            "id": user.id,
            "username": user.username,
            "display_name": user.display_name,
            "role": user.role,
        },
    }


@router.get("/api/staff/me")
async def staff_me(who: Principal = Depends(staff), db: AsyncSession = Depends(db_session)) -> dict:
    user = await db.get(StaffUser, who.subject_id)
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
    }


@router.post("/api/staff/logout")
async def staff_logout(
    request: Request, response: Response, db: AsyncSession = Depends(db_session)
) -> dict:
    token = token_from(request)
    if token:
        await revoke_token(db, token)
        await db.commit()
    response.delete_cookie(COOKIE)
    return {"ok": True}


@router.get("/api/console/sittings")
async def sittings(
    _: Principal = Depends(staff), db: AsyncSession = Depends(db_session)
) -> list[dict]:
    return [
        {
            "id": s.id,
            "name": s.name,
            "kind": s.kind,
            "starts_at": s.starts_at.isoformat(),
            "ends_at": s.ends_at.isoformat(),
        }
        for s in await list_sittings(db)
    ]


async def _sitting(db: AsyncSession, sitting_id: int) -> Sitting:
    sitting = await db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound("unknown_sitting", f"No sitting {sitting_id}.")
    return sitting


@router.get("/api/console/candidates")
async def candidates(
    sitting_id: int = Query(ge=1),
    _: Principal = Depends(staff),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> list[dict]:
    await _sitting(db, sitting_id)
    counts = await open_alert_counts(db, sitting_id)
    out = []
    for c in await list_candidates(db, sitting_id):
        views = {}
        for view in ("first", "second"):
            thumb = rt.thumbnails.get(c.id, view)
            connected, since = rt.peers.view_state(c.id, view)
            views[view] = {
                "connected": connected,
                "since": since.isoformat() if since else None,
                "last_frame_at": (
                    datetime.fromtimestamp(thumb.captured_at, UTC).isoformat() if thumb else None
                ),
            }
        out.append(
            {
                "id": c.id,
                "name": c.name,
                "id_number": c.id_number,
                "sitting_id": c.sitting_id,
                "views": views,
                "open_alerts": counts.get(c.id, 0),
                "thumbnail_urls": {
                    v: f"/api/console/candidates/{c.id}/thumbnail/{v}.jpg"
                    for v in ("first", "second")
                },
            }
        )
    return out


@router.get("/api/console/candidates/{candidate_id}/thumbnail/{view}.jpg")
async def thumbnail(
    candidate_id: int,
    view: str,
    _: Principal = Depends(staff),
    rt: Runtime = Depends(runtime),
) -> Response:
    thumb = rt.thumbnails.get(candidate_id, view)
    if thumb is None:
        raise NotFound("no_frame", "No picture from this view yet.")
    return Response(thumb.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/api/console/alerts")
async def alerts(
    sitting_id: int = Query(ge=1),
    limit: int = Query(100, ge=1, le=1000),
    _: Principal = Depends(staff),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    await _sitting(db, sitting_id)
    return await list_alerts(db, sitting_id, limit)


@router.get("/api/evidence/{evidence_id}")
async def evidence(
    evidence_id: int,
    _: Principal = Depends(staff),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> FileResponse:
    row = await get_evidence_row(db, evidence_id)
    try:
        path = rt.storage.open(row.relpath)
    except (ValueError, FileNotFoundError) as exc:
        raise NotFound("evidence_missing", "The evidence file is missing from storage.") from exc
    return FileResponse(path, media_type=row.mime)


@router.post("/api/console/candidates/{candidate_id}/danmaku")
async def danmaku(
    candidate_id: int,
    body: DanmakuIn,
    who: Principal = Depends(staff),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    await get_candidate(db, candidate_id)
    return await send_danmaku(
        db, rt.bus, sender_id=who.subject_id, candidate_id=candidate_id, text=body.text
    )


class LiveOfferIn(BaseModel):
    sdp: str = Field(min_length=1, max_length=200_000)
    type: str = Field(default="offer", pattern="^offer$")
    view: str = Field(default="first", max_length=16)


@router.post("/api/console/candidates/{candidate_id}/live/offer")
async def live_offer(
    candidate_id: int,
    body: LiveOfferIn,
    who: Principal = Depends(staff),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """Live video (and the microphone, on the first view) of one candidate."""
    await get_candidate(db, candidate_id)
    return await rt.answer_live(f"staff-{who.subject_id}", candidate_id, body.view, body.sdp)


@router.delete("/api/console/live")
async def live_close(who: Principal = Depends(staff), rt: Runtime = Depends(runtime)) -> dict:
    await rt.live.close_viewer(f"staff-{who.subject_id}")
    return {"ok": True}


@router.websocket("/ws/console")
async def console_socket(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    who = await accept_principal(ws, rt)
    if who is None:
        return
    if who.kind != "staff" or who.role not in STAFF_ROLES:
        await ws.close(code=CLOSE_FORBIDDEN, reason="staff only")
        return
    try:
        sitting_id = int(ws.query_params.get("sitting_id", ""))
    except ValueError:
        sitting_id = 0
    async with rt.db.session() as db:
        sitting = await db.get(Sitting, sitting_id) if sitting_id > 0 else None
    if sitting is None:
        await ws.close(code=CLOSE_NOT_FOUND, reason="unknown sitting (give ?sitting_id=N)")
        return
    async with rt.bus.subscribe(sitting_channel(sitting_id)) as sub:
        await ws.send_json({"type": "health", **(await rt.health())})
        await pump(ws, sub)
