"""The device check's network probe (issue 20): a WebRTC data channel between the candidate's
page and this server, over the path the exam's media will take (ICE with the same TURN
servers and credentials), on which the page measures the round trip and a sustained upload.

The page opens a data channel "probe" and sends:
- ``ping:<anything>`` → the server sends the same text back (round trip);
- binary chunks → counted; every ``REPORT_SECONDS`` the server sends
  ``{"bytes": received, "seconds": since the first chunk}``.
A probe ends when the page closes it, or after ``MAX_SECONDS``; at most ``MAX_PROBES`` run
at once (a check needs a few seconds; more refuse with ``probe_busy``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from proctor.errors import Conflict, Invalid
from proctor.media.turn import IceSource, ice_source

log = logging.getLogger(__name__)

MAX_PROBES = 8
MAX_SECONDS = 30.0
REPORT_SECONDS = 0.5


class NetworkProbes:
    def __init__(self, ice_servers: IceSource = None) -> None:
        self.ice_servers = ice_source(ice_servers)
        self._pcs: set[RTCPeerConnection] = set()

    async def answer(self, sdp: str, kind: str = "offer") -> RTCSessionDescription:
        if len(self._pcs) >= MAX_PROBES:
            raise Conflict("probe_busy", "Too many network checks at once; try again shortly.")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers()))
        self._pcs.add(pc)

        @pc.on("datachannel")
        def on_channel(channel) -> None:
            state = {"bytes": 0, "first": None, "reported": 0.0}

            @channel.on("message")
            def on_message(message) -> None:
                if isinstance(message, str):
                    if message.startswith("ping:"):
                        channel.send(message)
                    return
                now = time.monotonic()
                if state["first"] is None:
                    state["first"] = now
                state["bytes"] += len(message)
                if now - state["reported"] >= REPORT_SECONDS:
                    state["reported"] = now
                    channel.send(
                        json.dumps(
                            {"bytes": state["bytes"], "seconds": round(now - state["first"], 3)}
                        )
                    )

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._close(pc)

        asyncio.get_running_loop().call_later(
            MAX_SECONDS, lambda: asyncio.ensure_future(self._close(pc))
        )
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self._close(pc)
            raise Invalid("invalid_sdp", f"The WebRTC offer could not be used: {exc}") from exc
        return pc.localDescription

    async def _close(self, pc: RTCPeerConnection) -> None:
        if pc in self._pcs:
            self._pcs.discard(pc)
            with contextlib.suppress(Exception):
                await pc.close()

    async def close_all(self) -> None:
        for pc in list(self._pcs):
            await self._close(pc)
