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

from proctor import metrics
from proctor.domain import CandidateRef
from proctor.evidence.clips import ClipFrame, FrameRing
from proctor.media.sampler import FrameSampler, Sample
from proctor.media.thumbnails import Thumbnail, ThumbnailCache
from proctor.rules import AlertDraft, RuleEngine
from proctor.vision.types import Observation

log = logging.getLogger(__name__)

RING_JPEG_QUALITY = 75


class Analyzer(Protocol):
    def analyse(self, view: str, frame_bgr: np.ndarray, ts: float) -> Observation: ...


class EvidenceSink(Protocol):
    """Where the monitor's findings go (the events layer's Recorder)."""

    async def record_alert(self, ref: CandidateRef, draft: AlertDraft, frame: np.ndarray) -> int:
        """Persist and publish the alert with its screenshot; returns the alert's id."""
        ...

    async def record_clip(
        self, ref: CandidateRef, alert_id: int, view: str, frames: list[ClipFrame]
    ) -> None: ...

    async def record_snapshot(self, ref: CandidateRef, view: str, frame: ClipFrame) -> None: ...


def _jpeg(frame_bgr: np.ndarray, width: int | None = None, quality: int = 70) -> bytes:
    if width is not None:
        h, w = frame_bgr.shape[:2]
        if w > width:
            frame_bgr = cv2.resize(frame_bgr, (width, round(h * width / w)), cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - cv2 always encodes a valid array
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


@dataclass
class _ViewState:
    sampler: FrameSampler
    ring: FrameRing
    last_seq: int = 0
    last_thumb_at: float = 0.0
    frames_analysed: int = 0


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
    ) -> None:
        self.ref = ref
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
        self.views[view] = _ViewState(sampler, ring)
        if self._task is None and self.enabled:
            self._task = asyncio.create_task(self._run(), name=f"monitor {self.ref.candidate_id}")

    async def detach(self, view: str) -> None:
        state = self.views.pop(view, None)
        if state is not None:
            await state.sampler.stop()
        self.thumbnails.drop(self.ref.candidate_id, view)

    async def stop(self) -> None:
        for view in list(self.views):
            await self.detach(view)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._tasks.drain()

    # -- the loop --------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.ref.analysis_fps
        next_tick = loop.time()
        while True:
            for view, state in list(self.views.items()):
                sample = state.sampler.newest()
                if sample is None or sample.seq == state.last_seq:
                    continue  # nothing new on this view since the last look
                state.last_seq = sample.seq
                try:
                    await self._analyse(view, state, sample)
                except Exception:  # one bad frame must not stop the candidate's monitoring
                    log.exception("analysis failed", extra={"candidate_id": self.ref.candidate_id})
            self._maybe_snapshot()
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
            obs = self.analyzer.analyse(view, bgr, sample.received_at)
            c2 = time.thread_time()
            ring_jpeg = _jpeg(bgr, quality=RING_JPEG_QUALITY)
            thumb = _jpeg(bgr, self.thumbnail_width) if make_thumb else None
            c3 = time.thread_time()
            metrics.STAGE_CPU.labels("convert").inc(c1 - c0)
            metrics.STAGE_CPU.labels("detect").inc(c2 - c1)
            metrics.STAGE_CPU.labels("encode").inc(c3 - c2)
            return obs, bgr, ring_jpeg, thumb, time.perf_counter() - started

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
            metrics.ALERTS.labels(draft.type).inc()
            self._tasks.spawn(self._alert(draft, bgr))

    async def _alert(self, draft: AlertDraft, frame: np.ndarray) -> None:
        alert_id = await self.sink.record_alert(self.ref, draft, frame)
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
