"""The test-media helper builds what the absence tests stream: a real face, then an empty
room, at a known second, in both formats (y4m for Chromium, VP8 WebM for aiortc)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.mediatools import DEFAULT_SIZE, absence_clip, clip, cover_resize, empty_room

FPS = 10


def decode(path: Path) -> tuple[list[np.ndarray], str, object]:
    """The frames, the codec's name and the average frame rate (read while the container
    is open: PyAV 18 refuses a closed container's stream)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        return frames, stream.codec_context.name, stream.average_rate


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def first_source_frame(src: Path) -> np.ndarray:
    with av.open(str(src)) as container:
        frame = next(container.decode(video=0))
        image = frame.to_ndarray(format="bgr24")
        k = round((frame.rotation or 0) / 90) % 4
        return np.ascontiguousarray(np.rot90(image, k=k))


@pytest.fixture(scope="module")
def source(media_dir: Path) -> Path:
    path = media_dir / "clips" / "center_focus.mp4"
    assert path.is_file(), path
    return path


@pytest.mark.parametrize("fmt", ["y4m", "webm"])
def test_absence_clip_face_then_empty_room(source: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"absent.{fmt}"
    result = absence_clip(source, out, face_seconds=2.0, blank_seconds=1.5, fps=FPS, fmt=fmt)

    path, leave_at = result  # unpacks like a (path, second) pair
    assert path == out and out.stat().st_size > 0
    assert leave_at == pytest.approx(2.0)
    assert result.face_frames == 20 and result.frames == 35

    frames, codec, rate = decode(out)
    assert codec == ("rawvideo" if fmt == "y4m" else "vp8")
    assert rate == FPS
    assert len(frames) == 35
    width, height = DEFAULT_SIZE
    assert all(f.shape == (height, width, 3) for f in frames)
    assert width % 2 == 0 and height % 2 == 0

    face, blank = frames[:20], frames[20:]
    # the face part is the source clip (rotated upright, scaled, centre-cropped)
    expected = cover_resize(first_source_frame(source), DEFAULT_SIZE)
    assert diff(face[0], expected) < 12
    # the blank part is the empty room, not the person
    room = empty_room(DEFAULT_SIZE)
    assert all(diff(b, room) < 12 for b in blank)
    assert min(diff(f, room) for f in face) > 25
    # a clear cut exactly at leave_at, and a still (but not frozen) scene after it
    assert diff(face[-1], blank[0]) > 25
    assert diff(blank[0], blank[-1]) < 6
    assert any(not np.array_equal(blank[0], b) for b in blank[1:])


def test_y4m_header_is_what_chromium_reads(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.y4m"
    absence_clip(source, out, 0.3, 0.2, fps=FPS, size=(160, 284))
    data = out.read_bytes()
    header, _, rest = data.partition(b"\n")
    assert header.startswith(b"YUV4MPEG2 W160 H284 F10:1 ")
    assert b" C420" in header
    frame_bytes = 160 * 284 * 3 // 2
    assert len(rest) == 5 * (len(b"FRAME\n") + frame_bytes)
    assert rest.startswith(b"FRAME\n")


def test_source_loops_when_shorter(source: Path, tmp_path: Path) -> None:
    short = clip(source, tmp_path / "one_second.webm", 1.0, fps=FPS, fmt="webm")
    assert short.frames == 10
    result = absence_clip(short.path, tmp_path / "looped.y4m", 2.5, 0.5, fps=FPS)
    assert result.leave_at == pytest.approx(2.5)
    frames, _, _ = decode(result.path)
    assert len(frames) == 30
    # frame 10 is the source's frame 0 again (second pass), frame 5 is not
    assert diff(frames[10], frames[0]) < diff(frames[5], frames[0])
    assert diff(frames[20], frames[0]) < 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": (321, 568)},
        {"fmt": "mp4"},
        {"face_seconds": 0, "blank_seconds": 0},
        {"fps": 0},
    ],
)
def test_bad_arguments(source: Path, tmp_path: Path, kwargs: dict) -> None:
    args = {"face_seconds": 1.0, "blank_seconds": 1.0, **kwargs}
    with pytest.raises(ValueError):
        absence_clip(source, tmp_path / "x.y4m", **args)
