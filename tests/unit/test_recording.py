"""The recording's segment writer without a network (issue 22 item 3): real VP8 and Opus
packets (encoded here from a real clip; the server itself never encodes) fed as aiortc's
receiver would hand them over. A keyframe starts a segment, interframes before one are
not recorded (a keyframe is asked for), the WebM holds both tracks, and a full disk drops
the segment (nothing half-written left, nothing raised) while the next one is stored."""

from __future__ import annotations

import asyncio
import fractions
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest

from proctor.evidence.storage import EvidenceStorage
from proctor.media.recording import Segment, ViewRecorder, vp8_keyframe
from tests.mediatools import resampled
from tests.serverproc import small_tmpfs


def vp8_packets(media_dir: Path, count: int = 20) -> list[bytes]:
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = 320, 240, "yuv420p"
    enc.time_base = fractions.Fraction(1, 10)
    enc.options = {"deadline": "realtime", "cpu-used": "8"}
    out = []
    frames = resampled(media_dir / "clips" / "center_focus.mp4", 10, count, (320, 240))
    for i, bgr in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def opus_packets(count: int = 50) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "mono", "s16"
    enc.time_base = fractions.Fraction(1, 48000)
    t = np.arange(960 * count) / 48000
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    out = []
    for i in range(count):
        frame = av.AudioFrame.from_ndarray(pcm[None, i * 960 : (i + 1) * 960], "s16", "mono")
        frame.sample_rate, frame.pts = 48000, i * 960
        out += [bytes(p) for p in enc.encode(frame)]
    return out


class Sink:
    def __init__(self) -> None:
        self.segments: list[Segment] = []

    async def __call__(self, segment: Segment) -> None:
        self.segments.append(segment)


def recorder(storage: EvidenceStorage, sink: Sink, executor, asked: list[int]) -> ViewRecorder:
    return ViewRecorder(
        view="first",
        parts=("sitting-1", "candidate-1"),
        storage=storage,
        executor=executor,
        sink=sink,
        segment_seconds=60,
        request_keyframe=lambda: asked.append(1),
        has_audio=lambda: True,
    )


async def feed(rec: ViewRecorder, video: list[bytes], audio: list[bytes]) -> None:
    for i, data in enumerate(video):
        rec.on_video(data, i * 9000)  # 10 fps at 90 kHz
        for j in range(5 * i, 5 * i + 5):
            if j < len(audio):
                rec.on_audio(audio[j], 1_000_000 + j * 960)
        await asyncio.sleep(0)  # noqa: sleep-ok - yields to the loop, waits for nothing


async def test_a_segment_starts_at_a_keyframe_and_holds_both_tracks(media_dir, tmp_path):
    video, audio = vp8_packets(media_dir), opus_packets()
    assert vp8_keyframe(video[0]) == (320, 240) and vp8_keyframe(video[1]) is None
    sink, asked = Sink(), []
    with ThreadPoolExecutor(1) as pool:
        rec = recorder(EvidenceStorage(tmp_path), sink, pool, asked)
        rec.on_video(video[1], 0)  # an interframe first: not recorded, a keyframe asked for
        assert asked and rec.skipped == 1
        await feed(rec, video, audio)
        await rec.close()
    assert len(sink.segments) == 1
    seg = sink.segments[0]
    assert seg.video_frames == len(video) and seg.audio_packets > 0
    path = tmp_path / seg.stored.relpath
    assert path.name.startswith("recording-first-") and path.suffix == ".webm"
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "vp8"
        assert c.streams.audio[0].codec_context.name == "opus"
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == len(video)
    assert not list(tmp_path.rglob(".tmp-*"))  # the temporary file became the evidence


@pytest.fixture
def small_disk(tmp_path):
    where = tmp_path / "small"
    where.mkdir()
    yield from small_tmpfs(where, "256k")


async def test_a_full_disk_drops_the_segment_and_the_next_one_is_stored(media_dir, small_disk):
    video, audio = vp8_packets(media_dir), opus_packets()
    storage = EvidenceStorage(small_disk)
    (small_disk / "sitting-1" / "candidate-1").mkdir(parents=True)
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    sink, asked = Sink(), []
    with ThreadPoolExecutor(1) as pool:
        rec = recorder(storage, sink, pool, asked)
        await feed(rec, video, audio)
        await rec.close()  # nothing raised
        assert sink.segments == []
        assert not list(small_disk.rglob(".tmp-*"))  # nothing half-written left
        os.unlink(filler)
        rec = recorder(storage, sink, pool, asked)
        await feed(rec, video, audio)
        await rec.close()
    assert len(sink.segments) == 1
    assert (small_disk / sink.segments[0].stored.relpath).stat().st_size > 0
