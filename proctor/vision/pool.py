"""A frame's analysis (the detectors, and the frame's JPEGs for the clip ring and the
thumbnail) in worker processes, so that analysis uses another core while the server's
process receives, decodes and serves (issue 22).

One server process runs on about one core (Python's GIL: the event loop, RTP and SRTP,
HTTP and the database's drivers hold it most of the time); the detectors release it
inside onnxruntime but not around it, and with 30 candidates the loop saturated first. A
worker process has its own interpreter: :class:`PooledAnalyzer` sends it the frame
(640×480 BGR, about 0.9 MB, pickled through a pipe: well under a millisecond) with the
view's :class:`proctor.vision.gate.ObjectGate`, the worker runs the same
:class:`proctor.vision.analyzer.FrameAnalyzer` on it and returns the observation, the
JPEGs and the gate's new state, which the caller copies back into its gate. So workers
hold no per-view state and any worker may take any frame; results are the very ones the
in-process analyser gives.

The workers are spawned processes that end with the server even when it is killed
(``PR_SET_PDEATHSIG``, as the identity workers: proctor.vision.workers). A worker that died
is replaced, and the frame it had is analysed again in the new one.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from proctor.vision.gate import ObjectGate
from proctor.vision.types import Observation
from proctor.vision.workers import die_with_parent

if TYPE_CHECKING:
    from proctor.vision.analyzer import FrameAnalyzer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Analysed:
    """What one frame's analysis gives: the observation, the clip ring's JPEG, the
    thumbnail's JPEG (when asked), and the CPU seconds of detection and of encoding."""

    observation: Observation
    ring_jpeg: bytes
    thumbnail: bytes | None
    detect_cpu: float
    encode_cpu: float


def jpeg(frame_bgr: np.ndarray, width: int | None = None, quality: int = 70) -> bytes:
    if width is not None:
        h, w = frame_bgr.shape[:2]
        if w > width:
            frame_bgr = cv2.resize(frame_bgr, (width, round(h * width / w)), cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - cv2 always encodes a valid array
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def analyse_frame(
    analyzer: FrameAnalyzer,
    view: str,
    frame_bgr: np.ndarray,
    ts: float,
    gate: ObjectGate | None,
    ring_quality: int,
    thumbnail_width: int | None,
) -> Analysed:
    """The detectors on the frame, then its JPEGs; in whichever process runs it."""
    c0 = time.thread_time()
    obs = analyzer.analyse(view, frame_bgr, ts, gate)
    c1 = time.thread_time()
    ring = jpeg(frame_bgr, quality=ring_quality)
    thumb = jpeg(frame_bgr, thumbnail_width) if thumbnail_width is not None else None
    c2 = time.thread_time()
    return Analysed(obs, ring, thumb, c1 - c0, c2 - c1)


# ------------------------------------------------------------------------- worker side
_worker: dict[str, FrameAnalyzer] = {}


def _worker_init(model_paths: dict[str, str | None]) -> None:
    die_with_parent()
    # Ctrl-C (SIGINT to the whole process group) stops the server, which then shuts the
    # pool down: a worker killed by it first would be seen as died and started again
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING)
    from proctor.vision.analyzer import build_analyzer

    paths = {name: Path(p) if p else None for name, p in model_paths.items()}
    _worker["analyzer"] = build_analyzer(paths)


def _worker_ready() -> bool:
    return "analyzer" in _worker


def _worker_analyse(
    view: str,
    frame_bgr: np.ndarray,
    ts: float,
    gate: ObjectGate | None,
    ring_quality: int,
    thumbnail_width: int | None,
) -> tuple[Analysed, ObjectGate | None]:
    result = analyse_frame(
        _worker["analyzer"], view, frame_bgr, ts, gate, ring_quality, thumbnail_width
    )
    return result, gate


# ------------------------------------------------------------------------- server side
class PooledAnalyzer:
    """The analyser's interface (``analyse_frame``, ``states``, ``vad``) with the frame
    work done in ``processes`` worker processes; ``local`` (the same models, loaded in
    this process) answers ``states`` and ``vad`` (voice activity runs here: a few ms per
    half second of sound). ``analyse_frame`` blocks its calling thread until a worker
    answers: call it from the analysis executor, one call per thread at a time.

    The executor has ``FRAMES_IN_FLIGHT`` threads per worker: with one, a worker sat idle
    while its answer went back and the next frame was converted, pickled and sent by a
    thread that shares the server's GIL with the event loop (at 30 candidates a frame took
    47 ms of wall clock for 18 ms of detection). With two, the next frame waits in the
    pool's queue while one is analysed. A view's frames never overlap (its monitor awaits
    each before the next), so a view's gate is never in two workers at once."""

    FRAMES_IN_FLIGHT = 2

    def __init__(
        self, local: FrameAnalyzer, model_paths: dict[str, Path | None], processes: int
    ) -> None:
        self.local = local
        self.model_paths = {n: str(p) if p else None for n, p in model_paths.items()}
        self.processes = max(1, processes)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def states(self):  # type: ignore[no-untyped-def]
        return self.local.states

    @property
    def vad(self):  # type: ignore[no-untyped-def]
        return self.local.vad

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(self.model_paths,),
                )
            return self._pool

    def warm_up(self, timeout: float = 120.0) -> bool:
        """Start a worker and load its models (blocking)."""
        return bool(self._executor().submit(_worker_ready).result(timeout))

    def analyse_frame(
        self,
        view: str,
        frame_bgr: np.ndarray,
        ts: float,
        gate: ObjectGate | None,
        ring_quality: int,
        thumbnail_width: int | None,
    ) -> Analysed:
        for attempt in (1, 2):
            pool = self._executor()
            try:
                result, kept = pool.submit(
                    _worker_analyse, view, frame_bgr, ts, gate, ring_quality, thumbnail_width
                ).result()
            except BrokenProcessPool:
                log.exception("analysis worker died; starting a new one")
                with self._lock:
                    if self._pool is pool:
                        self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
                if attempt == 2:
                    raise
                continue
            if gate is not None and kept is not None:
                gate.__dict__.update(kept.__dict__)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
