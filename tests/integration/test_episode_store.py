"""An alert's episode in the database (issue 18), on SQLite and PostgreSQL: raised once by
the real Recorder, updated (last seen, worse severity, the worst moment's screenshot),
closed; the bus carries ``alert_update`` messages; the audit log records the end and the
worst moment and still verifies, and notices an end changed afterwards."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import cv2
import pytest
from sqlalchemy import select, update

from proctor.domain import CandidateRef
from proctor.events.bus import make_bus, sitting_channel
from proctor.events.messages import alert_body
from proctor.events.recorder import Recorder
from proctor.evidence import chain
from proctor.evidence.storage import EvidenceStorage
from proctor.invigilation.supervision import handle_alerts
from proctor.rules import RuleEngine, RuleSettings
from proctor.sitting.sittings import add_candidate
from proctor.store import migrate
from proctor.store.db import Database
from proctor.store.tables import Alert, AuditEntry, Evidence, utcnow
from proctor.vision.types import Detection, Observation
from tests.flowkit import make_sitting
from tests.review_seed import ensure_staff


def faces(ts: float, n: int) -> Observation:
    dets = tuple(
        Detection("face", 0.9, (100.0 + 150 * i, 100.0, 200.0 + 150 * i, 200.0)) for i in range(n)
    )
    return Observation(view="first", ts=ts, width=640, height=480, detections=dets)


async def test_an_episode_is_raised_updated_closed_and_audited(
    database_url: str, media_dir: Path, tmp_path: Path
) -> None:
    db = Database(database_url)
    bus = make_bus("")
    storage = EvidenceStorage(tmp_path / "evidence")
    frame = cv2.imread(str(media_dir / "images/two_people.jpg"), cv2.IMREAD_COLOR)
    rules = RuleSettings(multiple_persons_m=3, multiple_persons_k=5)
    with ThreadPoolExecutor(1) as executor:
        try:
            await migrate.upgrade(db.engine)
            async with db.transaction() as s:
                now = utcnow()
                sitting = await make_sitting(
                    s,
                    "Episodes 场次",
                    "episodes-1",
                    now - timedelta(minutes=5),
                    now + timedelta(hours=1),
                    rules=rules,
                )
                cand = await add_candidate(
                    s, storage, sitting_id=sitting.id, name="张伟", id_number="110101198501010011"
                )
            ref = CandidateRef(cand.id, sitting.id, "张伟", 2.0, rules)
            recorder = Recorder(db, storage, bus, executor)
            engine = RuleEngine(rules)
            t0 = now.timestamp() - 120
            alert_ids: dict[int, int] = {}
            async with bus.subscribe(sitting_channel(sitting.id)) as sub:
                # two people for 60 s, three at 30 s (the worst moment), then one
                for i in range(160):
                    t = t0 + i * 0.5
                    n = 1 if i > 120 else (3 if i == 60 else 2)
                    for draft in engine.feed(faces(t, n)):
                        alert_ids[draft.episode] = await recorder.record_alert(ref, draft, frame)
                    for change in engine.changes():
                        peak = (change, frame) if change.peak_observation is not None else None
                        if change.kind == "close" or peak or i % 10 == 0:
                            await recorder.record_episode(
                                ref, alert_ids[change.episode], change, peak
                            )
                    if i == 40:  # the invigilator acknowledges the ongoing episode
                        async with db.transaction() as s:
                            staff = (await ensure_staff(s))["invigilator"]
                        (ack_id,) = alert_ids.values()
                        await handle_alerts(
                            db,
                            bus,
                            staff_id=staff,
                            alert_ids=[ack_id],
                            action="acknowledge",
                            reason="seen, a second person 已看到",
                        )
                messages = []
                while not sub.queue.empty():
                    messages.append(await asyncio.wait_for(sub.get(), 5))

            assert len(alert_ids) == 1
            alert_id = next(iter(alert_ids.values()))
            async with db.session() as s:
                alert = await s.get(Alert, alert_id)
                assert alert is not None
                assert alert.ended_at is not None and alert.last_seen_at == alert.ended_at
                # acknowledging the episode covered it: its later updates kept the status
                assert alert.status == "acknowledged"
                assert (alert.ended_at - alert.started_at).total_seconds() == pytest.approx(
                    60.0, abs=1.0
                )
                assert alert.peak_score == 3.0
                assert alert.peak_at is not None
                assert abs(alert.peak_at.timestamp() - (t0 + 30.0)) < 1e-3
                peak = await s.get(Evidence, alert.peak_evidence_id)
                assert peak is not None and peak.kind == "alert_peak"
                assert peak.alert_id == alert_id
                kinds = list(
                    await s.scalars(
                        select(AuditEntry.kind)
                        .where(
                            AuditEntry.subject_type == "alert", AuditEntry.subject_id == alert_id
                        )
                        .order_by(AuditEntry.seq)
                    )
                )
                assert kinds == ["alert.raised", "alert.updated", "alert.closed"]
                report = await chain.verify(s, storage)
                assert report.ok, report.all_problems()

            types = [m["type"] for m in messages]
            assert types[0] == "alert" and "alert_update" in types
            updates = [m["alert"] for m in messages if m["type"] == "alert_update"]
            assert updates[0]["ongoing"] is True and updates[-1]["ongoing"] is False
            assert updates[-1]["duration_seconds"] == pytest.approx(60.0, abs=1.0)
            assert updates[-1]["status"] == "acknowledged"
            assert [m["alert"]["status"] for m in messages if m["type"] == "alert"] == [
                "open",
                "acknowledged",
            ]
            assert updates[-1]["peak_evidence_url"] == f"/api/evidence/{peak.id}"

            # the candidate's alerts below, warnings all
            mine = {"sitting_id": sitting.id, "candidate_id": cand.id, "severity": "warning"}
            # an episode left open by a server that stopped is closed at its last sighting
            async with db.transaction() as s:
                left = Alert(
                    **mine,
                    type="absent",
                    view="first",
                    message="No face in view for 5.0 s",
                    started_at=now - timedelta(minutes=10),
                    raised_at=now - timedelta(minutes=10),
                    last_seen_at=now - timedelta(minutes=9),
                )
                s.add(left)
                await s.flush()
                await chain.append_record(s, "alert.raised", left, actor=chain.SYSTEM)
            assert await recorder.close_stale_episodes(60.0) == 1
            assert await recorder.close_stale_episodes(60.0) == 0
            async with db.session() as s:
                closed = await s.get(Alert, left.id)
                assert closed is not None and closed.ended_at == closed.last_seen_at
                assert (await chain.verify(s, storage)).ok

            # a single server starting (close_stale_episodes(0)) closes even an episode
            # seen a moment before it was killed; a page's screen_left leave is the page's
            # to end (its return), never closed for a monitor that is gone
            async with db.transaction() as s:
                fresh, away = (
                    Alert(
                        **mine,
                        type=kind,
                        view="first",
                        message=kind,
                        started_at=now - timedelta(seconds=20),
                        raised_at=now - timedelta(seconds=20),
                        last_seen_at=now - timedelta(seconds=2),
                    )
                    for kind in ("absent", "screen_left")
                )
                s.add_all([fresh, away])
                await s.flush()
                for row in (fresh, away):
                    await chain.append_record(s, "alert.raised", row, actor=chain.SYSTEM)
            assert await recorder.close_stale_episodes(60.0) == 0
            assert await recorder.close_stale_episodes(0) == 1
            assert await recorder.close_episodes([fresh.id], "twice") == 0
            async with db.session() as s:
                ended = await s.get(Alert, fresh.id)
                assert ended is not None and ended.ended_at == ended.last_seen_at
                kept = await s.get(Alert, away.id)
                assert kept is not None and kept.ended_at is None
                assert (await chain.verify(s, storage)).ok

            # an alert recorded before episodes (its audit record has none of their fields,
            # its row none of their values) still verifies
            async with db.transaction() as s:
                old = Alert(
                    **mine,
                    type="device",
                    view="second",
                    message="cell phone on the second view in 2 of the last 6 samples",
                    started_at=now - timedelta(minutes=20),
                    raised_at=now - timedelta(minutes=20),
                )
                s.add(old)
                await s.flush()
                record = chain.alert_record(old)
                before_episodes = {
                    k: record[k]
                    for k in (
                        "sitting_id",
                        "candidate_id",
                        "type",
                        "severity",
                        "view",
                        "message_sha256",
                        "started_at",
                        "raised_at",
                        "evidence_id",
                    )
                }
                await chain.append(
                    s,
                    "alert.raised",
                    actor=chain.SYSTEM,
                    payload={"record": before_episodes},
                    sitting_id=sitting.id,
                    candidate_id=cand.id,
                    subject_type="alert",
                    subject_id=old.id,
                )
            async with db.session() as s:
                assert (await chain.verify(s, storage)).ok
                body = alert_body(await s.get(Alert, old.id), cand)  # type: ignore[arg-type]
                assert body["ongoing"] is False and body["duration_seconds"] is None

            # the recorded end cannot be moved unnoticed
            async with db.transaction() as s:
                await s.execute(
                    update(Alert)
                    .where(Alert.id == alert_id)
                    .values(ended_at=alert.ended_at + timedelta(seconds=30))
                )
            async with db.session() as s:
                report = await chain.verify(s, storage)
                assert [p.where for p in report.problems] == [f"alert {alert_id}"]
                assert "ended_at" in report.problems[0].message
        finally:
            await bus.close()
            await db.dispose()
