"""Exam rooms (考场) and who may watch them.

A sitting's candidates are seated in rooms of up to 30; invigilators are assigned to rooms
(two per room by default). A chief examiner (and an administrator) sees and acts on every
room; an invigilator only on the rooms they are assigned to. :class:`Scope` is that rule,
and every console route and socket asks it before answering.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.auth.roles import roles_with
from proctor.auth.sessions import Principal
from proctor.errors import Conflict, Forbidden, Invalid, NotFound
from proctor.store.lookup import get_sitting
from proctor.store.tables import Candidate, Room, RoomSeat, RoomStaff, Sitting, StaffUser, utcnow

ROOM_CAPACITY = 30  # the documents: 30 seats per room
INVIGILATORS_PER_ROOM = 2  # the documents: 2 invigilators per 30-seat room
CONSOLE_ROLES = roles_with("console")
ALL_ROOM_ROLES = roles_with("all_rooms")  # see and act on every room
MANAGER_ROLES = roles_with("manage_rooms")  # create rooms, seat, assign


@dataclass(frozen=True)
class Scope:
    """What one staff user may see and act on at the console: every room (``room_ids`` is
    None) or the listed rooms."""

    staff_id: int
    role: str
    room_ids: frozenset[int] | None

    @property
    def everything(self) -> bool:
        return self.room_ids is None

    @property
    def manager(self) -> bool:
        return self.role in MANAGER_ROLES


NOT_YOUR_ROOM = "not_your_room"


def _not_yours(what: str) -> Forbidden:
    return Forbidden(
        NOT_YOUR_ROOM,
        f"{what} is not in an exam room you are assigned to. 该考生/考场不属于你监考的考场。",
    )


async def scope_of(db: AsyncSession, who: Principal) -> Scope:
    """The console scope of a staff principal; other roles (reviewers) are refused."""
    if who.kind != "staff" or who.role not in CONSOLE_ROLES:
        raise Forbidden(
            "console_forbidden",
            "Only invigilators and chief examiners use the console. 仅监考老师和主考可使用监考台。",
        )
    if who.role in ALL_ROOM_ROLES:
        return Scope(who.subject_id, who.role, None)
    rows = await db.scalars(select(RoomStaff.room_id).where(RoomStaff.staff_id == who.subject_id))
    return Scope(who.subject_id, who.role, frozenset(rows))


def require_manager(scope: Scope) -> None:
    if not scope.manager:
        raise Forbidden(
            "chief_only", "Only a chief examiner or an administrator may do this. 仅主考可操作。"
        )


# ----------------------------------------------------------------------------- checks


async def get_room(db: AsyncSession, room_id: int) -> Room:
    room = await db.get(Room, room_id)
    if room is None:
        raise NotFound("unknown_room", f"No room {room_id}.")
    return room


async def check_sitting(db: AsyncSession, scope: Scope, sitting_id: int) -> Sitting:
    """The sitting, if the scope has a room in it (or sees everything)."""
    sitting = await get_sitting(db, sitting_id)
    if not scope.everything:
        mine = await db.scalar(
            select(func.count())
            .select_from(Room)
            .where(Room.sitting_id == sitting_id, Room.id.in_(scope.room_ids or ()))
        )
        if not mine:
            raise _not_yours("This sitting")
    return sitting


async def check_room(db: AsyncSession, scope: Scope, room_id: int) -> Room:
    room = await get_room(db, room_id)
    if not scope.everything and room.id not in (scope.room_ids or ()):
        raise _not_yours("This room")
    return room


async def room_of(db: AsyncSession, candidate_id: int) -> int | None:
    return await db.scalar(select(RoomSeat.room_id).where(RoomSeat.candidate_id == candidate_id))


async def check_candidate(db: AsyncSession, scope: Scope, candidate_id: int) -> Candidate:
    """The candidate, if seated in one of the scope's rooms (or the scope sees all)."""
    candidate = await db.get(Candidate, candidate_id)
    if candidate is None:
        raise NotFound("unknown_candidate", f"No candidate {candidate_id}.")
    if not scope.everything:
        room_id = await room_of(db, candidate_id)
        if room_id is None or room_id not in (scope.room_ids or ()):
            raise _not_yours("This candidate")
    return candidate


async def visible_candidates(
    db: AsyncSession, scope: Scope, sitting_id: int, room_id: int | None = None
) -> set[int]:
    """Ids of the sitting's candidates the scope sees (narrowed to one room if given)."""
    query = select(Candidate.id).where(Candidate.sitting_id == sitting_id)
    if room_id is not None or not scope.everything:
        query = query.join(RoomSeat, RoomSeat.candidate_id == Candidate.id)
        if room_id is not None:
            query = query.where(RoomSeat.room_id == room_id)
        if not scope.everything:
            query = query.where(RoomSeat.room_id.in_(scope.room_ids or ()))
    return set(await db.scalars(query))


async def visible_sitting_ids(db: AsyncSession, scope: Scope) -> set[int] | None:
    """None: every sitting."""
    if scope.everything:
        return None
    rows = await db.scalars(
        select(Room.sitting_id).where(Room.id.in_(scope.room_ids or ())).distinct()
    )
    return set(rows)


# ----------------------------------------------------------------------------- rooms


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= 100:
        raise Invalid("bad_room_name", "A room needs a name of 1 to 100 characters.")
    return name


async def create_room(
    db: AsyncSession,
    *,
    sitting_id: int,
    name: str,
    capacity: int = ROOM_CAPACITY,
    invigilators_required: int = INVIGILATORS_PER_ROOM,
) -> Room:
    await get_sitting(db, sitting_id)
    name = _clean_name(name)
    if not 1 <= capacity <= ROOM_CAPACITY:
        raise Invalid("bad_capacity", f"A room seats 1 to {ROOM_CAPACITY} candidates.")
    if not 1 <= invigilators_required <= 10:
        raise Invalid("bad_capacity", "A room needs 1 to 10 invigilators.")
    taken = await db.scalar(select(Room.id).where(Room.sitting_id == sitting_id, Room.name == name))
    if taken:
        raise Conflict("room_exists", f"The sitting already has a room named {name!r}.")
    room = Room(
        sitting_id=sitting_id,
        name=name,
        capacity=capacity,
        invigilators_required=invigilators_required,
        created_at=utcnow(),
    )
    db.add(room)
    await db.flush()
    return room


async def seat_candidates(db: AsyncSession, room: Room, candidate_ids: Sequence[int]) -> None:
    """Seat these candidates in the room (in this order, after those already there);
    a candidate seated in another room of the sitting moves. Refused beyond capacity."""
    ids = list(dict.fromkeys(candidate_ids))
    if not ids:
        return
    found = {c.id: c for c in await db.scalars(select(Candidate).where(Candidate.id.in_(ids)))}
    for cid in ids:
        cand = found.get(cid)
        if cand is None or cand.sitting_id != room.sitting_id:
            raise NotFound("unknown_candidate", f"Candidate {cid} is not in this sitting.")
    seats = {
        s.candidate_id: s
        for s in await db.scalars(select(RoomSeat).where(RoomSeat.room_id == room.id))
    }
    newcomers = [cid for cid in ids if cid not in seats]
    if len(seats) + len(newcomers) > room.capacity:
        raise Conflict(
            "room_full",
            f"Room {room.name!r} seats {room.capacity}: {len(seats)} seated, "
            f"{len(newcomers)} more do not fit. 考场座位已满。",
        )
    if newcomers:
        await db.execute(delete(RoomSeat).where(RoomSeat.candidate_id.in_(newcomers)))
        used = {s.seat for s in seats.values()}
        free = (n for n in range(1, room.capacity + 1) if n not in used)
        for cid in newcomers:
            db.add(RoomSeat(candidate_id=cid, room_id=room.id, seat=next(free)))
    await db.flush()


async def unseat_candidates(db: AsyncSession, room: Room, candidate_ids: Iterable[int]) -> None:
    await db.execute(
        delete(RoomSeat).where(
            RoomSeat.room_id == room.id, RoomSeat.candidate_id.in_(list(candidate_ids))
        )
    )
    await db.flush()


async def assign_staff(
    db: AsyncSession, room: Room, staff_ids: Sequence[int], by: int | None = None
) -> None:
    """Make exactly these invigilators the room's (keeping when earlier ones were
    assigned)."""
    ids = list(dict.fromkeys(staff_ids))
    users = {u.id: u for u in await db.scalars(select(StaffUser).where(StaffUser.id.in_(ids)))}
    for sid in ids:
        user = users.get(sid)
        if user is None:
            raise NotFound("unknown_staff", f"No staff user {sid}.")
        if user.role != "invigilator":
            raise Invalid(
                "not_an_invigilator",
                f"{user.display_name} is a {user.role}: only invigilators are assigned to rooms "
                "(chief examiners see every room).",
            )
    current = {
        r.staff_id: r
        for r in await db.scalars(select(RoomStaff).where(RoomStaff.room_id == room.id))
    }
    for sid, row in current.items():
        if sid not in ids:
            await db.delete(row)
    now = utcnow()
    for sid in ids:
        if sid not in current:
            db.add(RoomStaff(room_id=room.id, staff_id=sid, assigned_at=now, assigned_by=by))
    await db.flush()


async def auto_rooms(
    db: AsyncSession,
    sitting_id: int,
    invigilator_ids: Sequence[int] = (),
    *,
    capacity: int = ROOM_CAPACITY,
    per_room: int = INVIGILATORS_PER_ROOM,
    by: int | None = None,
) -> list[Room]:
    """Seat every not yet seated candidate of the sitting (roster order) in new rooms of
    ``capacity``, named 第N考场, and hand out the invigilators ``per_room`` to a room."""
    if not 1 <= capacity <= ROOM_CAPACITY:
        raise Invalid(
            "bad_capacity",
            f"每个考场可安排1到{ROOM_CAPACITY}名考生。 "
            f"A room seats 1 to {ROOM_CAPACITY} candidates.",
        )
    if not 1 <= per_room <= 10:
        raise Invalid(
            "bad_capacity", "每个考场需要1到10名监考老师。 A room needs 1 to 10 invigilators."
        )
    await get_sitting(db, sitting_id)
    seated = select(RoomSeat.candidate_id)
    waiting = list(
        await db.scalars(
            select(Candidate.id)
            .where(Candidate.sitting_id == sitting_id, Candidate.id.not_in(seated))
            .order_by(Candidate.id)
        )
    )
    existing = await db.scalar(
        select(func.count()).select_from(Room).where(Room.sitting_id == sitting_id)
    )
    rooms: list[Room] = []
    staff = list(invigilator_ids)
    for i in range(0, len(waiting), capacity):
        n = (existing or 0) + len(rooms) + 1
        room = await create_room(
            db,
            sitting_id=sitting_id,
            name=f"第{n}考场 Room {n}",
            capacity=capacity,
            invigilators_required=per_room,
        )
        await seat_candidates(db, room, waiting[i : i + capacity])
        k = len(rooms) * per_room
        if staff[k : k + per_room]:
            await assign_staff(db, room, staff[k : k + per_room], by)
        rooms.append(room)
    return rooms


# ----------------------------------------------------------------------------- reading


async def list_rooms(db: AsyncSession, scope: Scope, sitting_id: int) -> list[dict[str, Any]]:
    query = select(Room).where(Room.sitting_id == sitting_id).order_by(Room.id)
    if not scope.everything:
        query = query.where(Room.id.in_(scope.room_ids or ()))
    rooms = list(await db.scalars(query))
    ids = [r.id for r in rooms]
    counts = dict(
        (
            await db.execute(
                select(RoomSeat.room_id, func.count())
                .where(RoomSeat.room_id.in_(ids))
                .group_by(RoomSeat.room_id)
            )
        ).all()
    )
    staff: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    rows = await db.execute(
        select(RoomStaff.room_id, StaffUser)
        .join(StaffUser, StaffUser.id == RoomStaff.staff_id)
        .where(RoomStaff.room_id.in_(ids))
        .order_by(StaffUser.display_name)
    )
    for room_id, user in rows.all():
        staff[room_id].append(
            {"id": user.id, "username": user.username, "display_name": user.display_name}
        )
    return [room_body(r, counts.get(r.id, 0), staff[r.id]) for r in rooms]


def room_body(room: Room, seated: int, invigilators: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": room.id,
        "sitting_id": room.sitting_id,
        "name": room.name,
        "capacity": room.capacity,
        "seated": seated,
        "invigilators_required": room.invigilators_required,
        "invigilators": invigilators,
        "understaffed": len(invigilators) < room.invigilators_required,
    }


async def seats_of(db: AsyncSession, sitting_id: int) -> dict[int, tuple[int, str, int]]:
    """candidate id → (room id, room name, seat) for the sitting's seated candidates."""
    rows = await db.execute(
        select(RoomSeat.candidate_id, Room.id, Room.name, RoomSeat.seat)
        .join(Room, Room.id == RoomSeat.room_id)
        .where(Room.sitting_id == sitting_id)
    )
    return {cid: (rid, name, seat) for cid, rid, name, seat in rows.all()}


async def room_staff_names(db: AsyncSession, room_ids: Iterable[int]) -> list[str]:
    rows = await db.scalars(
        select(StaffUser.display_name)
        .join(RoomStaff, RoomStaff.staff_id == StaffUser.id)
        .where(RoomStaff.room_id.in_(list(room_ids)))
        .distinct()
        .order_by(StaffUser.display_name)
    )
    return list(rows)


async def list_staff(db: AsyncSession, role: str | None = None) -> list[dict[str, Any]]:
    query = select(StaffUser).order_by(StaffUser.display_name)
    if role:
        query = query.where(StaffUser.role == role)
    return [
        {"id": u.id, "username": u.username, "display_name": u.display_name, "role": u.role}
        for u in await db.scalars(query)
    ]
