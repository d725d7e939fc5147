"""The objects that live as long as the server: database, bus, models, media, recorder.
Built in the app's lifespan; nothing here is a module-level global."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiortc import RTCIceServer
from sqlalchemy import text

from models.prepare import ModelStatus
from models.prepare import status as models_status
from proctor.config import Settings
from proctor.domain import CandidateRef
from proctor.errors import NotFound
from proctor.events.bus import VIEWS_CHANNEL, Bus, candidate_channel, make_bus
from proctor.events.recorder import Recorder
from proctor.evidence import chain, fonts
from proctor.evidence.policy import EvidenceSettings
from proctor.evidence.storage import EvidenceStorage
from proctor.flow.steps import attempt_ended
from proctor.media import turn
from proctor.media.cluster import LocalCluster, RedisCluster, make_cluster
from proctor.media.live import LiveViews
from proctor.media.monitor import CandidateMonitor
from proctor.media.peers import PeerManager
from proctor.media.probe import NetworkProbes
from proctor.media.rates import SendRates, with_opus_dtx
from proctor.media.recording import RecordingSetup
from proctor.media.thumbnails import Thumbnail, ThumbnailCache
from proctor.media.voice import VoiceCalls
from proctor.rules import RuleSettings
from proctor.store import migrate
from proctor.store.db import Database
from proctor.store.tables import Candidate, Sitting
from proctor.vision.analyzer import FrameAnalyzer, build_analyzer
from proctor.vision.identity import DEFAULT_MODEL, model_threshold
from proctor.vision.pool import PooledAnalyzer

log = logging.getLogger(__name__)


class AuditKeyProblem(RuntimeError):
    """The audit key is missing, unreadable or not this database's: the server refuses to
    start (the message says what to do)."""


MEDIA_CHANNEL = "media"  # thumbnails and view states between processes


def rule_settings(raw: dict[str, Any] | None) -> RuleSettings:
    return RuleSettings.from_dict(raw)


class RegisteredPhotoIdentity:
    """The monitor's identity re-check: the live face against the registered photo, on
    the exam's identity worker processes (which cache the photo's embedding), with the
    same model and threshold as the photo check at entry."""

    def __init__(self, checker: Any, storage: EvidenceStorage) -> None:
        self.checker = checker
        self.storage = storage
        self.threshold = model_threshold(getattr(checker, "model", DEFAULT_MODEL))

    async def distance(self, ref: CandidateRef, live_jpeg: bytes) -> float | None:
        if not ref.photo_relpath:
            return None
        try:
            photo = await asyncio.to_thread(self.storage.open(ref.photo_relpath).read_bytes)
        except (OSError, ValueError):
            log.warning("registered photo of candidate %s unreadable", ref.candidate_id)
            return None
        result = await self.checker.check(photo, live_jpeg)
        if result.get("reason") not in ("match", "mismatch"):
            return None  # no face, several faces, too small: cannot tell
        return float(result["distance"])


@dataclass
class Runtime:
    settings: Settings
    db: Database
    bus: Bus
    storage: EvidenceStorage
    executor: ThreadPoolExecutor
    models: list[ModelStatus]
    analyzer: FrameAnalyzer | PooledAnalyzer
    thumbnails: ThumbnailCache
    recorder: Recorder
    cluster: LocalCluster | RedisCluster
    peers: PeerManager = field(init=False)
    live: LiveViews = field(init=False)
    voice: VoiceCalls = field(init=False)  # console voice calls (issue 5)
    probes: NetworkProbes = field(init=False)  # the device check's network probe (issue 20)
    send_rates: SendRates = field(init=False)  # what the pages send (issue 22)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # identity re-checks during the exam; set once the exam service's workers exist
    identity: RegisteredPhotoIdentity | None = None
    _mirror_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # views another process reported connected: (candidate, view) -> that worker's id
    _remote_views: dict[tuple[int, str], str] = field(default_factory=dict)
    orphan_sweep_seconds: float = 3.0
    _recording_executor: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        settings = self.settings

        def ice() -> list[RTCIceServer]:  # fresh TURN credentials for each peer connection
            return turn.server_ice_servers(settings, datetime.now(UTC))

        recording = None
        if settings.recording_enabled:  # issue 22: both views recorded, remuxed, not decoded
            self._recording_executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="recording"
            )
            recording = RecordingSetup(
                self.storage,
                self._recording_executor,
                settings.recording_segment_seconds,
                self.recorder.record_segment,
            )
        self.peers = PeerManager(
            self._new_monitor,
            self._on_connection,
            ice,
            recording,
            video_resync_seconds=settings.video_resync_seconds,
        )
        self.live = LiveViews(self.peers, ice)
        self.live.on_watch = self._on_watch
        self.send_rates = SendRates(
            settings.capture_fps,
            settings.phone_capture_fps,
            settings.send_analysis_rate,
            settings.send_rate_headroom,
        )
        self.probes = NetworkProbes(ice)  # the device check's network probe (issue 20)
        self.voice = VoiceCalls(self.peers, ice)

    # -- media, routed to the process that owns the candidate ----------------------------
    async def load_ref(self, candidate_id: int) -> CandidateRef:
        async with self.db.session() as db:
            candidate = await db.get(Candidate, candidate_id)
            if candidate is None:
                raise NotFound("unknown_candidate", f"No candidate {candidate_id}.")
            sitting = await db.get(Sitting, candidate.sitting_id)
            return self.candidate_ref(candidate, sitting)

    async def answer_offer(self, candidate_id: int, view: str, sdp: str) -> dict[str, str]:
        """The candidate's (or phone's) offer for ``view``, answered by the owner."""
        owner = await self.cluster.owner(candidate_id)
        if owner != self.cluster.worker_id:
            payload = {"candidate_id": candidate_id, "view": view, "sdp": sdp}
            return await self.cluster.call(owner, "offer", payload)
        ref = await self.load_ref(candidate_id)
        answer = await self.peers.answer(ref, view, sdp)
        # issue 22: Opus DTX asked of the page; the video rate it starts at
        return {
            "sdp": with_opus_dtx(answer.sdp) if self.settings.audio_dtx else answer.sdp,
            "type": answer.type,
            "send_fps": self.send_rates.fps(ref, view, self.live.watching(candidate_id, view)),
        }

    async def _on_watch(self, candidate_id: int, view: str, watched: bool) -> None:
        """A live view of the candidate opened (first viewer) or closed (last one): tell
        the pages (candidate socket, phone) the rate to send that view at."""
        monitor = self.peers.monitors.get(candidate_id)
        ref = monitor.ref if monitor is not None else await self.load_ref(candidate_id)
        await self.bus.publish(
            candidate_channel(candidate_id), self.send_rates.message(ref, view, watched)
        )

    def send_rate_messages(self, candidate_id: int) -> list[dict[str, Any]]:
        """The rates of the candidate's views streaming to this process (for a page whose
        socket just connected and may have missed a change)."""
        monitor = self.peers.monitors.get(candidate_id)
        if monitor is None:
            return []
        return [
            self.send_rates.message(monitor.ref, v, self.live.watching(candidate_id, v))
            for v in ("first", "second")
            if self.peers.is_connected(candidate_id, v)
        ]

    async def answer_live(
        self, viewer: str, candidate_id: int, view: str, sdp: str
    ) -> dict[str, str]:
        """A console's offer to watch the candidate live, answered by the owner."""
        owner = await self.cluster.owner(candidate_id)
        if owner != self.cluster.worker_id:
            payload = {"viewer": viewer, "candidate_id": candidate_id, "view": view, "sdp": sdp}
            return await self.cluster.call(owner, "live_offer", payload)
        answer = await self.live.answer(viewer, candidate_id, view, sdp)
        return {"sdp": answer.sdp, "type": answer.type}

    async def _rpc_offer(self, p: dict[str, Any]) -> dict[str, str]:
        return await self.answer_offer(int(p["candidate_id"]), str(p["view"]), str(p["sdp"]))

    async def _rpc_live_offer(self, p: dict[str, Any]) -> dict[str, str]:
        return await self.answer_live(
            str(p["viewer"]), int(p["candidate_id"]), str(p["view"]), str(p["sdp"])
        )

    async def _on_connection(
        self, ref: CandidateRef, view: str, connected: bool, ended: bool = False
    ) -> None:
        if not connected and not ended:
            # the candidate's page stops its camera when the exam ends, maybe before the
            # end reaches this process: a view that goes after the end is not an outage
            async with self.db.session() as db:
                ended = await attempt_ended(db, ref.candidate_id)
        if not connected:
            self.peers.note_ended(ref.candidate_id, view, ended)
        await self.recorder.record_connection(ref, view, connected, ended=ended)
        if self.cluster.distributed:
            connected_now, since = self.peers.view_state(ref.candidate_id, view)
            await self.bus.publish(
                MEDIA_CHANNEL,
                {
                    "type": "view",
                    "candidate_id": ref.candidate_id,
                    "view": view,
                    "connected": connected_now,
                    "ended": ended and not connected_now,
                    "since": since.isoformat() if since else None,
                    "from": self.cluster.worker_id,
                },
            )
            if not connected and not self.peers.has_peers(ref.candidate_id):
                await self.cluster.release(ref.candidate_id)

    def _publish_thumbnail(self, candidate_id: int, view: str, thumb: Thumbnail) -> None:
        message = {
            "type": "thumbnail",
            "candidate_id": candidate_id,
            "view": view,
            "captured_at": thumb.captured_at,
            "jpeg": base64.b64encode(thumb.jpeg).decode(),
            "from": self.cluster.worker_id,
        }
        task = asyncio.create_task(self.bus.publish(MEDIA_CHANNEL, message))
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def _mirror(self) -> None:
        """Other processes' thumbnails and view states, for this process's consoles."""
        async with self.bus.subscribe(MEDIA_CHANNEL) as sub:
            self._mirror_ready.set()
            while True:
                m = await sub.get()
                if m.get("type") == "thumbnail" and m.get("from") != self.cluster.worker_id:
                    thumb = Thumbnail(base64.b64decode(m["jpeg"]), float(m["captured_at"]))
                    self.thumbnails.put_local(int(m["candidate_id"]), m["view"], thumb)
                elif m.get("type") == "view" and m.get("since"):
                    key = (int(m["candidate_id"]), str(m["view"]))
                    self.peers.note_view_state(
                        *key,
                        bool(m["connected"]),
                        datetime.fromisoformat(m["since"]),
                        ended=bool(m.get("ended")),
                    )
                    sender = m.get("from")
                    if m["connected"] and sender and sender != self.cluster.worker_id:
                        self._remote_views[key] = str(sender)
                    else:
                        self._remote_views.pop(key, None)

    async def _end_views(self, ready: asyncio.Event) -> None:
        """A candidate's exam ended (proctor.flow.machine.end_views): the process holding
        their connections closes both views, recorded as ended, and stops the monitor."""
        async with self.bus.subscribe(VIEWS_CHANNEL) as sub:
            ready.set()
            while True:
                m = await sub.get()
                if m.get("type") != "end_views":
                    continue
                cid = int(m["candidate_id"])
                if self.peers.has_peers(cid) or cid in self.peers.monitors:
                    try:
                        await self.peers.close_candidate(cid, ended=True)
                    except Exception:  # one candidate's trouble must not stop the listener
                        log.exception("ending the views of candidate %s failed", cid)

    async def _sweep_orphans(self) -> None:
        """A killed worker never reports that its views went away: every process would go
        on showing them connected. Views mirrored from a worker that is no longer alive
        are orphans; one surviving process (the one that wins the candidate's ownership)
        records them as lost, exactly as if their connection had dropped, and tells the
        others. A candidate that reconnects meanwhile is reported by its new owner."""
        while True:
            await asyncio.sleep(self.orphan_sweep_seconds)
            try:
                await self.sweep_orphans_once()
                await self.close_orphaned_episodes_once()
            except Exception:  # Redis or database hiccup: try again at the next sweep
                log.exception("orphaned view sweep failed")

    async def close_orphaned_episodes_once(self) -> int:
        """Close the open episodes no live monitor keeps: the worker whose monitor kept
        them was killed. An episode belongs to the worker holding its candidate's
        ownership lease (``proctor.media.cluster``); when that lease has expired or its
        holder is dead, or when this worker holds it but its monitor (if any) does not
        keep the episode (the candidate came back here, to a new monitor), the episode
        ends at its last sighting. Episodes seen in the last ``2 x alert_update_seconds``
        (at least 10 s) are left alone (a monitor that has just recorded or is closing
        them). Returns how many closed."""
        grace = timedelta(seconds=max(10.0, 2 * self.settings.alert_update_seconds))
        cutoff = datetime.now(UTC) - grace
        orphaned: list[int] = []
        for cid, alerts in (await self.recorder.open_episodes()).items():
            holder = await self.cluster.holder(cid)
            if holder == self.cluster.worker_id:
                monitor = self.peers.monitors.get(cid)
                kept = monitor.open_alert_ids() if monitor is not None else set()
            elif holder is None or not await self.cluster.alive(holder):
                kept = set()
            else:
                continue  # a live worker's: its monitor keeps them
            orphaned += [a for a, seen in alerts if a not in kept and seen < cutoff]
        return await self.recorder.close_episodes(orphaned, "their worker is gone")

    async def sweep_orphans_once(self) -> None:
        workers = set(self._remote_views.values())
        dead = {w for w in workers if not await self.cluster.alive(w)}
        orphans: dict[int, list[str]] = {}
        for (cid, view), worker in list(self._remote_views.items()):
            if worker in dead:
                orphans.setdefault(cid, []).append(view)
        for cid, views in orphans.items():
            owner = await self.cluster.owner(cid)  # claims it: only one survivor records
            for view in views:
                self._remote_views.pop((cid, view), None)
            if owner != self.cluster.worker_id:
                continue  # another process took over (or the candidate is back there)
            ref = await self.load_ref(cid)
            for view in views:
                if self.peers.is_connected(cid, view):
                    continue  # reconnected to this very process meanwhile
                log.warning("candidate %s %s: its worker died; view lost", cid, view)
                self.peers.note_view_state(cid, view, False, datetime.now(UTC))
                await self._on_connection(ref, view, False)  # records, tells, releases

    @classmethod
    async def start(cls, settings: Settings, migrate_db: bool = True) -> Runtime:
        settings.ensure_dirs()
        # the audit chain's key (issue 21): no server runs without it, since nothing it
        # records could be chained
        try:
            audit_key = settings.load_audit_key()
        except ValueError as exc:
            raise AuditKeyProblem(str(exc)) from None
        if audit_key is None:
            raise AuditKeyProblem(
                f"the audit key file {settings.audit_key_path} is missing: the server does "
                "not start without the audit chain's key. Create it with 'proctor audit "
                "init-key' (once, then keep a copy outside the database's machine), or set "
                "PROCTOR_AUDIT_KEY / PROCTOR_AUDIT_KEY_FILE"
            )
        db = Database(settings.effective_database_url, audit_key=audit_key)
        if migrate_db:
            await migrate.upgrade(db.engine)
        try:
            async with db.transaction() as session:
                await chain.seal(session)
        except chain.AuditKeyMismatch as exc:
            await db.dispose()
            raise AuditKeyProblem(str(exc)) from None
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
        paths = {st.name: st.path for st in statuses}
        analyzer: FrameAnalyzer | PooledAnalyzer = build_analyzer(paths)
        processes = settings.effective_analysis_processes if settings.analysis_enabled else 0
        if processes > 0:  # the detectors in worker processes: another core (issue 22)
            analyzer = PooledAnalyzer(analyzer, paths, processes)
        bus = make_bus(settings.redis_url, settings.redis_namespace)
        storage = EvidenceStorage(settings.evidence_dir)
        # one analysis thread: the detectors' interpreters are not thread-safe, and aiortc
        # decodes in threads of its own; issue 7 measures whether a second one pays. With
        # worker processes, PooledAnalyzer.FRAMES_IN_FLIGHT threads per process (each waits
        # for a worker's answer; the next frame is queued while one is analysed)
        threads = processes * PooledAnalyzer.FRAMES_IN_FLIGHT if processes > 0 else 1
        executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="analysis")
        if isinstance(analyzer, PooledAnalyzer):
            # the workers start (and load the models) before candidates come, from the
            # analysis thread that will use them (their parent-death signal follows it)
            executor.submit(analyzer.warm_up)
        # drawing and encoding evidence must never hold up analysis: its own thread
        evidence_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence")
        # evidence captions: a CJK font, or a loud warning (issue 18)
        fonts.setup(settings.caption_font)
        recorder = Recorder(
            db, storage, bus, evidence_executor, default_time_zone=settings.time_zone
        )
        # episodes a stopped server left open end at their last sighting: alone, every
        # open one is; in a cluster, those of the workers that are gone (below)
        cluster = make_cluster(settings.redis_url, settings.redis_namespace)
        if not cluster.distributed:
            await recorder.close_stale_episodes(0)
        rt = cls(
            settings,
            db,
            bus,
            storage,
            executor,
            statuses,
            analyzer,
            ThumbnailCache(),
            recorder,
            cluster,
        )
        await rt.cluster.start({"offer": rt._rpc_offer, "live_offer": rt._rpc_live_offer})
        if rt.cluster.distributed:
            await rt.close_orphaned_episodes_once()
        views_ready = asyncio.Event()
        rt._tasks.append(asyncio.create_task(rt._end_views(views_ready), name="end views"))
        await asyncio.wait_for(views_ready.wait(), 10)
        if rt.cluster.distributed:
            rt.thumbnails.on_put = rt._publish_thumbnail
            rt._tasks.append(asyncio.create_task(rt._mirror(), name="media mirror"))
            rt._tasks.append(asyncio.create_task(rt._sweep_orphans(), name="orphan sweep"))
            await asyncio.wait_for(rt._mirror_ready.wait(), 10)
        return rt

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.voice.close_all()
        await self.live.close_all()
        await self.probes.close_all()
        await self.peers.close_all()
        await self.cluster.stop()
        await self.bus.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        if isinstance(self.analyzer, PooledAnalyzer):
            self.analyzer.close()
        self.recorder.executor.shutdown(wait=True, cancel_futures=True)
        if self._recording_executor is not None:
            self._recording_executor.shutdown(wait=True)
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
            enabled=self.settings.analysis_enabled,
            vad=self.analyzer.vad,
            identity=self.identity,
            update_seconds=self.settings.alert_update_seconds,
            peak_seconds=self.settings.alert_peak_seconds,
        )

    def view_streaming(self, candidate_id: int, view: str, within: float = 5.0) -> bool:
        """Whether ``view`` is connected and delivered a picture within ``within`` seconds
        (the newest thumbnail, this process's or mirrored from the owner's)."""
        connected, _ = self.peers.view_state(candidate_id, view)
        thumb = self.thumbnails.get(candidate_id, view)
        return connected and thumb is not None and time.time() - thumb.captured_at <= within

    def candidate_ref(self, candidate: Candidate, sitting: Sitting) -> CandidateRef:
        return CandidateRef(
            candidate_id=candidate.id,
            sitting_id=sitting.id,
            name=candidate.name,
            analysis_fps=sitting.analysis_fps,
            # the flow rule identity_max_distance applies to the re-checks too
            rules=rule_settings(
                {
                    **(sitting.rules or {}),
                    "identity_max_distance": (sitting.flow or {}).get("identity_max_distance"),
                }
            ),
            evidence=EvidenceSettings.from_json(sitting.evidence),
            photo_relpath=candidate.photo_relpath,
        )

    async def redis_health(self) -> str:
        """Redis (issue 20, for `proctor doctor`): "ok", "not configured" (single process) or
        the error; a PING on a connection of its own, with a short timeout."""
        if not self.settings.redis_url:
            return "not configured"
        import redis.asyncio as aioredis

        client = aioredis.from_url(
            self.settings.redis_url, socket_connect_timeout=2, socket_timeout=2
        )
        try:
            await client.ping()
            return "ok"
        except Exception as exc:  # reported, not raised: /health must answer
            return f"error: {exc.__class__.__name__}"
        finally:
            await client.aclose()

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
        redis = await self.redis_health()
        bus = await self.bus.ping()
        ok = (
            database == "ok"
            and redis in ("ok", "not configured")
            and bus == "ok"
            and all(m["present"] for m in models.values())
        )
        font = fonts.installed()
        return {
            "status": "ok" if ok else "degraded",
            "database": database,
            "redis": redis,
            "bus": bus,
            "models": models,
            "detectors": detectors,
            # the font evidence captions are drawn with (None: Chinese shows as "?")
            "caption_font": str(font) if font else None,
        }
