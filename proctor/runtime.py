"""The objects that live as long as the server: database, bus, models, media, recorder.
Built in the app's lifespan; nothing here is a module-level global."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from models.prepare import ModelStatus
from models.prepare import status as models_status
from proctor.config import Settings
from proctor.domain import CandidateRef
from proctor.events.bus import Bus, make_bus
from proctor.events.recorder import Recorder
from proctor.evidence.policy import EvidenceSettings
from proctor.evidence.storage import EvidenceStorage
from proctor.media.live import LiveViews
from proctor.media.monitor import CandidateMonitor
from proctor.media.peers import PeerManager
from proctor.media.thumbnails import ThumbnailCache
from proctor.rules import RuleSettings
from proctor.store import migrate
from proctor.store.db import Database
from proctor.store.tables import Candidate, Sitting
from proctor.vision.analyzer import FrameAnalyzer, build_analyzer

log = logging.getLogger(__name__)


def rule_settings(raw: dict[str, Any] | None) -> RuleSettings:
    known = RuleSettings.__dataclass_fields__
    return RuleSettings(**{k: v for k, v in (raw or {}).items() if k in known})


@dataclass
class Runtime:
    settings: Settings
    db: Database
    bus: Bus
    storage: EvidenceStorage
    executor: ThreadPoolExecutor
    models: list[ModelStatus]
    analyzer: FrameAnalyzer
    thumbnails: ThumbnailCache
    recorder: Recorder
    peers: PeerManager = field(init=False)
    live: LiveViews = field(init=False)

    def __post_init__(self) -> None:
        ice = [u.strip() for u in self.settings.ice_servers.split(",") if u.strip()]
        self.peers = PeerManager(self._new_monitor, self.recorder.record_connection, ice)
        self.live = LiveViews(self.peers, ice)

    @classmethod
    async def start(cls, settings: Settings, migrate_db: bool = True) -> Runtime:
        settings.ensure_dirs()
        db = Database(settings.effective_database_url)
        if migrate_db:
            await migrate.upgrade(db.engine)
        statuses = models_status(settings.models_dir)
        for st in statuses:
            if not st.present:
                log.warning(
                    "model %s NOT AVAILABLE (%s): detectors %s are affected; run "
                    "'proctor models prepare'",
                    st.name,
                    st.problem,
                    ", ".join(st.used_by),
                )
        analyzer = build_analyzer({st.name: st.path for st in statuses})
        bus = make_bus(settings.redis_url)
        storage = EvidenceStorage(settings.evidence_dir)
        # one analysis thread: the detectors' interpreters are not thread-safe, and aiortc
        # decodes in threads of its own; issue 7 measures whether a second one pays
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analysis")
        # drawing and encoding evidence must never hold up analysis: its own thread
        evidence_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence")
        recorder = Recorder(db, storage, bus, evidence_executor)
        return cls(
            settings, db, bus, storage, executor, statuses, analyzer, ThumbnailCache(), recorder
        )

    async def stop(self) -> None:
        await self.live.close_all()
        await self.peers.close_all()
        await self.bus.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.recorder.executor.shutdown(wait=True, cancel_futures=True)
        await self.db.dispose()

    def _new_monitor(self, ref: CandidateRef) -> CandidateMonitor:
        return CandidateMonitor(
            ref,
            self.analyzer,
            self.executor,
            self.recorder,
            self.thumbnails,
            thumbnail_fps=self.settings.thumbnail_fps,
            thumbnail_width=self.settings.thumbnail_width,
        )

    def candidate_ref(self, candidate: Candidate, sitting: Sitting) -> CandidateRef:
        return CandidateRef(
            candidate_id=candidate.id,
            sitting_id=sitting.id,
            name=candidate.name,
            analysis_fps=sitting.analysis_fps,
            rules=rule_settings(sitting.rules),
            evidence=EvidenceSettings.from_json(sitting.evidence),
        )

    async def health(self) -> dict[str, Any]:
        database = "ok"
        try:
            async with self.db.session() as s:
                await s.execute(text("SELECT 1"))
        except Exception as exc:  # reported, not raised: /health must answer
            database = f"error: {exc.__class__.__name__}"
        detectors = {
            s.name: {"enabled": s.enabled, "reason": s.reason} for s in self.analyzer.states
        }
        models = {
            m.name: {
                "present": m.present,
                "sha256": m.sha256,
                "version": m.version,
                "licence": m.licence,
                "used_by": list(m.used_by),
                "problem": m.problem,
            }
            for m in models_status(self.settings.models_dir)
        }
        ok = database == "ok" and all(m["present"] for m in models.values())
        return {
            "status": "ok" if ok else "degraded",
            "database": database,
            "models": models,
            "detectors": detectors,
        }
