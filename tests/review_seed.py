"""A sitting to review, with real alerts: real photos go through the real detectors and the
real rules, and the real Recorder stores the alerts with their annotated screenshots, clips
(WebM) and snapshots, in the audit chain. Used by the review, audit and retention tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np

STAFF = {
    "reviewer": ("reviewer1", "review-pass-1"),
    "reviewer2": ("reviewer2", "review-pass-2"),
    "chief": ("chief1", "chief-pass-1"),
    "invigilator": ("invigilator9", "invigilate-pass-9"),
    "admin": ("admin1", "admin-pass-1"),
}
ROLES = {
    "reviewer": "reviewer",
    "reviewer2": "reviewer",
    "chief": "chief",
    "invigilator": "invigilator",
    "admin": "admin",
}

# (first view, second view) photos, one pair per sample at 2 samples/s
CALM = ["obama.jpg"] * 6
TWO_PEOPLE_AND_PHONE = [("obama_and_biden.jpg", "rfphone_0_jpg.jpg")] * 6
NOBODY = ["no_person_dog.jpg"] * 10


@dataclass
class ReviewSeed:
    sitting_id: int
    password: str
    candidates: dict[str, int]  # risky | calm | clean -> id
    alerts: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)  # (id, type, view)
    staff: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(STAFF))
    staff_ids: dict[str, int] = field(default_factory=dict)


async def ensure_staff(db, names: dict[str, tuple[str, str]] | None = None) -> dict[str, int]:
    from sqlalchemy import select

    from proctor.sitting.sittings import create_staff
    from proctor.store.tables import StaffUser

    ids = {}
    for key, (username, password) in (names or STAFF).items():
        found = await db.scalar(select(StaffUser).where(StaffUser.username == username))
        if found is None:
            found = await create_staff(
                db,
                username=username,
                password=password,
                display_name=f"{ROLES[key].title()} {username[-1]}",
                role=ROLES[key],
            )
        ids[key] = found.id
    return ids


def _frames(seq: list) -> list[tuple[str, str | None]]:
    return [(s, None) if isinstance(s, str) else s for s in seq]


async def seed_review(
    database_url: str,
    data_dir: Path,
    models_dir: Path,
    media_dir: Path,
    *,
    password: str = "review-sit-1",
    starts_ago: timedelta = timedelta(minutes=20),
    duration: timedelta = timedelta(hours=1),
    name: str = "Review sitting 复核场次",
) -> ReviewSeed:
    from concurrent.futures import ThreadPoolExecutor

    from models.prepare import status
    from proctor.domain import CandidateRef
    from proctor.events.bus import make_bus
    from proctor.events.recorder import Recorder
    from proctor.evidence.clips import ClipFrame
    from proctor.evidence.screenshot import encode_jpeg
    from proctor.evidence.storage import EvidenceStorage
    from proctor.invigilation.supervision import send_danmaku, snooze_alerts
    from proctor.rules import RuleEngine, RuleSettings
    from proctor.sitting.sittings import add_candidate, create_sitting
    from proctor.store import migrate
    from proctor.store.db import Database
    from proctor.store.tables import Candidate, utcnow
    from proctor.vision.analyzer import build_analyzer

    db = Database(database_url)
    bus = make_bus("")
    executor = ThreadPoolExecutor(max_workers=1)
    storage = EvidenceStorage(data_dir / "evidence")
    rules = RuleSettings(absent_seconds=3.0)
    try:
        await migrate.upgrade(db.engine)
        async with db.transaction() as s:
            now = utcnow()
            sitting = await create_sitting(
                s,
                name=name,
                kind="formal",
                password=password,
                starts_at=now - starts_ago,
                ends_at=now - starts_ago + duration,
                rules=rules,
            )
            cands = {}
            for i, key in enumerate(("risky", "calm", "clean")):
                photo = (media_dir / "images/obama.jpg").read_bytes() if key == "risky" else None
                c = await add_candidate(
                    s,
                    storage,
                    sitting_id=sitting.id,
                    name=f"{key.title()} 考生{i + 1}",
                    id_number=f"11010119850101{password[-1]}{i:03d}",
                    photo=photo,
                )
                cands[key] = c.id
            staff_ids = await ensure_staff(s)
        seed = ReviewSeed(sitting.id, password, cands, staff_ids=staff_ids)

        analyzer = build_analyzer({st.name: st.path for st in status(models_dir)})
        recorder = Recorder(db, storage, bus, executor)
        cache: dict[str, np.ndarray] = {}

        def image(fname: str) -> np.ndarray:
            if fname not in cache:
                cache[fname] = cv2.imread(str(media_dir / "images" / fname), cv2.IMREAD_COLOR)
                assert cache[fname] is not None, fname
            return cache[fname]

        async def stream(key: str, seq: list) -> None:
            ref = CandidateRef(cands[key], sitting.id, key, 2.0, rules)
            engine = RuleEngine(rules)
            ring: dict[str, list[ClipFrame]] = {"first": [], "second": []}
            t = time.time() - 90
            await recorder.record_connection(ref, "first", True)
            found = []
            for i, sample in enumerate(_frames(seq)):
                for view, fname in zip(("first", "second"), sample, strict=True):
                    if fname is None:
                        continue
                    frame = image(fname)
                    ring[view].append(ClipFrame(t, encode_jpeg(frame)))
                    for draft in engine.feed(analyzer.analyse(view, frame, t)):
                        alert_id = await recorder.record_alert(ref, draft, frame)
                        await recorder.record_clip(ref, alert_id, view, ring[view][-6:])
                        found.append((alert_id, draft.type, draft.view))
                if i == 2:
                    await recorder.record_snapshot(ref, "first", ring["first"][-1])
                t += 0.5
            seed.alerts[key] = found

        # the invigilator snoozed the risky candidate's device alerts before the footage:
        # the review shows the snooze with its type and marks the device alert
        async with db.session() as s:
            await snooze_alerts(
                s,
                bus,
                staff_id=staff_ids["invigilator"],
                candidate=await s.get(Candidate, cands["risky"]),
                alert_type="device",
                minutes=30,
                reason="计算器 a calculator",
            )
        await stream("risky", [("obama.jpg", "obama-480p.jpg")] * 6 + TWO_PEOPLE_AND_PHONE)
        await stream("calm", CALM + NOBODY)
        clean = CandidateRef(cands["clean"], sitting.id, "clean", 2.0, rules)
        await recorder.record_connection(clean, "first", True)
        await recorder.record_connection(clean, "first", False)
        await recorder.record_connection(clean, "first", True)
        risky = CandidateRef(cands["risky"], sitting.id, "risky", 2.0, rules)
        await recorder.record_connection(risky, "second", True)
        await send_danmaku(
            db,
            bus,
            sender_id=staff_ids["invigilator"],
            candidate_id=cands["risky"],
            text="请独立作答 Answer on your own",
        )
        return seed
    finally:
        executor.shutdown(wait=True)
        await bus.close()
        await db.dispose()
