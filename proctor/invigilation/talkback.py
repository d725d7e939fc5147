"""The records and notices of a voice call between an invigilator and a candidate
(issue 19: what the voice routes do with the database and the bus, without HTTP). The
call itself (WebRTC) is the runtime's (proctor.media.voice); here: the supervision log's
``voice_started`` / ``voice_ended`` actions (committed first), then the candidate's page
is told (``voice_call``, ``voice_ended``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proctor.events.bus import Bus, candidate_channel
from proctor.invigilation import supervision
from proctor.sitting.sittings import get_candidate
from proctor.store.tables import Candidate, StaffUser


async def call_started(
    db: AsyncSession, bus: Bus, *, staff_id: int, candidate: Candidate, call_id: str
) -> dict[str, Any]:
    """Log the call and ring the candidate's page (with the caller's name); the logged
    action."""
    action = await supervision.log_voice(
        db, bus, started=True, staff_id=staff_id, candidate=candidate, call_id=call_id
    )
    user = await db.get(StaffUser, staff_id)
    await bus.publish(
        candidate_channel(candidate.id),
        {"type": "voice_call", "call_id": call_id, "from": user.display_name if user else ""},
    )
    return action


async def call_ended(
    db: AsyncSession,
    bus: Bus,
    *,
    candidate_id: int,
    staff_id: int,
    call_id: str,
    data: dict[str, Any] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """Log the end of a call (``data``: its summary) and tell the candidate's page; the
    logged action."""
    cand = await get_candidate(db, candidate_id)
    action = await supervision.log_voice(
        db,
        bus,
        started=False,
        staff_id=staff_id,
        candidate=cand,
        call_id=call_id,
        data=data,
        reason=reason,
    )
    await bus.publish(candidate_channel(candidate_id), {"type": "voice_ended", "call_id": call_id})
    return action
