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


async def _commit_publish(
    bus: Bus,
    db: AsyncSession,
    ctx: Ctx,
    now: datetime,
    row: ConsoleAction,
    answer: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """Commit, then publish the candidate's step and the console action; the answer is
    ``answer`` with the candidate's id and the action's body."""
    await db.commit()
    await machine.publish_step(bus, ctx, now, **extra)
    (action,) = await supervision.publish_actions(db, bus, [row])
    return {"candidate_id": ctx.candidate.id, **answer, "action": action}


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
    db: AsyncSession, bus: Bus, ctx: Ctx, *, staff_id: int, reason: str, now: datetime
) -> dict[str, Any]:
    """Stop the candidate's clock (committed, then published)."""
    reason = clean_reason(reason)
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
    answer = {"paused": True, "seconds_left": left}
    return await _commit_publish(bus, db, ctx, now, row, answer, paused=True)


async def resume(
    db: AsyncSession, bus: Bus, ctx: Ctx, *, staff_id: int, reason: str = "", now: datetime
) -> dict[str, Any]:
    """Restart the clock: the end moves by the paused duration."""
    reason = clean_reason(reason, required=False)
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
    return await _commit_publish(bus, db, ctx, now, row, answer, paused=False)


# ----------------------------------------------------------------------------- terminate


async def terminate(
    db: AsyncSession,
    bus: Bus,
    ctx: Ctx,
    *,
    staff_id: int,
    category: str,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    """Handle a violation: a warning is recorded (the exam goes on, in any step before its
    end); the other categories end the candidate's exam at once (only while answering)."""
    cat = check_category(category)
    reason = clean_reason(reason)
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
        await db.commit()
        (action,) = await supervision.publish_actions(db, bus, [row])
        return {
            "candidate_id": ctx.candidate.id,
            "category": cat.code,
            "ended": False,
            "step": a.step,
            "action": action,
        }

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
    answer = {"category": cat.code, "ended": True, "step": a.step}
    return await _commit_publish(bus, db, ctx, now, row, answer, category=cat.code)
