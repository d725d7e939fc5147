"""aiortc peer connections: one per candidate view. Each received video track goes to a
FrameSampler attached to that candidate's monitor; audio is drained (bounded)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay

from proctor import metrics
from proctor.domain import CandidateRef
from proctor.errors import Conflict, Invalid
from proctor.media import jitter
from proctor.media.bounded import bound
from proctor.media.monitor import CandidateMonitor
from proctor.media.recording import RecordingSetup, ViewRecorder, start_view_recording
from proctor.media.sampler import FrameSampler
from proctor.media.turn import IceSource, ice_source

log = logging.getLogger(__name__)

VIEWS = ("first", "second")
#: (candidate, view, connected, ended): ``ended`` when a view went because the exam ended
ConnectionSink = Callable[[CandidateRef, str, bool, bool], Awaitable[None]]
MonitorFactory = Callable[[CandidateRef], CandidateMonitor]


def stop_relay(relay: MediaRelay) -> int:
    """Cancel the relay's readers of the closed connection's tracks; how many were still
    running. A reader ends by itself when its track ends, but a track of a connection that
    dropped on a busy server sometimes never delivers its end: the reader then waited
    forever and was destroyed pending by the garbage collector ("Task was destroyed but it
    is pending!", seen with 10 candidates reconnecting). Reaches into aiortc's private
    ``MediaRelay.__tasks`` (aiortc 1.x); a relay without it is left alone."""
    tasks = getattr(relay, "_MediaRelay__tasks", None)
    if not isinstance(tasks, dict):
        return 0
    running = [task for task in tasks.values() if not task.done()]
    for task in running:
        task.cancel()
    return len(running)


def _superseded() -> Conflict:
    return Conflict("offer_superseded", "A newer offer for this view replaced this one.")


class _Peer:
    """One candidate view's connection. Its received tracks go through a MediaRelay so
    that analysis and any live viewers each get their own proxy; the analysis proxy is
    unbuffered (newest frame only), so nothing queues up."""

    def __init__(self, pc: RTCPeerConnection, offer: str) -> None:
        self.pc = pc
        self.offer = offer  # the client's SDP, to know a retried request of it again
        self.answered = asyncio.Event()  # set once this offer was answered or refused
        self.refused: Exception | None = None
        self.relay = MediaRelay()
        self.video: MediaStreamTrack | None = None  # the received source tracks
        self.audio_src: MediaStreamTrack | None = None
        self.connected = False
        self.recording: ViewRecorder | None = None  # the whole-session recording (issue 22)
        self.sampler: FrameSampler | None = None  # its video's, once attached to the monitor


class PeerManager:
    def __init__(
        self,
        monitor_factory: MonitorFactory,
        on_connection: ConnectionSink,
        ice_servers: IceSource = None,
        recording: RecordingSetup | None = None,
        video_resync_seconds: float = 1.0,
    ) -> None:
        self.monitor_factory = monitor_factory
        # video held back behind lost packets this long resumes at a keyframe (0: never)
        self.video_resync_seconds = video_resync_seconds
        self.recording = recording  # None: nothing recorded
        self.on_connection = on_connection
        self.ice_servers = ice_source(ice_servers)
        self.monitors: dict[int, CandidateMonitor] = {}
        self._peers: dict[tuple[int, str], _Peer] = {}
        # (connected, since) per view: when it connected, or when it was lost
        self._state: dict[tuple[int, str], tuple[bool, datetime]] = {}
        # views that went because the candidate's exam ended (not an outage)
        self._ended: set[tuple[int, str]] = set()

    def monitor(self, ref: CandidateRef) -> CandidateMonitor:
        mon = self.monitors.get(ref.candidate_id)
        if mon is None:
            mon = self.monitors[ref.candidate_id] = self.monitor_factory(ref)
        return mon

    def is_connected(self, candidate_id: int, view: str) -> bool:
        peer = self._peers.get((candidate_id, view))
        return bool(peer and peer.connected)

    def note_view_state(
        self, candidate_id: int, view: str, connected: bool, since: datetime, ended: bool = False
    ) -> None:
        """A view state reported by the process that owns the candidate (cluster)."""
        self._state[(candidate_id, view)] = (connected, since)
        self.note_ended(candidate_id, view, ended and not connected)

    def note_ended(self, candidate_id: int, view: str, ended: bool) -> None:
        if ended:
            self._ended.add((candidate_id, view))
        else:
            self._ended.discard((candidate_id, view))

    def view_ended(self, candidate_id: int, view: str) -> bool:
        """Whether the view went because the candidate's exam ended."""
        return (candidate_id, view) in self._ended

    def has_peers(self, candidate_id: int) -> bool:
        return any((candidate_id, v) in self._peers for v in VIEWS)

    def view_state(self, candidate_id: int, view: str) -> tuple[bool, datetime | None]:
        """Whether the view is connected, and since when (or since when it was lost);
        ``(False, None)`` for a view that never connected to this process."""
        return self._state.get((candidate_id, view), (False, None))

    def live_tracks(
        self, candidate_id: int, view: str
    ) -> tuple[MediaStreamTrack | None, MediaStreamTrack | None]:
        """New relay proxies of a connected view's video and audio for a live viewer
        (None where the view has no such track); the viewer must stop them when done."""
        peer = self._peers.get((candidate_id, view))
        if peer is None or not peer.connected:
            return None, None
        video = peer.relay.subscribe(peer.video, buffered=False) if peer.video else None
        audio = peer.relay.subscribe(peer.audio_src, buffered=False) if peer.audio_src else None
        return video, audio

    async def answer(self, ref: CandidateRef, view: str, sdp: str) -> RTCSessionDescription:
        if view not in VIEWS:
            raise Invalid("bad_view", f"view must be one of {', '.join(VIEWS)}")
        if "m=video" not in sdp:
            raise Invalid("invalid_sdp", "The offer has no video: the camera must be shared.")
        key = (ref.candidate_id, view)
        current = self._peers.get(key)
        if current is not None and current.offer == sdp:
            return await self._answer_again(key, current)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers()))
        peer = _Peer(pc, sdp)
        # a new offer replaces the old connection. The new one is the view's at once, before
        # the old one's close is awaited: an offer arriving meanwhile (a client's retry)
        # then finds it and replaces or joins it. Registered after the close, two offers
        # each found nothing to close and the later registration overwrote the earlier
        # connection without closing it: it kept streaming, analysed and counted, with
        # nobody to end it (a 10-candidate run after a storm of retried offers: 13
        # connected first views and 500 MB more)
        old = self._peers.pop(key, None)
        self._peers[key] = peer
        if old is not None:
            await self._shut(key, old, notify=False)
        monitor = self.monitor(ref)
        name = f"candidate {ref.candidate_id} {view}"

        @pc.on("track")
        def on_track(track) -> None:
            bound(track)  # an overloaded server drops stale frames, never queues them
            if self._peers.get(key) is not peer:
                return  # replaced while negotiating: it is being closed
            if track.kind == "video" and peer.video is None:
                peer.video = track
                sampler = FrameSampler(peer.relay.subscribe(track, buffered=False), name, view)
                sampler.start()
                peer.sampler = sampler
                monitor.attach(view, sampler)
            elif track.kind == "audio" and peer.audio_src is None:
                peer.audio_src = track
                audio = peer.relay.subscribe(track, buffered=True)
                bound(audio)
                monitor.attach_audio(view, audio)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            log.info("%s: connection %s", name, state)
            if self._peers.get(key) is not peer:
                return  # replaced meanwhile
            if state == "connected" and not peer.connected:
                peer.connected = True
                self._state[key] = (True, datetime.now(UTC))
                self._ended.discard(key)
                metrics.STREAMS.labels(view).inc()
                await self.on_connection(ref, view, True, False)
            elif state in ("failed", "closed"):
                await self._close(key, notify=True)

        try:
            await self._negotiate(key, peer, sdp)
        except Exception as exc:
            peer.refused = exc
            raise
        finally:
            peer.answered.set()
        self._resync_video(pc, view)
        if self.recording is not None:
            peer.recording = start_view_recording(self.recording, ref, view, pc)
        return pc.localDescription

    async def _negotiate(self, key: tuple[int, str], peer: _Peer, sdp: str) -> None:
        pc = peer.pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            if self._peers.get(key) is not peer:
                # a newer offer for this view closed this connection meanwhile: the newer
                # one stands, untouched
                with contextlib.suppress(Exception):
                    await pc.close()
                raise _superseded() from exc
            await self._close(key, notify=False)
            raise Invalid("invalid_sdp", f"The WebRTC offer could not be used: {exc}") from exc
        if self._peers.get(key) is not peer:  # replaced while answering, yet no error
            with contextlib.suppress(Exception):
                await pc.close()
            raise _superseded()

    async def _answer_again(self, key: tuple[int, str], peer: _Peer) -> RTCSessionDescription:
        """The view's current offer, sent again: a client retrying a request that timed
        out on a busy server, whose first request arrived all the same (before or after the
        retry). Both get the same answer; a second connection would replace the first, and
        the client, holding only one of the two answers, might be left with the closed one."""
        await peer.answered.wait()
        if peer.refused is not None:
            raise peer.refused
        if self._peers.get(key) is not peer or peer.pc.localDescription is None:
            raise _superseded()
        return peer.pc.localDescription

    def _resync_video(self, pc: RTCPeerConnection, view: str) -> None:
        """After a network drop, the view's video comes back at the next keyframe instead
        of once aiortc's jitter buffer has overflowed (``proctor.media.jitter``)."""

        def counted(waited: bool) -> None:
            metrics.VIDEO_RESYNCS.labels(view, "true" if waited else "false").inc()

        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video" and transceiver.receiver is not None:
                jitter.install(transceiver.receiver, self.video_resync_seconds, counted)

    async def _close(self, key: tuple[int, str], notify: bool, ended: bool = False) -> None:
        peer = self._peers.pop(key, None)
        if peer is not None:
            await self._shut(key, peer, notify, ended)

    async def _shut(
        self, key: tuple[int, str], peer: _Peer, notify: bool, ended: bool = False
    ) -> None:
        """Close ``peer``, no longer the view's (popped from ``_peers`` by the caller)."""
        candidate_id, view = key
        monitor = self.monitors.get(candidate_id)
        if monitor is not None and peer.sampler is not None:
            await monitor.detach(view, peer.sampler)
        was_connected = peer.connected
        if was_connected:
            metrics.STREAMS.labels(view).dec()
            self._state[key] = (False, datetime.now(UTC))
        with contextlib.suppress(Exception):
            await peer.pc.close()
        stop_relay(peer.relay)
        if peer.recording is not None:  # the last segment, up to the last frame received
            await peer.recording.close()
        if notify and was_connected and monitor is not None:
            await self.on_connection(monitor.ref, view, False, ended)

    async def close_candidate(self, candidate_id: int, ended: bool = False) -> None:
        """Close both views; ``ended``: because the candidate's exam ended (recorded as
        such, not as lost connections)."""
        for view in VIEWS:
            await self._close((candidate_id, view), notify=True, ended=ended)
        monitor = self.monitors.pop(candidate_id, None)
        if monitor is not None:
            await monitor.stop()

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close_candidate(c) for c in {k[0] for k in self._peers}))
        for monitor in list(self.monitors.values()):
            await monitor.stop()
        self.monitors.clear()
