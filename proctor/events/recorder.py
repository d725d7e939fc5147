"""Persist what the monitors produce (alerts with their evidence, alert clips, random
snapshots, connection changes), then publish it on the bus. Persist first: a console never
shows an alert or a file the database lacks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.domain import CandidateRef
from proctor.events.bus import Bus, sitting_channel
from proctor.events.messages import alert_body, connection_message, evidence_body
from proctor.evidence import chain
from proctor.evidence.clips import ClipFrame, encode_webm
from proctor.evidence.recordings import KIND as RECORDING_KIND
from proctor.evidence.recordings import MIME as RECORDING_MIME
from proctor.evidence.recordings import Segment
from proctor.evidence.screenshot import annotate, encode_jpeg, zone
from proctor.evidence.storage import EvidenceStorage
from proctor.rules import AlertDraft, EpisodeChange
from proctor.rules.episodes import worse
from proctor.store.db import Database
from proctor.store.tables import Alert, Candidate, CandidateEvent, Evidence, utcnow
from proctor.vision.types import Observation

log = logging.getLogger(__name__)

#: every alert type in words, English and Chinese (the documents' words): the one table
#: the evidence caption, the exam-room record and the staff pages (labels.js, served from
#: proctor.invigilation.labels) read
ALERT_WORDS: dict[str, tuple[str, str]] = {
    "absent": ("Left the seat", "离座"),
    "multiple_persons": ("More than one person", "画面多于1人"),
    "device": ("Electronic device", "使用电子设备"),
    "face_covered": ("Face covered", "面部遮挡"),
    "looking_away": ("Looking around", "左顾右盼"),
    "camera_blocked": ("Camera blocked", "摄像头遮挡"),
    "identity_mismatch": ("Someone else", "替考"),
    "speech": ("Speech", "说话"),
    "second_view_lost": ("Second view lost", "鹰眼断开"),
    "first_view_lost": ("First view lost", "第一视角断开"),
    "screen_left": ("Left the exam screen", "切屏"),
}
#: as the evidence caption and the exam-room record write them ("Left the seat / 离座")
ALERT_TITLES = {kind: f"{en} / {zh}" for kind, (en, zh) in ALERT_WORDS.items()}


#: episodes a page's own events open and close (``proctor.flow.screen``), not a monitor
PAGE_EPISODE_TYPES = ("screen_left",)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _as_utc(value: datetime) -> datetime:
    """A stored time as aware UTC (SQLite gives them back naive)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Recorder:
    """``executor`` runs the CPU work of evidence (drawing, JPEG and clip encoding) so that
    it never delays analysis."""

    def __init__(
        self,
        db: Database,
        storage: EvidenceStorage,
        bus: Bus,
        executor: Executor,
        default_time_zone: str = "UTC",
    ) -> None:
        self.db = db
        self.storage = storage
        self.bus = bus
        self.executor = executor
        self.default_zone = zone(default_time_zone)

    def _caption(
        self, ref: CandidateRef, draft_type: str, observation: Observation, frame: np.ndarray
    ) -> bytes:
        """The evidence screenshot: the alert's title (English / Chinese) and the
        candidate's name, the time in the sitting's time zone."""
        title = f"{ALERT_TITLES.get(draft_type, draft_type)} - {ref.name}"
        tz = zone(ref.rules.time_zone) if ref.rules.time_zone else self.default_zone
        return encode_jpeg(annotate(frame, observation, title, tz))

    async def _store(
        self,
        ref: CandidateRef,
        *,
        kind: str,
        view: str,
        data: bytes,
        ext: str,
        mime: str,
        captured_at: datetime,
        alert_id: int | None = None,
    ) -> Evidence:
        stored = await asyncio.to_thread(
            self.storage.save,
            (f"sitting-{ref.sitting_id}", f"candidate-{ref.candidate_id}"),
            f"{kind}-{view}",
            data,
            ext,
            captured_at,
        )
        return Evidence(
            sitting_id=ref.sitting_id,
            candidate_id=ref.candidate_id,
            kind=kind,
            view=view,
            relpath=stored.relpath,
            sha256=stored.sha256,
            size=stored.size,
            mime=mime,
            captured_at=captured_at,
            alert_id=alert_id,
        )

    async def _cpu(self, fn, *args: Any):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _screenshot(
        self,
        ref: CandidateRef,
        kind: str,
        alert_type: str,
        view: str,
        observation: Observation,
        frame: np.ndarray,
        ts: float,
        alert_id: int | None = None,
    ) -> Evidence:
        """The frame captioned for an alert of ``alert_type`` (on the CPU executor), stored
        as a JPEG of ``kind`` of ``view``, taken at ``ts``."""
        jpeg = await self._cpu(self._caption, ref, alert_type, observation, frame)
        return await self._store(
            ref,
            kind=kind,
            view=view,
            data=jpeg,
            ext="jpg",
            mime="image/jpeg",
            captured_at=_utc(ts),
            alert_id=alert_id,
        )

    async def record_alert(self, ref: CandidateRef, draft: AlertDraft, frame: np.ndarray) -> int:
        obs = draft.observation
        evidence = await self._screenshot(
            ref, "alert_screenshot", draft.type, draft.view, obs, frame, obs.ts
        )

        async def write(db: AsyncSession) -> tuple[int, dict[str, Any]]:
            db.add(evidence)
            await db.flush()
            alert = Alert(
                sitting_id=ref.sitting_id,
                candidate_id=ref.candidate_id,
                type=draft.type,
                severity=draft.severity,
                view=draft.view,
                message=draft.message,
                started_at=_utc(draft.started_at),
                raised_at=utcnow(),
                evidence_id=evidence.id,
                last_seen_at=_utc(draft.ts),
                peak_score=draft.score,
                peak_at=_utc(draft.ts),
                cause=draft.cause or None,
            )
            db.add(alert)
            await db.flush()
            evidence.alert_id = alert.id
            # the audit chain, in the same transaction (proctor.evidence.chain)
            await chain.append_record(db, "evidence.stored", evidence, actor=chain.SYSTEM)
            await chain.append_record(db, "alert.raised", alert, actor=chain.SYSTEM)
            candidate = await db.get(Candidate, ref.candidate_id)
            return alert.id, alert_body(alert, candidate)

        alert_id, body = await self.db.write(write)
        log.info(
            "alert %s for candidate %s: %s",
            draft.type,
            ref.candidate_id,
            draft.message,
            extra={"candidate_id": ref.candidate_id, "sitting_id": ref.sitting_id},
        )
        await self.bus.publish(sitting_channel(ref.sitting_id), {"type": "alert", "alert": body})
        return alert_id

    async def record_episode(
        self,
        ref: CandidateRef,
        alert_id: int,
        change: EpisodeChange,
        peak: tuple[EpisodeChange, np.ndarray] | None = None,
    ) -> None:
        """The alert's episode goes on (``last_seen_at``, a worse severity) or closes
        (``ended_at``); ``peak`` is a worse moment than any recorded (the change that saw it
        and its frame): its screenshot becomes the alert's peak evidence. What the audit
        record covers (end, severity, peak) gets an ``alert.updated`` / ``alert.closed``
        entry; the moving ``last_seen_at`` alone does not."""
        evidence = None
        if peak is not None and peak[0].peak_observation is not None:
            seen, frame = peak
            observation = seen.peak_observation
            assert observation is not None
            evidence = await self._screenshot(
                ref,
                "alert_peak",
                change.type,
                observation.view,
                observation,
                frame,
                seen.peak_ts,
                alert_id,
            )

        async def write(db: AsyncSession) -> dict[str, Any] | None:
            alert = await db.get(Alert, alert_id)
            if alert is None:
                return None
            before = chain.alert_record(alert)
            alert.last_seen_at = _utc(change.last_seen)
            alert.severity = worse(change.severity, alert.severity)
            if evidence is not None and peak is not None:
                db.add(evidence)
                await db.flush()
                await chain.append_record(db, "evidence.stored", evidence, actor=chain.SYSTEM)
                alert.peak_evidence_id = evidence.id
                alert.peak_score = peak[0].peak_score
                alert.peak_at = _utc(peak[0].peak_ts)
            if change.kind == "close" and change.ended_at is not None:
                alert.ended_at = _utc(change.ended_at)
            if chain.alert_record(alert) != before:
                kind = "alert.closed" if change.kind == "close" else "alert.updated"
                await chain.append_record(db, kind, alert, actor=chain.SYSTEM)
            candidate = await db.get(Candidate, ref.candidate_id)
            return alert_body(alert, candidate)

        body = await self.db.write(write)
        if body is None:
            return
        await self.bus.publish(
            sitting_channel(ref.sitting_id), {"type": "alert_update", "alert": body}
        )
        if evidence is not None:
            await self.bus.publish(
                sitting_channel(ref.sitting_id),
                {"type": "evidence", "evidence": evidence_body(evidence)},
            )

    async def open_episodes(self) -> dict[int, list[tuple[int, datetime]]]:
        """The open episodes a media monitor keeps (not a page's ``screen_left``, which the
        page's own events open and close), by candidate: (alert id, last seen)."""
        async with self.db.session() as db:
            rows = (
                await db.execute(
                    select(Alert.id, Alert.candidate_id, Alert.last_seen_at)
                    .where(
                        Alert.ended_at.is_(None),
                        Alert.last_seen_at.is_not(None),
                        Alert.type.not_in(PAGE_EPISODE_TYPES),
                    )
                    .order_by(Alert.id)
                )
            ).all()
        found: dict[int, list[tuple[int, datetime]]] = {}
        for alert_id, candidate_id, seen in rows:
            found.setdefault(candidate_id, []).append((alert_id, _as_utc(seen)))
        return found

    async def close_episodes(self, alert_ids: list[int], why: str) -> int:
        """Close these open episodes at their last sighting (``ended_at = last_seen_at``):
        their monitor is gone (``why``, logged). Each is closed once even when two
        processes try at the same moment (a conditional update); the audit chain gets its
        ``alert.closed`` entry and the consoles an ``alert_update``. Returns how many."""
        closed: list[tuple[Alert, Candidate | None]] = []
        for alert_id in alert_ids:

            async def write(
                db: AsyncSession, alert_id: int = alert_id
            ) -> tuple[Alert, Candidate | None] | None:
                done = await db.execute(
                    update(Alert)
                    .where(
                        Alert.id == alert_id,
                        Alert.ended_at.is_(None),
                        Alert.last_seen_at.is_not(None),
                    )
                    .values(ended_at=Alert.last_seen_at)
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount != 1:
                    return None  # closed meanwhile (its monitor, or another process)
                alert = await db.get(Alert, alert_id, populate_existing=True)
                assert alert is not None
                await chain.append_record(db, "alert.closed", alert, actor=chain.SYSTEM)
                return alert, await db.get(Candidate, alert.candidate_id)

            row = await self.db.write(write)  # the database writer thread (issue 22)
            if row is not None:
                closed.append(row)
        for alert, candidate in closed:
            with contextlib.suppress(Exception):  # the bus is best effort; the row is kept
                await self.bus.publish(
                    sitting_channel(alert.sitting_id),
                    {"type": "alert_update", "alert": alert_body(alert, candidate)},
                )
        if closed:
            log.info("closed %d episodes whose monitor is gone (%s)", len(closed), why)
        return len(closed)

    async def close_stale_episodes(self, older_than: float) -> int:
        """Close the episodes nobody keeps up to date any more (their monitor went with a
        server that stopped or died): open alerts whose ``last_seen_at`` is older than
        ``older_than`` seconds end at it (0: every open one). A live monitor moves
        ``last_seen_at`` every ``alert_update_seconds`` while its condition lasts. Returns
        how many closed."""
        cutoff = utcnow() - timedelta(seconds=older_than)
        stale = [
            alert_id
            for alerts in (await self.open_episodes()).values()
            for alert_id, seen in alerts
            if older_than <= 0 or seen < cutoff
        ]
        return await self.close_episodes(stale, "left open by a server that stopped")

    async def record_clip(
        self, ref: CandidateRef, alert_id: int, view: str, frames: list[ClipFrame]
    ) -> None:
        webm = await self._cpu(encode_webm, frames)
        await self._save_and_publish(
            ref,
            kind="alert_clip",
            view=view,
            data=webm,
            ext="webm",
            mime="video/webm",
            captured_at=_utc(frames[0].ts),
            alert_id=alert_id,
        )

    async def record_snapshot(self, ref: CandidateRef, view: str, frame: ClipFrame) -> None:
        await self._save_and_publish(
            ref,
            kind="snapshot",
            view=view,
            data=frame.jpeg,
            ext="jpg",
            mime="image/jpeg",
            captured_at=_utc(frame.ts),
        )

    async def record_segment(self, ref: CandidateRef, segment: Segment) -> None:
        """A recorded segment of a view (issue 22), already stored: its evidence row and
        audit entry, in one short transaction. Not published: consoles do not show it."""
        stored = segment.stored
        evidence = Evidence(
            sitting_id=ref.sitting_id,
            candidate_id=ref.candidate_id,
            kind=RECORDING_KIND,
            view=segment.view,
            relpath=stored.relpath,
            sha256=stored.sha256,
            size=stored.size,
            mime=RECORDING_MIME,
            captured_at=segment.started_at,
            ended_at=segment.ended_at,
        )

        async def write(db: AsyncSession) -> None:
            db.add(evidence)
            await chain.append_record(db, "evidence.stored", evidence, actor=chain.SYSTEM)

        await self.db.write(write)  # the database writer thread (issue 22)

    async def _save_and_publish(self, ref: CandidateRef, **fields: Any) -> None:
        evidence = await self._store(ref, **fields)

        async def write(db: AsyncSession) -> None:
            db.add(evidence)
            await chain.append_record(db, "evidence.stored", evidence, actor=chain.SYSTEM)

        await self.db.write(write)
        await self.bus.publish(
            sitting_channel(ref.sitting_id),
            {"type": "evidence", "evidence": evidence_body(evidence)},
        )

    async def record_connection(
        self, ref: CandidateRef, view: str, connected: bool, ended: bool = False
    ) -> None:
        """``media_connected``, ``media_lost``, or ``media_ended`` when the view went
        because the candidate's exam ended (not an outage)."""
        at = utcnow()
        if connected:
            kind = "media_connected"
        else:
            kind = "media_ended" if ended else "media_lost"

        async def write(db: AsyncSession) -> None:
            event = CandidateEvent(
                candidate_id=ref.candidate_id,
                kind=kind,
                data={"view": view},
                at=at,
            )
            db.add(event)
            await db.flush()
            await chain.append(
                db,
                f"event.{event.kind}",
                actor=chain.SYSTEM,
                payload={"view": view, "at": chain.iso(at)},
                sitting_id=ref.sitting_id,
                candidate_id=ref.candidate_id,
                subject_type="candidate_event",
                subject_id=event.id,
            )

        await self.db.write(write)
        await self.bus.publish(
            sitting_channel(ref.sitting_id),
            connection_message(ref.candidate_id, view, connected, at, ended=ended),
        )
