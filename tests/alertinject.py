"""Raise alerts through the server's own recording path (proctor.events.Recorder: evidence
screenshot stored, alert row and audit-chain entries, then published on the bus) from the
test process, for a server that shares the test's database, evidence directory and Redis
bus. For tests that need many alerts of chosen types and severities sooner than real
footage would raise them; the screenshot is a real image from the shared media."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2


class AlertInjector:
    def __init__(self, database_url: str, data_dir: Path, redis_url: str, namespace: str):
        from proctor.events.bus import make_bus
        from proctor.events.recorder import Recorder
        from proctor.evidence.storage import EvidenceStorage
        from proctor.store.db import Database

        self.db = Database(database_url)
        self.bus = make_bus(redis_url, namespace)
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.recorder = Recorder(
            self.db, EvidenceStorage(data_dir / "evidence"), self.bus, self.executor
        )

    async def raise_alert(
        self,
        *,
        candidate_id: int,
        sitting_id: int,
        name: str,
        type: str,
        severity: str,
        image: Path,
        view: str = "first",
        message: str | None = None,
    ) -> int:
        from proctor.domain import CandidateRef
        from proctor.rules import AlertDraft, RuleSettings
        from proctor.vision.types import Observation

        frame = cv2.imread(str(image), cv2.IMREAD_COLOR)
        assert frame is not None, image
        now = time.time()
        draft = AlertDraft(
            type=type,
            severity=severity,
            view=view,
            ts=now,
            started_at=now - 3.0,
            message=message or f"{type} ({severity}) on the {view} view",
            observation=Observation(view=view, ts=now, width=frame.shape[1], height=frame.shape[0]),
        )
        ref = CandidateRef(candidate_id, sitting_id, name, 2.0, RuleSettings())
        return await self.recorder.record_alert(ref, draft, frame)

    async def close(self) -> None:
        await self.bus.close()
        await self.db.dispose()
        self.executor.shutdown(wait=False)
