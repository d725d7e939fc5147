"""Issue 23 item 4 (real app, SQLite and PostgreSQL): candidates imported after the rooms
were made are listed as in no room; automatic seating seats only them, in new rooms, and
never moves a seated candidate or touches an attempt; the invigilator then sees them once
assigned; only managers seat candidates or create staff (stable codes); bounds refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from proctor.sitting.sittings import add_candidate
from proctor.store.tables import Answer, Attempt, RoomSeat
from tests.flowkit import ADMIN, INVIGILATOR, FlowApp, code, id_number

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _snapshot(fa: FlowApp, sitting_id: int) -> tuple[dict, dict, dict]:
    async with fa.rt.db.session() as db:
        seats = {s.candidate_id: (s.room_id, s.seat) for s in await db.scalars(select(RoomSeat))}
        attempts = {
            a.candidate_id: {c.key: getattr(a, c.key) for c in Attempt.__table__.columns}
            for a in await db.scalars(select(Attempt))
        }
        answers = {
            (a.attempt_id, a.question_id): (a.value, a.seq, a.saved_at)
            for a in await db.scalars(select(Answer))
        }
    return seats, attempts, answers


async def test_seating_the_unseated_disturbs_nobody(fa: FlowApp) -> None:
    s = await fa.sitting(
        starts_in=-timedelta(minutes=1),
        candidates=2,
        flow={"require_phone": False},
    )
    first = await fa.login(s.password, s.candidates[0].id_number)
    await fa.walk(first, "answering")
    paper = await first.ok("get", "/api/flow/paper")
    q = next(q for q in paper["questions"] if q["type"] == "single")
    await first.ok("put", f"/api/flow/answers/{q['id']}", json={"value": "B", "seq": 1})

    # three candidates imported later: in no room, the invigilator does not see them
    async with fa.rt.db.transaction() as db:
        late = [
            (
                await add_candidate(
                    db, fa.rt.storage, sitting_id=s.id, name=f"Late {i}", id_number=id_number()
                )
            ).id
            for i in range(3)
        ]
    admin = await fa.staff(ADMIN)
    inv = await fa.staff(INVIGILATOR)
    roster = await admin.ok("get", f"/api/admin/sittings/{s.id}/candidates")
    assert [c["id"] for c in roster if c["room"] is None] == late
    assert all(c["room"]["seat"] >= 1 for c in roster if c["id"] not in late)
    seen = {
        c["candidate_id"]
        for c in await inv.ok("get", f"/api/invigilate/candidates?sitting_id={s.id}")
    }
    assert seen == {c.id for c in s.candidates}

    # an invigilator may neither seat nor create staff
    refused = await inv.post(f"/api/console/sittings/{s.id}/rooms/auto", json={})
    assert refused.status_code == 403 and code(refused) == "chief_only"
    rooms_before = await admin.ok("get", f"/api/console/rooms?sitting_id={s.id}")
    refused = await inv.post(
        f"/api/console/rooms/{rooms_before[0]['id']}/candidates", json={"candidate_ids": late[:1]}
    )
    assert refused.status_code == 403 and code(refused) == "chief_only"
    refused = await inv.post(
        "/api/admin/staff",
        json={
            "username": "x-inv",
            "password": "long-enough-1",
            "display_name": "X",
            "role": "invigilator",
        },
    )
    assert refused.status_code == 403 and code(refused) == "admins_only"
    # bounds and unknowns
    for body in ({"capacity": 0}, {"capacity": 31}, {"invigilators_per_room": 11}):
        bad = await admin.post(f"/api/console/sittings/{s.id}/rooms/auto", json=body)
        assert bad.status_code == 422 and code(bad) == "bad_capacity", bad.text
    bad = await admin.post("/api/console/sittings/999999/rooms/auto", json={})
    assert bad.status_code == 404 and code(bad) == "unknown_sitting"
    bad = await admin.post(
        f"/api/console/sittings/{s.id}/rooms/auto", json={"invigilator_ids": list(range(1001))}
    )
    assert bad.status_code == 422

    before = await _snapshot(fa, s.id)
    after_rooms = await admin.ok("post", f"/api/console/sittings/{s.id}/rooms/auto", json={})
    seats, attempts, answers = await _snapshot(fa, s.id)
    # everyone seated before keeps room and seat; attempts and answers are unchanged
    assert {cid: seats[cid] for cid in before[0]} == before[0]
    assert attempts == before[1] and answers == before[2] and answers
    new_rooms = [r for r in after_rooms if r["id"] not in {r["id"] for r in rooms_before}]
    assert len(new_rooms) == 1 and new_rooms[0]["seated"] == 3 and new_rooms[0]["understaffed"]
    assert {seats[c][0] for c in late} == {new_rooms[0]["id"]}
    roster = await admin.ok("get", f"/api/admin/sittings/{s.id}/candidates")
    assert all(c["room"] for c in roster)
    # nothing left to seat: a second run makes no room
    again = await admin.ok("post", f"/api/console/sittings/{s.id}/rooms/auto", json={})
    assert len(again) == len(after_rooms)

    # assigned to the new room, the invigilator sees the late candidates
    me = await inv.ok("get", "/api/staff/me")
    await admin.ok(
        "put",
        f"/api/console/rooms/{new_rooms[0]['id']}/invigilators",
        json={"staff_ids": [me["id"]]},
    )
    seen = {
        c["candidate_id"]
        for c in await inv.ok("get", f"/api/invigilate/candidates?sitting_id={s.id}")
    }
    assert seen == {c.id for c in s.candidates} | set(late)

    # manual seating: one late candidate moves to the first room; the others stay
    moved = await admin.ok(
        "post",
        f"/api/console/rooms/{rooms_before[0]['id']}/candidates",
        json={"candidate_ids": [late[0]]},
    )
    assert moved["seated"] == rooms_before[0]["seated"] + 1
    seats2, attempts2, _ = await _snapshot(fa, s.id)
    assert seats2[late[0]][0] == rooms_before[0]["id"]
    assert {c: seats2[c] for c in before[0]} == before[0] and attempts2 == before[1]
    bad = await admin.post(
        f"/api/console/rooms/{rooms_before[0]['id']}/candidates", json={"candidate_ids": [999999]}
    )
    assert bad.status_code == 404 and code(bad) == "unknown_candidate"

    # rooms made and staffed by hand: names, duplicates, access, who may be assigned
    room = {"sitting_id": s.id, "name": "第9考场 Lab", "capacity": 10}
    made = await admin.ok("post", "/api/console/rooms", json=room)
    assert made["seated"] == 0 and made["capacity"] == 10
    dup = await admin.post("/api/console/rooms", json=room)
    assert dup.status_code == 409 and code(dup) == "room_exists"
    blank = await admin.post("/api/console/rooms", json={**room, "name": "   "})
    assert blank.status_code == 422 and code(blank) == "bad_room_name"
    refused = await inv.post("/api/console/rooms", json={**room, "name": "mine"})
    assert refused.status_code == 403 and code(refused) == "chief_only"
    refused = await inv.put(
        f"/api/console/rooms/{made['id']}/invigilators", json={"staff_ids": [me["id"]]}
    )
    assert refused.status_code == 403 and code(refused) == "chief_only"
    admin_me = await admin.ok("get", "/api/staff/me")
    wrong = await admin.put(
        f"/api/console/rooms/{made['id']}/invigilators", json={"staff_ids": [admin_me["id"]]}
    )
    assert wrong.status_code == 422 and code(wrong) == "not_an_invigilator"
    many = await admin.put(
        f"/api/console/rooms/{made['id']}/invigilators", json={"staff_ids": list(range(11))}
    )
    assert many.status_code == 422
