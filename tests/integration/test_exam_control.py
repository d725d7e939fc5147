"""The invigilator pauses, resumes and ends one candidate's exam, through the real app on
SQLite and PostgreSQL with the manual clock (no sleeping): a pause freezes the time left and
refuses answers and hand-in (``exam_paused``) and the automatic hand-in leaves the paper
alone; resuming moves the end (and the earliest hand-in) by the paused duration; ending the
exam with a category of the documents keeps the answers, marks the result and refuses
everything after (``exam_terminated``); a warning is recorded only. Each action is in the
supervision log (who, when, why), the audit chain, the bus and the exam-room record; every
user error has its code; an invigilator acts on their own rooms only."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select

from proctor.events.bus import candidate_channel, sitting_channel
from proctor.invigilation.rooms import assign_staff, create_room, seat_candidates
from proctor.sitting.sittings import create_staff
from proctor.store.tables import AuditEntry, StaffUser
from tests.flowkit import ADMIN, INVIGILATOR, REVIEWER, FlowApp, SittingInfo, code

pytestmark = pytest.mark.asyncio(loop_scope="module")

OTHER = ("invig-other", "invig-other-pass")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fa(database_url, tmp_path_factory, models_dir):
    async with FlowApp.running(
        database_url, tmp_path_factory.mktemp("flow-control"), models_dir
    ) as app:
        async with app.rt.db.transaction() as s:
            if not await s.scalar(select(StaffUser).where(StaffUser.username == OTHER[0])):
                await create_staff(
                    s,
                    username=OTHER[0],
                    password=OTHER[1],
                    display_name=OTHER[0],
                    role="invigilator",
                )
        yield app


async def _seat(fa: FlowApp, s: SittingInfo, mine: int) -> None:
    """The first ``mine`` candidates in INVIGILATOR's room, the rest in OTHER's."""
    async with fa.rt.db.transaction() as db:
        staff = {
            u.username: u.id
            for u in await db.scalars(
                select(StaffUser).where(StaffUser.username.in_((INVIGILATOR[0], OTHER[0])))
            )
        }
        room1 = await create_room(db, sitting_id=s.id, name="Room 1")
        await seat_candidates(db, room1, [c.id for c in s.candidates[:mine]])
        await assign_staff(db, room1, [staff[INVIGILATOR[0]]])
        room2 = await create_room(db, sitting_id=s.id, name="Room 2")
        await seat_candidates(db, room2, [c.id for c in s.candidates[mine:]])
        await assign_staff(db, room2, [staff[OTHER[0]]])


async def _answering(fa: FlowApp, candidates: int = 1, mine: int | None = None):
    s = await fa.sitting(candidates=candidates)
    await _seat(fa, s, candidates if mine is None else mine)
    cands, paper = await fa.all_answering(s)
    return s, cands, paper


def _single(paper: dict) -> dict:
    return next(q for q in paper["questions"] if q["type"] == "single")


async def _audit(fa: FlowApp, kind: str, candidate_id: int) -> list[AuditEntry]:
    async with fa.rt.db.session() as db:
        return list(
            await db.scalars(
                select(AuditEntry)
                .where(AuditEntry.kind == kind, AuditEntry.candidate_id == candidate_id)
                .order_by(AuditEntry.seq)
            )
        )


async def _next(sub, kind: str, timeout: float = 5.0) -> dict:
    """The next bus message of this type (awaited, with a timeout)."""

    async def loop() -> dict:
        while True:
            msg = await sub.get()
            if msg.get("type") == kind:
                return msg

    return await asyncio.wait_for(loop(), timeout)


async def test_pause_freezes_the_time_and_resume_moves_the_end(fa: FlowApp) -> None:
    s, (cand,), paper = await _answering(fa)
    cid = s.candidates[0].id
    inv = await fa.staff()
    q = _single(paper)
    fa.clock.advance(minutes=10)
    before = await cand.state()
    left = before["timing"]["seconds_left"]
    assert left == (s.ends_at - fa.clock.now()).total_seconds()
    assert before["paused"] is None

    async with fa.rt.bus.subscribe(candidate_channel(cid)) as sub:
        paused = await inv.ok(
            "post",
            f"/api/invigilate/candidates/{cid}/pause",
            json={"reason": "网络故障，暂停处理 network trouble"},
        )
        msg = await _next(sub, "flow")
    assert msg["candidate_id"] == cid and msg["paused"] is True
    paused_at = fa.clock.now()
    assert paused["paused"] is True and paused["seconds_left"] == left
    assert paused["flow"]["paused"]["by_name"] == INVIGILATOR[0]
    assert paused["flow"]["paused"]["seconds_left"] == left
    assert paused["action"]["kind"] == "exam_paused"
    assert paused["action"]["staff_name"] == INVIGILATOR[0]
    assert paused["action"]["reason"] == "网络故障，暂停处理 network trouble"

    # the clock stands still: 7 minutes later the same time is left, answers are refused
    fa.clock.advance(minutes=7)
    state = await cand.state()
    assert state["paused"] is not None and state["step"] == "answering"
    assert state["timing"]["seconds_left"] == left
    assert state["paused"]["seconds_left"] == left
    refused = await cand.put(f"/api/flow/answers/{q['id']}", json={"value": "A", "seq": 1})
    assert refused.status_code == 409 and code(refused) == "exam_paused"
    submit = await cand.post("/api/flow/submit")
    assert submit.status_code == 409 and code(submit) == "exam_paused"
    again = await inv.post(f"/api/invigilate/candidates/{cid}/pause", json={"reason": "again"})
    assert again.status_code == 409 and code(again) == "already_paused"

    # past the scheduled end, the automatic hand-in leaves a paused paper alone
    fa.clock.set(s.ends_at + timedelta(minutes=1))
    assert cid not in [c for _, c in await fa.exam.sweep()]
    state = await cand.state()
    assert state["step"] == "answering" and state["timing"]["seconds_left"] == left

    resumed = await inv.ok(
        "post", f"/api/invigilate/candidates/{cid}/resume", json={"reason": "网络恢复"}
    )
    paused_for = (fa.clock.now() - paused_at).total_seconds()
    assert resumed["paused"] is False and resumed["paused_seconds"] == paused_for
    new_end = s.ends_at + timedelta(seconds=paused_for)
    assert datetime.fromisoformat(resumed["ends_at"]) == new_end
    assert resumed["flow"]["paused"] is None
    assert datetime.fromisoformat(resumed["flow"]["ends_at"]) == new_end
    state = await cand.state()
    assert state["paused"] is None
    assert state["timing"]["seconds_left"] == left
    assert datetime.fromisoformat(state["timing"]["ends_at"]) == new_end
    assert state["timing"]["paused_seconds"] == paused_for
    # answering time counts towards the earliest hand-in, paused time does not
    started = datetime.fromisoformat(state["timing"]["answering_started_at"])
    assert datetime.fromisoformat(state["timing"]["earliest_submit_at"]) == started + timedelta(
        minutes=40, seconds=paused_for
    )
    saved = await cand.ok("put", f"/api/flow/answers/{q['id']}", json={"value": "A", "seq": 1})
    assert saved["value"] == "A"
    not_paused = await inv.post(f"/api/invigilate/candidates/{cid}/resume", json={})
    assert not_paused.status_code == 409 and code(not_paused) == "not_paused"

    # the moved end counts for the automatic hand-in too
    fa.clock.set(new_end + timedelta(seconds=10))
    assert cid not in [c for _, c in await fa.exam.sweep()]
    fa.clock.set(new_end + timedelta(seconds=16))
    assert cid in [c for _, c in await fa.exam.sweep()]
    assert (await cand.state())["step"] == "submitted"

    # who, when, why: the supervision log, the candidate's timeline, the audit chain
    timeline = await inv.ok("get", f"/api/console/candidates/{cid}/timeline")
    kinds = [i["action"]["kind"] for i in timeline if i["kind"] == "action"]
    assert "exam_paused" in kinds and "exam_resumed" in kinds
    entries = await _audit(fa, "console.exam_paused", cid)
    assert len(entries) == 1 and entries[0].actor.startswith("staff:")
    assert json.loads(entries[0].payload)["reason_sha256"]
    assert len(await _audit(fa, "console.exam_resumed", cid)) == 1


async def test_terminate_ends_the_exam_and_marks_the_result(fa: FlowApp) -> None:
    s, (voided, cancelled), paper = await _answering(fa, candidates=2)
    vid, xid = s.candidates[0].id, s.candidates[1].id
    inv = await fa.staff()
    q = _single(paper)
    await voided.ok("put", f"/api/flow/answers/{q['id']}", json={"value": "B", "seq": 1})
    fa.clock.advance(minutes=5)
    # a pause in force ends with the exam
    await inv.ok("post", f"/api/invigilate/candidates/{vid}/pause", json={"reason": "checking"})
    fa.clock.advance(minutes=1)

    async with (
        fa.rt.bus.subscribe(candidate_channel(vid)) as cand_sub,
        fa.rt.bus.subscribe(sitting_channel(s.id)) as console_sub,
    ):
        ended = await inv.ok(
            "post",
            f"/api/invigilate/candidates/{vid}/terminate",
            json={"category": "paper_voided", "reason": "第二次使用手机 phone used again"},
        )
        to_candidate = await _next(cand_sub, "flow")
        action = await _next(console_sub, "action")
    assert to_candidate["step"] == "terminated" and to_candidate["category"] == "paper_voided"
    assert action["action"]["kind"] == "exam_terminated"
    assert action["action"]["data"]["category"] == "paper_voided"
    assert ended["ended"] is True and ended["step"] == "terminated"
    assert ended["flow"]["ended"] is True and ended["flow"]["paused"] is None
    terminated = ended["flow"]["terminated"]
    assert terminated["category"] == "paper_voided"
    assert terminated["category_title"] == "试卷作废 Paper voided"
    assert terminated["by_name"] == INVIGILATOR[0]
    assert terminated["reason"] == "第二次使用手机 phone used again"

    # the candidate's page: ended, with the category; nothing more is taken
    state = await voided.state()
    assert state["step"] == "terminated" and state["paused"] is None
    assert state["termination"]["category"] == "paper_voided"
    assert state["termination"]["zh"] == "试卷作废"
    assert "reason" not in state["termination"]  # the staff's reason stays with the staff
    for resp in (
        await voided.put(f"/api/flow/answers/{q['id']}", json={"value": "C", "seq": 2}),
        await voided.post("/api/flow/submit"),
    ):
        assert resp.status_code == 409 and code(resp) == "exam_terminated", resp.text
    kept = await voided.ok("get", "/api/flow/paper")  # answers kept as given
    assert kept["answers"][str(q["id"])]["value"] == "B"
    relogin = await fa.client().post(
        "/api/candidate/login",
        json={"sitting_password": s.password, "id_number": s.candidates[0].id_number},
    )
    assert relogin.status_code == 409 and code(relogin) == "exam_terminated"
    for path, body in (
        ("terminate", {"category": "disqualified", "reason": "again"}),
        ("pause", {"reason": "again"}),
        ("resume", {}),
    ):
        resp = await inv.post(f"/api/invigilate/candidates/{vid}/{path}", json=body)
        assert resp.status_code == 409 and code(resp) == "already_terminated", (path, resp.text)
    extend = await inv.post(
        "/api/invigilate/extensions",
        json={"sitting_id": s.id, "candidate_ids": [vid], "minutes": 5, "reason": "late"},
    )
    assert extend.status_code == 409

    # score cancelled: no total; both never pass; the results say why
    await inv.ok(
        "post",
        f"/api/invigilate/candidates/{xid}/terminate",
        json={"category": "score_cancelled", "reason": "抄袭 copying from notes"},
    )
    admin = await fa.staff(ADMIN)
    results = {
        r["candidate_id"]: r for r in await admin.ok("get", f"/api/admin/sittings/{s.id}/results")
    }
    assert results[vid]["step"] == "terminated" and results[vid]["termination"] == "paper_voided"
    assert results[vid]["total_score"] == 0 and results[vid]["passed"] is False
    assert results[vid]["objective_score"] is not None  # scored for the record
    assert results[xid]["termination"] == "score_cancelled"
    assert results[xid]["total_score"] is None and results[xid]["passed"] is False

    # the console, the exam-room record, the audit chain
    detail = await inv.ok("get", f"/api/console/candidates/{vid}")
    assert detail["flow"]["terminated"]["category"] == "paper_voided"
    record = await inv.ok("get", f"/api/console/sittings/{s.id}/record")
    assert record["summary"]["terminated"] == 2
    titles = [v["title"] for v in record["violations"] if v["type"] == "exam_terminated"]
    assert sorted(titles) == [
        "取消本场考试成绩 Score of this sitting cancelled",
        "试卷作废 Paper voided",
    ]
    row = next(a for a in record["attendance"] if a["id"] == vid)
    assert row["step"] == "terminated" and row["terminated"] == "paper_voided"
    log = [i for i in record["log"] if i["kind"] == "exam_terminated"]
    assert {i["by"] for i in log} == {INVIGILATOR[0]}
    entries = await _audit(fa, "console.exam_terminated", vid)
    assert len(entries) == 1
    assert json.loads(entries[0].payload)["category"] == "paper_voided"


async def test_a_warning_is_recorded_and_the_exam_goes_on(fa: FlowApp) -> None:
    s, (cand,), paper = await _answering(fa)
    cid = s.candidates[0].id
    inv = await fa.staff()
    warned = await inv.ok(
        "post",
        f"/api/invigilate/candidates/{cid}/terminate",
        json={"category": "warning", "reason": "左顾右盼 looking around"},
    )
    assert warned["ended"] is False and warned["step"] == "answering"
    assert warned["action"]["kind"] == "discipline_warning"
    assert warned["flow"]["terminated"] is None
    state = await cand.state()
    assert state["step"] == "answering" and state["termination"] is None
    q = _single(paper)
    await cand.ok("put", f"/api/flow/answers/{q['id']}", json={"value": "D", "seq": 1})
    record = await inv.ok("get", f"/api/console/sittings/{s.id}/record")
    warnings = [v for v in record["violations"] if v["type"] == "discipline_warning"]
    assert len(warnings) == 1 and warnings[0]["title"] == "警告 Warning"
    assert warnings[0]["note"] == "左顾右盼 looking around"
    assert record["summary"]["warnings"] == 1 and record["summary"]["terminated"] == 0
    entries = await _audit(fa, "console.discipline_warning", cid)
    assert len(entries) == 1 and json.loads(entries[0].payload)["category"] == "warning"


async def test_user_errors_and_other_rooms(fa: FlowApp) -> None:
    s = await fa.sitting(candidates=3)
    await _seat(fa, s, mine=2)
    mine, waiting, theirs = s.candidates
    inv = await fa.staff()
    other = await fa.staff(OTHER)

    # not logged in yet
    absent = await inv.post(f"/api/invigilate/candidates/{mine.id}/pause", json={"reason": "x y"})
    assert absent.status_code == 409 and code(absent) == "not_logged_in"
    cand = await fa.login(s.password, mine.id_number)
    await fa.walk(cand, "answering")
    early = await fa.login(s.password, waiting.id_number)
    await fa.walk(early, "phone")
    their = await fa.login(s.password, theirs.id_number)
    await fa.walk(their, "answering")

    url = f"/api/invigilate/candidates/{mine.id}"
    cases = [
        ("pause", {"reason": ""}, 422, "reason_required"),
        ("pause", {"reason": " x "}, 422, "reason_required"),
        ("pause", {}, 422, "reason_required"),
        ("terminate", {"category": "expelled", "reason": "valid reason"}, 422, "bad_category"),
        ("terminate", {"category": "paper_voided", "reason": ""}, 422, "reason_required"),
        ("terminate", {"reason": "valid reason"}, 422, "validation_error"),
        ("resume", {}, 409, "not_paused"),
    ]
    for path, body, status, want in cases:
        resp = await inv.post(f"{url}/{path}", json=body)
        assert resp.status_code == status and code(resp) == want, (path, body, resp.text)
    # a candidate who is not answering yet cannot be paused or ended; a warning is fine
    for path, body in (
        ("pause", {"reason": "valid reason"}),
        ("terminate", {"category": "disqualified", "reason": "valid reason"}),
    ):
        resp = await inv.post(f"/api/invigilate/candidates/{waiting.id}/{path}", json=body)
        assert resp.status_code == 409 and code(resp) == "not_answering", (path, resp.text)
    await inv.ok(
        "post",
        f"/api/invigilate/candidates/{waiting.id}/terminate",
        json={"category": "warning", "reason": "手机未摆放 phone not placed"},
    )
    # another room's invigilator, a reviewer, an unknown candidate
    for path, body in (
        ("pause", {"reason": "valid reason"}),
        ("resume", {}),
        ("terminate", {"category": "disqualified", "reason": "valid reason"}),
    ):
        resp = await other.post(f"{url}/{path}", json=body)
        assert resp.status_code == 403 and code(resp) == "not_your_room", (path, resp.text)
        resp = await inv.post(f"/api/invigilate/candidates/{theirs.id}/{path}", json=body)
        assert resp.status_code == 403 and code(resp) == "not_your_room", (path, resp.text)
    reviewer = await fa.staff(REVIEWER)
    resp = await reviewer.post(f"{url}/pause", json={"reason": "valid reason"})
    assert resp.status_code == 403 and code(resp) == "console_forbidden"
    resp = await inv.post("/api/invigilate/candidates/999999/pause", json={"reason": "valid"})
    assert resp.status_code == 404 and code(resp) == "unknown_candidate"
    assert (await cand.state())["paused"] is None  # nothing refused changed anything
    assert (await their.state())["step"] == "answering"
    # the other room's invigilator acts on their own candidate; a chief on anyone
    await other.ok(
        "post", f"/api/invigilate/candidates/{theirs.id}/pause", json={"reason": "their own"}
    )
    admin = await fa.staff(ADMIN)
    await admin.ok("post", f"/api/invigilate/candidates/{theirs.id}/resume", json={})
    cats = await inv.ok("get", "/api/invigilate/violation-categories")
    assert [(c["code"], c["zh"], c["ends_exam"]) for c in cats] == [
        ("warning", "警告", False),
        ("paper_voided", "试卷作废", True),
        ("score_cancelled", "取消本场考试成绩", True),
        ("disqualified", "取消考试资格", True),
    ]
