"""The video jitter buffer that resumes after a drop (``proctor.media.jitter``), fed real
VP8 RTP packets as aiortc's sender makes them (its own encoder and packetiser, on a real
clip) and as aiortc's receiver hands them over (depayloaded). A clock is passed in, so the
wall-time rules are exact. aiortc's own buffer is run on the same packets for comparison.

If an aiortc upgrade drops the private names the buffer relies on,
``test_installs_on_aiortc_video_receivers_only`` fails."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs.h264 import H264Encoder, h264_depayload
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from proctor.media.jitter import (
    ResyncingJitterBuffer,
    h264_keyframe,
    install,
    vp8_keyframe_start,
)
from tests.mediatools import resampled

FPS = 8  # a power of two: the clock's steps add up exactly


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Sender:
    """aiortc's VP8 encoder and packetiser on a real clip, 8 fps; sequence numbers and
    timestamps start just before they wrap."""

    def __init__(self, media_dir: Path, count: int) -> None:
        self.frames = list(
            resampled(media_dir / "clips" / "center_focus.mp4", FPS, count, (320, 240))
        )
        self.encoder = Vp8Encoder()
        self.seq = 65_400
        self.ts0 = (1 << 32) - 200_000
        self.index = 0

    def frame(self, key: bool = False) -> list[RtpPacket]:
        frame = av.VideoFrame.from_ndarray(self.frames[self.index], format="bgr24")
        frame.pts, frame.time_base = self.index, fractions.Fraction(1, FPS)
        payloads, ts = self.encoder.encode(frame, force_keyframe=key or self.index == 0)
        self.index += 1
        packets = []
        for i, payload in enumerate(payloads):
            p = RtpPacket(
                payload_type=96,
                sequence_number=self.seq,
                timestamp=(self.ts0 + ts) & 0xFFFFFFFF,
                marker=int(i == len(payloads) - 1),
            )
            p.payload = payload
            p._data = vp8_depayload(payload)  # as aiortc's receiver does before add()
            self.seq = (self.seq + 1) & 0xFFFF
            packets.append(p)
        return packets


def decodes(frames: list[JitterFrame]) -> None:
    """Every frame decodes to a 320x240 picture with aiortc's own decoder, no error."""
    decoder = Vp8Decoder()
    for f in frames:
        pictures = decoder.decode(JitterFrame(f.data, f.timestamp))
        assert [(p.width, p.height) for p in pictures] == [(320, 240)]


def is_keyframe(frame: JitterFrame) -> bool:
    return not frame.data[0] & 0x01


@pytest.fixture(scope="module")
def sender_frames(media_dir):
    return lambda count: Sender(media_dir, count)


def test_a_drop_resumes_at_a_keyframe_asked_for_at_once(sender_frames) -> None:
    clock = Clock()
    buf = ResyncingJitterBuffer(clock=clock)
    plain = JitterBuffer(capacity=512, is_video=True)
    sender = sender_frames(80)
    out: list[JitterFrame] = []
    plain_after = 0
    for _ in range(10):
        for p in sender.frame():
            pli, frame = buf.add(p)
            plain.add(p)
            assert not pli
            out += [frame] if frame else []
        clock.now += 1 / FPS
    assert len(out) == 9 and is_keyframe(out[0])
    for _ in range(3 * FPS):  # a 3 s drop: the sender sends, nothing arrives, nothing is resent
        sender.frame()
        clock.now += 1 / FPS
    drop_ends = clock.now
    plis: list[float] = []
    want_key = False
    resumed: list[JitterFrame] = []
    for _ in range(40):
        packets = sender.frame(key=want_key)
        want_key = False
        for p in packets:
            pli, frame = buf.add(p)
            plain_after += plain.add(p)[1] is not None
            if pli:
                plis.append(clock.now - drop_ends)
                want_key = len(plis) > 1  # the first PLI is lost on the way
            resumed += [frame] if frame else []
        clock.now += 1 / FPS
    # a hole of 3 s: given up on at the first packet after it, a keyframe asked for at
    # once; again 1 s later (the first PLI was lost), then not again
    assert plis == pytest.approx([0.0, 1.0])
    assert buf.resyncs == 1
    # the video resumed at the keyframe that answered the second PLI (1 s + one frame after
    # the network came back), and every frame after it came out, in order, and decodes
    assert is_keyframe(resumed[0])
    assert len(resumed) == 40 - (FPS + 1) - 1  # but the newest: it waits for the next one
    stamps = [f.timestamp for f in resumed]
    steps = {(b - a) % (1 << 32) for a, b in zip(stamps, stamps[1:], strict=False)}
    assert steps == {90_000 // FPS}
    decodes(out + resumed)
    # aiortc's own buffer let nothing out in these 5 s: it waits for 512 packets
    assert plain_after == 0


def test_a_keyframe_already_received_is_resumed_at_without_asking(sender_frames) -> None:
    clock = Clock()
    buf = ResyncingJitterBuffer(clock=clock)
    sender = sender_frames(40)
    out: list[JitterFrame] = []
    sent_ts: list[int] = []
    for n in range(40):
        packets = sender.frame(key=n == 15)  # e.g. a periodic keyframe
        sent_ts.append(packets[0].timestamp)
        for i, p in enumerate(packets):
            if n == 12 and i == 1:
                continue  # lost for good
            pli, frame = buf.add(p)
            assert not pli
            out += [frame] if frame else []
        clock.now += 1 / FPS
    stamps = [f.timestamp for f in out]
    # up to frame 11 as usual; frames 12-14 lack their reference and are never let out;
    # from the keyframe (15) on, every frame but the newest
    assert stamps == sent_ts[:12] + sent_ts[15:39]
    assert buf.resyncs == 1
    decodes(out[:12])
    decodes(out[12:])


def test_packets_resent_in_time_are_waited_for(sender_frames) -> None:
    """A short drop (half a second: a browser still holds its packets) and our NACKs
    bring them back within a round trip: every frame of the drop comes out (analysed and
    recorded)."""
    clock = Clock()
    buf = ResyncingJitterBuffer(clock=clock)
    sender = sender_frames(40)
    sent_ts: list[int] = []
    out: list[JitterFrame] = []

    def give(packets: list[RtpPacket]) -> None:
        for p in packets:
            pli, frame = buf.add(p)
            assert not pli
            out.extend([frame] if frame else [])

    lost: list[RtpPacket] = []
    for n in range(40):
        packets = sender.frame()
        sent_ts.append(packets[0].timestamp)
        if 10 <= n < 10 + FPS // 2:  # a 0.5 s drop
            lost += packets
        else:
            give(packets)
        if n == 10 + FPS // 2 + 2:  # 0.25 s after the network's return: resent
            give(lost)
        clock.now += 1 / FPS
    assert buf.resyncs == 0
    assert [f.timestamp for f in out] == sent_ts[:-1]
    decodes(out)


def test_late_retransmissions_of_given_up_packets_are_dropped(sender_frames) -> None:
    clock = Clock()
    buf = ResyncingJitterBuffer(clock=clock)
    sender = sender_frames(60)
    for _ in range(5):
        for p in sender.frame():
            buf.add(p)
        clock.now += 1 / FPS
    lost = [p for _ in range(25) for p in sender.frame()]  # 2.5 s of packets, never came
    clock.now += 2.5
    plis = []
    for _ in range(FPS):  # a 2.5 s hole: given up on at once, a keyframe asked for
        plis += [pli for p in sender.frame() if (pli := buf.add(p)[0])]
        clock.now += 1 / FPS
    assert len(plis) == 1
    out = [f for p in sender.frame(key=True) + sender.frame() if (f := buf.add(p)[1])]
    assert len(out) == 1 and is_keyframe(out[0])
    clock.now += 0.2
    # the sender now resends what it still has of the drop: our NACKs name the 128 packets
    # before the first that came (aiortc's NackGenerator); aiortc's own buffer would take
    # those 100 or more behind as a restarted stream, start over at them and ask again
    assert len(lost) > 128
    for p in lost[-120:]:
        assert buf.add(p) == (False, None)
    # the stream goes on where it was, with no keyframe asked for
    more = []
    for _ in range(5):
        for p in sender.frame():
            pli, frame = buf.add(p)
            assert not pli
            more += [frame] if frame else []
    assert len(more) == 5
    decodes(out + more)


def test_a_stream_without_losses_comes_out_as_from_aiortc(sender_frames) -> None:
    clock = Clock()
    buf = ResyncingJitterBuffer(clock=clock)
    plain = JitterBuffer(capacity=512, is_video=True)
    sender = sender_frames(30)
    ours, theirs = [], []
    for n in range(30):
        packets = sender.frame()
        if n == 10 and len(packets) >= 3:  # reordered on the way
            packets[0], packets[2] = packets[2], packets[0]
        if n == 20 and len(packets) >= 2:  # lost once, resent (NACK) a frame later
            late = packets.pop(1)
        if n == 21:
            packets.insert(0, late)
        for p in packets:
            pli, frame = buf.add(p)
            assert not pli
            ours += [frame] if frame else []
            frame = plain.add(p)[1]
            theirs += [frame] if frame else []
        clock.now += 1 / FPS
    assert [(f.timestamp, f.data) for f in ours] == [(f.timestamp, f.data) for f in theirs]
    assert len(ours) == 29 and buf.resyncs == 0
    decodes(ours)


def test_keyframe_starts_are_recognised(sender_frames) -> None:
    sender = sender_frames(3)
    key, inter = sender.frame(), sender.frame()
    assert vp8_keyframe_start(key[0].payload)
    assert not any(vp8_keyframe_start(p.payload) for p in key[1:] + inter)
    assert not vp8_keyframe_start(b"")
    h264 = H264Encoder()
    pictures = [av.VideoFrame.from_ndarray(f, format="bgr24") for f in sender.frames[:2]]
    found = []
    for i, picture in enumerate(pictures):
        picture.pts, picture.time_base = i, fractions.Fraction(1, FPS)
        payloads, _ = h264.encode(picture, force_keyframe=i == 0)
        found.append([h264_keyframe(h264_depayload(p)) for p in payloads])
    assert found[0][0] and not any(found[1])


async def test_installs_on_aiortc_video_receivers_only() -> None:
    pc = RTCPeerConnection()
    try:
        video = pc.addTransceiver("video", direction="recvonly").receiver
        audio = pc.addTransceiver("audio", direction="recvonly").receiver
        own_audio = audio._RTCRtpReceiver__jitter_buffer
        calls = []
        buffer = install(video, 1.0, calls.append)
        # what this relies on is there; if not, aiortc changed and this must be revisited
        assert isinstance(buffer, ResyncingJitterBuffer), "aiortc's receiver changed"
        assert video._RTCRtpReceiver__jitter_buffer is buffer
        assert buffer.capacity == 512
        assert install(audio) is None
        assert audio._RTCRtpReceiver__jitter_buffer is own_audio
        off = pc.addTransceiver("video", direction="recvonly").receiver
        assert install(off, 0) is None
        assert not isinstance(off._RTCRtpReceiver__jitter_buffer, ResyncingJitterBuffer)
    finally:
        await pc.close()
