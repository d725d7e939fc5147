"""The review's connection losses end with the candidate's exam (issue 23): a view that
goes when the candidate hands in (``media_ended``, or a ``media_lost`` after the hand-in
recorded before this was known) is no outage; a loss still open at the hand-in ends there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from proctor.review.timeline import connection_losses
from proctor.store.tables import CandidateEvent

T0 = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)


def ev(i: int, kind: str, view: str, minutes: float) -> CandidateEvent:
    return CandidateEvent(
        id=i, candidate_id=1, kind=kind, data={"view": view}, at=T0 + timedelta(minutes=minutes)
    )


def test_views_ended_with_the_exam_are_no_loss() -> None:
    events = [
        ev(1, "media_connected", "first", 0),
        ev(2, "media_connected", "second", 1),
        ev(3, "media_ended", "first", 30),
        ev(4, "media_ended", "second", 30),
    ]
    assert connection_losses(events, until=T0 + timedelta(hours=2)) == []


def test_a_loss_after_the_hand_in_is_ignored_and_an_open_one_ends_there() -> None:
    handed_in = T0 + timedelta(minutes=30)
    events = [
        ev(1, "media_connected", "first", 0),
        ev(2, "media_connected", "second", 1),
        ev(3, "media_lost", "second", 20),  # the phone fell over, never came back
        ev(4, "media_lost", "first", 31),  # the page closed after handing in
    ]
    losses = connection_losses(events, until=T0 + timedelta(hours=2), ended_at=handed_in)
    assert [(x["view"], x["seconds"]) for x in losses] == [("second", 600.0)]
    # without the end known, the old reading: both open until the end of the sitting
    old = connection_losses(events, until=T0 + timedelta(hours=2))
    assert sorted(x["seconds"] for x in old) == [5340.0, 6000.0]


def test_media_ended_closes_an_open_loss() -> None:
    events = [
        ev(1, "media_connected", "second", 0),
        ev(2, "media_lost", "second", 10),
        ev(3, "media_ended", "second", 15),
    ]
    (loss,) = connection_losses(events, until=T0 + timedelta(hours=2))
    assert loss["seconds"] == 300.0 and loss["restored"] is False
