"""Two-way voice between an invigilator and a candidate (语音对话), through the server.

The invigilator's browser opens a peer connection that sends its microphone and receives
the candidate's microphone (relayed from the candidate's first view, which the server
already receives). The candidate's page is then told about the call and opens a second
peer connection that receives the invigilator's microphone, relayed. The invigilator
starts and ends the call; the server can end it too (a connection lost). Media never goes
browser to browser: the server sees both sides, as for every other stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay

from proctor.errors import Conflict, Invalid, NotFound
from proctor.media.bounded import bound
from proctor.media.peers import PeerManager
from proctor.media.sampler import AudioDrain
from proctor.media.turn import IceSource, ice_source

log = logging.getLogger(__name__)


@dataclass
class VoiceCall:
    call_id: str
    candidate_id: int
    staff_id: int
    staff_pc: RTCPeerConnection
    started_at: float = field(default_factory=time.time)
    relay: MediaRelay = field(default_factory=MediaRelay)
    staff_audio: MediaStreamTrack | None = None  # the invigilator's microphone, received
    candidate_pc: RTCPeerConnection | None = None
    #: tracks handed to peer connections (relay proxies), stopped when the call ends
    proxies: list[MediaStreamTrack] = field(default_factory=list)
    drain: AudioDrain | None = None  # keeps the invigilator's audio consumed; counts it
    staff_connected_at: float | None = None
    candidate_connected_at: float | None = None
    has_candidate_audio: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def summary(self) -> dict[str, object]:
        return {
            "call_id": self.call_id,
            "seconds": round(time.time() - self.started_at, 1),
            "staff_connected": self.staff_connected_at is not None,
            "candidate_connected": self.candidate_connected_at is not None,
            "candidate_audio": self.has_candidate_audio,
            "staff_audio_frames": self.drain.frames_received if self.drain else 0,
        }


EndCallback = Callable[[VoiceCall, str], Awaitable[None]]


class VoiceCalls:
    """At most one call per candidate and per invigilator."""

    def __init__(self, peers: PeerManager, ice_servers: IceSource = None) -> None:
        self.peers = peers
        self.ice_servers = ice_source(ice_servers)
        self._calls: dict[int, VoiceCall] = {}  # by candidate
        self._on_end: dict[str, EndCallback] = {}

    def _pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers()))

    def of_candidate(self, candidate_id: int) -> VoiceCall | None:
        return self._calls.get(candidate_id)

    def of_staff(self, staff_id: int) -> VoiceCall | None:
        return next((c for c in self._calls.values() if c.staff_id == staff_id), None)

    def count(self) -> int:
        return len(self._calls)

    async def start(
        self,
        staff_id: int,
        candidate_id: int,
        sdp: str,
        on_end: EndCallback | None = None,
    ) -> tuple[VoiceCall, RTCSessionDescription]:
        """Answer the invigilator's offer (audio, sendrecv): their microphone comes in, the
        candidate's goes out."""
        current = self._calls.get(candidate_id)
        if current is not None and current.staff_id != staff_id:
            raise Conflict(
                "voice_busy", "Another invigilator is talking to this candidate. 该考生正在通话中。"
            )
        if not self.peers.is_connected(candidate_id, "first"):
            raise Conflict(
                "not_streaming", "The candidate's first view is not connected. 考生未连接。"
            )
        if "m=audio" not in sdp:
            raise Invalid("invalid_sdp", "The offer has no audio: the microphone must be shared.")
        mine = self.of_staff(staff_id)
        if mine is not None:  # one call at a time: a new one ends the previous
            await self.end(mine.candidate_id, "replaced by a new call")
        video, audio = self.peers.live_tracks(candidate_id, "first")
        if video is not None:
            video.stop()
        pc = self._pc()
        call = VoiceCall(uuid.uuid4().hex[:16], candidate_id, staff_id, pc)
        call.has_candidate_audio = audio is not None
        if audio is not None:
            call.proxies.append(audio)
        self._calls[candidate_id] = call
        if on_end is not None:
            self._on_end[call.call_id] = on_end

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            bound(track)
            if track.kind == "audio" and call.staff_audio is None:
                call.staff_audio = track
                call.drain = AudioDrain(
                    call.relay.subscribe(track, buffered=False), f"voice {call.call_id}"
                )
                call.drain.start()

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected" and call.staff_connected_at is None:
                call.staff_connected_at = time.time()
            elif pc.connectionState in ("failed", "closed"):
                await self.end(candidate_id, "invigilator connection lost", only=call)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if audio is not None:
                pc.addTrack(audio)  # takes the offer's audio transceiver: sendrecv
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self.end(candidate_id, "bad offer", only=call, notify=False)
            raise Invalid("invalid_sdp", f"The WebRTC offer could not be used: {exc}") from exc
        log.info(
            "voice call %s: staff %s → candidate %s",
            call.call_id,
            staff_id,
            candidate_id,
            extra={"candidate_id": candidate_id},
        )
        return call, pc.localDescription

    async def answer_candidate(
        self, candidate_id: int, call_id: str, sdp: str
    ) -> RTCSessionDescription:
        """The candidate page's offer (audio, recvonly): the invigilator's voice goes out.
        A new offer for the same call replaces the candidate's previous connection."""
        call = self._calls.get(candidate_id)
        if call is None or call.call_id != call_id:
            raise NotFound("no_voice_call", "There is no such call now. 当前没有通话。")
        if call.staff_audio is None:
            raise Conflict("voice_not_ready", "The invigilator's microphone is not there yet.")
        if call.candidate_pc is not None:
            with contextlib.suppress(Exception):
                await call.candidate_pc.close()
        pc = call.candidate_pc = self._pc()
        voice = call.relay.subscribe(call.staff_audio, buffered=False)
        call.proxies.append(voice)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected" and call.candidate_connected_at is None:
                call.candidate_connected_at = time.time()

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if not any(t.kind == "audio" for t in pc.getTransceivers()):
                raise ValueError("no audio in the offer")
            pc.addTrack(voice)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            with contextlib.suppress(Exception):
                await pc.close()
            call.candidate_pc = None
            raise Invalid("invalid_sdp", f"The WebRTC offer could not be used: {exc}") from exc
        return pc.localDescription

    async def end(
        self,
        candidate_id: int,
        reason: str,
        *,
        only: VoiceCall | None = None,
        notify: bool = True,
    ) -> VoiceCall | None:
        """End the candidate's call (``only`` that call, if given); the call's end callback
        runs once, with the reason."""
        call = self._calls.get(candidate_id)
        if call is None or (only is not None and call is not only):
            return None
        del self._calls[candidate_id]
        call.ended.set()
        summary_drain = call.drain
        for track in call.proxies:
            track.stop()
        for pc in (call.staff_pc, call.candidate_pc):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        if summary_drain is not None:
            await summary_drain.stop()
        callback = self._on_end.pop(call.call_id, None)
        if notify and callback is not None:
            try:
                await callback(call, reason)
            except Exception:  # the call is over either way; the log says why not recorded
                log.exception("recording the end of voice call %s failed", call.call_id)
        log.info("voice call %s ended: %s", call.call_id, reason)
        return call

    async def close_all(self) -> None:
        for candidate_id in list(self._calls):
            await self.end(candidate_id, "server stopping", notify=False)
