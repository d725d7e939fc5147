"""Issue 21 item 6: separation of duties (real app, SQLite and PostgreSQL): only a chief
examiner creates chiefs and administrators; a finished sitting's times are frozen; both
staff creation and sitting changes are in the audit chain."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select

from proctor.evidence import chain
from proctor.sitting.sittings import create_staff
from proctor.store.tables import Answer, Attempt, AuditEntry
from tests.flowkit import ADMIN, REVIEWER, FlowApp, code, demo_questions

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHIEF = ("chief1", "chief-pass-1")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fa(database_url, tmp_path_factory, models_dir):
    async with FlowApp.running(database_url, tmp_path_factory.mktemp("duties"), models_dir) as app:
        async with app.rt.db.transaction() as s:
            await create_staff(
                s, username=CHIEF[0], password=CHIEF[1], display_name="Chief", role="chief"
            )
        yield app


async def _entries(fa: FlowApp, kind: str) -> list[AuditEntry]:
    async with fa.rt.db.session() as db:
        return list(await db.scalars(select(AuditEntry).where(AuditEntry.kind == kind)))


def _staff(username: str, role: str) -> dict:
    return {
        "username": username,
        "password": "long-enough-1",
        "display_name": username,
        "role": role,
    }


async def test_only_a_chief_creates_chiefs_and_admins(fa: FlowApp) -> None:
    admin = await fa.staff(ADMIN)
    for role in ("chief", "admin"):
        refused = await admin.post("/api/admin/staff", json=_staff(f"sneaky-{role}", role))
        assert refused.status_code == 403 and code(refused) == "chief_only"
    made = await admin.ok("post", "/api/admin/staff", json=_staff("new-invig", "invigilator"))
    chief = await fa.staff(CHIEF)
    second = await chief.ok("post", "/api/admin/staff", json=_staff("second-chief", "chief"))
    created = {e.subject_id: e for e in await _entries(fa, "staff_created")}
    assert created[made["id"]].actor.endswith(str((await admin.ok("get", "/api/staff/me"))["id"]))
    assert '"role":"chief"' in created[second["id"]].payload.replace(" ", "")
    assert not any("sneaky" in e.payload for e in created.values())


async def test_a_finished_sittings_times_are_frozen_and_changes_audited(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=10))
    admin = await fa.staff(ADMIN)
    moved = await admin.ok(
        "patch",
        f"/api/admin/sittings/{s.id}",
        json={"ends_at": (s.ends_at + timedelta(minutes=30)).isoformat(), "password": "new-pw-1"},
    )
    assert moved["ends_at"].startswith((s.ends_at + timedelta(minutes=30)).isoformat()[:16])
    fa.clock.set(s.ends_at + timedelta(hours=1))
    past = (s.starts_at - timedelta(days=3000)).isoformat()
    for change in ({"starts_at": past}, {"ends_at": past}):
        frozen = await admin.patch(f"/api/admin/sittings/{s.id}", json=change)
        assert frozen.status_code == 409 and code(frozen) == "schedule_frozen"
    renamed = await admin.ok("patch", f"/api/admin/sittings/{s.id}", json={"name": "renamed"})
    assert renamed["name"] == "renamed"
    changes = [e for e in await _entries(fa, "sitting_changed") if e.sitting_id == s.id]
    assert len(changes) == 2
    assert "ends_at" in changes[0].payload and "password_sha256" in changes[0].payload
    assert "new-pw-1" not in changes[0].payload
    assert "renamed" in changes[1].payload


async def test_grades_extensions_and_imports_are_chained(fa: FlowApp) -> None:
    """Issue 21 item 5 (part): every grade, time extension and import is an audit-chain
    entry, and the chain (with every recorded row and file) still verifies."""
    s = await fa.sitting(kind="formal", paper="with_short", starts_in=timedelta(minutes=1))
    cand = await fa.login(s.password, s.candidates[0].id_number)
    await fa.walk(cand, "answering")
    paper = await cand.ok("get", "/api/flow/paper")
    short = next(q for q in paper["questions"] if q["type"] == "short")
    await cand.ok("put", f"/api/flow/answers/{short['id']}", json={"value": "mine", "seq": 1})
    inv = await fa.staff()
    await inv.ok(
        "post",
        "/api/invigilate/extensions",
        json={
            "sitting_id": s.id,
            "candidate_ids": [s.candidates[0].id],
            "minutes": 5,
            "reason": "network cut",
        },
    )
    fa.clock.set(s.ends_at + timedelta(minutes=30))
    await fa.exam.sweep()
    reviewer = await fa.staff(REVIEWER)
    queue = await reviewer.ok("get", f"/api/admin/sittings/{s.id}/grading")
    answer_id = queue[0]["answer_id"]
    await reviewer.ok("post", f"/api/admin/answers/{answer_id}/grade", json={"points": 4})
    admin = await fa.staff(ADMIN)
    other = await fa.sitting(candidates=0)
    roster = "姓名,身份证号\n甲,110101199001019991\n"
    await admin.ok(
        "post",
        f"/api/admin/sittings/{other.id}/roster",
        files={"file": ("roster.csv", roster.encode(), "text/csv")},
    )
    bank = json.dumps({"bank": "chained", "questions": demo_questions("ch", 2, 0, 0, 0)})
    await admin.ok("post", "/api/admin/banks/import", files={"file": ("bank.json", bank.encode())})
    graded = [
        e
        for e in await _entries(fa, "answer.graded")
        if f'"answer_id":{answer_id}' in e.payload.replace(" ", "")
    ]
    assert len(graded) == 1 and '"points":4.0' in graded[0].payload.replace(" ", "")
    assert [e.candidate_id for e in await _entries(fa, "paper.submitted")].count(
        s.candidates[0].id
    ) == 1
    extended = [e for e in await _entries(fa, "time.extended") if e.sitting_id == s.id]
    assert len(extended) == 1 and "network cut" in extended[0].payload
    rostered = [e for e in await _entries(fa, "roster.imported") if e.sitting_id == other.id]
    assert len(rostered) == 1 and hashlib.sha256(roster.encode()).hexdigest() in (
        rostered[0].payload
    )
    assert any('"chained"' in e.payload for e in await _entries(fa, "bank.imported"))
    async with fa.rt.db.session() as db:
        report = await chain.verify(db, fa.rt.storage)
    assert report.ok, report.all_problems()[:5]

    # the record cannot be rewritten unnoticed: an answer, then a score
    async with fa.rt.db.transaction() as db:
        answer = await db.get(Answer, answer_id)
        original = answer.value
        answer.value = "a better answer"
    async with fa.rt.db.session() as db:
        report = await chain.verify(db, fa.rt.storage)
    assert not report.ok and f"answers {answer_id}" in report.first_break.message
    async with fa.rt.db.transaction() as db:
        (await db.get(Answer, answer_id)).value = original
        attempt = await db.scalar(select(Attempt).where(Attempt.candidate_id == s.candidates[0].id))
        attempt.total_score = 100.0
    async with fa.rt.db.session() as db:
        report = await chain.verify(db, fa.rt.storage)
    assert not report.ok and "total_score" in report.first_break.message
