"""Bounded frame queues for aiortc tracks.

aiortc hands every decoded frame to a track through an unbounded ``asyncio.Queue``
(``RemoteStreamTrack._queue``, and ``RelayStreamTrack._queue`` of a buffered relay
proxy). When the server is overloaded its event loop falls behind the decoder threads and
those queues grow without limit (measured: +600 MB in a minute with 10 candidates on one
saturated process). :func:`bound` swaps such a queue, before any frame arrives, for a
:class:`NewestFrames` queue that keeps only the newest ``keep`` frames: a slow consumer
drops stale frames, it never accumulates them. The end-of-stream marker (``None``) is
never dropped.

This reaches into aiortc's private ``_queue`` attribute (aiortc 1.x; the decoder thread
captures the queue object when the receiver starts, i.e. after the ``track`` event);
:func:`bound` checks the attribute and leaves a track it does not recognise alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from proctor import metrics

log = logging.getLogger(__name__)

VIDEO_KEEP = 2  # decoded pictures: analysis only ever wants the newest
AUDIO_KEEP = 50  # 20 ms audio frames: one second of microphone


class NewestFrames(asyncio.Queue):  # type: ignore[type-arg]
    """An unbounded-``put`` queue that keeps at most ``keep`` frames (oldest dropped)."""

    def __init__(self, keep: int, kind: str) -> None:
        super().__init__()
        self.keep = keep
        self.kind = kind
        self.dropped = 0

    def _put(self, item: Any) -> None:
        queue = self._queue  # type: ignore[attr-defined]
        if item is not None:
            while len(queue) >= self.keep and queue[0] is not None:
                queue.popleft()
                self.dropped += 1
                metrics.FRAMES_DROPPED.labels(self.kind).inc()
        queue.append(item)


def bound(track: Any, keep: int | None = None) -> bool:
    """Give ``track`` a :class:`NewestFrames` queue (by its kind unless ``keep`` is
    given). True if done; False (logged) if the track has no empty asyncio queue."""
    queue = getattr(track, "_queue", None)
    if not isinstance(queue, asyncio.Queue) or isinstance(queue, NewestFrames):
        return isinstance(queue, NewestFrames)
    if not queue.empty():
        log.warning("track %s already has frames queued: left unbounded", track)
        return False
    kind = getattr(track, "kind", "video")
    track._queue = NewestFrames(keep or (AUDIO_KEEP if kind == "audio" else VIDEO_KEEP), kind)
    return True
