"""The candidate's flow driven without HTTP (issue 19): the transition table, and the
flow's and the invigilator's actions through ``machine.act`` against a real (SQLite)
database, with a bus that checks every message is published after its commit."""

from __future__ import annotations

import json
from datetime import timedelta

import cv2
import numpy as np
import pytest
import pytest_asyncio

from proctor.errors import Conflict, DomainError, Forbidden
from proctor.evidence.storage import EvidenceStorage
from proctor.flow import answering, identity, machine, steps
from proctor.invigilation import control
from proctor.sitting import bank, papers
from proctor.sitting.sittings import add_candidate, create_staff
from proctor.store.tables import Candidate
from tests.flowkit import (
    OBJECTIVE_SECTIONS,
    T0,
    CommittedBus,
    demo_questions,
    make_sitting,
    migrated_world,
    unit_login,
)

STEPS = set(machine.EXAM_STEPS + machine.DEVICE_CHECK_STEPS) | machine.ENDED


# ------------------------------------------------------------------------- the table


def test_every_transition_names_real_steps():
    for action, rule in machine.TRANSITIONS.items():
        assert rule.steps and set(rule.steps) <= STEPS, action
        assert rule.to in (None, machine.NEXT) or rule.to in STEPS, action
        assert rule.refusal in ("candidate", "staff"), action


def test_every_step_of_an_exam_is_reached_by_some_action():
    reached = {"confirm"}  # where the first login puts the candidate
    for kind in ("formal", "device_check"):
        for rule in machine.TRANSITIONS.values():
            for step in rule.steps:
                if rule.to == machine.NEXT and step in machine.steps_of(kind)[:-1]:
                    reached.add(machine.next_step(kind, step))
                elif rule.to not in (None, machine.NEXT):
                    reached.add(rule.to)
    assert set(machine.EXAM_STEPS[1:]) | set(machine.DEVICE_CHECK_STEPS[1:]) <= reached
    assert {"refused", "terminated"} <= reached


def test_nothing_leaves_an_ended_exam_but_the_undo_and_the_rerun():
    leaving = {
        action
        for action, rule in machine.TRANSITIONS.items()
        if rule.to is not None and set(rule.steps) & machine.ENDED
    }
    assert leaving == {"reopen_pledge", "reopen_pledge_at_login", "run_device_check_again"}


# ------------------------------------------------------------------------- a real database


@pytest_asyncio.fixture
async def world(tmp_path):
    async with migrated_world(tmp_path) as (database, storage):
        async with database.transaction() as s:
            await bank.import_bank(s, json.dumps(demo_questions("q")).encode(), "q.json", "b")
            sitting = await make_sitting(s, "unit", "unit-pass-1", flow={"require_phone": False})
            await papers.assemble(s, sitting.id, {"bank": "b", "sections": OBJECTIVE_SECTIONS})
            cand = await add_candidate(
                s, storage, sitting_id=sitting.id, name="考生 Unit", id_number="UNIT0001"
            )
            staff = await create_staff(
                s, username="inv-unit", password="inv-pass-unit", display_name="I", role="chief"
            )
            ids = {"sitting": sitting.id, "candidate": cand.id, "staff": staff.id}
        yield database, storage, CommittedBus(database), ids


async def _login(database, at):
    return await unit_login(database, at, "UNIT0001")


def _png() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


async def test_the_exam_through_the_machine(world) -> None:
    database, storage, bus, ids = world
    cid, at = ids["candidate"], T0 - timedelta(minutes=5)
    async with database.session() as s:
        await _login(database, at)
        # a step out of order is refused with the candidate's codes, and nothing changes
        with pytest.raises(Conflict) as exc:
            await machine.act(database, bus, cid, lambda s, c: steps.phone_done(s, c, at), now=at)
        assert exc.value.code == "wrong_step"
        await s.rollback()
        await machine.act(database, bus, cid, lambda s, c: steps.confirm_info(s, c, at), now=at)
        await machine.act(
            database, bus, cid, lambda s, c: steps.answer_pledge(s, c, True, at), now=at
        )

        # step 4 without a registered photo goes to the invigilator, who admits
        result = await identity.photo_check(
            database, bus, None, storage, cid, _png(), now=at, clock=lambda: at
        )
        assert result["needs_invigilator"] and not result["passed"]
        with pytest.raises(Conflict) as exc:  # the candidate cannot go on by themselves
            await identity.photo_check(
                database, bus, None, storage, cid, _png(), now=at, clock=lambda: at
            )
        assert exc.value.code == "identity_locked"
        await s.rollback()
        staff = ids["staff"]
        await machine.act(
            database,
            bus,
            cid,
            lambda s, c: identity.admit(s, c, staff_id=staff, reason="checked by hand", now=at),
            now=at,
            staff=True,
        )
        await machine.act(database, bus, cid, lambda s, c: steps.phone_done(s, c, at), now=at)
        with pytest.raises(DomainError) as exc:  # before the start
            await machine.act(
                database, bus, cid, lambda s, c: answering.start_answering(s, c, at), now=at
            )
        await s.rollback()
        at = T0 + timedelta(minutes=1)
        await machine.act(
            database, bus, cid, lambda s, c: answering.start_answering(s, c, at), now=at
        )

        # the invigilator pauses: answers and hand-in are refused, the step stays
        await control.pause(database, bus, cid, staff_id=staff, reason="a pause", now=at)
        ctx = await machine.load(s, cid)
        first = ctx.attempt.question_order[0]["q"]
        for action in (
            lambda s, c: answering.save_answer(s, c, int(first), "A", 1, at),
            lambda s, c: answering.submit(s, c, at),
        ):
            with pytest.raises(Conflict) as exc:
                await machine.act(database, bus, cid, action, now=at)
            assert exc.value.code == "exam_paused"
            await s.rollback()
        await control.resume(database, bus, cid, staff_id=staff, now=at)
        _, saved = await machine.act(
            database,
            bus,
            cid,
            lambda s, c: answering.save_answer(s, c, int(first), "A", 1, at),
            now=at,
            publish=False,
        )
        assert saved["seq"] == 1 and not saved["stale"]

        # ending the exam: the table's staff refusals afterwards
        _, out = await control.terminate(
            database, bus, cid, staff_id=staff, category="paper_voided", reason="a phone", now=at
        )
        assert out["ended"] is True
        with pytest.raises(Conflict) as exc:
            await control.pause(database, bus, cid, staff_id=staff, reason="again", now=at)
        assert exc.value.code == "already_terminated"
        await s.rollback()
        with pytest.raises(Conflict) as exc:
            await machine.act(database, bus, cid, lambda s, c: answering.submit(s, c, at), now=at)
        assert exc.value.code == "exam_terminated"
        await s.rollback()
        # the paper may still be read after the end
        body = await answering.paper_body(s, await machine.load(s, cid))
        assert body

    assert bus.steps() == [
        "pledge",
        "identity",
        "identity",
        "phone",
        "waiting",
        "answering",
        "answering",  # paused
        "answering",  # resumed
        "terminated",
    ]


async def test_refusing_the_pledge_and_the_undo(world) -> None:
    database, storage, bus, ids = world
    cid, at = ids["candidate"], T0 - timedelta(minutes=5)
    async with database.session() as s:
        await _login(database, at)
        await machine.act(database, bus, cid, lambda s, c: steps.confirm_info(s, c, at), now=at)
        await machine.act(
            database, bus, cid, lambda s, c: steps.answer_pledge(s, c, False, at), now=at
        )
        with pytest.raises(Forbidden) as exc:
            await machine.act(database, bus, cid, lambda s, c: steps.confirm_info(s, c, at), now=at)
        assert exc.value.code == "pledge_refused"
        await s.rollback()

        # the invigilator's undo goes back to the pledge
        def undo(reason: str):
            def step(s, c):
                return steps.undo_pledge_refusal(s, c, at, by=ids["staff"], reason=reason)

            return machine.act(database, bus, cid, step, now=at, staff=True)

        await undo("misclick")
        with pytest.raises(Conflict) as exc:  # only a refused pledge can be undone
            await undo("again")
        assert exc.value.code == "pledge_not_refused"
    assert bus.steps() == ["pledge", "refused", "pledge"]


async def test_staff_load_says_who_is_missing(world) -> None:
    database, _, bus, ids = world
    async with database.session() as s:
        with pytest.raises(Conflict) as exc:
            await machine.load(s, ids["candidate"], staff=True)
        assert exc.value.code == "not_logged_in"
        with pytest.raises(DomainError) as exc:
            await machine.load(s, 10_000, staff=True)
        assert exc.value.code == "unknown_candidate"
        with pytest.raises(DomainError) as exc:
            await machine.load(s, ids["candidate"])
        assert exc.value.code == "not_authenticated"


class _CountingChecker:
    """The identity model's answer (a mismatch) and how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def check(self, registered: bytes, live: bytes, max_distance=None) -> dict:
        self.calls += 1
        return {"passed": False, "reason": "mismatch", "distance": 0.9}


def _capture_files(storage: EvidenceStorage) -> list[str]:
    return sorted(p.name for p in storage.root.rglob("identity-capture-*"))


async def test_the_same_picture_sent_again_is_not_another_failure(world) -> None:
    """A client that gave up on a slow photo check and sends the same picture again (the
    headless client after a ReadTimeout; a page retrying) gets the same check back; it
    is not counted as a second failure, the model does not run again and no second file
    is stored. Another picture counts."""
    database, storage, bus, ids = world
    cid, at = ids["candidate"], T0 - timedelta(minutes=5)
    await _login(database, at)
    await machine.act(database, bus, cid, lambda s, c: steps.confirm_info(s, c, at), now=at)
    await machine.act(database, bus, cid, lambda s, c: steps.answer_pledge(s, c, True, at), now=at)
    async with database.transaction() as s:  # a registered photo to compare with
        cand = await s.get(Candidate, cid)
        cand.photo_relpath = storage.save(("photos",), "photo", _png(), "png").relpath
    checker = _CountingChecker()

    async def check(picture: bytes, when):
        return await identity.photo_check(
            database, bus, checker, storage, cid, picture, now=when, clock=lambda: when
        )

    first = await check(_png(), at)
    published = len(bus.steps())
    again = await check(_png(), at + timedelta(seconds=20))
    assert (first["failures"], again["failures"]) == (1, 1)
    assert again["reason"] == "mismatch" and not again["needs_invigilator"]
    assert "same_check" not in again
    assert checker.calls == 1 and len(_capture_files(storage)) == 1
    assert len(bus.steps()) == published  # nothing changed: nothing to tell the consoles
    ok, other = cv2.imencode(".png", np.full((64, 64, 3), 40, np.uint8))
    assert (await check(other.tobytes(), at + timedelta(seconds=30)))["failures"] == 2
    # the first picture again after another one is a new attempt
    late = await check(_png(), at + timedelta(minutes=5))
    assert late["failures"] == 3 and late["needs_invigilator"]
    assert checker.calls == 3 and len(_capture_files(storage)) == 3


async def test_a_retry_racing_the_first_check_is_recorded_once(world) -> None:
    """Both requests of one picture passed the read-side look before either was recorded:
    the second to reach the writer finds the first's record and answers as it did, marked
    ``same_check`` (photo_check then removes the file it stored and publishes nothing)."""
    database, storage, bus, ids = world
    cid, at = ids["candidate"], T0 - timedelta(minutes=5)
    await _login(database, at)
    await machine.act(database, bus, cid, lambda s, c: steps.confirm_info(s, c, at), now=at)
    await machine.act(database, bus, cid, lambda s, c: steps.answer_pledge(s, c, True, at), now=at)
    mismatch = {"passed": False, "reason": "mismatch", "distance": 0.9}
    results = []
    for _ in range(2):
        async with database.session() as s:
            ctx = await machine.load(s, cid)
        stored = await identity.store_capture(storage, ctx, _png(), at)
        _, result = await machine.act(
            database,
            bus,
            cid,
            lambda s, c, stored=stored: identity.record_check(s, c, stored, mismatch, at),
            now=at,
        )
        results.append(result)
    assert [r["failures"] for r in results] == [1, 1]
    assert results[1]["same_check"] is True and "same_check" not in results[0]
