"""exam_client.headless.FileSource: a looped file keeps one clock over all its passes
(what the capacity benchmark's latency figures are measured against)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from exam_client.headless import FileSource
from tests.mediatools import write_webm

FPS = 10


def short_clip(path: Path, frames: int) -> Path:
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(frames))
    write_webm(images, path, FPS, (160, 120))
    return path


async def test_passes_continue_the_first_pass_clock(tmp_path: Path) -> None:
    # 0.5 s of video played 4 times over: frame i of the whole replay is i / 10 s in
    clip = short_clip(tmp_path / "short.webm", 5)
    for decode in (True, False):
        source = FileSource(clip, loop=True, decode=decode)
        assert source.video is not None
        try:
            times, sent = [], []
            for _ in range(20):
                frame = await asyncio.wait_for(source.video.recv(), timeout=5)
                sent.append(time.time())
                times.append(float(frame.pts * frame.time_base))
        finally:
            source.stop()
        assert source.passes >= 3
        # timestamps run on across the passes, a frame apart
        assert np.allclose(np.diff(times), 1 / FPS, atol=1e-3), times
        # and so does the clock: frame i leaves i / 10 s after the first, not earlier (the
        # players pace their own pass only; each new pass used to start a frame early)
        start = source.video.first_sent_at
        assert start is not None
        early = [start + t - s for t, s in zip(times, sent, strict=True)]
        assert max(early) < 0.02, early
        # nor much later (real time, not slowed down)
        assert sent[-1] - start < times[-1] + 0.5


async def test_a_sideways_phone_clip_is_sent_and_photographed_upright(
    media_dir: Path, models_dir: Path
) -> None:
    """center_focus.mp4 is stored 848x480 with a -90 degree display matrix (a phone's clip):
    players and browsers show it upright, 480x848. The headless candidate sends it so: the
    photo check's picture and the streamed frames show the face upright, and the face
    detector finds it (on the sideways picture it finds none: the photo check answered
    no_face for ever in a demo sitting)."""
    import av
    import cv2

    from exam_client.headless import first_frame_jpeg
    from models.prepare import model_path
    from proctor.vision.faces import BlazeFaceDetector

    clip = media_dir / "clips" / "center_focus.mp4"
    detector = BlazeFaceDetector(
        model_path(models_dir, "blazeface_short"), model_path(models_dir, "blazeface_full")
    )
    with av.open(str(clip)) as container:
        stored = next(container.decode(video=0)).to_ndarray(format="bgr24")
    assert stored.shape[:2] == (480, 848) and detector.detect(stored) == []

    photo = cv2.imdecode(np.frombuffer(first_frame_jpeg(clip), np.uint8), cv2.IMREAD_COLOR)
    assert photo.shape[:2] == (848, 480)
    assert len(detector.detect(photo)) == 1

    source = FileSource(clip)
    assert source.video is not None
    try:
        frame = await asyncio.wait_for(source.video.recv(), timeout=10)
    finally:
        source.stop()
    sent = frame.to_ndarray(format="bgr24")
    assert sent.shape[:2] == (848, 480)
    assert len(detector.detect(sent)) == 1


def test_photo_check_pictures_are_later_frames_of_the_video(media_dir: Path) -> None:
    """Each photo-check try of the headless candidate is a new capture, as on the exam
    page: the same picture sent again is the same check for the server (answered as
    before, no failure counted), so a candidate resending its first frame never reached
    the invigilator (seen: 9 'mismatch' answers in a row in a demo sitting)."""
    from exam_client.headless import PHOTO_RETAKE_SECONDS, first_frame_jpeg, probe_media

    clip = media_dir / "clips" / "center_focus.mp4"  # 10.5 s
    tries = [first_frame_jpeg(clip, PHOTO_RETAKE_SECONDS * k) for k in range(3)]
    assert len(set(tries)) == 3
    assert first_frame_jpeg(clip) == tries[0]
    duration = probe_media(clip).duration
    assert duration is not None
    assert first_frame_jpeg(clip, duration + 1.0) == first_frame_jpeg(clip, 1.0)  # wraps round
