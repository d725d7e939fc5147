"""Video that comes back at once after a network drop.

aiortc (1.x) reassembles a received video stream in a ``JitterBuffer`` of 512 packets that
lets frames out strictly in sequence order. When packets are lost for good (a drop of a
few seconds: the sender's history no longer holds them, or the sender does not resend),
the buffer holds every newer frame behind the hole until 512 more packets have come, and
only then flushes and asks for a keyframe (RTCP PLI). At the analysis send rate that is
tens of seconds with no analysis, no thumbnail and no recording for the candidate: a
blind spot anyone could make by pulling the cable.

:class:`ResyncingJitterBuffer` is aiortc's buffer with one addition: it gives up on a hole at once
when the hole spans more than ``stall_seconds`` of media time (the first packet after it
is that far past the last one before it: a drop that long, whose start a browser no
longer holds to resend: its history is about a second), and otherwise once the hole has
held frames back for ``stall_seconds`` (wall time, or media time since it was found).
Until then a retransmission (our NACKs) may still fill it, and a short drop's frames are
analysed and recorded too. It
resumes at the newest keyframe already in the buffer, or else empties the buffer, asks
for a keyframe at once (the PLI flag its ``add`` returns, which the receiver sends) and
lets nothing out until a keyframe starts, so the decoder never sees a frame whose
reference is missing. PLIs from the buffer are at most one per ``pli_every`` seconds
(again while the keyframe is awaited, in case a PLI was lost). Late retransmissions of
the packets it gave up on are dropped for a while, instead of restarting the buffer.

:func:`install` puts one in place of an aiortc video receiver's own buffer, per receiver
(nothing in aiortc is patched globally). It relies on aiortc's private names (the
receiver's ``__jitter_buffer`` and ``__codecs``; the buffer's ``_origin``, ``_packets``,
``remove`` and ``_remove_frame``); if an upgrade lacks them, it logs a warning and leaves
aiortc's behaviour as it is, and ``tests/unit/test_jitter.py`` fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
STALE_SECONDS = 3.0  # after giving up on a hole, its late retransmissions are dropped this long
_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_CODECS = "_RTCRtpReceiver__codecs"
_KIND = "_RTCRtpReceiver__kind"
_START_CODE = b"\x00\x00\x00\x01"


def vp8_keyframe_start(payload: bytes) -> bool:
    """Whether an RTP payload (VP8 descriptor + data) is the first packet of a keyframe."""
    try:
        descriptor, data = VpxPayloadDescriptor.parse(payload)
    except ValueError:
        return False
    return bool(descriptor.partition_start and descriptor.partition_id == 0 and data) and not (
        data[0] & 0x01
    )


def h264_keyframe(data: bytes) -> bool:
    """Whether depayloaded H.264 (Annex B, as aiortc's depayloader gives it) begins an
    SPS or an IDR slice."""
    at = data.find(_START_CODE)
    while at >= 0 and at + 4 < len(data):
        if data[at + 4] & 0x1F in (5, 7):
            return True
        at = data.find(_START_CODE, at + 4)
    return False


def _ts_ahead(a: int, b: int) -> int:
    """How far RTP timestamp ``a`` is past ``b`` (negative: before), across wraparound."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d >= 1 << 31 else d


class ResyncingJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer that gives up on a hole after ``stall_seconds``."""

    def __init__(
        self,
        capacity: int = 512,
        *,
        codec_name: Callable[[int], str | None] = lambda _pt: "VP8",
        stall_seconds: float = 1.0,
        pli_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_resync: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__(capacity, is_video=True)
        self._codec_name = codec_name  # payload type -> codec name ("VP8", "H264", ...)
        self._stall_seconds = stall_seconds
        self._stall_ticks = int(stall_seconds * VIDEO_CLOCK)
        self._pli_every = pli_every
        self._clock = clock
        self._on_resync = on_resync  # called with True when the buffer had no keyframe
        self._newest: RtpPacket | None = None  # highest sequence number in the buffer
        self._held_since: float | None = None  # when a hole began holding frames back
        self._held_ts = 0  # the RTP timestamp of the packet that found it so
        self._awaiting_key = False
        self._last_pli = float("-inf")
        self._stale_floor: int | None = None  # packets before this one: given up on
        self._stale_until = 0.0
        self.resyncs = 0  # holes given up on

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        now = self._clock()
        if self._stale(packet, now):
            return False, None
        if self._awaiting_key:
            if not self._keyframe_start(packet):
                return self._pli(now), None
            self._awaiting_key = False  # the buffer is empty: it starts at this packet
        newest = self._newest
        gap = (
            newest is not None
            and uint16_gt(packet.sequence_number, uint16_add(newest.sequence_number, 1))
            and _ts_ahead(packet.timestamp, newest.timestamp) > self._stall_ticks
        )  # packets are missing just before this one, and they span a long time
        pli, frame = super().add(packet)
        if pli:
            self._newest = None  # aiortc restarted or flushed the buffer
        if self._newest is None or uint16_gt(packet.sequence_number, self._newest.sequence_number):
            self._newest = packet
        if frame is not None:
            self._held_since = None
            return self._rate_limited(pli, now), frame
        if not self._hole():
            self._held_since = None
            return self._rate_limited(pli, now), None
        if self._held_since is None:
            self._held_since, self._held_ts = now, packet.timestamp
        behind = _ts_ahead(packet.timestamp, self._held_ts)
        if not gap and now - self._held_since < self._stall_seconds and behind < self._stall_ticks:
            return self._rate_limited(pli, now), None
        return self._resync(packet, now)

    # -- internals

    def _rate_limited(self, pli: bool, now: float) -> bool:
        return self._pli(now) if pli else False

    def _pli(self, now: float) -> bool:
        """A PLI now, unless one went less than ``pli_every`` ago."""
        if now - self._last_pli < self._pli_every:
            return False
        self._last_pli = now
        return True

    def _stale(self, packet: RtpPacket, now: float) -> bool:
        """A late retransmission of a packet before the last hole given up on."""
        if self._stale_floor is None:
            return False
        if now >= self._stale_until:
            self._stale_floor = None
            return False
        return uint16_gt(self._stale_floor, packet.sequence_number)

    def _keyframe_start(self, packet: RtpPacket) -> bool:
        name = (self._codec_name(packet.payload_type) or "").upper()
        if name == "VP8":
            return vp8_keyframe_start(packet.payload)
        if name == "H264":
            return h264_keyframe(getattr(packet, "_data", b""))
        return True  # another codec: resume at the next packet, and ask for a keyframe

    def _span(self) -> int:
        """Slots from the origin to the newest packet, inclusive."""
        if self._origin is None or self._newest is None:
            return 0
        return min(uint16_add(self._newest.sequence_number, -self._origin) + 1, self._capacity)

    def _hole(self) -> bool:
        """Whether a missing packet holds back packets after it."""
        return any(
            self._packets[uint16_add(self._origin, i) % self._capacity] is None
            for i in range(self._span())
        )

    def _resync(self, packet: RtpPacket, now: float) -> tuple[bool, JitterFrame | None]:
        """Give up on the hole: resume at the newest keyframe after the origin, or else
        empty the buffer and wait for a keyframe, asking for one."""
        self.resyncs += 1
        self._held_since = None
        keyframe = None
        slots = [uint16_add(self._origin, i) % self._capacity for i in range(self._span())]
        for i in range(len(slots) - 1, 0, -1):
            candidate = self._packets[slots[i]]
            if candidate is not None and self._keyframe_start(candidate):
                keyframe = i
                break
        if keyframe is not None:
            # the frame's first packet (H.264 may send SPS/PPS in a packet before the IDR)
            ts = self._packets[slots[keyframe]].timestamp
            while keyframe > 1:
                before = self._packets[slots[keyframe - 1]]
                if before is None or before.timestamp != ts:
                    break
                keyframe -= 1
            self.remove(keyframe)
            self._stale_floor, self._stale_until = self._origin, now + STALE_SECONDS
            if self._on_resync is not None:
                self._on_resync(False)
            return False, self._remove_frame(packet.sequence_number)
        self.remove(self._capacity)
        self._origin = None
        self._stale_floor = uint16_add(self._newest.sequence_number, 1)
        self._stale_until = now + STALE_SECONDS
        self._newest = None
        self._awaiting_key = True
        if self._on_resync is not None:
            self._on_resync(True)
        return self._pli(now), None


def install(
    receiver: Any,
    stall_seconds: float = 1.0,
    on_resync: Callable[[bool], None] | None = None,
) -> ResyncingJitterBuffer | None:
    """Put a :class:`ResyncingJitterBuffer` in place of an aiortc video receiver's own
    buffer (before any packet came). None, and aiortc's own behaviour, for an audio
    receiver, ``stall_seconds <= 0``, or an aiortc without the names this relies on."""
    if stall_seconds <= 0 or getattr(receiver, _KIND, None) != "video":
        return None
    old = getattr(receiver, _BUFFER, None)
    codecs = getattr(receiver, _CODECS, None)
    needed = ("_origin", "_packets", "_capacity", "remove", "_remove_frame")
    if (
        not isinstance(old, JitterBuffer)
        or not isinstance(codecs, dict)
        or not all(hasattr(old, name) for name in needed)
    ):
        log.warning("this aiortc's video receiver differs; video is not resynced after drops")
        return None
    if old._origin is not None:  # packets came already: too late to swap it
        return None

    def codec_name(payload_type: int) -> str | None:
        codec = codecs.get(payload_type)
        return getattr(codec, "name", None)

    buffer = ResyncingJitterBuffer(
        old.capacity, codec_name=codec_name, stall_seconds=stall_seconds, on_resync=on_resync
    )
    setattr(receiver, _BUFFER, buffer)
    return buffer
