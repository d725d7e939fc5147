"""One candidate's live analysis: take the newest frame of each view at the sitting's
analysis rate, run the detectors off the event loop, feed the rules, and hand alerts, the
clips around them and random snapshots to the evidence sink."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from proctor import metrics
from proctor.audio.types import AudioObservation
from proctor.audio.vad import SileroVad, SpeechDetector
from proctor.domain import CandidateRef
from proctor.evidence.clips import ClipFrame, FrameRing
from proctor.media.sampler import FrameSampler, Sample
from proctor.media.thumbnails import Thumbnail, ThumbnailCache
from proctor.rules import AlertDraft, EpisodeChange, IdentityCheck, RuleEngine
from proctor.vision.gate import ObjectGate
from proctor.vision.pool import analyse_frame
from proctor.vision.types import Observation

log = logging.getLogger(__name__)

RING_JPEG_QUALITY = 75
AUDIO_BATCH_SECONDS = 0.5  # microphone audio handed to voice activity detection at once


class Analyzer(Protocol):
    def analyse(
        self, view: str, frame_bgr: np.ndarray, ts: float, gate: ObjectGate | None = None
    ) -> Observation: ...


class IdentitySource(Protocol):
    """Compares a live first-view frame with the candidate's registered photo (runs the
    embedder out of process: tens of ms of CPU per face, dlib's holding the GIL)."""

    threshold: float

    async def distance(self, ref: CandidateRef, live_jpeg: bytes) -> float | None:
        """Distance of the live face to the registered one; None = cannot tell."""
        ...


class EvidenceSink(Protocol):
    """Where the monitor's findings go (the events layer's Recorder)."""

    async def record_alert(self, ref: CandidateRef, draft: AlertDraft, frame: np.ndarray) -> int:
        """Persist and publish the alert with its screenshot; returns the alert's id."""
        ...

    async def record_episode(
        self,
        ref: CandidateRef,
        alert_id: int,
        change: EpisodeChange,
        peak: tuple[EpisodeChange, np.ndarray] | None = None,
    ) -> None:
        """The alert's episode goes on or closes; ``peak``: a worse moment and its frame."""
        ...

    async def record_clip(
        self, ref: CandidateRef, alert_id: int, view: str, frames: list[ClipFrame]
    ) -> None: ...

    async def record_snapshot(self, ref: CandidateRef, view: str, frame: ClipFrame) -> None: ...


def _decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


@dataclass
class _ViewState:
    sampler: FrameSampler
    ring: FrameRing
    gate: ObjectGate
    last_seq: int = 0
    last_thumb_at: float = 0.0
    frames_analysed: int = 0
    due: float = 0.0  # loop time from which the view's next frame may be analysed


@dataclass
class _EpisodeState:
    """An open episode's alert as the monitor persists it: updates are written at most
    every ``update_seconds`` (a worse severity and the close at once), the worst moment's
    screenshot at most every ``peak_seconds`` (and at the close)."""

    alert_id: asyncio.Future[int]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    written_at: float = 0.0
    peak_written_at: float = 0.0
    peak: tuple[EpisodeChange, np.ndarray] | None = None  # a worst moment not yet written


@dataclass
class _Tasks:
    """Background work a monitor started (evidence writing); awaited on stop."""

    running: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self.running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("evidence task failed", exc_info=task.exception())

    async def drain(self) -> None:
        for task in list(self.running):
            with contextlib.suppress(Exception):
                await task


class CandidateMonitor:
    def __init__(
        self,
        ref: CandidateRef,
        analyzer: Analyzer,
        executor: Executor,
        sink: EvidenceSink,
        thumbnails: ThumbnailCache,
        thumbnail_fps: float = 1.0,
        thumbnail_width: int = 320,
        rng: random.Random | None = None,
        enabled: bool = True,
        vad: SileroVad | None = None,
        identity: IdentitySource | None = None,
        update_seconds: float = 5.0,
        peak_seconds: float = 30.0,
    ) -> None:
        self.ref = ref
        self.update_seconds = update_seconds
        self.peak_seconds = peak_seconds
        self._episodes: dict[int, _EpisodeState] = {}
        self.analyzer = analyzer
        self.executor = executor
        self.sink = sink
        self.thumbnails = thumbnails
        self.thumbnail_period = 1.0 / thumbnail_fps
        self.thumbnail_width = thumbnail_width
        self.rules = RuleEngine(ref.rules)
        self.views: dict[str, _ViewState] = {}
        self.rng = rng or random.Random()
        self.enabled = enabled  # False: frames are received, nothing is analysed
        self.vad = vad if enabled else None
        self.identity = identity if enabled else None
        self._audio: dict[str, asyncio.Task[None]] = {}
        self._last_identity_at = 0.0
        self._identity_busy = False
        self._faceless_since: float | None = None
        self._next_snapshot = time.time() + self._snapshot_gap()
        self._task: asyncio.Task[None] | None = None
        self._tasks = _Tasks()

    def _snapshot_gap(self) -> float:
        mean = self.ref.evidence.snapshot_mean_seconds
        return self.rng.expovariate(1.0 / mean) if mean > 0 else float("inf")

    # -- views -----------------------------------------------------------------------
    def attach(self, view: str, sampler: FrameSampler) -> None:
        ev = self.ref.evidence
        old = self.views.get(view)
        ring = old.ring if old else FrameRing(ev.clip_before_seconds + ev.clip_after_seconds + 2)
        rules = self.ref.rules
        gate = ObjectGate(
            rules.objects_interval_seconds, rules.objects_change, rules.objects_reuse_samples
        )
        self.views[view] = _ViewState(sampler, ring, old.gate if old else gate)
        if self._task is None and self.enabled:
            self._task = asyncio.create_task(self._run(), name=f"monitor {self.ref.candidate_id}")

    def attach_audio(self, view: str, track: MediaStreamTrack) -> None:
        """Consume a microphone track: every frame goes to voice activity detection (or,
        without a VAD model or with analysis off, is just drained so nothing queues)."""
        old = self._audio.pop(view, None)
        if old is not None:
            old.cancel()
        self._audio[view] = asyncio.create_task(
            self._audio_loop(view, track), name=f"audio {self.ref.candidate_id} {view}"
        )

    async def detach(self, view: str, sampler: FrameSampler | None = None) -> None:
        """Stop watching ``view``. With no view left (the candidate handed in, or lost
        both connections) the loop stops too: nothing is left to analyse, and its rules
        must not raise on a candidate who is gone (e.g. ``second_view_lost`` ten seconds
        after handing in; the lost connections themselves are recorded by the caller).
        The rules keep their state: a view attached again restarts the loop. With
        ``sampler``: only if the view is still that sampler's (a replaced connection
        closing late leaves its successor's view alone)."""
        current = self.views.get(view)
        if sampler is not None and current is not None and current.sampler is not sampler:
            return
        state = self.views.pop(view, None)
        if state is not None:
            await state.sampler.stop()
        audio = self._audio.pop(view, None)
        if audio is not None:
            audio.cancel()
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await audio
        self.thumbnails.drop(self.ref.candidate_id, view)
        if not self.views:
            await self._stop_loop()
            self._handle_changes(self.rules.close_all())

    @property
    def running(self) -> bool:
        """Whether the analysis loop runs (some view is attached and analysis is on)."""
        return self._task is not None and not self._task.done()

    async def _stop_loop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def stop(self) -> None:
        for view in list(self.views):
            await self.detach(view)
        await self._stop_loop()
        self._handle_changes(self.rules.close_all())
        await self._tasks.drain()

    # -- the loop --------------------------------------------------------------------
    def view_period(self, view: str) -> float:
        """Seconds between two analysed frames of ``view``: the sitting's analysis rate,
        the second view at ``second_view_fps`` if that is lower."""
        fps = self.ref.analysis_fps
        second = self.ref.rules.second_view_fps
        if view == "second" and 0 < second < fps:
            fps = second
        return 1.0 / fps

    @staticmethod
    def _next_due(due: float, now: float, view_period: float, tick: float) -> float:
        """When a view analysed at ``now`` is due again: one view period after it was due
        (a fixed rate: when ticks come late the view keeps its rate instead of losing a
        tick's lateness each time), or, when it is more than a view period late or new,
        one view period from now less half a tick (so that the tick falling due is not
        missed by a few milliseconds; no burst to catch up)."""
        if now - due < view_period:
            return due + view_period
        return now + view_period - tick / 2

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.ref.analysis_fps
        next_tick = loop.time()
        while True:
            now = loop.time()
            for view, state in list(self.views.items()):
                if now < state.due:
                    continue  # a slower view (the second) skips this tick
                sample = state.sampler.newest()
                if sample is None or sample.seq == state.last_seq:
                    continue  # nothing new on this view since the last look
                state.last_seq = sample.seq
                state.due = self._next_due(state.due, now, self.view_period(view), period)
                try:
                    await self._analyse(view, state, sample)
                except Exception:  # one bad frame must not stop the candidate's monitoring
                    log.exception("analysis failed", extra={"candidate_id": self.ref.candidate_id})
            self._maybe_snapshot()
            for view, state in self.views.items():  # received, even if not analysed yet
                if (newest := state.sampler.newest()) is not None:
                    self.rules.frames_received(view, newest.received_at)
            for draft in self.rules.tick(time.time()):  # e.g. the second view gone quiet
                self._raise(draft, None)
            self._handle_changes(self.rules.changes())
            next_tick += period
            delay = next_tick - loop.time()
            if delay < 0:  # fell behind: skip ticks rather than build a backlog
                next_tick = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    async def _analyse(self, view: str, state: _ViewState, sample: Sample) -> None:
        loop = asyncio.get_running_loop()
        make_thumb = sample.received_at - state.last_thumb_at >= self.thumbnail_period * 0.9

        def work() -> tuple[Observation, np.ndarray, bytes, bytes | None, float]:
            started = time.perf_counter()
            c0 = time.thread_time()
            bgr = sample.frame.to_ndarray(format="bgr24")
            c1 = time.thread_time()
            # in this thread, or in a worker process (proctor.vision.pool.PooledAnalyzer)
            run = getattr(self.analyzer, "analyse_frame", None)
            args = (
                view,
                bgr,
                sample.received_at,
                state.gate,
                RING_JPEG_QUALITY,
                self.thumbnail_width if make_thumb else None,
            )
            done = run(*args) if run is not None else analyse_frame(self.analyzer, *args)
            metrics.STAGE_CPU.labels("convert").inc(c1 - c0)
            metrics.STAGE_CPU.labels("detect").inc(done.detect_cpu)
            metrics.STAGE_CPU.labels("encode").inc(done.encode_cpu)
            spent = time.perf_counter() - started
            return done.observation, bgr, done.ring_jpeg, done.thumbnail, spent

        obs, bgr, ring_jpeg, thumb, spent = await loop.run_in_executor(self.executor, work)
        state.frames_analysed += 1
        state.ring.add(ClipFrame(sample.received_at, ring_jpeg))
        metrics.FRAMES_ANALYSED.labels(view).inc()
        metrics.ANALYSIS_SECONDS.observe(spent)
        metrics.ANALYSIS_LAG_SECONDS.observe(time.time() - sample.received_at)
        if thumb is not None:
            state.last_thumb_at = sample.received_at
            self.thumbnails.put(self.ref.candidate_id, view, Thumbnail(thumb, sample.received_at))
        for draft in self.rules.feed(obs):
            self._raise(draft, bgr)
        self._handle_changes(self.rules.changes(), obs, bgr)
        if view == "first" and self.identity is not None:
            self._maybe_check_identity(obs, ring_jpeg)

    # -- identity re-checks ----------------------------------------------------------
    def _maybe_check_identity(self, obs: Observation, jpeg: bytes) -> None:
        """Every ``identity_check_seconds`` while a face is in view, and at once when a
        face comes back after the seat was empty (someone else may have sat down)."""
        faces = obs.count("face")
        if faces is None:
            return
        if faces == 0:
            if self._faceless_since is None:
                self._faceless_since = obs.ts
            return
        returned = self._faceless_since is not None and obs.ts - self._faceless_since >= 2.0
        self._faceless_since = None
        due = obs.ts - self._last_identity_at >= self.ref.rules.identity_check_seconds
        if (due or returned) and not self._identity_busy:
            self._identity_busy = True
            self._last_identity_at = obs.ts
            self._tasks.spawn(self._check_identity(obs, jpeg))

    async def _check_identity(self, obs: Observation, jpeg: bytes) -> None:
        assert self.identity is not None
        try:
            distance = await self.identity.distance(self.ref, jpeg)
        finally:
            self._identity_busy = False
        threshold = self.identity.threshold
        stricter = self.ref.rules.identity_max_distance
        if stricter is not None:
            threshold = min(threshold, stricter)
        check = IdentityCheck(obs.ts, distance, threshold, "first", obs)
        for draft in self.rules.feed_identity(check):
            self._raise(draft, _decode(jpeg))
        self._handle_changes(self.rules.changes())

    # -- voice activity --------------------------------------------------------------
    async def _audio_loop(self, view: str, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        detector = SpeechDetector(self.vad, view=view) if self.vad is not None else None
        batch: list[tuple[AudioFrame, float]] = []
        batch_seconds = 0.0
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if detector is None:
                    continue
                batch.append((frame, time.time()))
                batch_seconds += frame.samples / (frame.sample_rate or 48000)
                if batch_seconds < AUDIO_BATCH_SECONDS:
                    continue
                work, batch, batch_seconds = batch, [], 0.0

                def run(work=work) -> list[AudioObservation]:
                    return detector.feed_frames(work)

                for audio_obs in await loop.run_in_executor(self.executor, run):
                    for draft in self.rules.feed_audio(audio_obs):
                        self._raise(draft, None)
                    self._handle_changes(self.rules.changes())

    def _latest_frame(self, view: str) -> np.ndarray:
        """The newest analysed picture of ``view`` (else of any view), for alerts that do
        not come from a frame (speech, a view gone quiet)."""
        for v in (view, *self.views):
            state = self.views.get(v)
            newest = state.ring.newest() if state else None
            if newest is not None:
                return _decode(newest.jpeg)
        return np.zeros((480, 640, 3), np.uint8)

    # -- episodes --------------------------------------------------------------------
    def open_alert_ids(self) -> set[int]:
        """The alerts of the episodes this monitor keeps open (recorded ones)."""
        return {
            f.result()
            for f in (state.alert_id for state in self._episodes.values())
            if f.done() and not f.cancelled() and f.exception() is None
        }

    def _raise(self, draft: AlertDraft, frame: np.ndarray | None) -> None:
        """A new episode: its alert is recorded (in the background); its later changes
        wait for the alert's id."""
        metrics.ALERTS.labels(draft.type).inc()
        state = _EpisodeState(asyncio.get_running_loop().create_future())
        state.written_at = state.peak_written_at = time.monotonic()
        self._episodes[draft.episode] = state
        self._tasks.spawn(self._alert(draft, frame, state.alert_id))

    def _frame_at(self, obs: Observation) -> np.ndarray | None:
        state = self.views.get(obs.view)
        if state is None:
            return None
        frames = state.ring.between(obs.ts - 1e-3, obs.ts + 1e-3)
        return _decode(frames[0].jpeg) if frames else None

    def _handle_changes(
        self,
        changes: list[EpisodeChange],
        obs: Observation | None = None,
        frame: np.ndarray | None = None,
    ) -> None:
        now = time.monotonic()
        for change in changes:
            state = self._episodes.get(change.episode)
            if state is None:
                continue
            if change.peak_observation is not None:
                peak_frame = frame if change.peak_observation is obs else None
                if peak_frame is None:
                    peak_frame = self._frame_at(change.peak_observation)
                if peak_frame is not None:
                    state.peak = (change, peak_frame)
            closing = change.kind == "close"
            peak = None
            if state.peak is not None and (
                closing or now - state.peak_written_at >= self.peak_seconds
            ):
                peak, state.peak, state.peak_written_at = state.peak, None, now
            if (
                closing
                or change.severity_changed
                or peak
                or now - state.written_at >= self.update_seconds
            ):
                state.written_at = now
                self._tasks.spawn(self._write_episode(state, change, peak))
            if closing:
                del self._episodes[change.episode]

    async def _write_episode(
        self,
        state: _EpisodeState,
        change: EpisodeChange,
        peak: tuple[EpisodeChange, np.ndarray] | None,
    ) -> None:
        try:
            alert_id = await state.alert_id
        except (asyncio.CancelledError, Exception):
            return  # the alert itself could not be recorded (logged there)
        async with state.lock:
            await self.sink.record_episode(self.ref, alert_id, change, peak)

    async def _alert(
        self,
        draft: AlertDraft,
        frame: np.ndarray | None,
        alert_id_out: asyncio.Future[int] | None = None,
    ) -> None:
        if frame is None:
            frame = self._latest_frame(draft.view)
        try:
            alert_id = await self.sink.record_alert(self.ref, draft, frame)
        except BaseException as exc:
            if alert_id_out is not None and not alert_id_out.done():
                alert_id_out.set_exception(exc)
                alert_id_out.exception()  # retrieved: no "never retrieved" warning
            raise
        if alert_id_out is not None and not alert_id_out.done():
            alert_id_out.set_result(alert_id)
        ev = self.ref.evidence
        if ev.clip_before_seconds + ev.clip_after_seconds <= 0:
            return
        await asyncio.sleep(ev.clip_after_seconds)  # let the "after" part arrive
        state = self.views.get(draft.view)
        if state is None:
            return  # the view went away; the screenshot stands alone
        frames = state.ring.between(
            draft.ts - ev.clip_before_seconds, draft.ts + ev.clip_after_seconds
        )
        if frames:
            await self.sink.record_clip(self.ref, alert_id, draft.view, frames)

    def _maybe_snapshot(self) -> None:
        now = time.time()
        if now < self._next_snapshot:
            return
        self._next_snapshot = now + self._snapshot_gap()
        for view, state in self.views.items():
            newest = state.ring.newest()
            if newest is not None and now - newest.ts < 5.0:
                self._tasks.spawn(self.sink.record_snapshot(self.ref, view, newest))
