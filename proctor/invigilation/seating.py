"""Managing a sitting's rooms from the console (issue 19: what the room routes do, without
HTTP): create a room, seat and unseat candidates, assign invigilators, seat everyone
automatically (chief examiners and administrators only); an incident of a room; the
exam-room record (考场记录) the caller's rooms give them.

Every change is committed, then the sitting's consoles are told (``{"type": "rooms"}``)
so that each reloads whom it may see."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import NotFound
from proctor.events.bus import Bus, sitting_channel
from proctor.invigilation import room_record, rooms, supervision
from proctor.invigilation.rooms import Scope


async def rooms_changed(bus: Bus, sitting_id: int) -> None:
    """Consoles of the sitting reload who they may see."""
    await bus.publish(sitting_channel(sitting_id), {"type": "rooms", "sitting_id": sitting_id})


async def room_answer(db: AsyncSession, scope: Scope, room_id: int) -> dict[str, Any]:
    """One room as the room list shows it."""
    room = await rooms.get_room(db, room_id)
    for body in await rooms.list_rooms(db, scope, room.sitting_id):
        if body["id"] == room_id:
            return body
    raise NotFound("unknown_room", f"No room {room_id}.")  # pragma: no cover - just made


async def create_room(
    db: AsyncSession,
    bus: Bus,
    scope: Scope,
    *,
    sitting_id: int,
    name: str,
    capacity: int = rooms.ROOM_CAPACITY,
    invigilators_required: int = rooms.INVIGILATORS_PER_ROOM,
) -> dict[str, Any]:
    rooms.require_manager(scope)
    room = await rooms.create_room(
        db,
        sitting_id=sitting_id,
        name=name,
        capacity=capacity,
        invigilators_required=invigilators_required,
    )
    await db.commit()
    await rooms_changed(bus, room.sitting_id)
    return rooms.room_body(room, 0, [])


async def seat(
    db: AsyncSession, bus: Bus, scope: Scope, room_id: int, candidate_ids: list[int]
) -> dict[str, Any]:
    """Seat candidates in the room (moving them from another room of the sitting)."""
    rooms.require_manager(scope)
    room = await rooms.get_room(db, room_id)
    await rooms.seat_candidates(db, room, candidate_ids)
    await db.commit()
    await rooms_changed(bus, room.sitting_id)
    return await room_answer(db, scope, room_id)


async def unseat(
    db: AsyncSession, bus: Bus, scope: Scope, room_id: int, candidate_id: int
) -> dict[str, Any]:
    rooms.require_manager(scope)
    room = await rooms.get_room(db, room_id)
    await rooms.unseat_candidates(db, room, [candidate_id])
    await db.commit()
    await rooms_changed(bus, room.sitting_id)
    return await room_answer(db, scope, room_id)


async def assign(
    db: AsyncSession, bus: Bus, scope: Scope, room_id: int, staff_ids: list[int]
) -> dict[str, Any]:
    """Make exactly these invigilators the room's."""
    rooms.require_manager(scope)
    room = await rooms.get_room(db, room_id)
    await rooms.assign_staff(db, room, staff_ids, by=scope.staff_id)
    await db.commit()
    await rooms_changed(bus, room.sitting_id)
    return await room_answer(db, scope, room_id)


async def auto_rooms(
    db: AsyncSession,
    bus: Bus,
    scope: Scope,
    sitting_id: int,
    invigilator_ids: list[int],
    *,
    capacity: int = rooms.ROOM_CAPACITY,
    per_room: int = rooms.INVIGILATORS_PER_ROOM,
) -> list[dict[str, Any]]:
    """Seat every unseated candidate in new rooms of up to ``capacity``, invigilators
    ``per_room`` a room; the sitting's rooms after."""
    rooms.require_manager(scope)
    await rooms.auto_rooms(
        db, sitting_id, invigilator_ids, capacity=capacity, per_room=per_room, by=scope.staff_id
    )
    await db.commit()
    await rooms_changed(bus, sitting_id)
    return await rooms.list_rooms(db, scope, sitting_id)


async def staff(db: AsyncSession, scope: Scope, role: str | None = None) -> list[dict[str, Any]]:
    """The staff a manager may assign (of one role)."""
    rooms.require_manager(scope)
    return await rooms.list_staff(db, role)


async def incident(
    db: AsyncSession,
    bus: Bus,
    scope: Scope,
    room_id: int,
    *,
    category: str,
    description: str,
    candidate_ids: list[int],
) -> list[dict[str, Any]]:
    """An incident (突发事件) of the room, or of some of its candidates (seated in it)."""
    room = await rooms.check_room(db, scope, room_id)
    seated = await rooms.visible_candidates(db, scope, room.sitting_id, room.id)
    for cid in candidate_ids:
        if cid not in seated:
            raise NotFound("unknown_candidate", f"Candidate {cid} is not seated in this room.")
    return await supervision.record_incident(
        db,
        bus,
        staff_id=scope.staff_id,
        sitting_id=room.sitting_id,
        room_id=room.id,
        candidate_ids=candidate_ids,
        category=category,
        description=description,
    )


async def record(
    db: AsyncSession, scope: Scope, sitting_id: int, room_id: int | None = None
) -> dict[str, Any]:
    """The exam-room record of the scope's rooms in the sitting (of one room), live."""
    sitting = await rooms.check_sitting(db, scope, sitting_id)
    room_ids: list[int] | None = None
    if room_id is not None:
        room = await rooms.check_room(db, scope, room_id)
        if room.sitting_id != sitting_id:
            raise NotFound("unknown_room", f"Room {room_id} is not in sitting {sitting_id}.")
        room_ids = [room_id]
    elif not scope.everything:
        room_ids = sorted(scope.room_ids or ())
    seen = await rooms.visible_candidates(db, scope, sitting_id, room_id)
    return await room_record.room_record(db, sitting, seen, room_ids)


def record_filename(rec: dict[str, Any], ext: str) -> str:
    return f"exam-room-record-sitting-{rec['sitting']['id']}.{ext}"


async def record_export(
    db: AsyncSession, scope: Scope, sitting_id: int, room_id: int | None, *, draft: bool
) -> dict[str, Any]:
    """The record to export: once the sitting is over (``draft``: before, as a draft)."""
    rec = await record(db, scope, sitting_id, room_id)
    room_record.check_exportable(rec, draft)
    return rec
