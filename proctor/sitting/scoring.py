"""Scores on the 100-point scale: objective items automatically when the paper is handed in
(a multiple-choice item scores only when exactly the right options are chosen, the usual
rule of the certification exams), short answers by a grader; pass at the sitting's
``pass_score`` (60). Results and per-item answers export as CSV."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor import csvsafe
from proctor.errors import Conflict, Invalid, NotFound
from proctor.evidence import chain
from proctor.evidence.zones import local_iso, zone_of
from proctor.sitting import violations
from proctor.sitting.papers import questions_of
from proctor.sitting.policy import rules_of
from proctor.store.order import roster_order
from proctor.store.tables import Answer, Attempt, Candidate, Question, Sitting, StaffUser


def item_points(question: Question, value: Any, points: float) -> float | None:
    """Points for one answer; None when a person must grade it (an answered short item)."""
    if question.type == "short":
        return None if value not in (None, "") else 0.0
    if value is None:
        return 0.0
    if question.type == "single":
        return points if value == question.answer else 0.0
    if question.type == "multiple":
        right = isinstance(value, list) and sorted(value) == sorted(question.answer)
        return points if right else 0.0
    if question.type == "true_false":
        return points if value is question.answer else 0.0
    return 0.0


async def score_attempt(db: AsyncSession, attempt: Attempt, pass_score: float) -> None:
    """(Re)compute the attempt's scores from its answers: objective points now, short
    answers as graded so far."""
    order = attempt.question_order or []
    questions = await questions_of(db, [int(e["q"]) for e in order])
    answers = {
        a.question_id: a
        for a in await db.scalars(select(Answer).where(Answer.attempt_id == attempt.id))
    }
    objective = manual = 0.0
    pending = False
    for entry in order:
        q = questions[int(entry["q"])]
        answer = answers.get(q.id)
        value = answer.value if answer else None
        if q.type == "short":
            if answer is None or value in (None, ""):
                if answer is not None:
                    answer.points = 0.0
                continue
            if answer.graded_at is None:
                pending = True
            else:
                manual += answer.points or 0.0
            continue
        points = item_points(q, value, float(entry["p"])) or 0.0
        if answer is not None:
            answer.points = points
        objective += points
    attempt.objective_score = round(objective, 2)
    attempt.manual_score = round(manual, 2)
    attempt.grading_pending = pending
    if pending:
        attempt.total_score = None
        attempt.passed = None
    else:
        attempt.total_score = round(objective + manual, 2)
        attempt.passed = attempt.total_score >= pass_score


async def grading_queue(db: AsyncSession, sitting_id: int) -> list[dict[str, Any]]:
    """Answered short items of handed-in papers that no grader has scored yet (oldest
    first). Candidates are not named: graders see the answer, not the person."""
    rows = await db.execute(
        select(Answer, Attempt, Question)
        .join(Attempt, Attempt.id == Answer.attempt_id)
        .join(Question, Question.id == Answer.question_id)
        .where(
            Attempt.sitting_id == sitting_id,
            Attempt.step == "submitted",
            Question.type == "short",
            Answer.graded_at.is_(None),
        )
        .order_by(Attempt.submitted_at, Answer.id)
    )
    out = []
    for answer, attempt, question in rows.all():
        if answer.value in (None, ""):
            continue
        points = next(
            (float(e["p"]) for e in attempt.question_order or [] if int(e["q"]) == question.id),
            0.0,
        )
        out.append(
            {
                "answer_id": answer.id,
                "question_id": question.id,
                "stem": question.stem,
                "reference": question.answer,
                "answer": answer.value,
                "max_points": points,
            }
        )
    return out


async def grade(
    db: AsyncSession,
    *,
    answer_id: int,
    points: float,
    note: str,
    staff_id: int,
    now: datetime,
) -> dict[str, Any]:
    row = await db.get(Answer, answer_id)
    if row is None:
        raise NotFound("unknown_answer", f"No answer {answer_id}.")
    attempt = await db.scalar(select(Attempt).where(Attempt.id == row.attempt_id).with_for_update())
    question = await db.get(Question, row.question_id)
    assert attempt is not None and question is not None
    if question.type != "short":
        raise Conflict("not_gradable", "Only short answers are graded by hand.")
    if attempt.step != "submitted":
        raise Conflict("not_submitted", "This paper has not been handed in yet.")
    max_points = next(
        (float(e["p"]) for e in attempt.question_order or [] if int(e["q"]) == question.id), 0.0
    )
    if not 0 <= points <= max_points:
        raise Invalid("bad_points", f"Points must be between 0 and {max_points:g}.")
    row.points = float(points)
    row.graded_by = staff_id
    row.graded_at = now
    row.grade_note = note.strip()[:2000] or None
    sitting = await db.get(Sitting, attempt.sitting_id)
    assert sitting is not None
    await score_attempt(db, attempt, rules_of(sitting.kind, sitting.flow).pass_score)
    await chain.append(
        db,
        "answer.graded",
        actor=chain.staff_actor(staff_id),
        payload={
            "answer_id": row.id,
            "question_id": row.question_id,
            "answer_sha256": chain.text_sha256(chain.canonical_json(row.value)),
            "points": row.points,
            "note_sha256": chain.text_sha256(row.grade_note),
            "total_score": attempt.total_score,
            "passed": attempt.passed,
            "record": await chain.paper_record_of(db, attempt),
        },
        sitting_id=attempt.sitting_id,
        candidate_id=attempt.candidate_id,
        subject_type="paper",
        subject_id=attempt.id,
    )
    return {
        "answer_id": row.id,
        "points": row.points,
        "attempt": {
            "candidate_id": attempt.candidate_id,
            "total_score": attempt.total_score,
            "grading_pending": attempt.grading_pending,
            "passed": attempt.passed,
        },
    }


async def results(db: AsyncSession, sitting_id: int) -> list[dict[str, Any]]:
    """One row per registered candidate, whether they came or not."""
    sitting = await db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound("unknown_sitting", f"No sitting {sitting_id}.")
    rows = await db.execute(
        select(Candidate, Attempt)
        .outerjoin(Attempt, Attempt.candidate_id == Candidate.id)
        .where(Candidate.sitting_id == sitting_id)
        .order_by(Candidate.id)
    )
    admitted_by = {u.id: u.username for u in await db.scalars(select(StaffUser))}
    order = await roster_order(db, sitting_id)
    zone = zone_of(sitting)
    out = []
    for cand, att in sorted(rows.all(), key=lambda r: order(r[0].id)):
        out.append(
            {
                "candidate_id": cand.id,
                "name": cand.name,
                "id_number": cand.id_number,
                "occupation": cand.occupation,
                "level": cand.level,
                "step": att.step if att else "absent",
                "identity": (
                    None
                    if att is None or att.identity_method is None
                    else (
                        f"manual by {admitted_by.get(att.identity_admitted_by, '?')}: "
                        f"{att.identity_admit_reason}"
                        if att.identity_method == "manual"
                        else "face"
                    )
                ),
                "answering_started_at": local_iso(att.answering_started_at if att else None, zone),
                "submitted_at": local_iso(att.submitted_at if att else None, zone),
                "submit_kind": att.submit_kind if att else None,
                "objective_score": att.objective_score if att else None,
                "manual_score": att.manual_score if att else None,
                "total_score": att.total_score if att else None,
                "grading_pending": att.grading_pending if att else False,
                "passed": att.passed if att else None,
                # ended by an invigilator: the category marks the result (voided: 0 points;
                # score cancelled / disqualified: no score), never passed
                "termination": att.termination_category if att else None,
                "termination_title": (
                    violations.title_of(att.termination_category) if att else None
                ),
                "terminated_at": local_iso(att.terminated_at if att else None, zone),
            }
        )
    return out


RESULT_COLUMNS = [
    "candidate_id",
    "name",
    "id_number",
    "occupation",
    "level",
    "step",
    "identity",
    "answering_started_at",
    "submitted_at",
    "submit_kind",
    "objective_score",
    "manual_score",
    "total_score",
    "grading_pending",
    "passed",
    "termination",
    "terminated_at",
]


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    # BOM: Excel opens UTF-8 CSV with Chinese names correctly only with it
    buf.write("\ufeff")
    writer = csvsafe.dict_writer(buf, columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buf.getvalue()


async def results_csv(db: AsyncSession, sitting_id: int) -> str:
    return _csv(await results(db, sitting_id), RESULT_COLUMNS)


ANSWER_COLUMNS = [
    "candidate_id",
    "id_number",
    "name",
    "number",
    "question_id",
    "bank_id",
    "type",
    "answer",
    "correct_answer",
    "points",
    "max_points",
    "saved_at",
    "graded_by",
    "grade_note",
]


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return str(value)


async def answers_csv(db: AsyncSession, sitting_id: int) -> str:
    """Every item of every handed-in or answering paper, in the candidate's order."""
    rows = await db.execute(
        select(Candidate, Attempt)
        .join(Attempt, Attempt.candidate_id == Candidate.id)
        .where(Candidate.sitting_id == sitting_id, Attempt.question_order.is_not(None))
        .order_by(Candidate.id)
    )
    order = await roster_order(db, sitting_id)
    pairs = sorted(rows.all(), key=lambda r: order(r[0].id))
    zone = zone_of(await db.get(Sitting, sitting_id))
    qids = {int(e["q"]) for _, a in pairs for e in a.question_order or []}
    questions = await questions_of(db, sorted(qids))
    graders = {u.id: u.username for u in await db.scalars(select(StaffUser))}
    out = []
    for cand, att in pairs:
        answers = {
            a.question_id: a
            for a in await db.scalars(select(Answer).where(Answer.attempt_id == att.id))
        }
        for number, entry in enumerate(att.question_order or [], start=1):
            q = questions[int(entry["q"])]
            ans = answers.get(q.id)
            out.append(
                {
                    "candidate_id": cand.id,
                    "id_number": cand.id_number,
                    "name": cand.name,
                    "number": number,
                    "question_id": q.id,
                    "bank_id": f"{q.bank}/{q.external_id}",
                    "type": q.type,
                    "answer": _fmt(ans.value if ans else None),
                    "correct_answer": _fmt(q.answer),
                    "points": ans.points if ans and ans.points is not None else "",
                    "max_points": entry["p"],
                    "saved_at": local_iso(ans.saved_at, zone) if ans else "",
                    "graded_by": graders.get(ans.graded_by, "") if ans and ans.graded_by else "",
                    "grade_note": ans.grade_note if ans else "",
                }
            )
    return _csv(out, ANSWER_COLUMNS)
