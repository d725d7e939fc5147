"""proctor.media.monitor: each view is analysed at its own rate (the second view at the
sitting's ``second_view_fps``), from real aiortc video tracks."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from aiortc.mediastreams import VideoStreamTrack

from proctor.domain import CandidateRef
from proctor.media.monitor import CandidateMonitor
from proctor.media.sampler import FrameSampler
from proctor.media.thumbnails import ThumbnailCache
from proctor.rules import RuleSettings
from proctor.vision.types import Detection, Observation


class CountingAnalyzer:
    """Sees one face on every frame (so no rule fires) and counts frames per view."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {"first": 0, "second": 0}
        self.enough = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def analyse(self, view, frame_bgr: np.ndarray, ts: float, gate=None) -> Observation:
        self.frames[view] += 1
        if self.frames["first"] >= 12:
            self._loop.call_soon_threadsafe(self.enough.set)
        face = Detection("face", 0.9, (100.0, 100.0, 200.0, 200.0))
        return Observation(view, ts, frame_bgr.shape[1], frame_bgr.shape[0], (face,))


class NoEvidence:
    async def record_episode(self, ref, alert_id, change, peak=None) -> None:
        pass

    async def record_alert(self, ref, draft, frame) -> int:
        raise AssertionError(f"no alert expected, got {draft.type}")

    async def record_clip(self, ref, alert_id, view, frames) -> None:
        pass

    async def record_snapshot(self, ref, view, frame) -> None:
        pass


async def analysed(fps: float, second_fps: float) -> dict[str, int]:
    """Frames analysed per view while the first view gets 12, both views streaming 30 fps."""
    analyzer = CountingAnalyzer()
    ref = CandidateRef(1, 1, "A", fps, RuleSettings(second_view_fps=second_fps))
    with ThreadPoolExecutor(2) as pool:
        monitor = CandidateMonitor(ref, analyzer, pool, NoEvidence(), ThumbnailCache())
        for view in ("first", "second"):
            sampler = FrameSampler(VideoStreamTrack(), view=view)
            sampler.start()
            monitor.attach(view, sampler)
        try:
            await asyncio.wait_for(analyzer.enough.wait(), 30)
        finally:
            await monitor.stop()
    return analyzer.frames


async def test_second_view_is_analysed_at_its_own_lower_rate() -> None:
    frames = await analysed(fps=4.0, second_fps=1.0)
    # 12 first-view frames take 11 ticks of 0.25 s: the second view is due every 4th tick
    assert frames["first"] >= 12
    assert 2 <= frames["second"] <= 4, frames


async def test_second_view_never_faster_than_the_sitting_rate() -> None:
    # 0 (and a rate above the sitting's) mean: both views at the sitting's rate
    for second_fps in (0.0, 8.0):
        frames = await analysed(fps=4.0, second_fps=second_fps)
        assert abs(frames["second"] - frames["first"]) <= 1, frames


def test_view_period() -> None:
    ref = CandidateRef(1, 1, "A", 2.0, RuleSettings(second_view_fps=0.5))
    monitor = CandidateMonitor(
        ref, CountingAnalyzer, ThreadPoolExecutor(1), NoEvidence(), ThumbnailCache(), enabled=False
    )  # type: ignore[arg-type]
    assert monitor.view_period("first") == pytest.approx(0.5)
    assert monitor.view_period("second") == pytest.approx(2.0)


@pytest.mark.parametrize("fps", [0.1, 11.0])
def test_second_view_rate_out_of_range_is_refused(fps: float) -> None:
    with pytest.raises(ValueError, match="second_view_fps"):
        RuleSettings(second_view_fps=fps)


def second_view_ticks(tick_every: float, ticks: int) -> list[float]:
    """Loop times at which a 1 fps view is analysed when a 2 fps monitor's ticks come
    every ``tick_every`` seconds."""
    due, analysed = 0.0, []
    for i in range(ticks):
        now = 100.0 + tick_every * i
        if now >= due:
            analysed.append(now)
            due = CandidateMonitor._next_due(due, now, 1.0, 0.5)
    return analysed


def test_a_slow_loop_keeps_the_second_views_rate() -> None:
    # ticks meant every 0.5 s come every 0.6 s (an overloaded server): the second view,
    # due every 1.0 s, is analysed about once a second, not once every other tick (1.2 s)
    analysed = second_view_ticks(0.6, 50)
    rate = (len(analysed) - 1) / (analysed[-1] - analysed[0])
    assert 0.95 <= rate <= 1.05, rate
    # and on time ticks it is every other tick exactly
    assert second_view_ticks(0.5, 20) == [100.0 + k for k in range(10)]
