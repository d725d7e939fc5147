"""The console's routes' work without HTTP (issue 19): rooms managed, incidents, the
exam-room record, the staff session, what the console shows, the voice call's records and
an evidence file's access entry, against a real (SQLite) database, with a bus that reads
the database in a separate session at each publish (a message must find its change
committed). Every answer is checked against the route's wire model, strictly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from proctor.api import wire, wire_console
from proctor.auth.ratelimit import LoginLimits
from proctor.auth.sessions import PasswordChecker, resolve_token
from proctor.errors import Conflict, Forbidden, NotAuthenticated, NotFound
from proctor.invigilation import (
    console_view,
    rooms,
    seating,
    staff_session,
    supervision,
    talkback,
)
from proctor.review.access import evidence_opened
from proctor.sitting.sittings import add_candidate, create_staff
from proctor.store.tables import (
    AuditEntry,
    ConsoleAction,
    Evidence,
    Room,
    RoomSeat,
    RoomStaff,
    utcnow,
)
from tests.flowkit import make_sitting, migrated_world

COUNTED = {"rooms": Room, "seats": RoomSeat, "staff": RoomStaff, "actions": ConsoleAction}


class CommittedBus:
    """Keeps each message with what a separate session read at its publish."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self.messages: list[tuple[str, dict[str, Any], dict[str, int]]] = []

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        async with self.database.session() as s:
            seen = {
                name: int(await s.scalar(select(func.count()).select_from(table)) or 0)
                for name, table in COUNTED.items()
            }
        self.messages.append((channel, message, seen))

    def of_type(self, kind: str) -> list[tuple[str, dict[str, Any], dict[str, int]]]:
        return [m for m in self.messages if m[1].get("type") == kind]


def strict(model: Any, value: Any) -> Any:
    """The value as the route's model reads it (an undeclared field fails)."""
    from pydantic import TypeAdapter

    return TypeAdapter(model).validate_python(value)


@pytest.fixture(autouse=True)
def _strict_wire(monkeypatch):
    monkeypatch.setattr(wire, "STRICT", True)


@pytest_asyncio.fixture
async def world(tmp_path):
    async with migrated_world(tmp_path) as (database, storage):
        async with database.transaction() as s:
            sitting = await make_sitting(s, "console unit", "console-pass-1")
            later = await make_sitting(  # not over yet
                s,
                "console later",
                "console-pass-2",
                utcnow() + timedelta(days=1),
                utcnow() + timedelta(days=1, hours=2),
            )
            cands = [
                await add_candidate(
                    s, storage, sitting_id=sitting.id, name=f"考生 {i}", id_number=f"CU{i:04d}"
                )
                for i in range(3)
            ]
            chief = await create_staff(
                s, username="chief-unit", password="chief-pass-unit", display_name="C", role="chief"
            )
            inv = await create_staff(
                s,
                username="inv-unit",
                password="inv-pass-unit",
                display_name="监考 I",
                role="invigilator",
            )
            ids = {
                "sitting": sitting.id,
                "later": later.id,
                "candidates": [c.id for c in cands],
                "chief": chief.id,
                "inv": inv.id,
            }
        yield database, storage, CommittedBus(database), ids


def chief_scope(ids: dict[str, Any]) -> rooms.Scope:
    return rooms.Scope(ids["chief"], "chief", None)


async def inv_scope(s: Any, ids: dict[str, Any]) -> rooms.Scope:
    from proctor.auth.sessions import Principal

    return await rooms.scope_of(s, Principal("staff", ids["inv"], "invigilator", utcnow()))


class StillLive:
    """No view connected, no call: what a process with no media knows."""

    def views(self, candidate_id: int) -> dict[str, Any]:
        return {
            v: {"connected": False, "ended": False, "since": None, "last_frame_at": None}
            for v in ("first", "second")
        }

    def voice(self, candidate_id: int) -> dict[str, Any] | None:
        return None


async def test_rooms_are_managed_and_every_change_is_committed_before_it_is_told(world):
    database, _, bus, ids = world
    chief, first, second, _third = chief_scope(ids), *ids["candidates"]
    async with database.session() as s:
        # an invigilator manages nothing, and nothing is told
        mine = await inv_scope(s, ids)
        with pytest.raises(Forbidden) as exc:
            await seating.create_room(s, bus, mine, sitting_id=ids["sitting"], name="A")
        assert exc.value.code == "chief_only"
        with pytest.raises(Forbidden):
            await seating.staff(s, mine)
        assert bus.messages == []

        room = await seating.create_room(s, bus, chief, sitting_id=ids["sitting"], name=" A  1 ")
        strict(wire_console.ConsoleRoom, room)
        assert room["name"] == "A 1" and room["seated"] == 0 and room["understaffed"]
        (channel, message, seen), *_ = bus.messages
        assert message == {"type": "rooms", "sitting_id": ids["sitting"]}
        assert channel.endswith(str(ids["sitting"])) and seen["rooms"] == 1

        answer = await seating.seat(s, bus, chief, room["id"], [first, second])
        assert strict(wire_console.ConsoleRoom, answer).seated == 2
        assert bus.messages[-1][2]["seats"] == 2

        answer = await seating.assign(s, bus, chief, room["id"], [ids["inv"]])
        assert [i["display_name"] for i in answer["invigilators"]] == ["监考 I"]
        assert bus.messages[-1][2]["staff"] == 1
        with pytest.raises(Conflict) as exc:  # refused: nothing told
            await seating.create_room(s, bus, chief, sitting_id=ids["sitting"], name="A 1")
        assert exc.value.code == "room_exists"
        await s.rollback()
        told = len(bus.messages)

        answer = await seating.unseat(s, bus, chief, room["id"], second)
        assert answer["seated"] == 1 and bus.messages[-1][2]["seats"] == 1
        listed = await seating.auto_rooms(s, bus, chief, ids["sitting"], [], capacity=5)
        strict(list[wire_console.ConsoleRoom], listed)
        assert sum(r["seated"] for r in listed) == 3 and len(bus.messages) == told + 2
        assert bus.messages[-1][2] == {"rooms": 2, "seats": 3, "staff": 1, "actions": 0}
        staff = await seating.staff(s, chief, "invigilator")
        assert strict(list[wire_console.ConsoleStaffUser], staff)[0].username == "inv-unit"

        # the invigilator now sees their room only; an incident names its own candidates
        mine = await inv_scope(s, ids)
        with pytest.raises(NotFound) as exc:
            await seating.incident(
                s,
                bus,
                mine,
                room["id"],
                category="power",
                description="lights out",
                candidate_ids=[second],
            )
        assert exc.value.code == "unknown_candidate"
        with pytest.raises(Forbidden) as exc:
            await seating.incident(
                s,
                bus,
                mine,
                listed[1]["id"],
                category="power",
                description="lights out",
                candidate_ids=[],
            )
        assert exc.value.code == "not_your_room"
        rows = await seating.incident(
            s,
            bus,
            mine,
            room["id"],
            category="power",
            description="lights out",
            candidate_ids=[first],
        )
        (row,) = strict(list[wire_console.ConsoleAction], rows)
        assert row.kind == "incident" and row.candidate_id == first
        assert bus.of_type("action")[-1][2]["actions"] == 1


async def test_the_record_of_the_callers_rooms(world):
    database, _, bus, ids = world
    chief, first, second, _third = chief_scope(ids), *ids["candidates"]
    async with database.session() as s:
        a = await seating.create_room(s, bus, chief, sitting_id=ids["sitting"], name="A")
        b = await seating.create_room(s, bus, chief, sitting_id=ids["sitting"], name="B")
        await seating.seat(s, bus, chief, a["id"], [first])
        await seating.seat(s, bus, chief, b["id"], [second])
        await seating.assign(s, bus, chief, a["id"], [ids["inv"]])
        mine = await inv_scope(s, ids)
        await seating.incident(
            s,
            bus,
            mine,
            a["id"],
            category="network",
            description="the network went",
            candidate_ids=[],
        )

        rec = await seating.record(s, mine, ids["sitting"])
        model = strict(wire_console.ConsoleRoomRecord, rec)
        assert [r.name for r in model.rooms] == ["A"]
        assert [p.id for p in model.attendance] == [first]
        assert model.sitting.over and model.summary.incidents == 1
        assert rec["sitting"]["starts_at"].endswith("+08:00")  # the sitting's zone
        whole = strict(
            wire_console.ConsoleRoomRecord, await seating.record(s, chief, ids["sitting"])
        )
        assert len(whole.attendance) == 3
        with pytest.raises(Forbidden):
            await seating.record(s, mine, ids["sitting"], b["id"])
        with pytest.raises(NotFound) as exc:  # a room of another sitting
            await seating.record(s, chief, ids["later"], a["id"])
        assert exc.value.code == "unknown_room"
        assert seating.record_filename(rec, "csv") == (
            f"exam-room-record-sitting-{ids['sitting']}.csv"
        )
        await seating.record_export(s, mine, ids["sitting"], None, draft=False)
        with pytest.raises(Conflict) as exc:  # not over: a draft only
            await seating.record_export(s, chief, ids["later"], None, draft=False)
        assert exc.value.code == "sitting_in_progress"
        draft = await seating.record_export(s, chief, ids["later"], None, draft=True)
        assert draft["sitting"]["over"] is False


async def test_the_staff_session(world):
    database, _, _, ids = world
    checker = PasswordChecker()
    try:

        def login(password: str):
            return staff_session.login(
                database,
                "inv-unit",
                password,
                checker=checker,
                limits=LoginLimits(),
                client="unit",
                now=utcnow(),
            )

        with pytest.raises(NotAuthenticated) as exc:
            await login("wrong-pass")
        assert exc.value.code == "invalid_credentials"
        session = await login("inv-pass-unit")
        model = strict(wire_console.ConsoleStaffLogin, session)
        assert model.user.role == "invigilator" and model.user.id == ids["inv"]
        async with database.session() as s:  # committed
            who = await resolve_token(s, session["token"])
            assert await staff_session.me(s, who.subject_id) == session["user"]
            await staff_session.logout(s, session["token"])
        async with database.session() as s:
            with pytest.raises(NotAuthenticated):
                await resolve_token(s, session["token"])
            await staff_session.logout(s, session["token"])  # again: nothing to end
    finally:
        checker.close()


async def test_what_the_console_shows(world):
    database, _, bus, ids = world
    chief, first, second, third = chief_scope(ids), *ids["candidates"]
    live = StillLive()
    async with database.session() as s:
        a = await seating.create_room(s, bus, chief, sitting_id=ids["sitting"], name="A")
        await seating.seat(s, bus, chief, a["id"], [second, first])
        await seating.assign(s, bus, chief, a["id"], [ids["inv"]])
        mine = await inv_scope(s, ids)

        shown = await console_view.sittings(s, mine)
        assert [x.id for x in strict(list[wire_console.ConsoleSitting], shown)] == [ids["sitting"]]
        assert {x["id"] for x in await console_view.sittings(s, chief)} == {
            ids["sitting"],
            ids["later"],
        }
        assert [r["id"] for r in await console_view.rooms_of(s, mine, ids["sitting"])] == [a["id"]]
        with pytest.raises(Forbidden):
            await console_view.rooms_of(s, mine, ids["later"])

        tiles = await console_view.candidates(s, live, mine, ids["sitting"], None)
        models = strict(list[wire_console.ConsoleCandidateTile], tiles)
        assert [t.id for t in models] == [second, first]  # in seat order
        assert models[0].room is not None and models[0].room.seat == 1
        assert models[0].thumbnail_urls["second"].endswith(f"/{second}/thumbnail/second.jpg")
        every = await console_view.candidates(s, live, chief, ids["sitting"], None)
        assert [t["id"] for t in every] == [second, first, third]  # the unseated last
        assert every[-1]["room"] is None

        # an alert of one candidate: on the tile, in the lists, handled, in the timeline
        await supervision.send_danmaku(
            database, bus, sender_id=ids["inv"], candidate_id=first, text="请正对摄像头"
        )
        snoozed = await supervision.snooze_alerts(
            s,
            bus,
            staff_id=ids["inv"],
            candidate=await rooms.check_candidate(s, mine, first),
            alert_type="absent",
            minutes=5,
            reason="checked it",
        )
        strict(wire_console.ConsoleSnooze, snoozed)
        listed = await console_view.snoozes(s, mine, ids["sitting"])
        assert [x.id for x in strict(list[wire_console.ConsoleSnooze], listed)] == [snoozed["id"]]
        assert await console_view.alerts(s, mine, ids["sitting"], room_id=a["id"]) == []

        detail = await console_view.candidate(s, live, mine, first)
        model = strict(wire_console.ConsoleCandidateDetail, detail)
        assert model.room_id == a["id"] and model.sitting_id == ids["sitting"]
        kinds = {item.kind for item in model.timeline}
        assert {"danmaku", "action"} <= kinds
        items = await console_view.timeline(s, mine, first, limit=1)
        assert len(strict(list[wire_console.ConsoleTimelineItem], items)) == 1
        # the keys of a timeline item: its kind's subject only
        assert set(items[0]) == {"at", "kind", items[0]["kind"]}
        with pytest.raises(Forbidden):
            await console_view.candidate(s, live, mine, third)
        with pytest.raises(NotFound) as exc:
            await console_view.candidates(s, live, chief, ids["later"], a["id"])
        assert exc.value.code == "unknown_room"


async def test_a_voice_call_is_logged_before_the_page_is_told(world):
    database, _, bus, ids = world
    first = ids["candidates"][0]
    async with database.session() as s:
        cand = await rooms.check_candidate(s, chief_scope(ids), first)
        started = await talkback.call_started(
            s, bus, staff_id=ids["inv"], candidate=cand, call_id="call-1"
        )
        assert strict(wire_console.ConsoleAction, started).kind == "voice_started"
        action, ring = bus.messages[-2:]
        assert action[1]["type"] == "action" and ring[1] == {
            "type": "voice_call",
            "call_id": "call-1",
            "from": "监考 I",
        }
        assert ring[0].endswith(str(first)) and ring[2]["actions"] == 1

        ended = await talkback.call_ended(
            s,
            bus,
            candidate_id=first,
            staff_id=ids["inv"],
            call_id="call-1",
            data={"seconds": 3.5},
            reason="ended by the invigilator",
        )
        assert ended["kind"] == "voice_ended" and ended["data"] == {
            "call_id": "call-1",
            "seconds": 3.5,
        }
        assert bus.messages[-1][1] == {"type": "voice_ended", "call_id": "call-1"}
        assert bus.messages[-1][2]["actions"] == 2


async def test_opening_an_evidence_file_is_in_the_audit_chain(world):
    database, _, _, ids = world
    first = ids["candidates"][0]
    async with database.session() as s:
        row = Evidence(
            sitting_id=ids["sitting"],
            candidate_id=first,
            kind="alert_screenshot",
            view="first",
            relpath="x.jpg",
            sha256="ab" * 32,
            size=1,
            mime="image/jpeg",
            captured_at=utcnow(),
        )
        s.add(row)
        await s.commit()
    await evidence_opened(database, ids["chief"], row, via="console")
    async with database.session() as s:  # committed
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.kind == "access.evidence"))
        assert entry is not None and entry.subject_id == row.id
        assert entry.actor == f"staff:{ids['chief']}" and '"via":"console"' in entry.payload
