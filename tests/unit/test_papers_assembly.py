"""Papers by blueprint: validation (points add up to 100), the draw by type and knowledge
point without repeats, a clear refusal when the bank is too small, a per-candidate order of
questions and options that is stable for the candidate and differs between candidates, and
no change once answering has begun."""

from __future__ import annotations

import json
import random

import pytest
import pytest_asyncio

from proctor.errors import Conflict, Invalid
from proctor.evidence.storage import EvidenceStorage
from proctor.sitting import bank
from proctor.sitting.papers import (
    assemble,
    candidate_order,
    present,
    questions_of,
    validate_blueprint,
)
from proctor.sitting.policy import defaults_for, make_rules
from proctor.sitting.sittings import add_candidate
from proctor.store.tables import Attempt
from tests.flowkit import BLUEPRINT_SECTIONS, T0, demo_questions, make_sitting, migrated_sqlite


@pytest_asyncio.fixture
async def db(tmp_path):
    async with migrated_sqlite(tmp_path) as database:
        async with database.transaction() as s:
            await bank.import_bank(s, json.dumps(demo_questions("q")).encode(), "q.json", "b")
        yield database


async def _sitting(db, kind: str = "formal") -> int:
    async with db.transaction() as s:
        sitting = await make_sitting(s, "s", f"pw-{kind}-{random.random()}", kind=kind)
        return sitting.id


@pytest.mark.parametrize(
    ("blueprint", "fragment"),
    [
        ({"sections": []}, "no bank"),
        ({"bank": "b", "sections": []}, "1 to 20 sections"),
        ({"bank": "b", "sections": [{"type": "essay", "count": 1, "points": 100}]}, "type"),
        ({"bank": "b", "sections": [{"type": "single", "count": 0, "points": 100}]}, "count"),
        ({"bank": "b", "sections": [{"type": "single", "count": 10, "points": 5}]}, "add up"),
        (
            {
                "bank": "b",
                "sections": [{"type": "single", "count": 1, "points": 100, "difficulty": 7}],
            },
            "difficulty",
        ),
        ("nonsense", "object"),
    ],
)
def test_blueprint_validation(blueprint, fragment: str) -> None:
    with pytest.raises(Invalid) as exc:
        validate_blueprint(blueprint)
    assert exc.value.code == "bad_blueprint" and fragment in exc.value.message


async def test_draw_by_blueprint(db) -> None:
    sid = await _sitting(db)
    blueprint = {
        "bank": "b",
        "sections": [
            {"type": "single", "count": 5, "points": 10, "knowledge_point": "kp1"},
            {"type": "single", "count": 5, "points": 6},
            {"type": "true_false", "count": 10, "points": 2},
        ],
    }
    async with db.transaction() as s:
        paper = await assemble(s, sid, blueprint, rng=random.Random(1))
        qs = await questions_of(s, [i["question_id"] for i in paper.items])
    ids = [i["question_id"] for i in paper.items]
    assert len(ids) == len(set(ids)) == 20
    assert sum(i["points"] for i in paper.items) == 100
    first = [qs[i["question_id"]] for i in paper.items if i["section"] == 1]
    assert all(q.knowledge_point == "kp1" and q.type == "single" for q in first)
    # all ten single questions are used: five kp1 in section 1, the other five in section 2
    assert {q.type for q in qs.values()} == {"single", "true_false"}


async def test_bank_too_small_and_device_check(db) -> None:
    sid = await _sitting(db)
    with pytest.raises(Conflict) as exc:
        async with db.transaction() as s:
            await assemble(
                s,
                sid,
                {
                    "bank": "b",
                    "sections": [
                        {"type": "multiple", "count": 6, "points": 10},
                        {"type": "single", "count": 4, "points": 10},
                    ],
                },
            )
    assert exc.value.code == "bank_too_small" and "needs 6" in exc.value.message
    with pytest.raises(Conflict) as exc:
        async with db.transaction() as s:
            await assemble(
                s,
                sid,
                {
                    "bank": "other",
                    "occupation": "x",
                    "sections": [{"type": "single", "count": 1, "points": 100}],
                },
            )
    assert "has 0" in exc.value.message
    device = await _sitting(db, "device_check")
    with pytest.raises(Invalid):
        async with db.transaction() as s:
            await assemble(s, device, {"bank": "b", "sections": BLUEPRINT_SECTIONS})


async def test_per_candidate_order(db) -> None:
    sid = await _sitting(db)
    async with db.transaction() as s:
        paper = await assemble(s, sid, {"bank": "b", "sections": BLUEPRINT_SECTIONS})
        qs = await questions_of(s, [i["question_id"] for i in paper.items])
    rules = defaults_for("formal")
    a1, a2 = candidate_order(paper, qs, 1, rules), candidate_order(paper, qs, 1, rules)
    b = candidate_order(paper, qs, 2, rules)
    assert a1 == a2  # stable for one candidate
    assert [e["q"] for e in a1] != [e["q"] for e in b]
    assert sorted(e["q"] for e in a1) == sorted(e["q"] for e in b)
    types = [qs[e["q"]].type for e in a1]
    assert types == sorted(types, key=["single", "multiple", "true_false", "short"].index)
    options = {e["q"]: e["o"] for e in a1 if qs[e["q"]].type == "single"}
    assert any(o != ["A", "B", "C", "D"] for o in options.values())
    shown = present(a1, qs)
    assert [q["number"] for q in shown] == list(range(1, 27))
    assert all("answer" not in q for q in shown)
    assert shown[0]["options"][0]["key"] == a1[0]["o"][0]
    plain = candidate_order(
        paper, qs, 1, make_rules("formal", {"shuffle_questions": False, "shuffle_options": False})
    )
    assert [e["q"] for e in plain] == [i["question_id"] for i in paper.items]
    assert all(e["o"] in ([], ["A", "B", "C", "D"]) for e in plain)


async def test_paper_is_fixed_once_answering_began(db, tmp_path) -> None:
    sid = await _sitting(db)
    blueprint = {"bank": "b", "sections": BLUEPRINT_SECTIONS}
    async with db.transaction() as s:
        await assemble(s, sid, blueprint)
        await assemble(s, sid, blueprint)  # re-drawing before anyone starts is fine
    async with db.transaction() as s:
        c = await add_candidate(
            s, EvidenceStorage(tmp_path), sitting_id=sid, name="a", id_number="110101199001019999"
        )
        s.add(
            Attempt(
                candidate_id=c.id,
                sitting_id=sid,
                step="answering",
                logged_in_at=T0,
                identity_failures=0,
                grading_pending=False,
                updated_at=T0,
                question_order=[],
            )
        )
    with pytest.raises(Conflict) as exc:
        async with db.transaction() as s:
            await assemble(s, sid, blueprint)
    assert exc.value.code == "paper_in_use"
