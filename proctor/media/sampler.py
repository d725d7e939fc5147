"""Consume a remote track with bounded memory.

aiortc decodes every received frame in its own thread and queues it for ``recv()`` in an
unbounded asyncio queue. The sampler drains that queue as fast as frames arrive and keeps
only the newest one, so analysis (which runs much slower than the camera) always sees the
latest picture and no backlog can ever build up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from proctor import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sample:
    seq: int  # increases by one per received frame
    frame: VideoFrame
    received_at: float  # time.time()


class FrameSampler:
    """Keeps the newest decoded frame of one video track."""

    def __init__(self, track: MediaStreamTrack, name: str = "", view: str = "first") -> None:
        self.track = track
        self.name = name
        self.view = view
        self.frames_received = 0
        self._latest: Sample | None = None
        self._task: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sampler {self.name}")

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                self.frames_received += 1
                metrics.FRAMES_RECEIVED.labels(self.view).inc()
                self._latest = Sample(self.frames_received, frame, time.time())
        except MediaStreamError:
            log.info("track ended: %s", self.name)
        finally:
            self.ended.set()

    def newest(self) -> Sample | None:
        return self._latest

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.ended.set()


class AudioDrain:
    """Consumes an audio track so its queue never grows; counts frames. Voice activity
    analysis (issue 4) will tap here."""

    def __init__(self, track: MediaStreamTrack, name: str = "") -> None:
        self.track = track
        self.name = name
        self.frames_received = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"audio {self.name}")

    async def _run(self) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await self.track.recv()
                self.frames_received += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
