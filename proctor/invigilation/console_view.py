"""What the invigilator console shows (issue 19: the reading side of its routes, without
HTTP): the sittings and candidates the caller's rooms give them, each candidate's tile
(room and seat, views, open alerts by severity, snoozes, the escalation ladder, leaving
the exam page, the flow, a call under way) and one candidate's detail with its timeline.

What only the server process knows (a view's connection and newest thumbnail, a call under
way) comes from a :class:`Live` the caller passes: the runtime, for the routes."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import NotFound
from proctor.evidence.zones import zone_body
from proctor.flow import screen
from proctor.invigilation import rooms, supervision
from proctor.invigilation.room_record import first_connections, flow_body, flow_facts
from proctor.invigilation.rooms import Scope
from proctor.rules import RuleSettings
from proctor.sitting.sittings import list_candidates, list_sittings
from proctor.store.tables import utcnow


class Live(Protocol):
    """A candidate's live state in this server process."""

    def views(self, candidate_id: int) -> dict[str, Any]:
        """Each view (``first``, ``second``) → ``{"connected", "ended", "since",
        "last_frame_at"}``."""
        ...

    def voice(self, candidate_id: int) -> dict[str, Any] | None:
        """``{"call_id", "staff_id"}`` of the candidate's call, or None."""
        ...


async def sittings(db: AsyncSession, scope: Scope) -> list[dict[str, Any]]:
    """The sittings the scope has a room in (every sitting for a chief), newest first."""
    visible = await rooms.visible_sitting_ids(db, scope)
    return [
        {
            "id": s.id,
            "name": s.name,
            "kind": s.kind,
            "starts_at": s.starts_at.isoformat(),
            "ends_at": s.ends_at.isoformat(),
            **zone_body(s, s.starts_at),  # the pages' times in the sitting's zone
        }
        for s in await list_sittings(db)
        if visible is None or s.id in visible
    ]


async def rooms_of(db: AsyncSession, scope: Scope, sitting_id: int) -> list[dict[str, Any]]:
    await rooms.check_sitting(db, scope, sitting_id)
    return await rooms.list_rooms(db, scope, sitting_id)


async def visible(
    db: AsyncSession, scope: Scope, sitting_id: int, room_id: int | None
) -> set[int] | None:
    """The candidates of a sitting (of one room) the scope sees, after checking both;
    None: every candidate (a chief's whole sitting)."""
    await rooms.check_sitting(db, scope, sitting_id)
    if room_id is not None:
        await rooms.check_room(db, scope, room_id)
    if scope.everything and room_id is None:
        return None
    return await rooms.visible_candidates(db, scope, sitting_id, room_id)


async def alerts(
    db: AsyncSession,
    scope: Scope,
    sitting_id: int,
    *,
    room_id: int | None = None,
    limit: int = 100,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """The alerts of the scope's candidates, newest first, with their handling."""
    seen = await visible(db, scope, sitting_id, room_id)
    return await supervision.console_alerts(db, sitting_id, seen, limit=limit, status=status)


async def snoozes(
    db: AsyncSession,
    scope: Scope,
    sitting_id: int,
    *,
    room_id: int | None = None,
    include_ended: bool = False,
) -> list[dict[str, Any]]:
    """The running snoozes of the scope's candidates (with ``include_ended``: all)."""
    seen = await visible(db, scope, sitting_id, room_id)
    return await supervision.list_snoozes(db, sitting_id, seen, active_only=not include_ended)


async def candidates(
    db: AsyncSession, live: Live, scope: Scope, sitting_id: int, room_id: int | None
) -> list[dict[str, Any]]:
    """The tiles of the sitting's candidates the scope sees (of one room), room by room in
    seat order, the unseated (a chief's view) last."""
    sitting = await rooms.check_sitting(db, scope, sitting_id)
    if room_id is not None:
        room = await rooms.check_room(db, scope, room_id)
        if room.sitting_id != sitting_id:
            raise NotFound("unknown_room", f"Room {room_id} is not in sitting {sitting_id}.")
    seen = await rooms.visible_candidates(db, scope, sitting_id, room_id)
    seats = await rooms.seats_of(db, sitting_id)
    cands = sorted(  # room by room, in seat order; the unseated (chief's view) last
        (c for c in await list_candidates(db, sitting_id) if c.id in seen),
        key=lambda c: (*(seats[c.id][0::2] if c.id in seats else (1 << 31, 0)), c.name),
    )
    open_alerts = await supervision.console_alerts(db, sitting_id, seen, limit=1000, status="open")
    by_severity: dict[int, dict[str, int]] = {}
    snoozed: dict[int, int] = {}
    for alert in open_alerts:
        if alert.get("snooze"):  # recorded while snoozed: not counted as open on the tile
            snoozed[alert["candidate_id"]] = snoozed.get(alert["candidate_id"], 0) + 1
            continue
        counts = by_severity.setdefault(alert["candidate_id"], {})
        counts[alert["severity"]] = counts.get(alert["severity"], 0) + 1
    ladders = await supervision.ladders(db, sitting_id, seen)
    facts = await flow_facts(db, sitting)
    ever = await first_connections(db, [c.id for c in cands])
    watch = RuleSettings.from_dict(sitting.rules)
    left = await screen.candidate_leaves(db, [c.id for c in cands], watch.fullscreen_required)
    now = utcnow()
    out = []
    for c in cands:
        seat = seats.get(c.id)
        severities = by_severity.get(c.id, {})
        views = live.views(c.id)
        out.append(
            {
                "id": c.id,
                "name": c.name,
                "id_number": c.id_number,
                "sitting_id": c.sitting_id,
                "room": {"id": seat[0], "name": seat[1], "seat": seat[2]} if seat else None,
                "views": views,
                "second_view_ever": "second" in ever.get(c.id, {}),
                "open_alerts": sum(severities.values()),
                "open_by_severity": severities,
                "snoozed_alerts": snoozed.get(c.id, 0),
                "ladder": ladders.get(c.id),
                # leaving the exam page (切屏): count, total seconds, away since
                "screen_left": screen.summary(left.get(c.id, []), now),
                "flow": flow_body(facts.get(c.id)),
                "voice": live.voice(c.id),
                "thumbnail_urls": {
                    v: f"/api/console/candidates/{c.id}/thumbnail/{v}.jpg" for v in views
                },
            }
        )
    return out


async def candidate(
    db: AsyncSession, live: Live, scope: Scope, candidate_id: int
) -> dict[str, Any]:
    """One candidate as in the list (only name and number if a chief sees them unseated),
    with their room and the alert timeline."""
    cand = await rooms.check_candidate(db, scope, candidate_id)
    room_id = await rooms.room_of(db, cand.id)
    bodies = await candidates(db, live, scope, cand.sitting_id, None)
    body = next((b for b in bodies if b["id"] == cand.id), None)
    if body is None:  # not seated but visible to a chief: listed on its own
        body = {"id": cand.id, "name": cand.name, "id_number": cand.id_number, "room": None}
    return {**body, "room_id": room_id, "timeline": await supervision.timeline(db, cand.id)}


async def timeline(
    db: AsyncSession, scope: Scope, candidate_id: int, limit: int = 300
) -> list[dict[str, Any]]:
    await rooms.check_candidate(db, scope, candidate_id)
    return await supervision.timeline(db, candidate_id, limit)
