"""Whole-session recording (issue 22 item 3; the documents' 音视频录制追溯): each view's
received VP8 video and Opus audio, as the server received them, remuxed into WebM
segments. Nothing is decoded or re-encoded for the recording.

Where the frames come from: aiortc's ``RTCRtpReceiver`` reassembles each encoded frame in
its jitter buffer and hands ``(codec, frame)`` to its decoder thread through a queue
(``_handle_rtp_packet`` → ``__decoder_queue.put``). :func:`tee_encoded` wraps that
queue's ``put`` on the receiver instance, so every complete encoded frame (depayloaded
VP8 / the Opus packet, with its unwrapped RTP timestamp) is also given to the recording,
on the event loop, before it is decoded. Checked against aiortc 1.16 (the test of the
recording fails if a later aiortc moves it).

Segments: a segment starts at a VP8 keyframe; after ``segment_seconds`` a keyframe is
asked of the sender (RTCP PLI) and the next one starts the next segment, so consecutive
segments join without a lost frame. Timestamps are the RTP timestamps (90 kHz video,
48 kHz audio) from the segment's first frame; the audio is placed by its arrival relative
to the segment's first video frame, then by its RTP timestamps (so Opus DTX's silences
stay silences of the right length).

A network drop: no video for ``GAP_SECONDS`` ends the segment at its last frame (audio
that goes on alone is not recorded); the recording waits for the next keyframe (asked for
by PLI) and starts a new segment then. The time between is a gap (no file covers it),
never a crash. (After a drop whose packets the sender cannot resend, aiortc's video
jitter buffer holds everything newer until 512 packets have come, so the video, for the
analysis as for the recording, comes back up to tens of seconds after the network.)
A reconnection is a new peer connection and a new recording. The muxing runs on one
thread for all views; when it falls behind (``MAX_PENDING`` batches of a view waiting)
the segment is ended there too. Packets go to that thread in batches of at most half a
second (one hand-over per packet cost more than the muxing). A segment that cannot be
written (disk full) is dropped, counted and logged; the next segment tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av

from proctor import metrics
from proctor.evidence.recordings import KIND, MIME, Segment
from proctor.evidence.storage import EvidenceStorage, StoredFile

__all__ = ["KIND", "MIME", "RecordingSetup", "Segment", "ViewRecorder", "tee_encoded"]

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_CLOCK)
OPUS_FRAME = 960  # 20 ms, WebRTC's Opus packet
#: Opus's identification header (RFC 7845 §5.1), the WebM track's CodecPrivate: two
#: channels as WebRTC signals them, 312 samples of pre-skip, 48 kHz, no gain, family 0
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 312, AUDIO_CLOCK, 0, 0)
GAP_SECONDS = 3.0  # no video this long: the segment ends (a gap)
PLI_EVERY = 1.0  # while waiting for a keyframe, ask again this often
MAX_PENDING = 60  # batches of one view waiting to be muxed (~30 s); beyond: the segment ends
BATCH_PACKETS, BATCH_SECONDS = 64, 0.5  # packets go to the muxing thread in batches
MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS = 5.0, 600.0


def vp8_keyframe(data: bytes) -> tuple[int, int] | None:
    """A VP8 keyframe's (width, height) (RFC 6386 §9.1), None for an interframe or junk."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width, height = struct.unpack("<HH", data[6:10])
    width, height = width & 0x3FFF, height & 0x3FFF
    return (width, height) if width and height else None


def tee_encoded(receiver: Any, on_frame: Callable[[bytes, int], None]) -> bool:
    """Give ``on_frame(data, rtp_timestamp)`` every complete encoded frame ``receiver``
    (an ``aiortc.RTCRtpReceiver``) hands to its decoder, before it is decoded. Called on
    the event loop. False (and a warning) if this aiortc has no such queue."""
    queue = getattr(receiver, "_RTCRtpReceiver__decoder_queue", None)
    put = getattr(queue, "put", None)
    if put is None:
        log.warning("recording: this aiortc's receiver has no decoder queue; not recorded")
        return False

    def tee_put(item: Any, *args: Any, **kwargs: Any) -> None:
        if item is not None:
            try:
                _codec, frame = item
                on_frame(bytes(frame.data), int(frame.timestamp))
            except Exception:  # the recording must never stop the reception
                log.exception("recording: a frame could not be taken")
        put(item, *args, **kwargs)

    queue.put = tee_put
    return True


SegmentSink = Callable[[Segment], Awaitable[None]]


class _Writer:
    """One WebM file being written; runs on the recording thread only."""

    def __init__(
        self, storage: EvidenceStorage, parts: tuple[str, ...], size: tuple[int, int], audio: bool
    ) -> None:
        self.storage = storage
        self.parts = parts
        self.size = size
        self.with_audio = audio
        self.tmp: Path | None = None
        self.out: Any = None
        self.video: Any = None
        self.audio: Any = None
        self.failed = False
        self.video_frames = self.audio_packets = 0

    def open(self) -> None:
        try:
            self.tmp = self.storage.temp_file(self.parts)
            self.out = av.open(str(self.tmp), "w", format="webm")
            self.video = self.out.add_stream("libvpx", rate=30)
            self.video.width, self.video.height = self.size
            self.video.time_base = VIDEO_TIME_BASE
            if self.with_audio:
                self.audio = self.out.add_stream("libopus", rate=AUDIO_CLOCK)
                self.audio.codec_context.extradata = OPUS_HEAD
                self.audio.time_base = AUDIO_TIME_BASE
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if not self.failed:
            log.warning("recording: segment %s dropped: %s", self.tmp, exc)
            metrics.RECORDING_SEGMENTS.labels("failed").inc()
        self.failed = True
        if self.out is not None:
            with contextlib.suppress(Exception):
                self.out.close()
            self.out = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)

    def packet(self, kind: str, data: bytes, pts: int, keyframe: bool) -> None:
        if self.failed or self.out is None:
            return
        try:
            packet = av.Packet(data)
            if kind == "video":
                packet.stream = self.video
                packet.time_base = VIDEO_TIME_BASE
                packet.is_keyframe = keyframe
                self.video_frames += 1
            else:
                if self.audio is None:
                    return
                packet.stream = self.audio
                packet.time_base = AUDIO_TIME_BASE
                packet.duration = OPUS_FRAME
                self.audio_packets += 1
            packet.pts = packet.dts = pts
            self.out.mux(packet)
        except Exception as exc:
            self._fail(exc)

    def packets(self, batch: list[tuple[str, bytes, int, bool]]) -> None:
        for item in batch:
            self.packet(*item)

    def finish(
        self, storage: EvidenceStorage, kind: str, started_at: datetime
    ) -> StoredFile | None:
        if self.failed or self.out is None or self.tmp is None:
            return None
        try:
            self.out.close()
            self.out = None
            return storage.adopt(self.tmp, kind, "webm", started_at)
        except Exception as exc:
            self._fail(exc)
            return None


class ViewRecorder:
    """The recording of one view of one peer connection. ``on_video`` / ``on_audio`` are
    fed by :func:`tee_encoded` on the event loop; the muxing runs on ``executor`` (one
    thread); each finished segment goes to ``sink``."""

    def __init__(
        self,
        *,
        view: str,
        parts: tuple[str, ...],
        storage: EvidenceStorage,
        executor: Executor,
        sink: SegmentSink,
        segment_seconds: float,
        request_keyframe: Callable[[], None],
        has_audio: Callable[[], bool],
    ) -> None:
        self.view = view
        self.parts = parts
        self.storage = storage
        self.executor = executor
        self.sink = sink
        self.segment_seconds = min(
            MAX_SEGMENT_SECONDS, max(MIN_SEGMENT_SECONDS, float(segment_seconds))
        )
        self.request_keyframe = request_keyframe
        self.has_audio = has_audio
        self._writer: _Writer | None = None
        self._size: tuple[int, int] | None = None
        self._started_wall = 0.0  # the segment's first frame's arrival (time.time())
        self._started_loop = 0.0  # ... in loop time (monotonic)
        self._v_origin = 0
        self._a_origin: int | None = None
        self._last_v = -1  # pts of the last video / audio packet written
        self._last_a = -1
        self._last_video_at: float | None = None  # monotonic arrival of the last frame
        self._pli_at = -PLI_EVERY
        self._submitted = 0
        self._done = 0  # written by the recording thread only
        self._closing: set[asyncio.Future[None]] = set()
        self._batch: list[tuple[str, bytes, int, bool]] = []
        self._flushed_at = 0.0
        self.closed = False
        self.segments = 0  # finished segments handed to the sink
        self.skipped = 0  # frames not recorded while waiting for a keyframe

    # -- the event loop side -----------------------------------------------------------
    def _ask_keyframe(self, now: float) -> None:
        if now - self._pli_at >= PLI_EVERY:
            self._pli_at = now
            self.request_keyframe()

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._submitted += 1

        def run() -> Any:
            c0 = time.thread_time()
            try:
                return fn(*args)
            finally:
                self._done += 1
                metrics.RECORDING_CPU.inc(time.thread_time() - c0)

        return self.executor.submit(run)

    def on_video(self, data: bytes, ts: int) -> None:
        if self.closed:
            return
        now = time.monotonic()
        gap = self._last_video_at is not None and now - self._last_video_at > GAP_SECONDS
        self._last_video_at = now
        size = vp8_keyframe(data)
        if self._writer is not None:
            behind = self._submitted - self._done > MAX_PENDING
            if gap or behind:
                if behind:
                    log.warning("recording: %s fell behind; the segment ends here", self.parts)
                self._end_segment()  # a gap: the next segment starts at a keyframe
            elif size is not None and (
                size != self._size or now - self._started_loop >= self.segment_seconds
            ):
                self._end_segment()  # the next segment starts at this keyframe
            elif now - self._started_loop >= self.segment_seconds:
                self._ask_keyframe(now)
        if self._writer is None:
            if size is None:
                self.skipped += 1  # an interframe without its keyframe: cannot be played
                self._ask_keyframe(now)
                return
            log.debug("recording %s: a segment starts (%d frames skipped)", self.view, self.skipped)
            self._start_segment(size, ts, now)
        pts = ts - self._v_origin
        if pts <= self._last_v:
            return  # a repeated or late frame: WebM wants increasing times
        self._last_v = pts
        self._queue(("video", data, pts, size is not None), now)

    def on_audio(self, data: bytes, ts: int) -> None:
        if self.closed or self._writer is None:
            return  # audio before the first keyframe (or in a gap) is not recorded
        if self._last_video_at is not None and time.monotonic() - self._last_video_at > GAP_SECONDS:
            # the video stopped (a drop; aiortc's jitter buffer then waits for the lost
            # packets): the segment ends with its last frame, audio included
            self._end_segment()
            return
        if self._a_origin is None:
            offset = round((time.time() - self._started_wall) * AUDIO_CLOCK)
            self._a_origin = ts - max(0, offset)
        pts = ts - self._a_origin
        if pts <= self._last_a:
            return
        if pts - self._last_a > AUDIO_CLOCK * 3600:
            return  # a wild timestamp
        self._last_a = pts
        self._queue(("audio", data, pts, True), time.monotonic())

    def _queue(self, item: tuple[str, bytes, int, bool], now: float) -> None:
        self._batch.append(item)
        if len(self._batch) >= BATCH_PACKETS or now - self._flushed_at >= BATCH_SECONDS:
            self._flush(now)

    def _flush(self, now: float) -> None:
        self._flushed_at = now
        if self._batch and self._writer is not None:
            batch, self._batch = self._batch, []
            self._submit(self._writer.packets, batch)

    def _start_segment(self, size: tuple[int, int], ts: int, now: float) -> None:
        self._size = size
        self._started_wall = time.time()
        self._started_loop = now
        self._v_origin = ts
        self._a_origin = None
        self._last_v = self._last_a = -1
        self._writer = _Writer(self.storage, self.parts, size, self.has_audio())
        self._submit(self._writer.open)

    def _end_segment(self) -> None:
        self._flush(time.monotonic())
        writer, self._writer = self._writer, None
        if writer is None:
            return
        started = datetime.fromtimestamp(self._started_wall, UTC)
        seconds = max(self._last_v / VIDEO_CLOCK, (self._last_a + OPUS_FRAME) / AUDIO_CLOCK)
        ended = datetime.fromtimestamp(self._started_wall + max(0.0, seconds), UTC)
        fut = self._submit(writer.finish, self.storage, f"{KIND}-{self.view}", started)
        task = asyncio.ensure_future(self._store(asyncio.wrap_future(fut), writer, started, ended))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _store(
        self,
        fut: Awaitable[StoredFile | None],
        writer: _Writer,
        started: datetime,
        ended: datetime,
    ) -> None:
        stored = await fut
        if stored is None:
            return
        metrics.RECORDING_SEGMENTS.labels("stored").inc()
        metrics.RECORDING_BYTES.labels(self.view).inc(stored.size)
        segment = Segment(
            self.view, stored, started, ended, writer.video_frames, writer.audio_packets
        )
        try:
            await self.sink(segment)
            self.segments += 1
        except Exception:
            log.exception("recording: segment %s could not be recorded", stored.relpath)

    async def close(self) -> None:
        """End the current segment and wait until every segment is stored."""
        if not self.closed:
            self.closed = True
            self._end_segment()
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)


@dataclass
class RecordingSetup:
    """What the peers need to record: where, how long a segment, and who records it."""

    storage: EvidenceStorage
    executor: Executor
    segment_seconds: float
    #: (candidate ref, segment) -> stored as evidence
    sink: Callable[[Any, Segment], Awaitable[None]]


def start_view_recording(
    setup: RecordingSetup,
    ref: Any,
    view: str,
    pc: Any,
) -> ViewRecorder | None:
    """Record the view of ``pc`` (an aiortc peer connection whose remote tracks exist):
    its video receiver, and its audio receiver if it has one. None if it has no video."""
    video_rx = audio_rx = None
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if receiver is None or receiver.track is None:
            continue
        if transceiver.kind == "video" and video_rx is None:
            video_rx = receiver
        elif transceiver.kind == "audio" and audio_rx is None:
            audio_rx = receiver
    if video_rx is None:
        return None
    loop = asyncio.get_running_loop()

    def request_keyframe() -> None:
        # the media SSRC (not the retransmissions'): RTCP PLI asks its sender for a keyframe
        rtx = getattr(video_rx, "_RTCRtpReceiver__rtx_ssrc", {})
        for source in video_rx.getSynchronizationSources():
            if source.source not in rtx:
                loop.create_task(video_rx._send_rtcp_pli(source.source))

    async def sink(segment: Segment) -> None:
        await setup.sink(ref, segment)

    recorder = ViewRecorder(
        view=view,
        parts=(f"sitting-{ref.sitting_id}", f"candidate-{ref.candidate_id}"),
        storage=setup.storage,
        executor=setup.executor,
        sink=sink,
        segment_seconds=setup.segment_seconds,
        request_keyframe=request_keyframe,
        has_audio=lambda: audio_rx is not None,
    )
    if not tee_encoded(video_rx, recorder.on_video):
        return None
    if audio_rx is not None:
        tee_encoded(audio_rx, recorder.on_audio)
    return recorder
