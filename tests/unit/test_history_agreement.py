"""The four reports of a candidate's history agree (issue 19): the console's timeline, the
review's timeline, the exam-room record and the supervision summary read one history
(proctor.events.history) and tell the same alerts, warnings, handling and connection
losses, at the same times. A constructed history on a real (SQLite) database: a sitting
that is over, one candidate who sat it (two alerts, one snoozed and one acknowledged, a
danmaku, a discipline warning, a connection loss restored and one still open when the
scheduled end passed, inside the ten minutes given back to everyone), one absent."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest_asyncio

from proctor.invigilation import room_record, supervision
from proctor.review import records, summary
from proctor.review import timeline as review_timeline
from proctor.sitting.sittings import add_candidate, create_staff
from proctor.store.tables import (
    Alert,
    AlertSnooze,
    Attempt,
    CandidateEvent,
    ConsoleAction,
    Danmaku,
    TimeExtension,
    utcnow,
)
from tests.flowkit import make_sitting, migrated_world

START = (utcnow() - timedelta(hours=3)).replace(microsecond=0)
END = START + timedelta(minutes=120)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def t(value: str | None) -> datetime | None:
    """An ISO time of any of the reports (UTC, local with offset) as an aware time."""
    return datetime.fromisoformat(value) if value else None


@pytest_asyncio.fixture
async def history(tmp_path):
    async with migrated_world(tmp_path) as (database, storage):
        async with database.transaction() as s:
            sitting = await make_sitting(s, "history", "history-pass-1", START, END)
            a = await add_candidate(
                s, storage, sitting_id=sitting.id, name="A", id_number="HISTA001"
            )
            b = await add_candidate(
                s, storage, sitting_id=sitting.id, name="B", id_number="HISTB002"
            )
            staff = await create_staff(
                s, username="inv-h", password="inv-pass-h1", display_name="Inv H", role="chief"
            )
            common = {"sitting_id": sitting.id, "candidate_id": a.id}
            s.add(Attempt(**common, step="answering", logged_in_at=at(1), question_order=None))
            for kind, view, minutes in [
                ("media_connected", "first", 1),
                ("media_connected", "second", 2),
                ("media_lost", "first", 10),
                ("media_connected", "first", 13),  # 3 minutes lost, restored
                ("media_lost", "second", 110),  # open at the scheduled end (120)
            ]:
                s.add(
                    CandidateEvent(
                        candidate_id=a.id, kind=kind, data={"view": view}, at=at(minutes)
                    )
                )
            s.add(
                TimeExtension(
                    sitting_id=sitting.id,
                    candidate_id=None,
                    seconds=600,
                    reason="network",
                    granted_by=staff.id,
                    granted_at=at(60),
                )
            )
            looking, device = (
                Alert(
                    **common,
                    type=type_,
                    severity=severity,
                    view=view,
                    message=message,
                    started_at=at(minute),
                    raised_at=at(raised),
                    status=status,
                )
                for type_, severity, view, message, minute, raised, status in (
                    ("looking_away", "warning", "first", "looked away", 5, 5.1, "acknowledged"),
                    ("device", "critical", "second", "a phone", 30, 30.2, "open"),
                )
            )
            s.add_all([looking, device])
            await s.flush()
            s.add(
                AlertSnooze(
                    **common,
                    type="device",
                    staff_id=staff.id,
                    reason="known glare",
                    minutes=10,
                    created_at=at(29),
                    until=at(39),
                )
            )
            s.add(Danmaku(candidate_id=a.id, sender_id=staff.id, text="eyes front", sent_at=at(6)))
            s.add_all(
                [
                    ConsoleAction(
                        **common,
                        staff_id=staff.id,
                        kind="alert_acknowledged",
                        alert_id=looking.id,
                        reason="seen it",
                        data={"type": "looking_away"},
                        at=at(7),
                    ),
                    ConsoleAction(
                        **common,
                        staff_id=staff.id,
                        kind="discipline_warning",
                        reason="second time",
                        data={"category": "warning"},
                        at=at(31),
                    ),
                ]
            )
            ids = {"sitting": sitting.id, "a": a.id, "b": b.id}
        yield database, ids, {"looking": looking.id, "device": device.id}


async def test_the_four_reports_tell_one_history(history) -> None:
    database, ids, alert_ids = history
    async with database.session() as s:
        sitting = await review_timeline.get_sitting(s, ids["sitting"])
        console = await supervision.timeline(s, ids["a"])
        review = await review_timeline.timeline(s, ids["a"])
        record = await room_record.room_record(s, sitting, {ids["a"], ids["b"]}, None)
        facts = await summary.load_facts(s, ids["sitting"])
    sheet = summary.supervision_summary(facts)
    incident = records.prefill("incident_report", facts, {})

    # -- alerts: the same two, raised at the same times
    raised = {alert_ids["looking"]: at(5.1), alert_ids["device"]: at(30.2)}
    c_alerts = {i["alert"]["id"]: i["alert"] for i in console if i["kind"] == "alert"}
    r_alerts = {a["id"]: a for a in review["alerts"]}
    assert {k: t(v["raised_at"]) for k, v in c_alerts.items()} == raised
    assert {k: t(v["raised_at"]) for k, v in r_alerts.items()} == raised
    listed = [v for v in record["violations"] if v["source"] == "alert"]
    assert sorted(t(v["at"]) for v in listed) == sorted(raised.values())
    assert record["summary"]["alerts"] == sheet["facts"]["alerts"] == 2
    assert sheet["facts"]["alerts_by_type"] == {"looking_away": 1, "device": 1}
    assert record["attendance"][0]["alerts"] == 2  # none dismissed

    # -- the snooze covers the device alert in both timelines, and only that one
    device, looking = alert_ids["device"], alert_ids["looking"]
    assert c_alerts[device]["snooze"]["id"] == r_alerts[device]["snoozed"]["id"]
    assert c_alerts[looking]["snooze"] is None and r_alerts[looking]["snoozed"] is None

    # -- how the looking-away alert was handled: acknowledged at 7 by the same invigilator
    assert c_alerts[looking]["handling"]["action"] == "acknowledge"
    assert t(c_alerts[looking]["handling"]["at"]) == at(7)
    (handled,) = [v for v in listed if t(v["at"]) == at(5.1)][0]["handling"]
    assert handled["kind"] == "alert_acknowledged" and t(handled["at"]) == at(7)
    assert handled["by"] == c_alerts[looking]["handling"]["by_name"] == "Inv H"

    # -- warnings: the danmaku and the discipline warning, at the same times
    c_danmaku = [t(i["danmaku"]["sent_at"]) for i in console if i["kind"] == "danmaku"]
    r_danmaku = [t(i["at"]) for i in review["items"] if i.get("type") == "danmaku"]
    rec_danmaku = [t(i["at"]) for i in record["log"] if i["kind"] == "danmaku"]
    assert c_danmaku == r_danmaku == rec_danmaku == [at(6)]
    c_warn = [
        t(i["at"])
        for i in console
        if i["kind"] == "action" and i["action"]["kind"] == "discipline_warning"
    ]
    r_warn = [t(i["at"]) for i in review["items"] if i.get("type") == "discipline_warning"]
    rec_warn = [t(v["at"]) for v in record["violations"] if v["type"] == "discipline_warning"]
    assert c_warn == r_warn == rec_warn == [at(31)]
    assert record["summary"]["warnings"] == 1

    # -- connection losses: the restored one, and the open one counted to the candidate's
    # end (the scheduled end plus the ten minutes given back), not the scheduled end
    losses = [
        (i["view"], t(i["at"]), t(i["end"]), i["seconds"])
        for i in review["items"]
        if i["kind"] == "connection_loss"
    ]
    lost_first, lost_second = at(10), at(110)
    assert losses == [
        ("first", lost_first, at(13), 180.0),
        ("second", lost_second, at(130), 1200.0),
    ]
    c_lost = sorted(
        t(i["at"]) for i in console if i["kind"] == "event" and i["event"]["kind"] == "media_lost"
    )
    assert c_lost == [lost_first, lost_second]
    assert sheet["facts"]["connection_losses"] == len(losses) == 2
    assert sheet["facts"]["time_lost_seconds"] == round(sum(x[3] for x in losses), 1)
    assert incident["time_lost_seconds"] == sheet["facts"]["time_lost_seconds"]

    # -- attendance: one present (arrived at 1), one absent, in the record and the summary
    assert record["summary"]["present"] == sheet["facts"]["present"] == 1
    assert record["summary"]["absent"] == sheet["facts"]["absent"] == 1
    arrived = {a["id"]: t(a["arrived_at"]) for a in record["attendance"]}
    assert arrived == {ids["a"]: at(1), ids["b"]: None}
    assert record["summary"]["extensions"] == sheet["facts"]["extensions"] == 1
