"""Issue 23, gap 6 — talking back — through the real app on SQLite and PostgreSQL (manual
clock, no sleeping): a candidate raises a hand with a short message (bounded, one open at a
time, at most HELP_PER_WINDOW in HELP_WINDOW_SECONDS), the invigilators of the candidate's
room list and resolve it (a danmaku reply or a note), recorded in the timelines and the
exam-room record; warnings are acknowledged by the candidate ("我已知晓"), not on display;
invigilators keep notes on a candidate and a handover note for a room. Every user error
has its code; a candidate reaches only their own messages, an invigilator only their
rooms'."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select

from proctor.invigilation import requests
from proctor.invigilation.rooms import assign_staff, create_room, seat_candidates
from proctor.sitting.sittings import create_staff
from proctor.store.tables import AuditEntry, Room, StaffUser
from tests.flowkit import INVIGILATOR, REVIEWER, Client, FlowApp, SittingInfo, code

pytestmark = pytest.mark.asyncio(loop_scope="module")

OTHER = ("invig-talk-other", "invig-talk-other-pass")
SECOND = ("invig-talk-second", "invig-talk-second-pass")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fa(database_url, tmp_path_factory, models_dir):
    async with FlowApp.running(
        database_url, tmp_path_factory.mktemp("talkback"), models_dir
    ) as app:
        async with app.rt.db.transaction() as s:
            for user, password in (OTHER, SECOND):
                if not await s.scalar(select(StaffUser).where(StaffUser.username == user)):
                    await create_staff(
                        s, username=user, password=password, display_name=user, role="invigilator"
                    )
        yield app


async def _seat(fa: FlowApp, s: SittingInfo) -> tuple[int, int]:
    """The first candidate in room 1 (INVIGILATOR and SECOND), the others in room 2
    (OTHER). Returns the two rooms' ids."""
    async with fa.rt.db.transaction() as db:
        staff = {
            u.username: u.id
            for u in await db.scalars(
                select(StaffUser).where(
                    StaffUser.username.in_((INVIGILATOR[0], OTHER[0], SECOND[0]))
                )
            )
        }
        room1 = await create_room(db, sitting_id=s.id, name="Talk room 1")
        await seat_candidates(db, room1, [s.candidates[0].id])
        await assign_staff(db, room1, [staff[INVIGILATOR[0]], staff[SECOND[0]]])
        room2 = await create_room(db, sitting_id=s.id, name="Talk room 2")
        await seat_candidates(db, room2, [c.id for c in s.candidates[1:]])
        await assign_staff(db, room2, [staff[OTHER[0]]])
        return room1.id, room2.id


async def _audit(fa: FlowApp, kind: str, candidate_id: int) -> list[AuditEntry]:
    async with fa.rt.db.session() as db:
        return list(
            await db.scalars(
                select(AuditEntry).where(
                    AuditEntry.kind == kind, AuditEntry.candidate_id == candidate_id
                )
            )
        )


async def _two_seated(fa: FlowApp) -> tuple[SittingInfo, Client, Client, Client, Client]:
    """A running formal sitting of two seated candidates, both logged in, and the
    invigilators of their rooms (1, then 2)."""
    s = await fa.sitting(kind="formal", candidates=2, starts_in=timedelta(minutes=-1))
    await _seat(fa, s)
    mine, theirs = s.candidates
    cand = await fa.login(s.password, mine.id_number)
    other_cand = await fa.login(s.password, theirs.id_number)
    return s, cand, other_cand, await fa.staff(), await fa.staff(OTHER)


async def test_raised_hand_bounds_rate_access_and_record(fa: FlowApp) -> None:
    s, cand, other_cand, inv, other = await _two_seated(fa)
    mine, theirs = s.candidates

    too_long = await cand.post("/api/flow/help", json={"text": "字" * 201})
    assert too_long.status_code == 422 and code(too_long) == "help_text_too_long"
    assert "200" in too_long.json()["error"]["message"]
    huge = await cand.post("/api/flow/help", json={"text": "x" * 5000})
    assert huge.status_code == 422 and code(huge) == "validation_error"
    assert (await fa.client().post("/api/flow/help", json={"text": "hi"})).status_code == 401

    text = "  摄像头  没有画面 my camera is black "
    raised = await cand.ok("post", "/api/flow/help", json={"text": text})
    assert raised["text"] == "摄像头 没有画面 my camera is black" and raised["status"] == "open"
    again = await cand.post("/api/flow/help", json={"text": "again"})
    assert again.status_code == 409 and code(again) == "hand_already_raised"
    # the other candidate sees only their own (none); the staff of the room see it
    assert await other_cand.ok("get", "/api/flow/help") == []
    assert [h["id"] for h in await cand.ok("get", "/api/flow/help")] == [raised["id"]]
    listed = await inv.ok("get", f"/api/invigilate/requests?sitting_id={s.id}")
    assert [h["id"] for h in listed["help_requests"]] == [raised["id"]]
    assert listed["help_requests"][0]["candidate_name"] == mine.name
    theirs_listed = await other.ok("get", f"/api/invigilate/requests?sitting_id={s.id}")
    assert theirs_listed["help_requests"] == []

    path = f"/api/invigilate/help-requests/{raised['id']}/resolve"
    refused = await other.post(path, json={"note": "not mine"})
    assert refused.status_code == 403 and code(refused) == "not_your_room"
    missing = await inv.post(path, json={"note": " "})
    assert missing.status_code == 422 and code(missing) == "note_required"
    unknown = await inv.post("/api/invigilate/help-requests/987654/resolve", json={"note": "x y"})
    assert unknown.status_code == 404 and code(unknown) == "unknown_help_request"
    # an info problem's id is not a raised hand's (and the reverse)
    await cand.ok("post", "/api/flow/report-problem", json={"text": "名字错了"})
    problem = (await inv.ok("get", f"/api/invigilate/requests?sitting_id={s.id}"))["info_problems"][
        0
    ]
    crossed = await inv.post(
        f"/api/invigilate/help-requests/{problem['id']}/resolve", json={"note": "x y"}
    )
    assert crossed.status_code == 404 and code(crossed) == "unknown_help_request"
    crossed = await inv.post(
        f"/api/invigilate/info-problems/{raised['id']}/resolve", json={"note": "x y"}
    )
    assert crossed.status_code == 404 and code(crossed) == "unknown_info_problem"

    fa.clock.advance(seconds=30)
    reply = "请刷新页面 Please reload the page"
    done = await inv.ok("post", path, json={"note": reply, "reply": True})
    assert done["status"] == "resolved" and done["replied"] is True
    assert done["danmaku"]["text"] == reply and done["danmaku"]["candidate_id"] == mine.id
    twice = await inv.post(path, json={"note": "twice"})
    assert twice.status_code == 409 and code(twice) == "already_resolved"
    assert (await cand.ok("get", "/api/flow/help"))[0]["status"] == "resolved"
    assert (await inv.ok("get", f"/api/invigilate/requests?sitting_id={s.id}"))[
        "help_requests"
    ] == []

    # the timeline (console and review) and the exam-room record
    timeline = await inv.ok("get", f"/api/console/candidates/{mine.id}/timeline")
    events = {i["event"]["kind"]: i["event"]["data"] for i in timeline if i["kind"] == "event"}
    assert events["help_request"]["text"] == raised["text"]
    assert events["help_request"]["note"] == reply
    resolved = events["help_request_resolved"]
    assert resolved["note"] == reply and resolved["replied"] is True
    assert resolved["by_name"] == INVIGILATOR[0] and resolved["raised_at"] == raised["at"]
    reviewer = await fa.staff(REVIEWER)
    review = await reviewer.ok("get", f"/api/review/candidates/{mine.id}/timeline")
    kinds = {(i["kind"], i["type"]) for i in review["items"]}
    assert ("event", "help_request") in kinds and ("event", "help_request_resolved") in kinds
    record = await inv.ok("get", f"/api/console/sittings/{s.id}/record")
    (hand,) = [i for i in record["log"] if i["kind"] == "help_request"]
    assert hand["candidate"]["id"] == mine.id and hand["by"] == INVIGILATOR[0]
    assert raised["text"] in hand["reason"] and reply in hand["reason"]
    assert hand["data"]["resolved_at"] == done["resolved_at"]
    assert record["summary"]["help_requests"] == 1
    assert not [i for i in (await other.ok("get", f"/api/console/sittings/{s.id}/record"))["log"]
                if i["kind"] == "help_request"]  # fmt: skip

    # the rate: HELP_PER_WINDOW in the window, then 429 with the seconds to wait
    for _ in range(requests.HELP_PER_WINDOW - 1):
        fa.clock.advance(seconds=5)
        h = await cand.ok("post", "/api/flow/help", json={})
        await inv.ok(
            "post", f"/api/invigilate/help-requests/{h['id']}/resolve", json={"note": "ok"}
        )
    fa.clock.advance(seconds=5)
    busy = await cand.post("/api/flow/help", json={"text": "again"})
    assert busy.status_code == 429 and code(busy) == "too_many_requests"
    wait = busy.json()["error"]["retry_after"]
    assert 0 < wait <= requests.HELP_WINDOW_SECONDS
    # another candidate is not held back by this one
    assert (await other_cand.ok("post", "/api/flow/help", json={"text": "我也有问题"}))["status"]
    fa.clock.advance(seconds=wait)
    assert (await cand.ok("post", "/api/flow/help", json={"text": "later"}))["status"] == "open"


async def test_a_hand_cannot_be_raised_after_the_exam_ended(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", candidates=1, starts_in=timedelta(minutes=-1))
    await _seat(fa, s)
    cand = await fa.login(s.password, s.candidates[0].id_number)
    await fa.walk(cand, "answering")
    inv = await fa.staff()
    await inv.ok(
        "post",
        f"/api/invigilate/candidates/{s.candidates[0].id}/terminate",
        json={"category": "disqualified", "reason": "替考 substitute"},
    )
    over = await cand.post("/api/flow/help", json={"text": "why"})
    assert over.status_code == 409 and code(over) == "exam_over"


async def test_warnings_are_acknowledged_by_the_candidate(fa: FlowApp) -> None:
    s, cand, other_cand, inv, other = await _two_seated(fa)
    mine, theirs = s.candidates
    sent = await inv.ok(
        "post",
        f"/api/console/candidates/{mine.id}/danmaku",
        json={"text": "请把手机放远 phone away"},
    )
    their_warning = await other.ok(
        "post", f"/api/console/candidates/{theirs.id}/danmaku", json={"text": "请坐好 sit still"}
    )
    assert sent["acknowledged_at"] is None

    pending = await cand.ok("get", "/api/flow/warnings")
    assert [w["id"] for w in pending] == [sent["id"]]
    # someone else's warning: as unknown as one that does not exist
    for wid in (their_warning["id"], 987654):
        resp = await cand.post(f"/api/flow/warnings/{wid}/acknowledge")
        assert resp.status_code == 404 and code(resp) == "unknown_danmaku"
    staff_try = await inv.post(f"/api/flow/warnings/{sent['id']}/acknowledge")
    assert staff_try.status_code in (401, 403)

    fa.clock.advance(seconds=12)
    acked = await cand.ok("post", f"/api/flow/warnings/{sent['id']}/acknowledge")
    assert acked["acknowledged_at"] is not None
    fa.clock.advance(seconds=5)
    again = await cand.ok("post", f"/api/flow/warnings/{sent['id']}/acknowledge")
    assert again["acknowledged_at"] == acked["acknowledged_at"]  # once
    assert await cand.ok("get", "/api/flow/warnings") == []
    assert [w["id"] for w in await other_cand.ok("get", "/api/flow/warnings")] == [
        their_warning["id"]
    ]
    assert len(await _audit(fa, "danmaku.acknowledged", mine.id)) == 1

    timeline = await inv.ok("get", f"/api/console/candidates/{mine.id}/timeline")
    (d,) = [i["danmaku"] for i in timeline if i["kind"] == "danmaku"]
    assert d["acknowledged_at"] == acked["acknowledged_at"]
    record = await inv.ok("get", f"/api/console/sittings/{s.id}/record")
    (logged,) = [i for i in record["log"] if i["kind"] == "danmaku"]
    assert logged["data"]["acknowledged_at"] == acked["acknowledged_at"]
    review = await (await fa.staff(REVIEWER)).ok(
        "get", f"/api/review/candidates/{mine.id}/timeline"
    )
    (item,) = [i for i in review["items"] if i.get("type") == "danmaku"]
    assert datetime.fromisoformat(item["acknowledged_at"]) == datetime.fromisoformat(
        acked["acknowledged_at"]
    )


async def test_notes_on_a_candidate_and_the_rooms_handover(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", candidates=2)
    room1, room2 = await _seat(fa, s)
    mine, theirs = s.candidates
    inv, other, second = await fa.staff(), await fa.staff(OTHER), await fa.staff(SECOND)
    path = f"/api/console/candidates/{mine.id}/notes"
    for bad in ({"text": "  "}, {"text": "x" * 1001}, {}):
        resp = await inv.post(path, json=bad)
        assert resp.status_code == 422 and code(resp) == "bad_note", (bad, resp.text)
    first = await inv.ok("post", path, json={"text": "戴眼镜，已核对 glasses, checked"})
    fa.clock.advance(minutes=3)
    later = await second.ok("post", path, json={"text": "咳嗽，非讲话 coughing, not talking"})
    notes = await inv.ok("get", path)
    assert [(n["reason"], n["staff_name"]) for n in notes] == [
        ("戴眼镜，已核对 glasses, checked", INVIGILATOR[0]),
        ("咳嗽，非讲话 coughing, not talking", SECOND[0]),
    ]
    assert notes[0]["at"] < notes[1]["at"] and {n["id"] for n in notes} == {
        first["id"],
        later["id"],
    }
    # another room's invigilator, a candidate, a reviewer
    for method, kw in (("get", {}), ("post", {"json": {"text": "mine now"}})):
        resp = await getattr(other, method)(path, **kw)
        assert resp.status_code == 403 and code(resp) == "not_your_room"
    cand = await fa.login(s.password, mine.id_number)
    assert (await cand.get(path)).status_code in (401, 403)
    assert (await (await fa.staff(REVIEWER)).get(path)).status_code == 403
    # in the console timeline, the review timeline and the exam-room record
    timeline = await inv.ok("get", f"/api/console/candidates/{mine.id}/timeline")
    assert sum(1 for i in timeline if i["kind"] == "action" and i["action"]["kind"] == "note") == 2
    review = await (await fa.staff(REVIEWER)).ok(
        "get", f"/api/review/candidates/{mine.id}/timeline"
    )
    assert [i["reason"] for i in review["items"] if i.get("type") == "note"] == [
        "戴眼镜，已核对 glasses, checked",
        "咳嗽，非讲话 coughing, not talking",
    ]
    record = await inv.ok("get", f"/api/console/sittings/{s.id}/record")
    assert [i["what"] for i in record["log"] if i["kind"] == "note"] == [
        "监考备注 Invigilator's note"
    ] * 2

    # the room's handover note: seen by the room's other invigilator, not by another room's
    hpath = f"/api/console/rooms/{room1}/handover"
    short = await inv.post(hpath, json={"text": "x"})
    assert short.status_code == 422 and code(short) == "bad_note"
    note = "3号座位考生网络不稳，已延时5分钟 seat 3's network is flaky: 5 min given"
    left = await inv.ok("post", hpath, json={"text": note})
    assert left["room_id"] == room1 and left["staff_name"] == INVIGILATOR[0]
    assert [h["reason"] for h in await second.ok("get", hpath)] == [note]
    for method, kw in (("get", {}), ("post", {"json": {"text": "takeover"}})):
        resp = await getattr(other, method)(hpath, **kw)
        assert resp.status_code == 403 and code(resp) == "not_your_room"
    assert await other.ok("get", f"/api/console/rooms/{room2}/handover") == []
    unknown = await inv.get("/api/console/rooms/987654/handover")
    assert unknown.status_code == 404 and code(unknown) == "unknown_room"
    record = await second.ok("get", f"/api/console/sittings/{s.id}/record")
    assert [i["reason"] for i in record["log"] if i["kind"] == "handover_note"] == [note]
    async with fa.rt.db.session() as db:
        assert (await db.get(Room, room1)).sitting_id == s.id
    entries = await _audit(fa, "console.note", mine.id)
    assert len(entries) == 2 and json.loads(entries[0].payload)["reason_sha256"]
