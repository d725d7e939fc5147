"""Rooms (create, seat candidates, assign invigilators: chief examiners and
administrators), incidents, and the exam-room record (考场记录) with its CSV/HTML export."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api.deps import db_session, runtime
from proctor.api.scope import console_scope
from proctor.errors import NotFound
from proctor.events.bus import sitting_channel
from proctor.invigilation import room_record, rooms, supervision
from proctor.invigilation.rooms import Scope
from proctor.runtime import Runtime

router = APIRouter()
#: the exported page runs no script and loads nothing from elsewhere
RECORD_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"


class RoomIn(BaseModel):
    sitting_id: int = Field(ge=1)
    name: str = Field(max_length=200)
    capacity: int = rooms.ROOM_CAPACITY
    invigilators_required: int = rooms.INVIGILATORS_PER_ROOM


class SeatsIn(BaseModel):
    candidate_ids: list[int] = Field(max_length=rooms.ROOM_CAPACITY)


class StaffIn(BaseModel):
    staff_ids: list[int] = Field(max_length=10)


class AutoRoomsIn(BaseModel):
    invigilator_ids: list[int] = Field(default_factory=list, max_length=1000)
    capacity: int = rooms.ROOM_CAPACITY
    invigilators_per_room: int = rooms.INVIGILATORS_PER_ROOM


class IncidentIn(BaseModel):
    category: str = Field(max_length=32)
    description: str = Field(max_length=4000)
    candidate_ids: list[int] = Field(default_factory=list, max_length=rooms.ROOM_CAPACITY)


async def _rooms_changed(rt: Runtime, sitting_id: int) -> None:
    """Consoles of the sitting reload who they may see."""
    await rt.bus.publish(sitting_channel(sitting_id), {"type": "rooms", "sitting_id": sitting_id})


# ----------------------------------------------------------------------------- rooms


@router.post("/api/console/rooms")
async def create_room(
    body: RoomIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    rooms.require_manager(scope)
    room = await rooms.create_room(
        db,
        sitting_id=body.sitting_id,
        name=body.name,
        capacity=body.capacity,
        invigilators_required=body.invigilators_required,
    )
    await db.commit()
    await _rooms_changed(rt, room.sitting_id)
    return rooms.room_body(room, 0, [])


async def _room_answer(db: AsyncSession, scope: Scope, room_id: int) -> dict:
    room = await rooms.get_room(db, room_id)
    for body in await rooms.list_rooms(db, scope, room.sitting_id):
        if body["id"] == room_id:
            return body
    raise NotFound("unknown_room", f"No room {room_id}.")  # pragma: no cover - just made


@router.post("/api/console/rooms/{room_id}/candidates")
async def seat(
    room_id: int,
    body: SeatsIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """Seat candidates in the room (moving them from another room of the sitting)."""
    rooms.require_manager(scope)
    room = await rooms.get_room(db, room_id)
    await rooms.seat_candidates(db, room, body.candidate_ids)
    await db.commit()
    await _rooms_changed(rt, room.sitting_id)
    return await _room_answer(db, scope, room_id)


@router.delete("/api/console/rooms/{room_id}/candidates/{candidate_id}")
async def unseat(
    room_id: int,
    candidate_id: int,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    rooms.require_manager(scope)
    room = await rooms.get_room(db, room_id)
    await rooms.unseat_candidates(db, room, [candidate_id])
    await db.commit()
    await _rooms_changed(rt, room.sitting_id)
    return await _room_answer(db, scope, room_id)


@router.put("/api/console/rooms/{room_id}/invigilators")
async def assign(
    room_id: int,
    body: StaffIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """Make exactly these invigilators the room's."""
    rooms.require_manager(scope)
    room = await rooms.get_room(db, room_id)
    await rooms.assign_staff(db, room, body.staff_ids, by=scope.staff_id)
    await db.commit()
    await _rooms_changed(rt, room.sitting_id)
    return await _room_answer(db, scope, room_id)


@router.post("/api/console/sittings/{sitting_id}/rooms/auto")
async def auto_rooms(
    sitting_id: int,
    body: AutoRoomsIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> list[dict]:
    """Seat every unseated candidate in new rooms of up to 30, invigilators two a room."""
    rooms.require_manager(scope)
    await rooms.auto_rooms(
        db,
        sitting_id,
        body.invigilator_ids,
        capacity=body.capacity,
        per_room=body.invigilators_per_room,
        by=scope.staff_id,
    )
    await db.commit()
    await _rooms_changed(rt, sitting_id)
    return await rooms.list_rooms(db, scope, sitting_id)


@router.get("/api/console/staff")
async def staff_list(
    role: str | None = Query(None, max_length=32),
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    rooms.require_manager(scope)
    return await rooms.list_staff(db, role)


# ----------------------------------------------------------------------------- incidents


@router.post("/api/console/rooms/{room_id}/incidents")
async def incident(
    room_id: int,
    body: IncidentIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> list[dict]:
    """Record an incident (突发事件) of the room, or of some of its candidates."""
    room = await rooms.check_room(db, scope, room_id)
    seated = await rooms.visible_candidates(db, scope, room.sitting_id, room.id)
    for cid in body.candidate_ids:
        if cid not in seated:
            raise NotFound("unknown_candidate", f"Candidate {cid} is not seated in this room.")
    return await supervision.record_incident(
        db,
        rt.bus,
        staff_id=scope.staff_id,
        sitting_id=room.sitting_id,
        room_id=room.id,
        candidate_ids=body.candidate_ids,
        category=body.category,
        description=body.description,
    )


# ----------------------------------------------------------------------------- the record


async def _record(db: AsyncSession, scope: Scope, sitting_id: int, room_id: int | None) -> dict:
    sitting = await rooms.check_sitting(db, scope, sitting_id)
    room_ids: list[int] | None = None
    if room_id is not None:
        room = await rooms.check_room(db, scope, room_id)
        if room.sitting_id != sitting_id:
            raise NotFound("unknown_room", f"Room {room_id} is not in sitting {sitting_id}.")
        room_ids = [room_id]
    elif not scope.everything:
        room_ids = sorted(scope.room_ids or ())
    visible = await rooms.visible_candidates(db, scope, sitting_id, room_id)
    return await room_record.room_record(db, sitting, visible, room_ids)


@router.get("/api/console/sittings/{sitting_id}/record")
async def record(
    sitting_id: int,
    room_id: int | None = Query(None, ge=1),
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> dict:
    """The exam-room record, live."""
    return await _record(db, scope, sitting_id, room_id)


def _filename(rec: dict, ext: str) -> str:
    return f"exam-room-record-sitting-{rec['sitting']['id']}.{ext}"


@router.get("/api/console/sittings/{sitting_id}/record.csv")
async def record_csv(
    sitting_id: int,
    room_id: int | None = Query(None, ge=1),
    draft: bool = False,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> Response:
    """Exported once the sitting is over (``draft=1``: before, marked as a draft)."""
    rec = await _record(db, scope, sitting_id, room_id)
    room_record.check_exportable(rec, draft)
    return Response(
        room_record.to_csv(rec).encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_filename(rec, "csv")}"'},
    )


@router.get("/api/console/sittings/{sitting_id}/record.html")
async def record_html(
    sitting_id: int,
    room_id: int | None = Query(None, ge=1),
    draft: bool = False,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> HTMLResponse:
    rec = await _record(db, scope, sitting_id, room_id)
    room_record.check_exportable(rec, draft)
    return HTMLResponse(
        room_record.to_html(rec),
        headers={
            "Content-Disposition": f'inline; filename="{_filename(rec, "html")}"',
            "Content-Security-Policy": RECORD_CSP,
        },
    )
