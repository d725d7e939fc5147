"""proctor.media.monitor and episodes (issue 18): a condition that lasts is recorded once,
then its episode's progress reaches the evidence sink (at most every ``update_seconds``,
the worst moment with its frame) and its close when the candidate is gone. Real aiortc
video tracks into a real ``CandidateMonitor``."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from aiortc.mediastreams import VideoStreamTrack

from proctor.domain import CandidateRef
from proctor.media.monitor import CandidateMonitor
from proctor.media.sampler import FrameSampler
from proctor.media.thumbnails import ThumbnailCache
from proctor.rules import RuleSettings
from proctor.vision.types import Detection, Observation


class TwoThenThreeFaces:
    """Two faces on every frame, three from the 8th analysed frame on (a worse moment)."""

    def __init__(self) -> None:
        self.n = 0

    def analyse(self, view, frame_bgr: np.ndarray, ts: float, gate=None) -> Observation:
        self.n += 1
        faces = 3 if self.n >= 8 else 2
        dets = tuple(
            Detection("face", 0.9, (10.0 + 60 * i, 10.0, 60.0 + 60 * i, 60.0)) for i in range(faces)
        )
        return Observation(view, ts, frame_bgr.shape[1], frame_bgr.shape[0], dets)


class Sink:
    def __init__(self) -> None:
        self.alerts: list[str] = []
        self.changes: list[tuple[int, str, bool]] = []  # (alert id, kind, with a peak frame)
        self.peaked = asyncio.Event()

    async def record_alert(self, ref, draft, frame) -> int:
        self.alerts.append(draft.type)
        return len(self.alerts)

    async def record_episode(self, ref, alert_id, change, peak=None) -> None:
        self.changes.append((alert_id, change.kind, peak is not None))
        if peak is not None:
            assert peak[0].peak_score == 3.0 and peak[1].ndim == 3
            self.peaked.set()

    async def record_clip(self, ref, alert_id, view, frames) -> None:
        pass

    async def record_snapshot(self, ref, view, frame) -> None:
        pass


async def test_a_lasting_condition_is_one_alert_updated_then_closed() -> None:
    sink = Sink()
    rules = RuleSettings(multiple_persons_m=2, multiple_persons_k=3, second_view_fps=0)
    ref = CandidateRef(1, 1, "张伟", 4.0, rules)
    with ThreadPoolExecutor(2) as pool:
        monitor = CandidateMonitor(
            ref,
            TwoThenThreeFaces(),
            pool,
            sink,
            ThumbnailCache(),
            update_seconds=0.2,
            peak_seconds=0.0,
        )
        sampler = FrameSampler(VideoStreamTrack(), view="first")
        sampler.start()
        monitor.attach("first", sampler)
        try:
            await asyncio.wait_for(sink.peaked.wait(), 30)
        finally:
            await monitor.stop()
    assert sink.alerts == ["multiple_persons"]
    kinds = [kind for _, kind, _ in sink.changes]
    assert kinds[-1] == "close" and kinds.count("close") == 1
    assert "update" in kinds and all(alert_id == 1 for alert_id, _, _ in sink.changes)
