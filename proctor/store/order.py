"""The order of a sitting's roster wherever it is listed or exported (issue 23): seated
candidates by room and seat, then the others in import order (a candidate's id is given in
the order of the imported roster)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.store.tables import Room, RoomSeat


async def roster_order(db: AsyncSession, sitting_id: int) -> Callable[[int], tuple[int, ...]]:
    """A sort key for the sitting's candidate ids."""
    rows = await db.execute(
        select(RoomSeat.candidate_id, Room.id, RoomSeat.seat)
        .join(Room, Room.id == RoomSeat.room_id)
        .where(Room.sitting_id == sitting_id)
    )
    seats = {cid: (room_id, seat) for cid, room_id, seat in rows.all()}

    def key(candidate_id: int) -> tuple[int, ...]:
        found = seats.get(candidate_id)
        if found is None:
            return (1, 0, 0, candidate_id)
        return (0, found[0], found[1], candidate_id)

    return key
