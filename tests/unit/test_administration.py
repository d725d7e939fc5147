"""The administration pages' actions without HTTP (issue 19): each of
``proctor.sitting.administration`` commits its own work (another session sees it at once),
leaves its audit-chain entry, and refuses with the routes' codes, leaving nothing behind.
Against a real (SQLite) database."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import cv2
import numpy as np
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from proctor.errors import Forbidden, Invalid, NotFound
from proctor.flow import answering, identity, machine, steps
from proctor.sitting import administration as desk
from proctor.sitting.importing import ImportFailed
from proctor.sitting.sittings import create_staff
from proctor.store.tables import AuditEntry, Candidate, Paper, Sitting, StaffUser
from tests.flowkit import (
    BLUEPRINT_SECTIONS,
    T0,
    demo_questions,
    migrated_world,
    unit_login,
)

ROSTER = "姓名,证件号码,职业,等级\n考生甲,UNITA0001,电工,四级\n考生乙,UNITB0002,电工,四级\n"


class Bus:
    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        pass


async def _roster(s: Any, storage: Any, sitting_id: int, by: int | None) -> dict:
    """ROSTER imported into the sitting (photos not checked) by ``by``."""
    return await desk.import_roster(
        s,
        storage,
        None,
        sitting_id=sitting_id,
        data=ROSTER.encode(),
        filename="roster.csv",
        photos=None,
        verify_photos=False,
        now=T0,
        by=by,
    )


@pytest_asyncio.fixture
async def world(tmp_path):
    async with migrated_world(tmp_path) as (database, storage):
        async with database.transaction() as s:
            chief = await create_staff(
                s, username="chief-u", password="chief-pass-1", display_name="C", role="chief"
            )
            admin = await create_staff(
                s, username="admin-u", password="admin-pass-1", display_name="A", role="admin"
            )
            ids = {"chief": chief.id, "admin": admin.id}
        yield database, storage, ids


async def _kinds(database: Any) -> list[str]:
    """The audit chain's kinds, read in a session of its own (what was committed)."""
    async with database.session() as other:
        return list(await other.scalars(select(AuditEntry.kind).order_by(AuditEntry.seq)))


async def _sitting(s: Any, by: int) -> dict[str, Any]:
    return await desk.new_sitting(
        s,
        name="unit",
        kind="formal",
        password="unit-pass-1",
        starts_at=T0,
        ends_at=T0 + timedelta(hours=2),
        subject="电工",
        exam="",
        analysis_fps=2.0,
        flow={"require_phone": False},
        by=by,
    )


async def test_a_sitting_is_created_and_changed_each_in_its_own_commit(world) -> None:
    database, _, ids = world
    async with database.session() as s:
        body = await _sitting(s, ids["admin"])
        assert body["name"] == "unit" and body["registered"] == 0 and body["paper"] is None
        assert body["flow"]["require_phone"] is False and body["steps"] == {}
        async with database.session() as other:  # committed: seen by another session
            assert (await other.get(Sitting, body["id"])).name == "unit"
        changed = await desk.change_sitting(
            s,
            body["id"],
            name="renamed",
            password=None,
            starts_at=None,
            ends_at=None,
            subject=None,
            exam=None,
            analysis_fps=None,
            flow=None,
            by=ids["admin"],
            now=T0 - timedelta(days=1),
        )
        assert changed["name"] == "renamed"
        assert [b["id"] for b in await desk.sittings(s)] == [body["id"]]
        assert (await desk.sitting(s, body["id"]))["name"] == "renamed"
        with pytest.raises(NotFound) as exc:
            await desk.sitting(s, 99999)
        assert exc.value.code == "unknown_sitting"
    async with database.session() as other:
        assert (await other.get(Sitting, body["id"])).name == "renamed"
    assert (await _kinds(database))[-2:] == ["sitting_created", "sitting_changed"]


async def test_roster_bank_and_paper_commit_and_refuse_as_a_whole(world, tmp_path) -> None:
    database, storage, ids = world
    async with database.session() as s:
        sitting_id = (await _sitting(s, ids["admin"]))["id"]
        imported = await _roster(s, storage, sitting_id, ids["admin"])
        assert imported["added"] == 2 and imported["photos"] == 0
        assert [c["line"] for c in imported["candidates"]] == [2, 3]
        # a bad roster: nothing of it is stored, and nothing is left in the session
        with pytest.raises(ImportFailed):
            await desk.import_roster(
                s,
                storage,
                None,
                sitting_id=sitting_id,
                data="姓名,证件号码\n考生丙,bad\n".encode(),
                filename="roster.csv",
                photos=None,
                verify_photos=False,
                now=T0,
                by=ids["admin"],
            )
        await s.rollback()
        first, second = imported["candidates"]
        rows = await desk.roster_rows(s, sitting_id, {second["id"]: (7, "Room 7", 3)})
        assert [r["id"] for r in rows] == [first["id"], second["id"]]
        assert rows[0]["room"] is None and rows[0]["step"] is None
        assert rows[1]["room"] == {"id": 7, "name": "Room 7", "seat": 3}

        bank = await desk.import_bank(
            s, json.dumps(demo_questions("u")).encode(), "u.json", "unit-bank", by=ids["admin"]
        )
        assert bank["bank"] == "unit-bank" and bank["added"] == 27
        with pytest.raises(Invalid) as exc:
            await desk.assemble_paper(
                s, sitting_id, {"bank": "unit-bank", "sections": []}, staff_id=ids["admin"]
            )
        assert exc.value.code == "bad_blueprint"
        await s.rollback()
        with pytest.raises(NotFound) as exc:
            await desk.paper_body(s, sitting_id)
        assert exc.value.code == "no_paper"
        paper = await desk.assemble_paper(
            s, sitting_id, {"bank": "unit-bank", "sections": BLUEPRINT_SECTIONS}, staff_id=None
        )
        assert paper["total_points"] == 100.0 and paper["in_use"] is False
        assert len(paper["questions"]) == 26
        assert paper == await desk.paper_body(s, sitting_id)
    async with database.session() as other:
        assert (
            await other.scalar(select(func.count()).where(Candidate.sitting_id == sitting_id)) == 2
        )
        assert await other.scalar(select(Paper.id).where(Paper.sitting_id == sitting_id))
    assert (await _kinds(database))[-2:] == ["roster.imported", "bank.imported"]


async def test_staff_accounts_are_made_by_the_roles_table(world) -> None:
    database, _, ids = world
    async with database.session() as s:
        with pytest.raises(Forbidden) as exc:  # an administrator makes no chief
            await desk.new_staff(
                s,
                username="second-chief",
                password="second-pass-1",
                display_name="S",
                role="chief",
                by=(ids["admin"], "admin"),
            )
        assert exc.value.code == "chief_only"
        await s.rollback()
        made = await desk.new_staff(
            s,
            username="second-chief",
            password="second-pass-1",
            display_name="S",
            role="chief",
            by=(ids["chief"], "chief"),
        )
        assert made["username"] == "second-chief" and made["role"] == "chief"
    async with database.session() as other:
        assert (await other.get(StaffUser, made["id"])).username == "second-chief"
    assert (await _kinds(database))[-1] == "staff_created"


def _png() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


async def test_a_short_answer_is_graded_and_the_score_committed(world) -> None:
    database, storage, ids = world
    bus, at = Bus(), T0 - timedelta(minutes=5)
    async with database.session() as s:
        sitting_id = (await _sitting(s, ids["admin"]))["id"]
        cid = (await _roster(s, storage, sitting_id, None))["candidates"][0]["id"]
        await desk.import_bank(
            s, json.dumps(demo_questions("g")).encode(), "g.json", "g-bank", by=None
        )
        await desk.assemble_paper(
            s, sitting_id, {"bank": "g-bank", "sections": BLUEPRINT_SECTIONS}, staff_id=None
        )
        assert await desk.grading_queue(s, sitting_id) == []
        # the candidate's exam through the flow's machine: an answered short question
        await unit_login(database, at, "UNITA0001")
        await machine.act(database, bus, cid, lambda s, c: steps.confirm_info(s, c, at), now=at)
        await machine.act(
            database, bus, cid, lambda s, c: steps.answer_pledge(s, c, True, at), now=at
        )
        await identity.photo_check(
            database, bus, None, storage, cid, _png(), now=at, clock=lambda: at
        )
        await machine.act(
            database,
            bus,
            cid,
            lambda s, c: identity.admit(s, c, staff_id=ids["chief"], reason="by hand", now=at),
            now=at,
            staff=True,
        )
        await machine.act(database, bus, cid, lambda s, c: steps.phone_done(s, c, at), now=at)
        at = T0 + timedelta(minutes=1)
        await machine.act(
            database, bus, cid, lambda s, c: answering.start_answering(s, c, at), now=at
        )
        ctx = await machine.load(s, cid)
        items = await s.scalar(select(Paper.items).where(Paper.sitting_id == sitting_id))
        # the blueprint's one short question is the one worth 10 points
        short = next(int(i["question_id"]) for i in items if float(i["points"]) == 10.0)
        assert any(int(e["q"]) == short for e in ctx.attempt.question_order)
        await machine.act(
            database,
            bus,
            cid,
            lambda s, c: answering.save_answer(s, c, short, "先断电再检修", 1, at),
            now=at,
            publish=False,
        )
        at = T0 + timedelta(minutes=110)
        await machine.act(database, bus, cid, lambda s, c: answering.submit(s, c, at), now=at)
        s.expire_all()  # the flow committed on the writer: forget what this session loaded

        queue = await desk.grading_queue(s, sitting_id)
        assert [q["question_id"] for q in queue] == [short]
        assert queue[0]["answer"] == "先断电再检修" and queue[0]["max_points"] == 10.0
        with pytest.raises(Invalid) as exc:
            await desk.grade(
                s,
                answer_id=queue[0]["answer_id"],
                points=11,
                note="",
                staff_id=ids["chief"],
                now=at,
            )
        assert exc.value.code == "bad_points"
        await s.rollback()
        graded = await desk.grade(
            s,
            answer_id=queue[0]["answer_id"],
            points=7.5,
            note="half of it",
            staff_id=ids["chief"],
            now=at,
        )
        assert graded["points"] == 7.5 and graded["attempt"]["grading_pending"] is False
        with pytest.raises(NotFound) as exc:
            await desk.grade(s, answer_id=99999, points=1, note="", staff_id=1, now=at)
        assert exc.value.code == "unknown_answer"
        await s.rollback()
    async with database.session() as other:  # committed: the queue is empty elsewhere too
        assert await desk.grading_queue(other, sitting_id) == []
        assert "先断电再检修" in await desk.answers_csv(other, sitting_id)
        assert "UNITA0001" in await desk.results_csv(other, sitting_id)
    assert (await _kinds(database))[-1] == "answer.graded"
