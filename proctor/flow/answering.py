"""Steps 6-8: the waiting room's start, answering, handing in; time extensions and the
automatic hand-in at the end.

Answers are saved one question at a time, each in its own transaction; the save is
acknowledged only after the commit, so an acknowledged answer survives a crash or restart
of the server. ``seq`` is the page's counter per question: a save carrying an older
counter than the stored one (a retry arriving after a newer save) changes nothing and
gets the stored state back.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict, Invalid, NotFound
from proctor.events.bus import Bus, candidate_channel, sitting_channel
from proctor.evidence import chain
from proctor.flow import timing
from proctor.flow.machine import ENDED, Ctx, allowed, check, move
from proctor.flow.steps import end_of, paused_seconds, record_event
from proctor.sitting.papers import candidate_order, get_paper, present, questions_of
from proctor.sitting.policy import rules_of
from proctor.sitting.scoring import score_attempt
from proctor.store.db import Database
from proctor.store.tables import Answer, Attempt, Candidate, Question, Sitting, TimeExtension

log = logging.getLogger(__name__)

MAX_SHORT_ANSWER = 5000
MAX_EXTENSION_MINUTES = 24 * 60

TIME_OVER = Conflict(
    "time_over",
    "考试时间已到，试卷已自动提交。 Time is up: your paper has been handed in automatically.",
)


# ------------------------------------------------------------------------- start


async def start_answering(db: AsyncSession, ctx: Ctx, now: datetime) -> None:
    """From the waiting room to answering, once the exam has started; draws the
    candidate's order of questions and options."""
    check(ctx, "start")
    timing.check_start(now, ctx.sitting.starts_at)
    end = await end_of(db, ctx.sitting, ctx.candidate.id)
    if now >= end:
        raise Conflict("sitting_over", "本场考试已结束。 This sitting has ended.")
    paper = await get_paper(db, ctx.sitting.id)
    if paper is None:
        raise Conflict(
            "no_paper",
            "试卷尚未准备好，请联系监考老师。 The paper is not ready yet: tell the invigilator.",
        )
    questions = await questions_of(db, [int(i["question_id"]) for i in paper.items])
    a = ctx.attempt
    a.question_order = candidate_order(paper, questions, ctx.candidate.id, ctx.rules)
    a.answering_started_at = now
    move(ctx, "start", now)
    await record_event(db, ctx.candidate.id, "answering_started", now)


# ------------------------------------------------------------------------- the paper


async def paper_body(db: AsyncSession, ctx: Ctx) -> dict[str, Any]:
    check(ctx, "read_paper")
    order = ctx.attempt.question_order or []
    questions = await questions_of(db, [int(e["q"]) for e in order])
    answers = await db.scalars(select(Answer).where(Answer.attempt_id == ctx.attempt.id))
    return {
        "questions": present(order, questions),
        "answers": {
            str(a.question_id): {"value": a.value, "seq": a.seq, "saved_at": a.saved_at.isoformat()}
            for a in answers
        },
        "flagged": list(ctx.attempt.flagged or []),
    }


async def flag_question(
    db: AsyncSession, ctx: Ctx, question_id: int, flagged: bool, now: datetime
) -> dict[str, Any]:
    """Flag a question of the paper for review (标记), or clear the flag; kept with the
    attempt so that a reload (or another computer) shows it. Bounded by the paper: only its
    questions, each at most once. Taken while answering, as answers are."""
    check(ctx, "answer")  # taken when an answer would be: answering, not paused or ended
    await _time_check(db, ctx, now)
    order = [int(e["q"]) for e in ctx.attempt.question_order or []]
    if question_id not in order:
        raise NotFound("unknown_question", f"Question {question_id} is not on your paper.")
    current = {int(q) for q in ctx.attempt.flagged or []}
    if flagged:
        current.add(question_id)
    else:
        current.discard(question_id)
    ctx.attempt.flagged = [q for q in order if q in current]  # a new list: JSON change seen
    ctx.attempt.updated_at = now
    return {"question_id": question_id, "flagged": flagged, "all": ctx.attempt.flagged}


def clean_value(question: Question, value: Any) -> Any:
    """The stored form of an answer (None: not answered); raises ``bad_answer``."""
    if value is None:
        return None
    keys = {o["key"] for o in question.options}
    if question.type == "single":
        if not isinstance(value, str) or value not in keys:
            raise Invalid("bad_answer", "Choose one of the options. 请选择一个选项。")
        return value
    if question.type == "multiple":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Invalid("bad_answer", "Give the chosen options as a list. 请选择选项。")
        if not set(value) <= keys or len(set(value)) != len(value):
            raise Invalid("bad_answer", "Each option at most once, and only this question's.")
        return sorted(value) or None
    if question.type == "true_false":
        if not isinstance(value, bool):
            raise Invalid("bad_answer", "Answer true or false. 请选择对或错。")
        return value
    if not isinstance(value, str):
        raise Invalid("bad_answer", "A short answer is a text.")
    if len(value) > MAX_SHORT_ANSWER:
        raise Invalid("bad_answer", f"A short answer holds at most {MAX_SHORT_ANSWER} characters.")
    return value if value.strip() else None


async def _time_check(db: AsyncSession, ctx: Ctx, now: datetime) -> datetime:
    """The candidate's end; hands the paper in (and raises ``time_over``) when answers are
    no longer taken."""
    end = await end_of(db, ctx.sitting, ctx.candidate.id, ctx.attempt, now)
    if not timing.answers_open(now, end, ctx.rules):
        await hand_in(db, ctx, now, "auto")
        await db.commit()
        raise TIME_OVER
    return end


async def _upsert(
    db: AsyncSession, attempt_id: int, question_id: int, value: Any, seq: int, now: datetime
) -> None:
    """Insert the answer, or update it if ``seq`` is newer than the stored one: one
    statement, so two saves racing for the same question cannot both insert."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Answer).values(
        attempt_id=attempt_id, question_id=question_id, value=value, seq=seq, saved_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["attempt_id", "question_id"],
        set_={"value": stmt.excluded.value, "seq": stmt.excluded.seq, "saved_at": now},
        where=Answer.seq < stmt.excluded.seq,
    )
    await db.execute(stmt)


async def save_answer(
    db: AsyncSession, ctx: Ctx, question_id: int, value: Any, seq: int, now: datetime
) -> dict[str, Any]:
    """Store one answer (not committed: the caller commits, then acknowledges); refused
    while the exam is paused (``exam_paused``) or after it was ended (``exam_terminated``)."""
    check(ctx, "answer")
    await _time_check(db, ctx, now)
    entry = next((e for e in ctx.attempt.question_order or [] if int(e["q"]) == question_id), None)
    if entry is None:
        raise NotFound("unknown_question", f"Question {question_id} is not on your paper.")
    question = await db.get(Question, question_id)
    assert question is not None
    stored = clean_value(question, value)
    await _upsert(db, ctx.attempt.id, question_id, stored, seq, now)
    row = await db.scalar(
        select(Answer)
        .where(Answer.attempt_id == ctx.attempt.id, Answer.question_id == question_id)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    ctx.attempt.updated_at = now
    return {
        "question_id": question_id,
        "value": row.value,
        "seq": row.seq,
        "saved_at": row.saved_at.isoformat(),
        "stale": row.seq != seq,
    }


# ------------------------------------------------------------------------- hand in


async def hand_in(db: AsyncSession, ctx: Ctx, now: datetime, kind: str) -> None:
    a = ctx.attempt
    move(ctx, "submit" if kind == "candidate" else "auto_submit", now)
    a.submitted_at = now
    a.submit_kind = kind
    a.updated_at = now
    await score_attempt(db, a, ctx.rules.pass_score)
    await record_event(db, ctx.candidate.id, "submitted", now, submit_kind=kind)
    await db.flush()
    await chain.append(
        db,
        "paper.submitted",
        actor=chain.candidate_actor(ctx.candidate.id) if kind == "candidate" else chain.SYSTEM,
        payload={"record": await chain.paper_record_of(db, a), "submit_kind": kind},
        sitting_id=ctx.sitting.id,
        candidate_id=ctx.candidate.id,
        subject_type="paper",
        subject_id=a.id,
    )


async def submit(db: AsyncSession, ctx: Ctx, now: datetime) -> None:
    """The candidate hands in: refused before the earliest-submit time (the message says
    how long is left; paused time does not count as answering)."""
    check(ctx, "submit")
    await _time_check(db, ctx, now)
    assert ctx.attempt.answering_started_at is not None
    timing.check_submit(
        now, ctx.attempt.answering_started_at, ctx.rules, paused_seconds(ctx.attempt, now)
    )
    await hand_in(db, ctx, now, "candidate")


async def auto_submit_due(database: Database, now: datetime) -> list[tuple[int, int]]:
    """Hand in every paper whose time (with extensions and the grace) is over; returns
    (sitting id, candidate id) of each, committed. A paused exam is never handed in: its
    clock stands still. Each paper is handed in by its own transaction on the database
    writer thread (at a sitting's end all its papers fall due together, while the last
    answers are being saved)."""
    async with database.session() as db:
        rows = await db.execute(
            select(Attempt.id, Candidate.id, Sitting.id)
            .join(Candidate, Candidate.id == Attempt.candidate_id)
            .join(Sitting, Sitting.id == Attempt.sitting_id)
            .where(
                Attempt.step.in_(allowed("auto_submit")),
                Attempt.paused_at.is_(None),
                Sitting.ends_at < now,
            )
        )
        due = rows.all()

    async def hand_in_due(db: AsyncSession, attempt_id: int) -> bool:
        locked = await db.scalar(select(Attempt).where(Attempt.id == attempt_id).with_for_update())
        if (
            locked is None
            or locked.step not in allowed("auto_submit")
            or locked.paused_at is not None
        ):
            return False
        candidate = await db.get(Candidate, locked.candidate_id)
        sitting = await db.get(Sitting, locked.sitting_id)
        rules = rules_of(sitting.kind, sitting.flow)
        end = await end_of(db, sitting, candidate.id, locked, now)
        if timing.answers_open(now, end, rules):
            return False
        await hand_in(db, Ctx(candidate, sitting, locked, rules), end, "auto")
        return True

    done = []
    for attempt_id, candidate_id, sitting_id in due:
        if await database.write(lambda db, a=attempt_id: hand_in_due(db, a)):
            done.append((sitting_id, candidate_id))
            log.info(
                "paper handed in automatically at the end",
                extra={"candidate_id": candidate_id, "sitting_id": sitting_id},
            )
    return done


# ------------------------------------------------------------------------- extensions


async def extend(
    db: AsyncSession,
    *,
    sitting_id: int,
    candidate_ids: list[int] | None,
    minutes: float,
    reason: str,
    staff_id: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Give time back (顺延) to some candidates, or to the whole sitting when
    ``candidate_ids`` is None; a reason is required. Candidates who have handed in are
    refused (their paper is closed)."""
    sitting = await db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound("unknown_sitting", f"No sitting {sitting_id}.")
    reason = " ".join(reason.split())
    if not 2 <= len(reason) <= 500:
        raise Invalid("reason_required", "Give the reason (2-500 characters). 请填写延时原因。")
    if not 0 < minutes <= MAX_EXTENSION_MINUTES:
        raise Invalid("bad_extension", "Extend by more than 0 and at most 1440 minutes.")
    seconds = int(round(minutes * 60))
    rows = []
    if candidate_ids is None:
        rows.append(
            TimeExtension(
                sitting_id=sitting_id,
                candidate_id=None,
                seconds=seconds,
                reason=reason,
                granted_by=staff_id,
                granted_at=now,
            )
        )
    else:
        if not candidate_ids:
            raise Invalid("bad_extension", "Name at least one candidate.")
        for cid in dict.fromkeys(candidate_ids):
            cand = await db.get(Candidate, cid)
            if cand is None or cand.sitting_id != sitting_id:
                raise NotFound("unknown_candidate", f"Candidate {cid} is not in this sitting.")
            attempt = await db.scalar(select(Attempt).where(Attempt.candidate_id == cid))
            if attempt is not None and attempt.step in ENDED:
                raise Conflict(
                    "already_submitted",
                    f"{cand.name} has already handed in; their time cannot be extended.",
                )
            rows.append(
                TimeExtension(
                    sitting_id=sitting_id,
                    candidate_id=cid,
                    seconds=seconds,
                    reason=reason,
                    granted_by=staff_id,
                    granted_at=now,
                )
            )
    for row in rows:
        db.add(row)
        if row.candidate_id is not None:
            await record_event(
                db,
                row.candidate_id,
                "time_extended",
                now,
                seconds=seconds,
                reason=reason,
                by=staff_id,
            )
    await db.flush()
    for r in rows:
        await chain.append(
            db,
            "time.extended",
            actor=chain.staff_actor(staff_id),
            payload={"extension_id": r.id, "seconds": seconds, "reason": reason},
            sitting_id=sitting_id,
            candidate_id=r.candidate_id,
            subject_type="time_extension",
            subject_id=r.id,
        )
    return [
        {
            "id": r.id,
            "candidate_id": r.candidate_id,
            "seconds": r.seconds,
            "reason": r.reason,
            "granted_at": now.isoformat(),
        }
        for r in rows
    ]


async def grant_extension(db: AsyncSession, bus: Bus, **how: Any) -> list[dict[str, Any]]:
    """``extend(db, **how)``, committed, then told to the sitting's consoles and to each
    candidate's page (``time``)."""
    rows = await extend(db, **how)
    sitting_id = how["sitting_id"]
    await db.commit()
    message = {"type": "extension", "sitting_id": sitting_id, "extensions": rows}
    await bus.publish(sitting_channel(sitting_id), message)
    for row in rows:
        if row["candidate_id"] is not None:
            await bus.publish(candidate_channel(row["candidate_id"]), {**message, "type": "time"})
    return rows


async def list_extensions(
    db: AsyncSession, sitting_id: int, candidate_ids: set[int] | list[int]
) -> list[dict[str, Any]]:
    """The sitting's extensions: the whole sitting's and those of the given candidates."""
    rows = await db.scalars(
        select(TimeExtension)
        .where(
            TimeExtension.sitting_id == sitting_id,
            TimeExtension.candidate_id.is_(None) | TimeExtension.candidate_id.in_(candidate_ids),
        )
        .order_by(TimeExtension.granted_at)
    )
    return [
        {
            "id": r.id,
            "candidate_id": r.candidate_id,
            "seconds": r.seconds,
            "reason": r.reason,
            "granted_by": r.granted_by,
            "granted_at": r.granted_at.isoformat(),
        }
        for r in rows
    ]
