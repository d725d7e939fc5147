"""What candidates need from the invigilator, as items the console lists until someone acts
(issue 23): a candidate saying "my details are wrong" (step 2, ``info_problem``), a
candidate raising a hand with a short message (求助, ``help_request``: any step until the
exam ends), and a candidate waiting for a manual identity check after failed photo checks
(step 4).

A raised hand is bounded and rate-limited per candidate: one open at a time
(``hand_already_raised``), at most ``HELP_PER_WINDOW`` in ``HELP_WINDOW_SECONDS``
(``too_many_requests``, 429 with the seconds to wait), at most ``HELP_TEXT_MAX`` characters.
Resolving one records ``help_request_resolved`` (who, the note, whether the note was sent to
the candidate as a reply) and tells the candidate's page.

An info problem is the candidate's ``info_problem`` event; resolving it records an
``info_problem_resolved`` event (who, the note) and marks the problem resolved, so both
show in the candidate's timeline and in the review. The identity cases are read from the
attempts (step ``identity`` with the failures at the sitting's limit); the invigilator acts
on them through proctor.flow.identity (admit, retry, refuse).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict, Invalid, NotFound, TooMany
from proctor.events.bus import Bus, candidate_channel, sitting_channel
from proctor.flow.machine import ENDED, allowed, load
from proctor.flow.steps import record_event
from proctor.sitting.policy import rules_of
from proctor.store.db import Database
from proctor.store.tables import (
    Attempt,
    Candidate,
    CandidateEvent,
    Evidence,
    Sitting,
    StaffUser,
)
from proctor.times import iso as _iso

NOTE_REQUIRED = Invalid(
    "note_required",
    "请填写处理说明（2至500字）。 Say how it was resolved (2-500 characters).",
)


#: kinds of candidate events the console lists until resolved
REQUEST_KINDS = ("info_problem", "help_request")
HELP_TEXT_MAX = 200
HELP_PER_WINDOW = 5
HELP_WINDOW_SECONDS = 600


def info_problem_body(event: CandidateEvent, candidate: Candidate) -> dict[str, Any]:
    data = event.data or {}
    return {
        "id": event.id,
        "kind": event.kind,
        "candidate_id": candidate.id,
        "candidate_name": candidate.name,
        "sitting_id": candidate.sitting_id,
        "text": data.get("text", ""),
        "at": _iso(event.at),
        "status": "resolved" if data.get("resolved_at") else "open",
        "resolved_at": data.get("resolved_at"),
        "resolved_by": data.get("resolved_by_name"),
        "note": data.get("note"),
        "replied": bool(data.get("replied")),
    }


async def info_problems(
    db: AsyncSession,
    candidate_ids: set[int],
    *,
    include_resolved: bool = False,
    kind: str = "info_problem",
) -> list[dict[str, Any]]:
    """The info problems (or raised hands: ``kind="help_request"``) of these candidates,
    oldest first (open ones only by default)."""
    if not candidate_ids:
        return []
    rows = await db.execute(
        select(CandidateEvent, Candidate)
        .join(Candidate, Candidate.id == CandidateEvent.candidate_id)
        .where(
            CandidateEvent.candidate_id.in_(candidate_ids),
            CandidateEvent.kind == kind,
        )
        .order_by(CandidateEvent.at, CandidateEvent.id)
    )
    out = [info_problem_body(ev, cand) for ev, cand in rows.all()]
    return out if include_resolved else [p for p in out if p["status"] == "open"]


async def get_info_problem(
    db: AsyncSession, problem_id: int, kind: str = "info_problem", *, lock: bool = False
) -> CandidateEvent:
    event = await db.get(CandidateEvent, problem_id, with_for_update=lock)
    if event is None or event.kind != kind:
        if kind == "help_request":
            raise NotFound("unknown_help_request", f"No raised hand {problem_id}. 没有这条求助。")
        raise NotFound("unknown_info_problem", f"No reported problem {problem_id}.")
    return event


# ------------------------------------------------------------------------- raised hands


def _help_text(text: str | None) -> str:
    text = " ".join((text or "").split())
    if len(text) > HELP_TEXT_MAX:
        raise Invalid(
            "help_text_too_long",
            f"求助留言最多{HELP_TEXT_MAX}个字。 A message has at most {HELP_TEXT_MAX} characters.",
        )
    return text


async def raise_hand(
    database: Database,
    bus: Bus,
    *,
    candidate_id: int,
    text: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The candidate raises a hand (求助) with an optional short message: recorded as a
    ``help_request`` event on the database writer thread (the candidate's attempt locked:
    one at a time), then the sitting's consoles are told (those of the candidate's room see
    it: the console socket filters by candidate)."""
    text = _help_text(text)

    async def store(db: AsyncSession) -> tuple[dict, Candidate]:
        ctx = await load(db, candidate_id, lock=True)
        candidate = ctx.candidate
        if ctx.attempt.step in ENDED:
            raise Conflict("exam_over", "考试已结束。 Your exam has ended.")
        mine = await _newest_events(db, candidate.id, "help_request", HELP_PER_WINDOW)
        if any(not (ev.data or {}).get("resolved_at") for ev in mine):
            raise Conflict(
                "hand_already_raised",
                "你已经举手求助，请等待监考老师处理。 Your hand is raised already: the "
                "invigilator will answer.",
            )
        if len(mine) >= HELP_PER_WINDOW:
            oldest = mine[-1].at
            wait = HELP_WINDOW_SECONDS - (now - oldest).total_seconds()
            if wait > 0:
                error = TooMany(
                    "too_many_requests",
                    f"求助过于频繁，请{int(wait) + 1}秒后再试。 Too many requests: try again in "
                    f"{int(wait) + 1} s.",
                )
                error.details["retry_after"] = int(wait) + 1
                raise error
        event = CandidateEvent(
            candidate_id=candidate.id,
            kind="help_request",
            data={"text": text, "step": ctx.attempt.step},
            at=now,
        )
        db.add(event)
        await db.flush()
        return info_problem_body(event, candidate), candidate

    body, candidate = await database.write(store)
    await bus.publish(
        sitting_channel(candidate.sitting_id),
        {"type": "help_request", **body, "candidate_name": candidate.name},
    )
    return body


async def my_help_requests(db: AsyncSession, candidate: Candidate, limit: int = 20) -> list[dict]:
    """The candidate's own raised hands, newest first."""
    rows = await _newest_events(db, candidate.id, "help_request", limit)
    return [info_problem_body(ev, candidate) for ev in rows]


async def _newest_events(
    db: AsyncSession, candidate_id: int, kind: str, limit: int | None = None
) -> list[CandidateEvent]:
    """The candidate's events of ``kind``, newest first (at most ``limit``)."""
    query = (
        select(CandidateEvent)
        .where(CandidateEvent.candidate_id == candidate_id, CandidateEvent.kind == kind)
        .order_by(CandidateEvent.at.desc(), CandidateEvent.id.desc())
    )
    return list(await db.scalars(query if limit is None else query.limit(limit)))


async def count_open_help(db: AsyncSession, candidate_ids: set[int]) -> int:
    if not candidate_ids:
        return 0
    rows = await db.scalars(
        select(CandidateEvent.data).where(
            CandidateEvent.candidate_id.in_(candidate_ids), CandidateEvent.kind == "help_request"
        )
    )
    return sum(1 for data in rows if not (data or {}).get("resolved_at"))


async def resolve_info_problem(
    database: Database,
    bus: Bus,
    problem_id: int,
    *,
    staff_id: int,
    note: str,
    now: datetime,
    replied: bool = False,
    kind: str = "info_problem",
) -> dict[str, Any]:
    """Mark the problem (or raised hand) resolved with the invigilator's note (recorded as
    an event of the candidate) in one transaction on the database writer thread, the
    problem's row locked (of two invigilators resolving it at once, the second is told it
    is resolved already), then tell the sitting's consoles (and, for a raised hand, the
    candidate's page). ``replied``: the note was sent to the candidate as a danmaku reply
    (the caller sends it)."""
    note = " ".join((note or "").split())
    if not 2 <= len(note) <= 500:
        raise NOTE_REQUIRED

    async def store(db: AsyncSession) -> tuple[Candidate, dict]:
        event = await get_info_problem(db, problem_id, kind, lock=True)
        data = dict(event.data or {})
        if data.get("resolved_at"):
            raise Conflict(
                "already_resolved",
                "这个问题已经处理过了。 This problem has been resolved already.",
            )
        staff = await db.get(StaffUser, staff_id)
        name = staff.display_name if staff is not None else f"#{staff_id}"
        data.update(
            resolved_at=now.isoformat(),
            resolved_by=staff_id,
            resolved_by_name=name,
            note=note,
            replied=replied,
        )
        event.data = data  # a new dict: the JSON column sees the change
        await record_event(
            db,
            event.candidate_id,
            f"{kind}_resolved",
            now,
            problem_id=event.id,
            text=data.get("text", ""),
            note=note,
            by=staff_id,
            by_name=name,
            raised_at=_iso(event.at),
            replied=replied,
        )
        candidate = await db.get(Candidate, event.candidate_id)
        return candidate, info_problem_body(event, candidate)

    candidate, body = await database.write(store)
    await bus.publish(
        sitting_channel(candidate.sitting_id),
        {"type": f"{kind}_resolved", "candidate_id": candidate.id, "problem": body},
    )
    if kind == "help_request":
        await bus.publish(
            candidate_channel(candidate.id),
            {"type": "help_resolved", "id": problem_id, "resolved_at": body["resolved_at"]},
        )
    return body


# ------------------------------------------------------------------------- identity


async def identity_reviews(
    db: AsyncSession, sitting: Sitting, candidate_ids: set[int]
) -> list[dict[str, Any]]:
    """Candidates of the sitting waiting for a manual identity check: at the photo check,
    with as many failed checks as the sitting allows (or no usable registered photo)."""
    if not candidate_ids:
        return []
    limit = rules_of(sitting.kind, sitting.flow).identity_max_failures
    rows = await db.execute(
        select(Attempt, Candidate)
        .join(Candidate, Candidate.id == Attempt.candidate_id)
        .where(
            Attempt.candidate_id.in_(candidate_ids),
            Attempt.step.in_(allowed("admit")),
            Attempt.identity_passed_at.is_(None),
            Attempt.identity_failures >= limit,
        )
        .order_by(Attempt.updated_at, Attempt.id)
    )
    return [
        {
            "kind": "identity_review",
            "candidate_id": cand.id,
            "candidate_name": cand.name,
            "sitting_id": cand.sitting_id,
            "failures": attempt.identity_failures,
            "max_failures": limit,
            "has_photo": cand.photo_relpath is not None,
            "at": _iso(attempt.updated_at),
        }
        for attempt, cand in rows.all()
    ]


async def identity_photos(db: AsyncSession, candidate: Candidate) -> dict[str, Any]:
    """What the invigilator compares: the registered photo, the captured photos of the
    candidate's photo checks (newest first, with each check's outcome) and the live face
    (the console's first-view thumbnail)."""
    captures = list(
        await db.scalars(
            select(Evidence)
            .where(Evidence.candidate_id == candidate.id, Evidence.kind == "identity_capture")
            .order_by(Evidence.captured_at.desc(), Evidence.id.desc())
        )
    )
    checks = await _newest_events(db, candidate.id, "identity_check")
    by_time = {ev.at: ev.data or {} for ev in checks}
    attempt = await db.scalar(select(Attempt).where(Attempt.candidate_id == candidate.id))
    return {
        "candidate_id": candidate.id,
        "candidate_name": candidate.name,
        "id_number": candidate.id_number,
        "step": attempt.step if attempt else None,
        "failures": attempt.identity_failures if attempt else 0,
        "registered_url": (
            f"/api/invigilate/candidates/{candidate.id}/registered-photo"
            if candidate.photo_relpath
            else None
        ),
        "captures": [
            {
                "id": ev.id,
                "url": f"/api/evidence/{ev.id}",
                "captured_at": _iso(ev.captured_at),
                "reason": by_time.get(ev.captured_at, {}).get("reason"),
                "distance": by_time.get(ev.captured_at, {}).get("distance"),
            }
            for ev in captures
        ],
        "live_url": f"/api/console/candidates/{candidate.id}/thumbnail/first.jpg",
    }
