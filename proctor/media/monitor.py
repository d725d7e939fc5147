"""One candidate's live analysis: take the newest frame of each view at the sitting's
analysis rate, run the detectors off the event loop, feed the rules, hand alerts on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from proctor import metrics
from proctor.domain import CandidateRef
from proctor.media.sampler import FrameSampler, Sample
from proctor.media.thumbnails import Thumbnail, ThumbnailCache
from proctor.rules import AlertDraft, RuleEngine
from proctor.vision.types import Observation

log = logging.getLogger(__name__)


class Analyzer(Protocol):
    def analyse(self, view: str, frame_bgr: np.ndarray, ts: float) -> Observation: ...


AlertSink = Callable[[CandidateRef, AlertDraft, np.ndarray], Awaitable[None]]


def _thumbnail(frame_bgr: np.ndarray, width: int) -> bytes:
    h, w = frame_bgr.shape[:2]
    if w > width:
        frame_bgr = cv2.resize(frame_bgr, (width, round(h * width / w)), cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, 70])
    if not ok:  # pragma: no cover - cv2 always encodes a valid array
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


@dataclass
class _ViewState:
    sampler: FrameSampler
    last_seq: int = 0
    last_thumb_at: float = 0.0
    frames_analysed: int = 0


class CandidateMonitor:
    def __init__(
        self,
        ref: CandidateRef,
        analyzer: Analyzer,
        executor: Executor,
        on_alert: AlertSink,
        thumbnails: ThumbnailCache,
        thumbnail_fps: float = 1.0,
        thumbnail_width: int = 320,
    ) -> None:
        self.ref = ref
        self.analyzer = analyzer
        self.executor = executor
        self.on_alert = on_alert
        self.thumbnails = thumbnails
        self.thumbnail_period = 1.0 / thumbnail_fps
        self.thumbnail_width = thumbnail_width
        self.rules = RuleEngine(ref.rules)
        self.views: dict[str, _ViewState] = {}
        self._task: asyncio.Task[None] | None = None
        self._alert_tasks: set[asyncio.Task[None]] = set()

    # -- views -----------------------------------------------------------------------
    def attach(self, view: str, sampler: FrameSampler) -> None:
        self.views[view] = _ViewState(sampler)
        if self._task is None:
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
        for task in list(self._alert_tasks):
            with contextlib.suppress(Exception):
                await task

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
            next_tick += period
            delay = next_tick - loop.time()
            if delay < 0:  # fell behind: skip ticks rather than build a backlog
                next_tick = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    async def _analyse(self, view: str, state: _ViewState, sample: Sample) -> None:
        loop = asyncio.get_running_loop()
        make_thumb = sample.received_at - state.last_thumb_at >= self.thumbnail_period * 0.9

        def work() -> tuple[Observation, np.ndarray, bytes | None, float]:
            started = time.perf_counter()
            bgr = sample.frame.to_ndarray(format="bgr24")
            obs = self.analyzer.analyse(view, bgr, sample.received_at)
            thumb = _thumbnail(bgr, self.thumbnail_width) if make_thumb else None
            return obs, bgr, thumb, time.perf_counter() - started

        obs, bgr, thumb, spent = await loop.run_in_executor(self.executor, work)
        state.frames_analysed += 1
        metrics.FRAMES_ANALYSED.labels(view).inc()
        metrics.ANALYSIS_SECONDS.observe(spent)
        metrics.ANALYSIS_LAG_SECONDS.observe(time.time() - sample.received_at)
        if thumb is not None:
            state.last_thumb_at = sample.received_at
            self.thumbnails.put(self.ref.candidate_id, view, Thumbnail(thumb, sample.received_at))
        for draft in self.rules.feed(obs):
            metrics.ALERTS.labels(draft.type).inc()
            task = asyncio.create_task(self.on_alert(self.ref, draft, bgr))
            self._alert_tasks.add(task)
            task.add_done_callback(self._alert_tasks.discard)
