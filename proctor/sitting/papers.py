"""Papers: assembled from a bank by a blueprint, then shown to each candidate in an order of
their own.

A blueprint says where the questions come from and how many of each kind::

    {"bank": "electrician-4-2026", "occupation": "电工", "level": "四级",
     "sections": [
        {"type": "single", "count": 20, "points": 2},
        {"type": "multiple", "count": 10, "points": 3, "knowledge_point": "安全用电"},
        {"type": "true_false", "count": 20, "points": 1},
        {"type": "short", "count": 1, "points": 10}
     ]}

``occupation``, ``level`` (and per section ``knowledge_point``, ``difficulty``) narrow the
draw when given. The points of all questions add up to 100. Questions are drawn at random
without repeats; every candidate gets the same questions, each section's questions in a
shuffled order, and the options of each choice question shuffled (both per sitting rules
``shuffle_questions`` / ``shuffle_options``). The order is drawn once, when the candidate
starts answering, and kept with the attempt.
"""

from __future__ import annotations

import math
import random
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict, Invalid, NotFound
from proctor.sitting.bank import TYPES
from proctor.sitting.policy import FlowRules
from proctor.store.tables import Attempt, Paper, Question, Sitting

TOTAL_POINTS = 100.0
MAX_SECTIONS = 20


def validate_blueprint(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Invalid("bad_blueprint", "A blueprint is an object with a bank and sections.")
    bank = str(raw.get("bank") or "").strip()
    if not bank:
        raise Invalid("bad_blueprint", "The blueprint names no bank.")
    sections = raw.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= MAX_SECTIONS:
        raise Invalid("bad_blueprint", f"The blueprint needs 1 to {MAX_SECTIONS} sections.")
    out = []
    total = 0.0
    for i, section in enumerate(sections, start=1):
        if not isinstance(section, dict):
            raise Invalid("bad_blueprint", f"Section {i} is not an object.")
        qtype = section.get("type")
        if qtype not in TYPES:
            raise Invalid("bad_blueprint", f"Section {i}: type must be one of {', '.join(TYPES)}.")
        count, points = section.get("count"), section.get("points")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 500:
            raise Invalid("bad_blueprint", f"Section {i}: count must be 1 to 500.")
        if (
            not isinstance(points, int | float)
            or isinstance(points, bool)
            or not math.isfinite(points)
            or not 0 < points <= 100
        ):
            raise Invalid("bad_blueprint", f"Section {i}: points per question must be 0-100.")
        difficulty = section.get("difficulty")
        if difficulty is not None and (not isinstance(difficulty, int) or not 1 <= difficulty <= 5):
            raise Invalid("bad_blueprint", f"Section {i}: difficulty must be 1 to 5.")
        total += count * points
        out.append(
            {
                "type": qtype,
                "count": count,
                "points": float(points),
                "knowledge_point": str(section.get("knowledge_point") or "").strip() or None,
                "difficulty": difficulty,
            }
        )
    if abs(total - TOTAL_POINTS) > 1e-6:
        raise Invalid(
            "bad_blueprint",
            f"The questions' points add up to {total:g}, not {TOTAL_POINTS:g}. 卷面总分须为100分。",
        )
    return {
        "bank": bank,
        "occupation": str(raw.get("occupation") or "").strip() or None,
        "level": str(raw.get("level") or "").strip() or None,
        "sections": out,
    }


async def paper_in_use(db: AsyncSession, sitting_id: int) -> bool:
    return bool(
        await db.scalar(
            select(Attempt.id).where(
                Attempt.sitting_id == sitting_id, Attempt.question_order.is_not(None)
            )
        )
    )


async def assemble(
    db: AsyncSession,
    sitting_id: int,
    blueprint: Any,
    *,
    staff_id: int | None = None,
    rng: random.Random | None = None,
) -> Paper:
    """Draw the sitting's paper (replacing an earlier one as long as no candidate has
    started answering it)."""
    sitting = await db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound("unknown_sitting", f"No sitting {sitting_id}.")
    if sitting.kind == "device_check":
        raise Invalid("no_paper_for_device_check", "A device check has no paper.")
    bp = validate_blueprint(blueprint)
    if await paper_in_use(db, sitting_id):
        raise Conflict(
            "paper_in_use",
            "Candidates have started answering this paper; it can no longer change.",
        )
    rng = rng or random.SystemRandom()
    taken: set[int] = set()
    items = []
    for i, section in enumerate(bp["sections"], start=1):
        query = select(Question.id).where(
            Question.bank == bp["bank"], Question.type == section["type"]
        )
        if bp["occupation"]:
            query = query.where(Question.occupation == bp["occupation"])
        if bp["level"]:
            query = query.where(Question.level == bp["level"])
        if section["knowledge_point"]:
            query = query.where(Question.knowledge_point == section["knowledge_point"])
        if section["difficulty"]:
            query = query.where(Question.difficulty == section["difficulty"])
        pool = sorted(set(await db.scalars(query)) - taken)
        if len(pool) < section["count"]:
            what = section["type"] + (
                f", knowledge point {section['knowledge_point']}"
                if section["knowledge_point"]
                else ""
            )
            raise Conflict(
                "bank_too_small",
                f"Section {i} ({what}) needs {section['count']} questions; bank "
                f"{bp['bank']!r} has {len(pool)} that fit. 题库中符合条件的试题不足。",
            )
        chosen = rng.sample(pool, section["count"])
        taken.update(chosen)
        items.extend(
            {"question_id": qid, "points": section["points"], "section": i} for qid in chosen
        )
    paper = await db.scalar(select(Paper).where(Paper.sitting_id == sitting_id))
    if paper is None:
        paper = Paper(sitting_id=sitting_id)
        db.add(paper)
    paper.blueprint = bp
    paper.items = items
    paper.seed = secrets.token_hex(8)
    paper.created_by = staff_id
    await db.flush()
    return paper


async def get_paper(db: AsyncSession, sitting_id: int) -> Paper | None:
    return await db.scalar(select(Paper).where(Paper.sitting_id == sitting_id))


async def questions_of(db: AsyncSession, ids: list[int]) -> dict[int, Question]:
    return {q.id: q for q in await db.scalars(select(Question).where(Question.id.in_(ids)))}


def candidate_order(
    paper: Paper, questions: dict[int, Question], candidate_id: int, rules: FlowRules
) -> list[dict[str, Any]]:
    """The candidate's order: sections in blueprint order, questions shuffled inside a
    section, options shuffled; deterministic for (paper, candidate)."""
    rng = random.Random(f"{paper.seed}:{candidate_id}")
    by_section: dict[int, list[dict[str, Any]]] = {}
    for item in paper.items:
        by_section.setdefault(int(item.get("section", 1)), []).append(item)
    order = []
    for section in sorted(by_section):
        items = list(by_section[section])
        if rules.shuffle_questions:
            rng.shuffle(items)
        for item in items:
            q = questions[int(item["question_id"])]
            keys = [o["key"] for o in q.options]
            if rules.shuffle_options and q.type in ("single", "multiple"):
                rng.shuffle(keys)
            order.append({"q": q.id, "o": keys, "p": float(item["points"])})
    return order


def present(order: list[dict[str, Any]], questions: dict[int, Question]) -> list[dict[str, Any]]:
    """The questions as the candidate sees them: no answers; options in the candidate's
    order, each with its own key (the answer is given in keys)."""
    out = []
    for number, entry in enumerate(order, start=1):
        q = questions[int(entry["q"])]
        texts = {o["key"]: o["text"] for o in q.options}
        out.append(
            {
                "id": q.id,
                "number": number,
                "type": q.type,
                "stem": q.stem,
                "points": entry["p"],
                "options": [{"key": k, "text": texts[k]} for k in entry["o"] if k in texts],
            }
        )
    return out
