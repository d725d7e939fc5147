"""The connection-loss seconds in reviews are the time actually lost (issue 23: 34,943 s
was reported 12 minutes into a sitting). Causes found: a loss still open was counted to
the sitting's end (hours in the future), and the losses of both views and of overlapping
intervals were added up. A constructed history of overlapping and open losses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from proctor.events.history import AttemptRecord, EventRecord, History
from proctor.review.records import prefill
from proctor.review.summary import SittingFacts, supervision_summary, union_seconds
from proctor.store.tables import Candidate, Sitting

T0 = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)  # the sitting starts; it lasts 2 hours


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ev(i: int, cid: int, kind: str, view: str, minutes: float) -> EventRecord:
    return EventRecord(id=i, candidate_id=cid, kind=kind, data={"view": view}, at=at(minutes))


def facts(now: datetime) -> SittingFacts:
    sitting = Sitting(
        id=1, name="S", kind="formal", password="p", starts_at=T0, ends_at=at(120), flow={}
    )
    sitting.subject, sitting.exam, sitting.rules = "", "", {}
    a = Candidate(id=1, sitting_id=1, name="A", id_number="1")
    b = Candidate(id=2, sitting_id=1, name="B", id_number="2")
    events = {
        1: [
            ev(1, 1, "media_connected", "first", 0),
            ev(2, 1, "media_connected", "second", 0),
            # both views go together 2-5 min (one network): 3 minutes lost, not 6
            ev(3, 1, "media_lost", "first", 2),
            ev(4, 1, "media_lost", "second", 2),
            ev(5, 1, "media_connected", "first", 5),
            ev(6, 1, "media_connected", "second", 5),
            # the first view goes at 8 and a second lost message repeats it at 9; the phone
            # goes at 10: all still open at 12 (now) -> 4 more minutes
            ev(7, 1, "media_lost", "first", 8),
            ev(8, 1, "media_lost", "first", 9),
            ev(9, 1, "media_lost", "second", 10),
        ],
        2: [
            ev(10, 2, "media_connected", "first", 0),
            ev(11, 2, "media_lost", "first", 11),  # open: 1 minute at now
        ],
    }
    attempts = {
        cid: AttemptRecord(
            id=cid, candidate_id=cid, sitting_id=1, step="answering", logged_in_at=T0
        )
        for cid in (1, 2)
    }
    history = History(
        sitting=sitting,
        candidate_ids=(1, 2),
        now=now,
        events=tuple(events[1] + events[2]),
        attempts=attempts,
    )
    return SittingFacts(history, [a, b])


def test_union_of_intervals() -> None:
    assert union_seconds([]) == 0
    assert union_seconds([(at(0), at(1)), (at(0.5), at(2)), (at(3), at(4))]) == 180
    assert union_seconds([(at(1), None), (at(2), at(1))]) == 0


def test_open_losses_count_to_now_and_overlaps_once() -> None:
    f = facts(now=at(12))
    assert f.time_lost(1) == (3 + 4) * 60
    assert f.time_lost(2) == 60
    # every loss ends at now at the latest, never at the sitting's end
    assert all(x["end"] <= at(12) for c in (1, 2) for x in f.losses(c))
    summary = supervision_summary(f)
    assert summary["facts"]["time_lost_seconds"] == 8 * 60
    report = prefill("incident_report", f, {})
    assert report["time_lost_seconds"] == 8 * 60
    # the old reading: each view's open loss to the sitting's end, added up
    old = sum(x["seconds"] for c in (1, 2) for x in facts(now=at(120)).losses(c))
    assert old == 20_220  # 5.6 hours for 12 minutes


def test_after_the_end_losses_stop_at_the_end() -> None:
    f = facts(now=at(500))
    assert f.time_lost(2) == (120 - 11) * 60
