"""The review pages' actions without HTTP (issue 19): each of ``proctor.review.reviewing``
records its look (``access.*``) or its decision in the audit chain and commits it (another
session sees it at once); a refusal leaves nothing behind. Against a real (SQLite)
database."""

from __future__ import annotations

import zipfile
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from proctor.errors import Conflict, Invalid, NotFound
from proctor.review import reviewing
from proctor.review.verdicts import CATEGORIES
from proctor.sitting.sittings import add_candidate, create_staff
from proctor.store.tables import Alert, AlertVerdict, AuditEntry, Evidence, RetentionPolicy
from tests.flowkit import T0, make_sitting, migrated_world


@pytest_asyncio.fixture
async def world(tmp_path):
    async with migrated_world(tmp_path) as (database, storage):
        async with database.transaction() as s:
            sitting = await make_sitting(s, "unit", "unit-pass-1")
            cand = await add_candidate(
                s, storage, sitting_id=sitting.id, name="考生 Unit", id_number="UNIT0001"
            )
            chief = await create_staff(
                s, username="chief-u", password="chief-pass-1", display_name="C", role="chief"
            )
            reviewer = await create_staff(
                s, username="rev-u", password="rev-pass-1", display_name="R", role="reviewer"
            )
            at = T0 + timedelta(minutes=10)
            shot = storage.save(
                (f"sitting-{sitting.id}", f"candidate-{cand.id}"),
                "alert-first",
                b"\xff\xd8 a screenshot \xff\xd9",
                "jpg",
                at,
            )
            alert = Alert(
                sitting_id=sitting.id,
                candidate_id=cand.id,
                type="face_missing",
                severity="warning",
                view="first",
                message="no face",
                started_at=at,
                raised_at=at + timedelta(seconds=20),
            )
            s.add(alert)
            await s.flush()
            evidence = Evidence(
                sitting_id=sitting.id,
                candidate_id=cand.id,
                kind="alert_screenshot",
                alert_id=alert.id,
                view="first",
                relpath=shot.relpath,
                sha256=shot.sha256,
                size=shot.size,
                mime="image/jpeg",
                captured_at=at,
            )
            s.add(evidence)
            await s.flush()
            ids = {
                "sitting": sitting.id,
                "candidate": cand.id,
                "chief": chief.id,
                "reviewer": reviewer.id,
                "alert": alert.id,
                "evidence": evidence.id,
            }
        yield database, storage, ids


async def _entries(database: Any) -> list[AuditEntry]:
    """The audit chain as committed (read in a session of its own)."""
    async with database.session() as other:
        return list(await other.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


async def _last_kind(database: Any) -> str:
    return (await _entries(database))[-1].kind


async def test_every_look_is_logged_and_committed(world) -> None:
    database, storage, ids = world
    sid, cid, me = ids["sitting"], ids["candidate"], ids["reviewer"]
    async with database.session() as s:
        listed = await reviewing.sittings(s, me)
        assert [x["id"] for x in listed] == [sid]
        assert listed[0]["candidates"] == 1 and listed[0]["alerts"] == 1
        assert listed[0]["retention"]["source"] == "default"
        assert await _last_kind(database) == "access.sittings"

        queue = await reviewing.queue(s, sid, me)
        assert [r["candidate"]["id"] for r in queue["candidates"]] == [cid]
        assert queue["candidates"][0]["alerts"]["unreviewed"] == 1
        assert queue["dismissed_rates"][0]["type"] == "face_missing"
        assert await _last_kind(database) == "access.queue"

        rates = await reviewing.dismissed_rates(s, sid, me)
        assert rates == queue["dismissed_rates"]
        assert await _last_kind(database) == "access.dismissed_rates"

        timeline = await reviewing.candidate_timeline(s, cid, me)
        assert [a["id"] for a in timeline["alerts"]] == [ids["alert"]]
        assert timeline["alerts"][0]["evidence"][0]["id"] == ids["evidence"]
        entry = (await _entries(database))[-1]
        assert (entry.kind, entry.candidate_id, entry.sitting_id) == ("access.timeline", cid, sid)

        path, mime = await reviewing.evidence_file(s, storage, ids["evidence"], me)
        assert mime == "image/jpeg" and path.read_bytes().startswith(b"\xff\xd8")
        entry = (await _entries(database))[-1]
        assert (entry.kind, entry.subject_type, entry.subject_id) == (
            "access.evidence",
            "evidence",
            ids["evidence"],
        )

        summary = await reviewing.supervision(s, sid, me)
        assert summary["sitting_id"] == sid and summary["facts"]["registered"] == 1
        assert await _last_kind(database) == "access.supervision"

        kept = await reviewing.get_retention(s, sid, me)
        assert kept["sitting_id"] == sid and kept["purged_at"] is None
        assert await _last_kind(database) == "access.retention"

        text = await reviewing.verdicts_csv(s, sid, me)
        assert "UNIT0001" in text
        assert await _last_kind(database) == "access.export_csv"

        for missing, code in (
            (lambda: reviewing.queue(s, 99999, me), "unknown_sitting"),
            (lambda: reviewing.dismissed_rates(s, 99999, me), "unknown_sitting"),
            (lambda: reviewing.candidate_timeline(s, 99999, me), "unknown_candidate"),
            (lambda: reviewing.evidence_file(s, storage, 99999, me), "unknown_evidence"),
            (lambda: reviewing.get_retention(s, 99999, me), "unknown_sitting"),
        ):
            before = len(await _entries(database))
            with pytest.raises(NotFound) as exc:
                await missing()
            assert exc.value.code == code
            await s.rollback()
            assert len(await _entries(database)) == before


async def test_a_look_at_a_missing_file_is_still_on_record(world) -> None:
    database, storage, ids = world
    async with database.session() as s:
        row = await s.get(Evidence, ids["evidence"])
        storage.open(row.relpath).unlink()
        with pytest.raises(NotFound) as exc:
            await reviewing.evidence_file(s, storage, ids["evidence"], ids["reviewer"])
        assert exc.value.code == "evidence_missing"
    entry = (await _entries(database))[-1]
    assert (entry.kind, entry.subject_id) == ("access.evidence", ids["evidence"])


async def test_verdicts_are_committed_with_their_entries(world) -> None:
    database, _, ids = world
    me = ids["reviewer"]
    async with database.session() as s:
        with pytest.raises(Invalid) as exc:
            await reviewing.decide_alert(
                s, alert_id=ids["alert"], decision="maybe", note="", reviewer_id=me
            )
        assert exc.value.code == "bad_decision"
        await s.rollback()
        verdict = await reviewing.decide_alert(
            s, alert_id=ids["alert"], decision="confirmed", note="seen", reviewer_id=me
        )
        assert verdict["decision"] == "confirmed" and verdict["reviewer"] == "R"
        assert await _last_kind(database) == "review.alert_verdict"
        async with database.session() as other:
            assert (await other.get(AlertVerdict, verdict["id"])).note == "seen"
            assert (await other.get(Alert, ids["alert"])).status == "acknowledged"

        decided = await reviewing.decide_candidate(
            s,
            candidate_id=ids["candidate"],
            outcome="violation",
            category=next(iter(CATEGORIES)),
            note="left the room",
            alert_ids=[ids["alert"]],
            reviewer_id=me,
        )
        assert decided["outcome"] == "violation" and decided["alert_ids"] == [ids["alert"]]
        assert await _last_kind(database) == "review.candidate_verdict"
        queue = await reviewing.queue(s, ids["sitting"], me)
        assert queue["candidates"][0]["verdict"]["id"] == decided["id"]


async def test_records_are_prefilled_edited_and_locked_in_commits(world) -> None:
    database, _, ids = world
    sid, me, chief = ids["sitting"], ids["reviewer"], ids["chief"]
    async with database.session() as s:
        with pytest.raises(NotFound) as exc:
            await reviewing.open_record(s, sid, "diary", me)
        assert exc.value.code == "unknown_record"
        await s.rollback()
        record = await reviewing.open_record(s, sid, "room_record", me)
        assert record["version"] == 1 and record["locked"] is False
        assert record["content"]["registered"] == 1
        kinds = [e.kind for e in await _entries(database)]
        assert kinds[-2:] == ["record.prefilled", "access.record"]

        edited = await reviewing.edit_record(
            s, sid, "room_record", content={"text": {"notes": "quiet"}}, version=1, staff_id=me
        )
        assert edited["version"] == 2 and edited["content"]["text"]["notes"] == "quiet"
        assert edited["updated_by"] == "R"
        with pytest.raises(Conflict) as exc:  # an old version: someone saved meanwhile
            await reviewing.refresh_record(s, sid, "room_record", version=1, staff_id=me)
        assert exc.value.code == "record_changed"
        await s.rollback()
        refreshed = await reviewing.refresh_record(s, sid, "room_record", version=2, staff_id=me)
        assert refreshed["content"]["text"]["notes"] == "quiet"
        locked = await reviewing.lock_record(s, sid, "room_record", version=3, staff_id=chief)
        assert locked["locked"] is True and locked["locked_by"] == "C"
        assert locked["locked_sha256"]
    kinds = [e.kind for e in await _entries(database)]
    assert kinds[-3:] == ["record.edited", "record.refreshed", "record.locked"]
    async with database.session() as other:
        again = await reviewing.open_record(other, sid, "room_record", me)
        assert again["locked"] is True and again["version"] == locked["version"]


async def test_the_evidence_pack_is_logged_and_cleaned_away(world) -> None:
    database, storage, ids = world
    async with database.session() as s:
        pack = await reviewing.evidence_pack(s, storage, ids["candidate"], ids["reviewer"])
        with zipfile.ZipFile(pack) as z:
            assert any(n.endswith(".jpg") for n in z.namelist())
        entry = (await _entries(database))[-1]
        assert entry.kind == "access.evidence_pack" and entry.candidate_id == ids["candidate"]
        assert '"all_files_match":true' in entry.payload.replace(" ", "")
        reviewing.remove_pack(pack)
        assert not pack.parent.exists()
        with pytest.raises(NotFound) as exc:
            await reviewing.evidence_pack(s, storage, 99999, ids["reviewer"])
        assert exc.value.code == "unknown_candidate"


async def test_retention_is_set_in_a_commit(world) -> None:
    database, _, ids = world
    async with database.session() as s:
        with pytest.raises(Invalid) as exc:
            await reviewing.set_retention(
                s, sitting_id=ids["sitting"], years=40, reason="", staff_id=ids["chief"]
            )
        assert exc.value.code == "reason_required"
        await s.rollback()
        kept = await reviewing.set_retention(
            s, sitting_id=ids["sitting"], years=40, reason="an appeal", staff_id=ids["chief"]
        )
        assert kept["years"] == 40 and kept["source"] == "policy"
    async with database.session() as other:
        assert (await other.get(RetentionPolicy, ids["sitting"])).years == 40
    assert await _last_kind(database) == "retention.set"
