"""What an invigilator does to one candidate's exam itself: pause and resume it, or handle a
violation with a category of the documents (proctor.sitting.violations) — a warning, recorded
only, or one that ends the exam at once (paper voided, score cancelled, disqualified).

- Pause: the candidate's clock stops (the time left is frozen; the end moves with the clock
  while the pause lasts), answers and hand-in are refused (``exam_paused``), the automatic
  hand-in leaves them alone, and the candidate's page shows that the invigilator paused it.
- Resume: the clock runs again; the end has moved by the paused duration (kept in
  ``Attempt.paused_seconds``), and so has the earliest hand-in.
- Terminate (ending categories): the attempt ends at once (step ``terminated``); the answers
  given are kept and scored for the record, the result is marked by the category (voided:
  total 0; score cancelled / disqualified: no total), never passed; further answers and
  hand-in are refused (``exam_terminated``).

Each is a console action (who, when, why) in the supervision log and the audit chain, a
candidate event, and a message on the bus for the consoles and the candidate's page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict, Invalid
from proctor.events.bus import Bus
from proctor.flow import machine
from proctor.flow import steps as flow
from proctor.flow.machine import Ctx
from proctor.invigilation import supervision
from proctor.sitting import violations
from proctor.sitting.scoring import score_attempt
from proctor.store.db import Database
from proctor.store.tables import Attempt, ConsoleAction

REASON_MIN = 2
REASON_MAX = 500


def clean_reason(reason: str | None, *, required: bool = True) -> str:
    value = " ".join((reason or "").split())
    if required and len(value) < REASON_MIN:
        raise Invalid(
            "reason_required", "Give the reason (2-500 characters). 请填写原因（2到500个字）。"
        )
    if len(value) > REASON_MAX:
        raise Invalid("reason_too_long", f"A reason has at most {REASON_MAX} characters.")
    return value


def check_category(category: str) -> violations.Category:
    found = violations.CATEGORIES.get(category)
    if found is None:
        raise Invalid(
            "bad_category",
            f"Unknown category {category!r}: one of {', '.join(violations.CATEGORIES)}. "
            "处理类别不正确。",
        )
    return found


async def _act(
    database: Database,
    bus: Bus,
    candidate_id: int,
    action: Callable[[AsyncSession, Ctx], Awaitable[tuple[dict[str, Any], ConsoleAction]]],
    now: datetime,
    step_extra: Callable[[dict[str, Any]], dict[str, Any] | None],
) -> tuple[Ctx, dict[str, Any]]:
    """Run ``action(session, ctx)`` on the candidate's locked attempt (``machine.act``: one
    transaction on the database writer thread), then publish the candidate's step (with
    ``step_extra(answer)``; None: no step message) and the console action. Returns the
    context and the answer with the candidate's id and the action's body."""

    async def run(db: AsyncSession, ctx: Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
        answer, row = await action(db, ctx)
        return answer, (await supervision.action_bodies(db, [row]))[0]

    ctx, (answer, body) = await machine.act(
        database, bus, candidate_id, run, now=now, staff=True,
        publish=lambda result: step_extra(result[0]),
    )  # fmt: skip
    await supervision.publish_bodies(bus, [body])
    return ctx, {"candidate_id": candidate_id, **answer, "action": body}


async def _record(
    db: AsyncSession,
    ctx: Ctx,
    kind: str,
    *,
    staff_id: int,
    reason: str,
    now: datetime,
    data: dict[str, Any],
    audit: dict[str, Any] | None = None,
    **event: Any,
) -> ConsoleAction:
    """The candidate event ``kind`` (with ``event``) and the console action of the same kind
    (supervision log and audit chain); the caller commits."""
    await flow.record_event(db, ctx.candidate.id, kind, now, by=staff_id, **event)
    return await supervision.record_action(
        db,
        sitting_id=ctx.sitting.id,
        kind=kind,
        staff_id=staff_id,
        candidate_id=ctx.candidate.id,
        reason=reason,
        data=data,
        at=now,
        audit=audit,
    )


def _end_pause(a: Attempt, now: datetime) -> float:
    """End the attempt's pause: its seconds are added to ``paused_seconds`` and returned."""
    seconds = max(0.0, (now - a.paused_at).total_seconds())
    a.paused_seconds = float(a.paused_seconds or 0.0) + seconds
    a.paused_at = None
    a.paused_by = None
    a.pause_reason = None
    return seconds


# ----------------------------------------------------------------------------- pause


async def pause(
    database: Database, bus: Bus, candidate_id: int, *, staff_id: int, reason: str, now: datetime
) -> tuple[Ctx, dict[str, Any]]:
    """Stop the candidate's clock (committed, then published)."""
    reason = clean_reason(reason)

    async def action(db: AsyncSession, ctx: Ctx) -> tuple[dict[str, Any], ConsoleAction]:
        return await _pause(db, ctx, staff_id=staff_id, reason=reason, now=now)

    return await _act(database, bus, candidate_id, action, now, lambda _: {"paused": True})


async def _pause(
    db: AsyncSession, ctx: Ctx, *, staff_id: int, reason: str, now: datetime
) -> tuple[dict[str, Any], ConsoleAction]:
    machine.check(ctx, "pause")
    a = ctx.attempt
    if a.paused_at is not None:
        raise Conflict("already_paused", "This candidate's exam is already paused. 已暂停。")
    end = await flow.end_of(db, ctx.sitting, ctx.candidate.id, a, now)
    if now >= end:
        raise Conflict("time_over", "This candidate's time is over. 该考生的考试时间已到。")
    left = (end - now).total_seconds()
    a.paused_at = now
    a.paused_by = staff_id
    a.pause_reason = reason
    a.updated_at = now
    row = await _record(
        db,
        ctx,
        "exam_paused",
        staff_id=staff_id,
        reason=reason,
        now=now,
        data={"seconds_left": round(left, 3)},
        seconds_left=left,
    )
    return {"paused": True, "seconds_left": left}, row


async def resume(
    database: Database,
    bus: Bus,
    candidate_id: int,
    *,
    staff_id: int,
    reason: str = "",
    now: datetime,
) -> tuple[Ctx, dict[str, Any]]:
    """Restart the clock: the end moves by the paused duration."""
    reason = clean_reason(reason, required=False)

    async def action(db: AsyncSession, ctx: Ctx) -> tuple[dict[str, Any], ConsoleAction]:
        return await _resume(db, ctx, staff_id=staff_id, reason=reason, now=now)

    return await _act(database, bus, candidate_id, action, now, lambda _: {"paused": False})


async def _resume(
    db: AsyncSession, ctx: Ctx, *, staff_id: int, reason: str, now: datetime
) -> tuple[dict[str, Any], ConsoleAction]:
    machine.check(ctx, "resume")
    a = ctx.attempt
    if a.paused_at is None:
        raise Conflict("not_paused", "This candidate's exam is not paused. 该考生未被暂停。")
    paused_since = a.paused_at
    seconds = _end_pause(a, now)
    a.updated_at = now
    end = await flow.end_of(db, ctx.sitting, ctx.candidate.id, a, now)
    row = await _record(
        db,
        ctx,
        "exam_resumed",
        staff_id=staff_id,
        reason=reason,
        now=now,
        data={
            "paused_since": paused_since.isoformat(),
            "paused_seconds": round(seconds, 3),
            "ends_at": end.isoformat(),
        },
        paused_seconds=seconds,
    )
    answer = {
        "paused": False,
        "paused_seconds": seconds,
        "ends_at": end.isoformat(),
        "seconds_left": (end - now).total_seconds(),
    }
    return answer, row


# ----------------------------------------------------------------------------- terminate


async def terminate(
    database: Database,
    bus: Bus,
    candidate_id: int,
    *,
    staff_id: int,
    category: str,
    reason: str,
    now: datetime,
) -> tuple[Ctx, dict[str, Any]]:
    """Handle a violation: a warning is recorded (the exam goes on, in any step before its
    end); the other categories end the candidate's exam at once (only while answering)."""
    cat = check_category(category)
    reason = clean_reason(reason)

    async def action(db: AsyncSession, ctx: Ctx) -> tuple[dict[str, Any], ConsoleAction]:
        return await _terminate(db, ctx, cat, staff_id=staff_id, reason=reason, now=now)

    def step_extra(answer: dict[str, Any]) -> dict[str, Any] | None:
        return {"category": cat.code} if answer["ended"] else None

    return await _act(database, bus, candidate_id, action, now, step_extra)


async def _terminate(
    db: AsyncSession,
    ctx: Ctx,
    cat: violations.Category,
    *,
    staff_id: int,
    reason: str,
    now: datetime,
) -> tuple[dict[str, Any], ConsoleAction]:
    a = ctx.attempt
    if not cat.ends_exam:
        machine.check(ctx, "warn")
        row = await _record(
            db,
            ctx,
            "discipline_warning",
            staff_id=staff_id,
            reason=reason,
            now=now,
            data={"category": cat.code, "category_title": cat.title, "ends_exam": False},
            audit={"category": cat.code},
        )
        return {"category": cat.code, "ended": False, "step": a.step}, row

    machine.check(ctx, "terminate")
    if a.paused_at is not None:  # the pause ends with the exam
        _end_pause(a, now)
    machine.move(ctx, "terminate", now)
    a.terminated_at = now
    a.terminated_by = staff_id
    a.termination_category = cat.code
    a.termination_reason = reason
    a.submitted_at = now  # the paper is collected as it stands
    a.submit_kind = "terminated"
    a.updated_at = now
    # the answers are kept and scored for the record; the result follows the category
    await score_attempt(db, a, ctx.rules.pass_score)
    a.grading_pending = False
    a.passed = False
    a.total_score = 0.0 if cat.score == "zero" else None
    row = await _record(
        db,
        ctx,
        "exam_terminated",
        staff_id=staff_id,
        reason=reason,
        now=now,
        data={
            "category": cat.code,
            "category_title": cat.title,
            "ends_exam": True,
            "objective_score": a.objective_score,
        },
        audit={"category": cat.code},
        category=cat.code,
    )
    return {"category": cat.code, "ended": True, "step": a.step}, row
