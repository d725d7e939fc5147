"""Issue 23, gap 6: a console socket passes a candidate's raised hand, its resolution and
a resolved info problem only to the consoles that see the candidate (their room); the
resolved messages carry the candidate at the top and inside ``problem`` (an info problem's
resolution used to reach every console of the sitting)."""

from __future__ import annotations

from proctor.api.console import SocketScope


def _scope(candidates: set[int]) -> SocketScope:
    scope = SocketScope(rt=None, who=None, sitting_id=1, room_id=None)  # type: ignore[arg-type]
    scope.candidates = candidates
    return scope


def test_raised_hands_reach_only_the_candidates_room() -> None:
    mine, theirs = _scope({1}), _scope({2})
    raised = {"type": "help_request", "id": 7, "candidate_id": 1, "text": "help"}
    resolved = {"type": "help_request_resolved", "candidate_id": 1, "problem": {"candidate_id": 1}}
    for msg in (raised, resolved):
        assert mine.sees(msg) and not theirs.sees(msg), msg


def test_a_resolution_without_the_top_level_candidate_is_still_filtered() -> None:
    msg = {"type": "info_problem_resolved", "problem": {"id": 3, "candidate_id": 1}}
    assert _scope({1}).sees(msg)
    assert not _scope({2}).sees(msg)
