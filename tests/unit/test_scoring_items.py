"""Objective items scored automatically: single and true/false right or wrong, multiple
choice only when exactly the right options are chosen; unanswered items score 0; an
answered short item waits for a grader."""

from __future__ import annotations

import pytest

from proctor.sitting.scoring import item_points
from proctor.store.tables import Question


def q(qtype: str, answer) -> Question:
    return Question(type=qtype, answer=answer, options=[], stem="?", bank="b", external_id="1")


@pytest.mark.parametrize(
    ("question", "value", "points"),
    [
        (q("single", "B"), "B", 4.0),
        (q("single", "B"), "C", 0.0),
        (q("single", "B"), None, 0.0),
        (q("multiple", ["A", "C"]), ["C", "A"], 4.0),
        (q("multiple", ["A", "C"]), ["A"], 0.0),
        (q("multiple", ["A", "C"]), ["A", "B", "C"], 0.0),
        (q("true_false", True), True, 4.0),
        (q("true_false", True), False, 0.0),
        (q("true_false", False), None, 0.0),
        (q("short", "ref"), "an answer", None),
        (q("short", "ref"), "", 0.0),
        (q("short", "ref"), None, 0.0),
    ],
)
def test_item_points(question: Question, value, points) -> None:
    assert item_points(question, value, 4.0) == points
