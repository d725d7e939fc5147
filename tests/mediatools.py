"""Test media built from real clips (a test helper, not product code).

``absence_clip`` makes the clip an "absent" test needs: a real person for a while, then the
same camera looking at an empty room. Two output formats:

- ``y4m`` (uncompressed I420, written by hand) for Chromium's fake camera,
  ``--use-fake-device-for-media-stream --use-file-for-fake-video-capture=clip.y4m``;
- ``webm`` (VP8, through PyAV) for the headless client's ``MediaPlayer``.

The source's display rotation (phone clips carry one) is applied, frames are scaled to
cover ``size`` and centre-cropped, and resampled to a constant ``fps`` by taking, for each
output instant, the newest source frame at or before it (the source loops if shorter).
"""

from __future__ import annotations

import fractions
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np

Format = Literal["y4m", "webm"]

#: width, height of a portrait phone-like frame (the shared clips are portrait 480x848)
DEFAULT_SIZE = (320, 568)

_SHARED = Path(
    os.environ.get("PROCTOR_SHARED_DIR", Path(__file__).resolve().parent.parent.parent / "shared")
)
#: a photo of an empty room (no person) from the shared media, used for the blank part
DEFAULT_EMPTY_ROOM = _SHARED / "media" / "images" / "densedepth_nyu_1.png"


@dataclass(frozen=True)
class AbsenceClip:
    path: Path
    #: the second (from the first frame) at which the person is gone: the first blank frame
    leave_at: float
    fps: int
    size: tuple[int, int]
    frames: int
    face_frames: int

    def __iter__(self) -> Iterator[Path | float]:
        """``path, leave_at = absence_clip(...)`` works too."""
        return iter((self.path, self.leave_at))


# --------------------------------------------------------------------------- frames


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise ValueError(f"size must be positive even width, height; got {size}")
    return w, h


def cover_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale ``image`` (H×W×3) to cover ``size`` (w, h) and crop the centre."""
    w, h = size
    ih, iw = image.shape[:2]
    scale = max(w / iw, h / ih)
    sw, sh = max(w, int(np.ceil(iw * scale))), max(h, int(np.ceil(ih * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (sw, sh), interpolation=interp)
    x0, y0 = (sw - w) // 2, (sh - h) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + h, x0 : x0 + w])


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """The frame as BGR with its display rotation applied (counter-clockwise degrees)."""
    image = frame.to_ndarray(format="bgr24")
    rotation = int(getattr(frame, "rotation", 0) or 0)
    k = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


def _source_frames(src: Path) -> Iterator[tuple[float, av.VideoFrame]]:
    """(time in seconds from the first frame, decoded frame), looping forever."""
    offset = 0.0
    while True:
        first: float | None = None
        last = 0.0
        step = 1 / 25
        count = 0
        with av.open(str(src)) as container:
            stream = container.streams.video[0]
            if stream.average_rate:
                step = float(1 / stream.average_rate)
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else count * step
                if first is None:
                    first = t
                last = t - first
                count += 1
                yield offset + last, frame
        if count == 0:
            raise ValueError(f"{src} holds no video frames")
        offset += last + step


def resampled(src: Path, fps: int, count: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """``count`` BGR frames of ``size`` at constant ``fps`` from ``src`` (looping)."""
    if count <= 0:
        return
    frames = _source_frames(src)
    _, current = next(frames)
    upcoming_t, upcoming = next(frames)
    converted: np.ndarray | None = None
    for i in range(count):
        target = i / fps
        while upcoming_t <= target + 1e-9:
            current, converted = upcoming, None
            upcoming_t, upcoming = next(frames)
        if converted is None:
            converted = cover_resize(_upright(current), size)
        yield converted


def trim_border(image: np.ndarray, tolerance: float = 4.0, margin: int = 3) -> np.ndarray:
    """Drop uniform rows/columns at the edges (scanned photos and the NYU set have a
    white frame) plus ``margin`` pixels of the blurred transition."""
    grey = image.mean(axis=2) if image.ndim == 3 else image.astype(float)
    rows = np.flatnonzero(grey.std(axis=1) >= tolerance)
    cols = np.flatnonzero(grey.std(axis=0) >= tolerance)
    if rows.size == 0 or cols.size == 0:
        return image
    top, bottom = rows[0], rows[-1] + 1
    left, right = cols[0], cols[-1] + 1
    top += margin if top else 0
    left += margin if left else 0
    bottom -= margin if bottom < grey.shape[0] else 0
    right -= margin if right < grey.shape[1] else 0
    if bottom - top < 16 or right - left < 16:
        return image
    return image[top:bottom, left:right]


def empty_room(size: tuple[int, int], image: Path | None = None) -> np.ndarray:
    """A scene without a person: a blurred photo of an empty room, or, when no photo is
    at hand, mid-grey with a little texture. BGR, ``size`` (w, h)."""
    w, h = size
    path = image if image is not None else DEFAULT_EMPTY_ROOM
    photo = cv2.imread(str(path)) if path.is_file() else None
    if photo is not None:
        room = cover_resize(trim_border(photo), size)
        return cv2.GaussianBlur(room, (0, 0), sigmaX=2.0)
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 12, size=(h // 8 + 1, w // 8 + 1)).astype(np.float32)
    texture = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    grey = np.clip(128 + texture, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _sensor_noise(image: np.ndarray, rng: np.random.Generator, amplitude: int = 3) -> np.ndarray:
    """A still scene from a real camera is never bit-identical from frame to frame."""
    noise = rng.integers(-amplitude, amplitude + 1, size=image.shape, dtype=np.int16)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- writers


def _i420(image: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")


def write_y4m(frames: Iterator[np.ndarray], out: Path, fps: int, size: tuple[int, int]) -> int:
    """Write BGR frames as YUV4MPEG2 4:2:0 (what Chromium's fake camera reads)."""
    w, h = _check_size(size)
    n = 0
    with out.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg XYSCSS=420JPEG\n".encode())
        for image in frames:
            if image.shape[:2] != (h, w):
                raise ValueError(f"frame {n} is {image.shape[1]}x{image.shape[0]}, not {w}x{h}")
            f.write(b"FRAME\n")
            f.write(_i420(image).to_ndarray().tobytes())
            n += 1
    return n


def write_webm(
    frames: Iterator[np.ndarray],
    out: Path,
    fps: int,
    size: tuple[int, int],
    bitrate: int = 800_000,
) -> int:
    """Write BGR frames as VP8 in WebM (what the headless client streams)."""
    w, h = _check_size(size)
    n = 0
    with av.open(str(out), mode="w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bitrate
        stream.codec_context.gop_size = fps  # a key frame every second: looping seeks well
        stream.codec_context.time_base = fractions.Fraction(1, fps)
        stream.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        for image in frames:
            if image.shape[:2] != (h, w):
                raise ValueError(f"frame {n} is {image.shape[1]}x{image.shape[0]}, not {w}x{h}")
            frame = _i420(image)
            frame.pts = n
            frame.time_base = fractions.Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
            n += 1
        for packet in stream.encode(None):
            container.mux(packet)
    return n


# --------------------------------------------------------------------------- clips


def absence_clip(
    src: Path,
    out: Path,
    face_seconds: float,
    blank_seconds: float,
    fps: int = 10,
    size: tuple[int, int] = DEFAULT_SIZE,
    fmt: Format = "y4m",
    empty_image: Path | None = None,
) -> AbsenceClip:
    """The first ``face_seconds`` of ``src`` (looped if shorter), then ``blank_seconds`` of
    an empty room, at ``fps`` and ``size`` (even width, height), written to ``out`` as
    ``fmt``. ``result.leave_at`` is the exact time of the first blank frame, which is
    ``face_frames / fps`` with ``face_frames = round(face_seconds * fps)``."""
    w, h = _check_size(tuple(size))  # type: ignore[arg-type]
    if fps <= 0:
        raise ValueError("fps must be positive")
    if face_seconds < 0 or blank_seconds < 0:
        raise ValueError("face_seconds and blank_seconds must not be negative")
    if fmt not in ("y4m", "webm"):
        raise ValueError(f"unknown format {fmt!r}: use 'y4m' or 'webm'")
    face_frames = round(face_seconds * fps)
    blank_frames = round(blank_seconds * fps)
    if face_frames + blank_frames == 0:
        raise ValueError("the clip would have no frames")

    room = empty_room((w, h), empty_image)
    rng = np.random.default_rng(1234)

    def frames() -> Iterator[np.ndarray]:
        yield from resampled(Path(src), fps, face_frames, (w, h))
        for _ in range(blank_frames):
            yield _sensor_noise(room, rng)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = write_y4m if fmt == "y4m" else write_webm
    n = writer(frames(), out, fps, (w, h))
    return AbsenceClip(
        path=out,
        leave_at=face_frames / fps,
        fps=fps,
        size=(w, h),
        frames=n,
        face_frames=face_frames,
    )


def center_focus_absence(
    media_dir: Path, out: Path, face_seconds: float, blank_seconds: float, size: tuple[int, int]
) -> AbsenceClip:
    """absence_clip of the media set's clips/center_focus.mp4 (a person at a desk) at 10 fps,
    written as ``out``'s suffix says (.y4m or .webm)."""
    src = media_dir / "clips" / "center_focus.mp4"
    fmt: Format = "webm" if out.suffix == ".webm" else "y4m"
    return absence_clip(src, out, face_seconds, blank_seconds, fps=10, size=size, fmt=fmt)


def clip(
    src: Path,
    out: Path,
    seconds: float,
    fps: int = 10,
    size: tuple[int, int] = DEFAULT_SIZE,
    fmt: Format = "y4m",
) -> AbsenceClip:
    """``seconds`` of ``src`` only (a person present throughout), same conventions."""
    return absence_clip(src, out, seconds, 0.0, fps=fps, size=size, fmt=fmt)


# --------------------------------------------------------------------------- audio


def with_audio(video: Path, wav: Path, out: Path) -> Path:
    """``video`` (a WebM from this module) with ``wav`` as Opus audio, looped or cut to the
    video's length: a first view with a microphone. The video packets are copied."""
    with av.open(str(video)) as src:
        vstream = src.streams.video[0]
        duration = float(src.duration or 0) / av.time_base
        with av.open(str(wav)) as audio_src:
            rate = audio_src.streams.audio[0].rate
            pcm = np.concatenate(
                [f.to_ndarray().reshape(-1) for f in audio_src.decode(audio=0)]
            ).astype(np.int16)
        total = int(duration * rate)
        pcm = np.resize(pcm, total)
        with av.open(str(out), mode="w", format="webm") as dst:
            vout = dst.add_stream_from_template(vstream)
            aout = dst.add_stream("libopus", rate=48000)
            aout.layout = "mono"
            for packet in src.demux(vstream):
                if packet.dts is None:
                    continue
                packet.stream = vout
                dst.mux(packet)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
            step = rate // 50
            for start in range(0, total, step):
                chunk = pcm[start : start + step].reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
                frame.sample_rate = rate
                frame.pts, frame.time_base = start, fractions.Fraction(1, rate)
                for rf in resampler.resample(frame):
                    for packet in aout.encode(rf):
                        dst.mux(packet)
            for packet in aout.encode(None):
                dst.mux(packet)
    return out
