"""Rooms (create, seat candidates, assign invigilators: chief examiners and
administrators), incidents, and the exam-room record (考场记录) with its CSV/HTML export."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api import wire_console as out
from proctor.api.deps import db_session, runtime
from proctor.api.scope import console_scope
from proctor.invigilation import room_record, rooms, seating
from proctor.invigilation.rooms import Scope
from proctor.runtime import Runtime

#: every route asks the caller's room scope first (401 without a session, 403
#: ``console_forbidden`` for a role the roles table keeps off the console); managing
#: rooms is then a chief examiner's or an administrator's (403 ``chief_only``)
router = APIRouter(dependencies=[Depends(console_scope)])
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


# ----------------------------------------------------------------------------- rooms


@router.post("/api/console/rooms", response_model=out.ConsoleRoom)
async def create_room(
    body: RoomIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    return await seating.create_room(
        db,
        rt.bus,
        scope,
        sitting_id=body.sitting_id,
        name=body.name,
        capacity=body.capacity,
        invigilators_required=body.invigilators_required,
    )


@router.post("/api/console/rooms/{room_id}/candidates", response_model=out.ConsoleRoom)
async def seat(
    room_id: int,
    body: SeatsIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """Seat candidates in the room (moving them from another room of the sitting)."""
    return await seating.seat(db, rt.bus, scope, room_id, body.candidate_ids)


@router.delete(
    "/api/console/rooms/{room_id}/candidates/{candidate_id}", response_model=out.ConsoleRoom
)
async def unseat(
    room_id: int,
    candidate_id: int,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    return await seating.unseat(db, rt.bus, scope, room_id, candidate_id)


@router.put("/api/console/rooms/{room_id}/invigilators", response_model=out.ConsoleRoom)
async def assign(
    room_id: int,
    body: StaffIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict:
    """Make exactly these invigilators the room's."""
    return await seating.assign(db, rt.bus, scope, room_id, body.staff_ids)


@router.post("/api/console/sittings/{sitting_id}/rooms/auto", response_model=list[out.ConsoleRoom])
async def auto_rooms(
    sitting_id: int,
    body: AutoRoomsIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> list[dict]:
    """Seat every unseated candidate in new rooms of up to 30, invigilators two a room."""
    return await seating.auto_rooms(
        db,
        rt.bus,
        scope,
        sitting_id,
        body.invigilator_ids,
        capacity=body.capacity,
        per_room=body.invigilators_per_room,
    )


@router.get("/api/console/staff", response_model=list[out.ConsoleStaffUser])
async def staff_list(
    role: str | None = Query(None, max_length=32),
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> list[dict]:
    return await seating.staff(db, scope, role)


# ----------------------------------------------------------------------------- incidents


@router.post("/api/console/rooms/{room_id}/incidents", response_model=list[out.ConsoleAction])
async def incident(
    room_id: int,
    body: IncidentIn,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> list[dict]:
    """Record an incident (突发事件) of the room, or of some of its candidates."""
    return await seating.incident(
        db,
        rt.bus,
        scope,
        room_id,
        category=body.category,
        description=body.description,
        candidate_ids=body.candidate_ids,
    )


# ----------------------------------------------------------------------------- the record


@router.get(
    "/api/console/sittings/{sitting_id}/record",
    response_model=out.ConsoleRoomRecord,
    response_model_exclude_unset=True,
)
async def record(
    sitting_id: int,
    room_id: int | None = Query(None, ge=1),
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> dict:
    """The exam-room record, live."""
    return await seating.record(db, scope, sitting_id, room_id)


@router.get(
    "/api/console/sittings/{sitting_id}/record.csv",
    response_class=Response,
    responses={200: out.files("The record as CSV (an attachment)", "text/csv", text=True)},
)
async def record_csv(
    sitting_id: int,
    room_id: int | None = Query(None, ge=1),
    draft: bool = False,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> Response:
    """Exported once the sitting is over (``draft=1``: before, marked as a draft)."""
    rec = await seating.record_export(db, scope, sitting_id, room_id, draft=draft)
    name = seating.record_filename(rec, "csv")
    return Response(
        room_record.to_csv(rec).encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/api/console/sittings/{sitting_id}/record.html",
    response_class=HTMLResponse,
    responses={200: out.files("The record as a page to print", "text/html", text=True)},
)
async def record_html(
    sitting_id: int,
    room_id: int | None = Query(None, ge=1),
    draft: bool = False,
    scope: Scope = Depends(console_scope),
    db: AsyncSession = Depends(db_session),
) -> HTMLResponse:
    rec = await seating.record_export(db, scope, sitting_id, room_id, draft=draft)
    return HTMLResponse(
        room_record.to_html(rec),
        headers={
            "Content-Disposition": f'inline; filename="{seating.record_filename(rec, "html")}"',
            "Content-Security-Policy": RECORD_CSP,
        },
    )
