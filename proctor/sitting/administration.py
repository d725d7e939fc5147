"""The administration pages' actions (docs/api.md "Administration"), each one unit of work:
checked, done, committed, and the body the pages read (issue 19). The routes
(proctor.api.admin) parse, authorise, call these and answer; the command line
(proctor.sitting.commands) runs the same domain code in its own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import NotFound
from proctor.evidence.storage import EvidenceStorage
from proctor.evidence.zones import zone_body
from proctor.sitting import bank, papers, roster, scoring
from proctor.sitting.policy import rules_of
from proctor.sitting.sittings import candidate_facts, create_sitting, create_staff, update_sitting
from proctor.store.lookup import get_sitting
from proctor.store.order import roster_order
from proctor.store.tables import Attempt, Candidate, Question, Sitting
from proctor.vision.identity_pool import IdentityChecker

#: candidate id → (room id, room name, seat), as proctor.invigilation.rooms.seats_of gives it
Seats = dict[int, tuple[int, str, int]]


# ------------------------------------------------------------------------- sittings


async def sitting_body(db: AsyncSession, s: Sitting) -> dict[str, Any]:
    registered = await db.scalar(select(func.count()).where(Candidate.sitting_id == s.id))
    steps = dict(
        (
            await db.execute(
                select(Attempt.step, func.count())
                .where(Attempt.sitting_id == s.id)
                .group_by(Attempt.step)
            )
        ).all()
    )
    paper = await papers.get_paper(db, s.id)
    return {
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "exam": s.exam,
        "subject": s.subject,
        "password": s.password,
        "starts_at": s.starts_at.isoformat(),
        "ends_at": s.ends_at.isoformat(),
        **zone_body(s, s.starts_at),  # the page shows times in the sitting's zone
        "analysis_fps": s.analysis_fps,
        "flow": rules_of(s.kind, s.flow).as_dict(),
        "registered": registered or 0,
        "steps": steps,
        "paper": None
        if paper is None
        else {
            "questions": len(paper.items),
            "blueprint": paper.blueprint,
            "created_at": paper.created_at.isoformat() if paper.created_at else None,
        },
    }


async def sittings(db: AsyncSession) -> list[dict[str, Any]]:
    """Every sitting, the latest first."""
    rows = await db.scalars(select(Sitting).order_by(Sitting.starts_at.desc()))
    return [await sitting_body(db, s) for s in rows]


async def sitting(db: AsyncSession, sitting_id: int) -> dict[str, Any]:
    return await sitting_body(db, await get_sitting(db, sitting_id))


async def new_sitting(db: AsyncSession, *, by: int | None, **fields: Any) -> dict[str, Any]:
    """Create a sitting (``fields``: those of ``create_sitting``) and commit."""
    s = await create_sitting(db, **fields, by=by)
    await db.commit()
    return await sitting_body(db, s)


async def change_sitting(
    db: AsyncSession, sitting_id: int, *, by: int | None, now: datetime, **changes: Any
) -> dict[str, Any]:
    """Change a sitting (``changes``: those of ``update_sitting``) and commit."""
    s = await update_sitting(db, sitting_id, **changes, by=by, now=now)
    await db.commit()
    return await sitting_body(db, s)


# ------------------------------------------------------------------------- roster


async def import_roster(
    db: AsyncSession, storage: EvidenceStorage, checker: IdentityChecker | None, **options: Any
) -> dict[str, Any]:
    """Import a roster (all or nothing, :func:`proctor.sitting.roster.import_roster`, which
    takes the ``options``: the sitting, the file, the photos, the time, by whom) and
    commit."""
    result = await roster.import_roster(db, storage, checker, **options)
    await db.commit()
    return result.as_dict()


async def roster_rows(db: AsyncSession, sitting_id: int, seats: Seats) -> list[dict[str, Any]]:
    """The sitting's candidates by seat, then in import order (issue 23), each with their
    step and room (None: in no room, no invigilator sees them). ``seats``: where the
    candidates sit (proctor.invigilation.rooms.seats_of)."""
    await get_sitting(db, sitting_id)
    rows = await db.execute(
        select(Candidate, Attempt)
        .outerjoin(Attempt, Attempt.candidate_id == Candidate.id)
        .where(Candidate.sitting_id == sitting_id)
        .order_by(Candidate.id)
    )
    order = await roster_order(db, sitting_id)
    return [
        {
            **candidate_facts(c),
            "step": a.step if a else None,
            "room": (
                {"id": seats[c.id][0], "name": seats[c.id][1], "seat": seats[c.id][2]}
                if c.id in seats
                else None
            ),
        }
        for c, a in sorted(rows.all(), key=lambda r: order(r[0].id))
    ]


# ------------------------------------------------------------------------- banks, papers


async def import_bank(
    db: AsyncSession, data: bytes, filename: str, bank_name: str | None, *, by: int | None
) -> dict[str, Any]:
    """Import questions into a bank (all or nothing, proctor.sitting.bank) and commit."""
    result = await bank.import_bank(db, data, filename, bank_name, by=by)
    await db.commit()
    return result.as_dict()


async def assemble_paper(
    db: AsyncSession, sitting_id: int, blueprint: Any, *, staff_id: int | None
) -> dict[str, Any]:
    """Draw the sitting's paper by ``blueprint`` (proctor.sitting.papers) and commit."""
    await papers.assemble(db, sitting_id, blueprint, staff_id=staff_id)
    await db.commit()
    return await paper_body(db, sitting_id)


async def paper_body(db: AsyncSession, sitting_id: int) -> dict[str, Any]:
    await get_sitting(db, sitting_id)
    paper = await papers.get_paper(db, sitting_id)
    if paper is None:
        raise NotFound("no_paper", "This sitting has no paper yet.")
    qs = await papers.questions_of(db, [int(i["question_id"]) for i in paper.items])
    return {
        "sitting_id": sitting_id,
        "blueprint": paper.blueprint,
        "total_points": sum(float(i["points"]) for i in paper.items),
        "in_use": await papers.paper_in_use(db, sitting_id),
        "questions": [
            _question_body(qs[int(i["question_id"])], float(i["points"]), int(i["section"]))
            for i in paper.items
        ],
    }


def _question_body(q: Question, points: float, section: int) -> dict[str, Any]:
    return {
        "id": q.id,
        "bank": q.bank,
        "external_id": q.external_id,
        "type": q.type,
        "knowledge_point": q.knowledge_point,
        "difficulty": q.difficulty,
        "stem": q.stem,
        "options": q.options,
        "answer": q.answer,
        "points": points,
        "section": section,
    }


# ------------------------------------------------------------------------- results, grading


async def results_csv(db: AsyncSession, sitting_id: int) -> str:
    await get_sitting(db, sitting_id)
    return await scoring.results_csv(db, sitting_id)


async def answers_csv(db: AsyncSession, sitting_id: int) -> str:
    await get_sitting(db, sitting_id)
    return await scoring.answers_csv(db, sitting_id)


async def grading_queue(db: AsyncSession, sitting_id: int) -> list[dict[str, Any]]:
    await get_sitting(db, sitting_id)
    return await scoring.grading_queue(db, sitting_id)


async def grade(
    db: AsyncSession, *, answer_id: int, points: float, note: str, staff_id: int, now: datetime
) -> dict[str, Any]:
    """Grade a short answer (proctor.sitting.scoring) and commit."""
    result = await scoring.grade(
        db, answer_id=answer_id, points=points, note=note, staff_id=staff_id, now=now
    )
    await db.commit()
    return result


# ------------------------------------------------------------------------- staff


async def new_staff(
    db: AsyncSession,
    *,
    username: str,
    password: str,
    display_name: str,
    role: str,
    by: tuple[int, str] | None,
) -> dict[str, Any]:
    """Create a staff account (``by``: the creator's id and role) and commit."""
    user = await create_staff(
        db, username=username, password=password, display_name=display_name, role=role, by=by
    )
    await db.commit()
    return {"id": user.id, "username": user.username, "role": user.role}
