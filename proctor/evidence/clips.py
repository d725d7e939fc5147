"""Short evidence clips from the frames analysis already sampled: a bounded ring of JPEGs
per view (a few seconds), encoded to WebM (VP8) around an alert.

The ring holds JPEG bytes (≈25-30 KB for 640×480 at quality 75, ~0.9 ms to encode), so a
candidate's two views at 2 fps with 4 s kept cost well under 1 MB."""

from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class ClipFrame:
    ts: float  # time.time() of the sampled frame
    jpeg: bytes


class FrameRing:
    """The newest frames of one view, at most ``seconds`` old relative to the newest."""

    def __init__(self, seconds: float, max_frames: int = 120) -> None:
        self.seconds = seconds
        self._frames: deque[ClipFrame] = deque(maxlen=max_frames)

    def add(self, frame: ClipFrame) -> None:
        self._frames.append(frame)
        while self._frames and frame.ts - self._frames[0].ts > self.seconds:
            self._frames.popleft()

    def between(self, start: float, end: float) -> list[ClipFrame]:
        return [f for f in self._frames if start <= f.ts <= end]

    def newest(self) -> ClipFrame | None:
        return self._frames[-1] if self._frames else None

    def __len__(self) -> int:
        return len(self._frames)


def encode_webm(frames: list[ClipFrame], width: int = 320) -> bytes:
    """Encode frames (each shown until the next one's time) as a VP8 WebM, scaled to at
    most ``width`` pixels wide. Raises ValueError for no frames.

    Clips are 320 px wide by default (the alert's screenshot keeps full resolution) and are
    encoded off the analysis thread. Frames at least twice that wide are decoded from JPEG
    at a half, quarter or eighth of their size (the JPEG's own scaled decoding) instead of
    decoded whole and shrunk (30 frames of 640×480: 121 → 100 ms of CPU), and libvpx runs at
    its fastest realtime setting (``cpu-used`` 16: 3.2 → 1.8 ms per 320×240 frame at 2
    frames/s, PSNR 38.4 → 38.2 dB, files ~20 % larger) on one thread: FFmpeg gives libvpx
    a thread per core by default, whose start-up and hand-offs cost far more than a
    320×240 frame (18 frames: 50-700 ms of CPU against 21 ms on one thread, the same
    picture; issue 22, ``benchmarks.capacity --py-spy``: clips were 12 % of the server)."""
    if not frames:
        raise ValueError("no frames to encode")
    first = cv2.imdecode(np.frombuffer(frames[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    flag = _reduced(first.shape[1], width)
    images = [first if flag == cv2.IMREAD_COLOR else _imdecode(frames[0].jpeg, flag)]
    images += [_imdecode(f.jpeg, flag) for f in frames[1:]]
    h, w = images[0].shape[:2]
    if w > width:
        h, w = round(h * width / w), width
    w, h = w - w % 2, h - h % 2
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as container:
        stream = container.add_stream(
            "libvpx",
            rate=1000,
            options={"deadline": "realtime", "cpu-used": "16", "threads": "1"},
        )
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 300_000
        stream.time_base = Fraction(1, 1000)
        t0 = frames[0].ts
        last_pts = -1
        for frame, image in zip(frames, images, strict=True):
            if image.shape[1] != w or image.shape[0] != h:
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            vf = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
            pts = max(last_pts + 1, round((frame.ts - t0) * 1000))
            vf.pts, vf.time_base = pts, Fraction(1, 1000)
            last_pts = pts
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def _imdecode(jpeg: bytes, flag: int) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), flag)


def _reduced(frame_width: int, width: int) -> int:
    """The imdecode flag that decodes a ``frame_width`` wide JPEG at the smallest scale
    (1/8, 1/4, 1/2 or whole) still at least ``width`` wide."""
    for factor, flag in (
        (8, cv2.IMREAD_REDUCED_COLOR_8),
        (4, cv2.IMREAD_REDUCED_COLOR_4),
        (2, cv2.IMREAD_REDUCED_COLOR_2),
    ):
        if frame_width // factor >= width:
            return flag
    return cv2.IMREAD_COLOR
