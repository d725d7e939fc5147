"""Issue 23's dead ends 2 and 3 through the real app (SQLite and PostgreSQL): a candidate's
"my details are wrong" is listed for the invigilator with the text and resolved with a
note (recorded in the candidate's timeline); a candidate waiting for a manual identity
check is listed with the photos to compare, and admit / retry / refuse need a reason
(reason_required, in Chinese and English, not a validation string); a refused candidate's
exam has ended, so their views may not stream any more (exam_over)."""

from __future__ import annotations

import pytest

from tests.flowkit import ADMIN, REVIEWER, FlowApp, code

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_info_problem_is_listed_and_resolved_with_a_note(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal")
    cid = s.candidates[0].id
    cand = await fa.login(s.password, s.candidates[0].id_number)
    await cand.ok("post", "/api/flow/report-problem", json={"text": "  名字  写错了 typo "})
    inv = await fa.staff()
    listed = await inv.ok("get", f"/api/invigilate/requests?sitting_id={s.id}")
    (problem,) = listed["info_problems"]
    assert problem["candidate_id"] == cid and problem["text"] == "名字 写错了 typo"
    assert problem["status"] == "open" and listed["identity_reviews"] == []

    path = f"/api/invigilate/info-problems/{problem['id']}/resolve"
    missing = await inv.post(path, json={})
    assert missing.status_code == 422 and code(missing) == "note_required"
    message = missing.json()["error"]["message"]
    assert "请填写处理说明" in message and "Say how it was resolved" in message
    done = await inv.ok("post", path, json={"note": "已更正 corrected"})
    assert done["status"] == "resolved" and done["note"] == "已更正 corrected"
    assert done["resolved_by"] and done["text"] == "名字 写错了 typo"
    again = await inv.post(path, json={"note": "twice"})
    assert again.status_code == 409 and code(again) == "already_resolved"
    unknown = await inv.post("/api/invigilate/info-problems/987654/resolve", json={"note": "x y"})
    assert unknown.status_code == 404 and code(unknown) == "unknown_info_problem"
    assert (await inv.ok("get", f"/api/invigilate/requests?sitting_id={s.id}"))[
        "info_problems"
    ] == []

    timeline = await inv.ok("get", f"/api/console/candidates/{cid}/timeline")
    events = {i["event"]["kind"]: i["event"]["data"] for i in timeline if i["kind"] == "event"}
    assert events["info_problem"]["note"] == "已更正 corrected"
    assert events["info_problem_resolved"]["note"] == "已更正 corrected"
    assert events["info_problem_resolved"]["text"] == "名字 写错了 typo"


async def test_manual_identity_check_needs_a_reason_and_refusing_ends_the_exam(
    fa: FlowApp,
) -> None:
    s = await fa.sitting(kind="formal", candidates=2)  # no registered photos
    cands = []
    for c in s.candidates:
        cand = await fa.login(s.password, c.id_number)
        await cand.ok("post", "/api/flow/confirm")
        await cand.ok("post", "/api/flow/pledge", json={"accept": True})
        check = await cand.ok("post", "/api/flow/identity", content=b"any picture")
        assert check["needs_invigilator"] is True
        cands.append(cand)
    inv = await fa.staff()
    listed = await inv.ok("get", f"/api/invigilate/requests?sitting_id={s.id}")
    assert {r["candidate_id"] for r in listed["identity_reviews"]} == {c.id for c in s.candidates}
    assert all(r["has_photo"] is False for r in listed["identity_reviews"])

    first, second = s.candidates
    photos = await inv.ok("get", f"/api/invigilate/candidates/{first.id}/identity-photos")
    assert photos["registered_url"] is None and len(photos["captures"]) == 1
    assert photos["captures"][0]["reason"] == "no_registered_photo"
    assert photos["live_url"].endswith(f"/candidates/{first.id}/thumbnail/first.jpg")
    none = await inv.get(f"/api/invigilate/candidates/{first.id}/registered-photo")
    assert none.status_code == 404 and code(none) == "no_registered_photo"

    for action in ("admit", "identity-retry", "identity-refuse"):
        for body in ({}, {"reason": " "}):
            resp = await inv.post(f"/api/invigilate/candidates/{first.id}/{action}", json=body)
            assert resp.status_code == 422 and code(resp) == "reason_required", resp.text
            message = resp.json()["error"]["message"]
            assert "请填写原因" in message and "Give the reason" in message

    refused = await inv.ok(
        "post",
        f"/api/invigilate/candidates/{second.id}/identity-refuse",
        json={"reason": "不是本人"},
    )
    assert refused["step"] == "refused"
    state = await cands[1].state()
    assert state["step"] == "refused" and state["identity"]["method"] == "refused"
    offer = await cands[1].post(
        "/api/candidate/rtc/offer", json={"sdp": "v=0\r\nm=video 9", "view": "first"}
    )
    assert offer.status_code == 409 and code(offer) == "exam_over"
    assert "可以关闭本页面" in offer.json()["error"]["message"]

    admitted = await inv.ok(
        "post", f"/api/invigilate/candidates/{first.id}/admit", json={"reason": "ID card 身份证"}
    )
    assert admitted["step"] == "phone"
    listed = await inv.ok("get", f"/api/invigilate/requests?sitting_id={s.id}")
    assert listed["identity_reviews"] == []


async def test_acknowledging_as_a_violation_records_one(fa: FlowApp) -> None:
    """Item 10: "recorded as a violation" in the acknowledge dialog keeps a violation
    record (not only the words of the reason)."""
    from proctor.store.tables import Alert

    s = await fa.sitting(kind="formal", candidates=1)
    cid = s.candidates[0].id
    async with fa.rt.db.transaction() as db:
        alerts = [
            Alert(
                sitting_id=s.id,
                candidate_id=cid,
                type="device",
                severity="warning",
                view="first",
                message="phone seen",
                started_at=fa.clock.now(),
            )
            for _ in range(2)
        ]
        db.add_all(alerts)
        await db.flush()
        ids = [a.id for a in alerts]
    inv = await fa.staff()
    wrong = await inv.post(
        f"/api/console/alerts/{ids[0]}/handle",
        json={"action": "dismiss", "reason": "false alarm", "record_violation": True},
    )
    assert wrong.status_code == 422 and code(wrong) == "violation_needs_acknowledge"
    plain = await inv.ok(
        "post",
        f"/api/console/alerts/{ids[0]}/handle",
        json={"action": "acknowledge", "reason": "warned"},
    )
    assert plain["status"] == "acknowledged"
    done = await inv.ok(
        "post",
        f"/api/console/alerts/{ids[1]}/handle",
        json={"action": "acknowledge", "reason": "已记录违纪 phone", "record_violation": True},
    )
    assert done["status"] == "acknowledged"
    record = await inv.ok("get", f"/api/console/sittings/{s.id}/record")
    recorded = [v for v in record["violations"] if v["source"] == "invigilator"]
    assert [v["note"] for v in recorded] == ["已记录违纪 phone"]
    assert recorded[0]["alert_id"] == ids[1]
    assert recorded[0]["title"].startswith("告警记为违纪 Alert recorded as a violation")
    timeline = await inv.ok("get", f"/api/console/candidates/{cid}/timeline")
    kinds = [i["action"]["kind"] for i in timeline if i["kind"] == "action"]
    assert kinds.count("violation") == 1 and kinds.count("alert_acknowledged") == 2
    # the review: in the candidate's timeline and in the exam-room record's draft
    reviewer = await fa.staff(REVIEWER)
    review = await reviewer.ok("get", f"/api/review/candidates/{cid}/timeline")
    live = [i for i in review["items"] if i.get("type") == "violation"]
    assert [(i["alert_id"], i["reason"]) for i in live] == [(ids[1], "已记录违纪 phone")]
    draft = await reviewer.ok("get", f"/api/review/sittings/{s.id}/records/room_record")
    kept = draft["content"]["violations_recorded_live"]
    assert [(v["candidate_id"], v["alert_id"]) for v in kept] == [(cid, ids[1])]


async def test_time_given_back_is_in_the_candidates_console_timeline(fa: FlowApp) -> None:
    """Item 10: a time extension, the candidate's own or the whole sitting's, appears on
    the candidate's console timeline."""
    s = await fa.sitting(kind="formal", candidates=2)
    first, second = (c.id for c in s.candidates)
    inv = await fa.staff()
    await inv.ok(
        "post",
        "/api/invigilate/extensions",
        json={"sitting_id": s.id, "candidate_ids": [first], "minutes": 5, "reason": "网络 net"},
    )
    chief = await fa.staff(ADMIN)  # the whole sitting (an invigilator: their rooms)
    await chief.ok(
        "post",
        "/api/invigilate/extensions",
        json={"sitting_id": s.id, "candidate_ids": None, "minutes": 10, "reason": "停电 power"},
    )

    async def extended(cid: int) -> list[tuple[int, str, bool]]:
        timeline = await inv.ok("get", f"/api/console/candidates/{cid}/timeline")
        return sorted(
            (
                i["event"]["data"]["seconds"],
                i["event"]["data"]["reason"],
                bool(i["event"]["data"].get("whole_sitting")),
            )
            for i in timeline
            if i["kind"] == "event" and i["event"]["kind"] == "time_extended"
        )

    assert await extended(first) == [(300, "网络 net", False), (600, "停电 power", True)]
    assert await extended(second) == [(600, "停电 power", True)]
