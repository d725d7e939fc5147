"""Persist what the monitors produce (alerts with their evidence, connection changes), then
publish it on the bus. Persist first: a console never shows an alert the database lacks."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from datetime import UTC, datetime

import numpy as np

from proctor.domain import CandidateRef
from proctor.events.bus import Bus, sitting_channel
from proctor.events.messages import alert_body, connection_message
from proctor.evidence.screenshot import annotate, encode_jpeg
from proctor.evidence.storage import EvidenceStorage
from proctor.rules import AlertDraft
from proctor.store.db import Database
from proctor.store.tables import Alert, Candidate, CandidateEvent, Evidence, utcnow

log = logging.getLogger(__name__)

ALERT_TITLES = {
    "absent": "Left the seat / 离座",
    "multiple_persons": "More than one person / 画面多人",
}


class Recorder:
    def __init__(
        self, db: Database, storage: EvidenceStorage, bus: Bus, executor: Executor
    ) -> None:
        self.db = db
        self.storage = storage
        self.bus = bus
        self.executor = executor

    async def record_alert(
        self, ref: CandidateRef, draft: AlertDraft, frame_bgr: np.ndarray
    ) -> int:
        captured_at = datetime.fromtimestamp(draft.observation.ts, UTC)
        title = f"{ALERT_TITLES.get(draft.type, draft.type)} - {ref.name}"

        def render() -> bytes:
            return encode_jpeg(annotate(frame_bgr, draft.observation, title))

        jpeg = await asyncio.get_running_loop().run_in_executor(self.executor, render)
        stored = await asyncio.to_thread(
            self.storage.save,
            (f"sitting-{ref.sitting_id}", f"candidate-{ref.candidate_id}"),
            f"alert-{draft.type}-{draft.view}",
            jpeg,
            "jpg",
            captured_at,
        )
        async with self.db.transaction() as db:
            evidence = Evidence(
                sitting_id=ref.sitting_id,
                candidate_id=ref.candidate_id,
                kind="alert_screenshot",
                view=draft.view,
                relpath=stored.relpath,
                sha256=stored.sha256,
                size=stored.size,
                mime="image/jpeg",
                captured_at=captured_at,
            )
            db.add(evidence)
            await db.flush()
            alert = Alert(
                sitting_id=ref.sitting_id,
                candidate_id=ref.candidate_id,
                type=draft.type,
                severity=draft.severity,
                view=draft.view,
                message=draft.message,
                started_at=datetime.fromtimestamp(draft.started_at, UTC),
                raised_at=utcnow(),
                evidence_id=evidence.id,
            )
            db.add(alert)
            await db.flush()
            candidate = await db.get(Candidate, ref.candidate_id)
            body = alert_body(alert, candidate)
        log.info(
            "alert %s for candidate %s: %s",
            draft.type,
            ref.candidate_id,
            draft.message,
            extra={"candidate_id": ref.candidate_id, "sitting_id": ref.sitting_id},
        )
        await self.bus.publish(sitting_channel(ref.sitting_id), {"type": "alert", "alert": body})
        return alert.id

    async def record_connection(self, ref: CandidateRef, view: str, connected: bool) -> None:
        at = utcnow()
        async with self.db.transaction() as db:
            db.add(
                CandidateEvent(
                    candidate_id=ref.candidate_id,
                    kind="media_connected" if connected else "media_lost",
                    data={"view": view},
                    at=at,
                )
            )
        await self.bus.publish(
            sitting_channel(ref.sitting_id),
            connection_message(ref.candidate_id, view, connected, at),
        )
