"""Which alerts a snooze covers (proctor.invigilation.supervision.SnoozeBook): raised within the
snooze of their candidate and type; an episode seen after the snooze's end comes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from proctor.invigilation.supervision import SnoozeBook

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def snooze(id_: int, *, start: float, until: float, ended: float | None = None) -> dict:
    return {
        "id": id_,
        "candidate_id": 7,
        "type": "device",
        "created_at": at(start),
        "until": at(until),
        "ended_at": at(ended) if ended is not None else None,
        "staff_name": "Inv",
        "reason": "tv on the wall",
    }


def alert(raised: float, **more) -> dict:
    return {
        "id": 1,
        "candidate_id": 7,
        "type": "device",
        "status": "open",
        "raised_at": at(raised),
        **more,
    }


def test_covers_alerts_raised_within_the_snooze_of_their_candidate_and_type():
    book = SnoozeBook()
    book.update(snooze(1, start=0, until=600))
    assert book.covering(alert(10))["id"] == 1
    assert book.covering(alert(-1)) is None  # before it
    assert book.covering(alert(600)) is None  # at its end
    assert book.covering(alert(10, type="speech")) is None
    assert book.covering(alert(10, candidate_id=8)) is None
    assert book.hides(alert(10))
    assert not book.hides(alert(10, status="acknowledged"))  # a status change is pushed


def test_ended_early_and_episodes():
    book = SnoozeBook()
    book.update(snooze(1, start=0, until=600))
    book.update(snooze(1, start=0, until=600, ended=100))  # the same snooze, ended early
    assert book.covering(alert(50)) is not None
    assert book.covering(alert(150)) is None
    # an episode raised in the snooze but still seen after it ended comes back
    assert book.covering(alert(50, last_seen_at=at(90))) is not None
    assert book.covering(alert(50, last_seen_at=at(130))) is None
