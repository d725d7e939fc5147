"""Live view for the console: the candidate opened by an invigilator is sent back out over
WebRTC (re-encoded by aiortc), relayed from the tracks the server already receives. Only
opened candidates cost this; the grid uses JPEG thumbnails."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)

from proctor.errors import Conflict, Invalid
from proctor.media.peers import VIEWS, PeerManager
from proctor.media.turn import IceSource, ice_source

log = logging.getLogger(__name__)


class _Live:
    def __init__(
        self, pc: RTCPeerConnection, tracks: list[MediaStreamTrack], candidate_id: int
    ) -> None:
        self.pc = pc
        self.tracks = tracks
        self.candidate_id = candidate_id


#: (candidate, view, watched): the first live viewer of a candidate's view came, or the
#: last one went (issue 22: the pages then send at the full rate, or back at the
#: analysis rate)
WatchSink = Callable[[int, str, bool], Awaitable[None]]


class LiveViews:
    """At most one live connection per (viewer, view): opening another candidate on the
    same view replaces the previous one."""

    def __init__(self, peers: PeerManager, ice_servers: IceSource = None) -> None:
        self.peers = peers
        self.ice_servers = ice_source(ice_servers)
        self._live: dict[tuple[str, str], _Live] = {}
        self.on_watch: WatchSink | None = None

    def count(self) -> int:
        return len(self._live)

    def watching(self, candidate_id: int, view: str) -> bool:
        """Whether some viewer has this view of the candidate open live."""
        return any(
            live.candidate_id == candidate_id and key[1] == view for key, live in self._live.items()
        )

    async def _tell(self, candidate_id: int, view: str, watched: bool) -> None:
        if self.on_watch is not None and self.watching(candidate_id, view) == watched:
            try:
                await self.on_watch(candidate_id, view, watched)
            except Exception:  # telling the pages must not break the live view
                log.exception("telling candidate %s about its live view failed", candidate_id)

    async def answer(
        self, viewer: str, candidate_id: int, view: str, sdp: str
    ) -> RTCSessionDescription:
        if view not in VIEWS:
            raise Invalid("bad_view", f"view must be one of {', '.join(VIEWS)}")
        video, audio = self.peers.live_tracks(candidate_id, view)
        if video is None:
            raise Conflict("not_streaming", "This view of the candidate is not streaming now.")
        key = (viewer, view)
        await self.close(key)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers()))
        tracks = [t for t in (video, audio) if t is not None]
        first_viewer = not self.watching(candidate_id, view)
        live = self._live[key] = _Live(pc, tracks, candidate_id)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and self._live.get(key) is live:
                await self.close(key)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            kinds = {t.kind for t in pc.getTransceivers()}
            for track in tracks:
                if track.kind in kinds:
                    pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self.close(key)
            raise Invalid("invalid_sdp", f"The WebRTC offer could not be used: {exc}") from exc
        if first_viewer:
            await self._tell(candidate_id, view, True)
        return pc.localDescription

    async def close(self, key: tuple[str, str]) -> None:
        live = self._live.pop(key, None)
        if live is None:
            return
        for track in live.tracks:
            track.stop()
        with contextlib.suppress(Exception):
            await live.pc.close()
        await self._tell(live.candidate_id, key[1], False)  # if that was the last viewer

    async def close_viewer(self, viewer: str) -> None:
        for key in [k for k in self._live if k[0] == viewer]:
            await self.close(key)

    async def close_all(self) -> None:
        for key in list(self._live):
            await self.close(key)
