"""Steps 7-8 through the real app (SQLite and PostgreSQL, manual clock): answers saved one
by one and acknowledged after the commit, stale saves ignored, bad answers refused;
resuming on another device with every answer and the right time left; submit refused at
39:59 and accepted at 40:00; time extensions for one candidate or the sitting; the
automatic hand-in at the end; scores on 100 points with the short answer graded by hand."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest

from tests.flowkit import ADMIN, REVIEWER, FlowApp, code

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _answering(fa: FlowApp, **sitting):
    s = await fa.sitting(**sitting)
    cand = await fa.login(s.password, s.candidates[0].id_number)
    await fa.walk(cand, "answering")
    paper = await cand.ok("get", "/api/flow/paper")
    return s, cand, paper


def _right(question_id: int, fa_answers: dict[int, object]) -> object:
    return fa_answers[question_id]


async def _answer_key(fa: FlowApp, paper: dict) -> dict[int, object]:
    from sqlalchemy import select

    from proctor.store.tables import Question

    ids = [q["id"] for q in paper["questions"]]
    async with fa.rt.db.session() as db:
        rows = await db.scalars(select(Question).where(Question.id.in_(ids)))
        return {q.id: q.answer for q in rows}


async def test_answers_are_saved_and_resume_on_another_device(fa: FlowApp) -> None:
    s, cand, paper = await _answering(fa)
    questions = paper["questions"]
    assert len(questions) == 25 and [q["number"] for q in questions] == list(range(1, 26))
    assert all("answer" not in q for q in questions)  # the key never reaches the page
    single = next(q for q in questions if q["type"] == "single")
    multiple = next(q for q in questions if q["type"] == "multiple")
    tf = next(q for q in questions if q["type"] == "true_false")
    saved = await cand.ok("put", f"/api/flow/answers/{single['id']}", json={"value": "B", "seq": 1})
    assert saved == {
        "question_id": single["id"],
        "value": "B",
        "seq": 1,
        "saved_at": saved["saved_at"],
        "stale": False,
    }
    await cand.ok("put", f"/api/flow/answers/{single['id']}", json={"value": "C", "seq": 3})
    # a retry of an older save arriving late changes nothing
    stale = await cand.ok("put", f"/api/flow/answers/{single['id']}", json={"value": "B", "seq": 2})
    assert stale["stale"] is True and stale["value"] == "C" and stale["seq"] == 3
    await cand.ok(
        "put", f"/api/flow/answers/{multiple['id']}", json={"value": ["C", "A"], "seq": 1}
    )
    await cand.ok("put", f"/api/flow/answers/{tf['id']}", json={"value": False, "seq": 1})
    for value, question in (
        ("Z", single),
        (["A", "A"], multiple),
        ("A", multiple),
        ("yes", tf),
    ):
        bad = await cand.put(f"/api/flow/answers/{question['id']}", json={"value": value, "seq": 9})
        assert bad.status_code == 422 and code(bad) == "bad_answer", (value, bad.text)
    unknown = await cand.put("/api/flow/answers/999999", json={"value": "A", "seq": 1})
    assert unknown.status_code == 404 and code(unknown) == "unknown_question"
    assert (await cand.state())["progress"] == {"answered": 3, "total": 25}

    # the network drops; later the candidate logs in on another computer
    fa.clock.advance(minutes=3)
    other = await fa.login(s.password, s.candidates[0].id_number)
    state = await other.state()
    assert state["step"] == "answering"
    assert state["timing"]["seconds_left"] == (s.ends_at - fa.clock.now()).total_seconds()
    resumed = await other.ok("get", "/api/flow/paper")
    assert [q["id"] for q in resumed["questions"]] == [q["id"] for q in questions]
    assert [q["options"] for q in resumed["questions"]] == [q["options"] for q in questions]
    answers = resumed["answers"]
    assert answers[str(single["id"])]["value"] == "C"
    assert answers[str(multiple["id"])]["value"] == ["A", "C"]
    assert answers[str(tf["id"])]["value"] is False
    # clearing an answer
    await other.ok("put", f"/api/flow/answers/{tf['id']}", json={"value": None, "seq": 2})
    assert (await other.state())["progress"]["answered"] == 2


async def test_flags_for_review_are_kept_with_the_attempt(fa: FlowApp) -> None:
    """Flagged questions (标记, issue 23 item 8): kept in paper order, each once, only the
    paper's questions, given back with the paper (a reload keeps them)."""
    s, cand, paper = await _answering(fa)
    ids = [q["id"] for q in paper["questions"]]
    assert paper["flagged"] == []
    for qid in (ids[4], ids[1], ids[4]):
        await cand.ok("put", f"/api/flow/flags/{qid}", json={"flagged": True})
    done = await cand.ok("put", f"/api/flow/flags/{ids[7]}", json={"flagged": True})
    assert done["all"] == [ids[1], ids[4], ids[7]]
    await cand.ok("put", f"/api/flow/flags/{ids[4]}", json={"flagged": False})
    unknown = await cand.put("/api/flow/flags/999999", json={"flagged": True})
    assert unknown.status_code == 404 and code(unknown) == "unknown_question"
    bad = await cand.put(f"/api/flow/flags/{ids[0]}", json={"flagged": "maybe"})
    assert bad.status_code == 422
    # the page reloaded: the paper comes with its flags
    assert (await cand.ok("get", "/api/flow/paper"))["flagged"] == [ids[1], ids[7]]


async def test_each_candidate_has_an_order_of_their_own(fa: FlowApp) -> None:
    s = await fa.sitting(candidates=2)
    orders = []
    for c in s.candidates:
        cand = await fa.login(s.password, c.id_number)
        await fa.walk(cand, "answering")
        orders.append((await cand.ok("get", "/api/flow/paper"))["questions"])
    a, b = orders
    assert sorted(q["id"] for q in a) == sorted(q["id"] for q in b)
    assert [q["id"] for q in a] != [q["id"] for q in b]
    assert [q["type"] for q in a] == [q["type"] for q in b]  # sections stay in order
    options_a = {q["id"]: [o["key"] for o in q["options"]] for q in a}
    options_b = {q["id"]: [o["key"] for o in q["options"]] for q in b}
    assert options_a != options_b


async def test_submit_boundary_40_minutes_formal(fa: FlowApp) -> None:
    s, cand, _ = await _answering(fa)
    started = datetime.fromisoformat((await cand.state())["timing"]["answering_started_at"])
    fa.clock.set(started + timedelta(minutes=39, seconds=59))
    early = await cand.post("/api/flow/submit")
    assert early.status_code == 409 and code(early) == "too_early_to_submit"
    assert "1 s" in early.json()["error"]["message"]
    fa.clock.set(started + timedelta(minutes=40))
    done = await cand.ok("post", "/api/flow/submit")
    assert done["step"] == "submitted" and done["submit_kind"] == "candidate"
    assert done["result"] is None  # formal results stay secret
    assert code(await cand.post("/api/flow/submit")) == "already_submitted"
    late_answer = await cand.put("/api/flow/answers/1", json={"value": "A", "seq": 99})
    assert code(late_answer) == "already_submitted"
    again = await fa.client().post(
        "/api/candidate/login",
        json={"sitting_password": s.password, "id_number": s.candidates[0].id_number},
    )
    assert again.status_code == 409 and code(again) == "already_submitted"


async def test_submit_boundary_30_minutes_trial_and_score_shown(fa: FlowApp) -> None:
    s, cand, paper = await _answering(fa, kind="trial")
    key = await _answer_key(fa, paper)
    # all right except one single-choice question (5 points)
    wrong_one = next(q for q in paper["questions"] if q["type"] == "single")
    for seq, q in enumerate(paper["questions"], start=1):
        value = key[q["id"]]
        if q["id"] == wrong_one["id"]:
            value = next(o["key"] for o in q["options"] if o["key"] != key[q["id"]])
        await cand.ok("put", f"/api/flow/answers/{q['id']}", json={"value": value, "seq": seq})
    started = datetime.fromisoformat((await cand.state())["timing"]["answering_started_at"])
    fa.clock.set(started + timedelta(minutes=29, seconds=59))
    assert code(await cand.post("/api/flow/submit")) == "too_early_to_submit"
    fa.clock.set(started + timedelta(minutes=30))
    done = await cand.ok("post", "/api/flow/submit")
    assert done["result"] == {
        "objective_score": 95.0,
        "total_score": 95.0,
        "grading_pending": False,
        "passed": True,
        "pass_score": 60.0,
    }


async def test_extensions_move_the_end_and_papers_are_handed_in_at_the_end(
    fa: FlowApp,
) -> None:
    s = await fa.sitting(candidates=3, duration=timedelta(minutes=60))
    cands = []
    for c in s.candidates:
        cand = await fa.login(s.password, c.id_number)
        await fa.walk(cand, "answering")
        cands.append(cand)
    inv = await fa.staff()
    no_reason = await inv.post(
        "/api/invigilate/extensions",
        json={
            "sitting_id": s.id,
            "candidate_ids": [s.candidates[0].id],
            "minutes": 10,
            "reason": "",
        },
    )
    assert no_reason.status_code == 422
    await inv.ok(
        "post",
        "/api/invigilate/extensions",
        json={
            "sitting_id": s.id,
            "candidate_ids": [s.candidates[0].id],
            "minutes": 10,
            "reason": "power cut 停电 8 min",
        },
    )
    # the whole sitting: a chief examiner's (here the administrator's) decision
    chief = await fa.staff(ADMIN)
    await chief.ok(
        "post",
        "/api/invigilate/extensions",
        json={
            "sitting_id": s.id,
            "candidate_ids": None,
            "minutes": 5,
            "reason": "server restart 服务器故障",
        },
    )
    state0, state1 = await cands[0].state(), await cands[1].state()
    assert datetime.fromisoformat(state0["timing"]["ends_at"]) == s.ends_at + timedelta(minutes=15)
    assert datetime.fromisoformat(state1["timing"]["ends_at"]) == s.ends_at + timedelta(minutes=5)
    listed = await inv.ok("get", f"/api/invigilate/extensions?sitting_id={s.id}")
    assert [(e["seconds"], e["candidate_id"]) for e in listed] == [
        (600, s.candidates[0].id),
        (300, None),
    ]

    q = (await cands[1].ok("get", "/api/flow/paper"))["questions"][0]
    # candidate 1's end: ends_at + 5 min; answers in flight are taken for 15 s more
    fa.clock.set(s.ends_at + timedelta(minutes=5, seconds=15))
    await cands[1].ok("put", f"/api/flow/answers/{q['id']}", json={"value": None, "seq": 1})
    fa.clock.set(s.ends_at + timedelta(minutes=5, seconds=16))
    over = await cands[1].put(f"/api/flow/answers/{q['id']}", json={"value": None, "seq": 2})
    assert over.status_code == 409 and code(over) == "time_over"
    assert (await cands[1].state())["submit_kind"] == "auto"
    # the sweeper hands in candidate 2 (not candidate 0: their end is 10 min later)
    done = await fa.exam.sweep()
    assert [d for d in done if d[0] == s.id] == [(s.id, s.candidates[2].id)]
    assert (await cands[2].state())["step"] == "submitted"
    assert (await cands[0].state())["step"] == "answering"
    fa.clock.set(s.ends_at + timedelta(minutes=15, seconds=16))
    done = await fa.exam.sweep()
    assert [d for d in done if d[0] == s.id] == [(s.id, s.candidates[0].id)]
    state0 = await cands[0].state()
    assert state0["step"] == "submitted" and state0["submit_kind"] == "auto"
    handed = datetime.fromisoformat(state0["submitted_at"])
    assert handed == s.ends_at + timedelta(minutes=15)  # recorded at the end itself
    late = await inv.post(
        "/api/invigilate/extensions",
        json={
            "sitting_id": s.id,
            "candidate_ids": [s.candidates[0].id],
            "minutes": 5,
            "reason": "too late",
        },
    )
    assert code(late) == "already_submitted"


async def test_short_answers_are_graded_and_results_export(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", paper="with_short", candidates=2)
    cands, paper = await fa.all_answering(s)
    key = await _answer_key(fa, paper)
    short = next(q for q in paper["questions"] if q["type"] == "short")
    for seq, q in enumerate(paper["questions"], start=1):
        value = "my answer" if q["type"] == "short" else key[q["id"]]
        await cands[0].ok("put", f"/api/flow/answers/{q['id']}", json={"value": value, "seq": seq})
    started = datetime.fromisoformat((await cands[0].state())["timing"]["answering_started_at"])
    fa.clock.set(started + timedelta(minutes=40))
    await cands[0].ok("post", "/api/flow/submit")
    await cands[1].ok("post", "/api/flow/submit")  # handed in blank

    admin = await fa.staff(("admin1", "admin-pass-1"))
    results = await admin.ok("get", f"/api/admin/sittings/{s.id}/results")
    by_id = {r["candidate_id"]: r for r in results}
    first, blank = by_id[s.candidates[0].id], by_id[s.candidates[1].id]
    assert first["objective_score"] == 90.0 and first["grading_pending"] is True
    assert first["total_score"] is None and first["passed"] is None
    assert blank["objective_score"] == 0.0 and blank["grading_pending"] is False
    assert blank["total_score"] == 0.0 and blank["passed"] is False

    reviewer = await fa.staff(REVIEWER)
    queue = await reviewer.ok("get", f"/api/admin/sittings/{s.id}/grading")
    assert len(queue) == 1 and queue[0]["answer"] == "my answer"
    assert queue[0]["max_points"] == 10.0 and queue[0]["question_id"] == short["id"]
    too_many = await reviewer.post(
        f"/api/admin/answers/{queue[0]['answer_id']}/grade", json={"points": 11}
    )
    assert too_many.status_code == 422 and code(too_many) == "bad_points"
    invigilator = await fa.staff()
    assert (
        code(
            await invigilator.post(
                f"/api/admin/answers/{queue[0]['answer_id']}/grade", json={"points": 5}
            )
        )
        == "graders_only"
    )
    graded = await reviewer.ok(
        "post",
        f"/api/admin/answers/{queue[0]['answer_id']}/grade",
        json={"points": 6.5, "note": "partly right"},
    )
    assert graded["attempt"] == {
        "candidate_id": s.candidates[0].id,
        "total_score": 96.5,
        "grading_pending": False,
        "passed": True,
    }
    assert await reviewer.ok("get", f"/api/admin/sittings/{s.id}/grading") == []

    csv_resp = await admin.get(f"/api/admin/sittings/{s.id}/results.csv")
    assert csv_resp.status_code == 200 and csv_resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_resp.content.decode("utf-8-sig"))))
    row = next(r for r in rows if r["id_number"] == s.candidates[0].id_number)
    assert row["total_score"] == "96.5" and row["passed"] == "True"
    answers = await admin.get(f"/api/admin/sittings/{s.id}/answers.csv")
    items = list(csv.DictReader(io.StringIO(answers.content.decode("utf-8-sig"))))
    mine = [r for r in items if r["id_number"] == s.candidates[0].id_number]
    assert len(mine) == 26 and [int(r["number"]) for r in mine] == list(range(1, 27))
    short_row = next(r for r in mine if r["type"] == "short")
    assert short_row["answer"] == "my answer" and short_row["points"] == "6.5"
    assert short_row["graded_by"] == REVIEWER[0] and short_row["grade_note"] == "partly right"
    assert sum(float(r["points"] or 0) for r in mine) == 96.5


async def test_invigilators_act_only_on_their_own_rooms(fa: FlowApp) -> None:
    """Admit, extend, release and the flow overview are refused to an invigilator of
    another room; an invigilator's "everyone" extension covers their rooms only."""
    import uuid

    from proctor.sitting.sittings import create_staff

    s = await fa.sitting(candidates=2, duration=timedelta(minutes=60))
    cid = s.candidates[0].id
    other = (f"inv-{uuid.uuid4().hex[:6]}", "other-pass-1")
    async with fa.rt.db.transaction() as db:
        await create_staff(
            db, username=other[0], password=other[1], display_name="other", role="invigilator"
        )
    stranger = await fa.staff(other)
    refused = [
        await stranger.post(f"/api/invigilate/candidates/{cid}/admit", json={"reason": "ok"}),
        await stranger.post(
            f"/api/invigilate/candidates/{cid}/identity-retry", json={"reason": "ok"}
        ),
        await stranger.post(f"/api/invigilate/candidates/{cid}/release"),
        await stranger.post(
            "/api/invigilate/extensions",
            json={"sitting_id": s.id, "candidate_ids": [cid], "minutes": 5, "reason": "x"},
        ),
        await stranger.post(
            "/api/invigilate/extensions",
            json={"sitting_id": s.id, "candidate_ids": None, "minutes": 5, "reason": "x"},
        ),
        await stranger.get(f"/api/invigilate/candidates?sitting_id={s.id}"),
        await stranger.get(f"/api/invigilate/extensions?sitting_id={s.id}"),
    ]
    assert [(r.status_code, code(r)) for r in refused] == [(403, "not_your_room")] * len(refused)
    # the room's own invigilator sees both candidates; "everyone" means their room's
    inv = await fa.staff()
    overview = await inv.ok("get", f"/api/invigilate/candidates?sitting_id={s.id}")
    assert sorted(c["candidate_id"] for c in overview) == sorted(c.id for c in s.candidates)
    body = await inv.ok(
        "post",
        "/api/invigilate/extensions",
        json={"sitting_id": s.id, "candidate_ids": None, "minutes": 5, "reason": "网络 network"},
    )
    assert sorted(e["candidate_id"] for e in body["extensions"]) == sorted(
        c.id for c in s.candidates
    )
