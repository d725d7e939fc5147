"""A candidate's uplink going dead on a live connection, and the server's video coming
back afterwards: used by the recording's and the recovery's tests and by
``benchmarks/recovery.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.waiting import eventually


def drop_outgoing(pc: Any) -> Callable[..., None]:
    """Drop every packet ``pc`` (an aiortc peer connection) sends, media and RTCP, until
    the returned function is called: the candidate's uplink goes dead, the connection
    itself is not closed (ICE consent goes on). After it, the sender resends what it
    still holds when asked (aiortc keeps its last 128 packets), unless ``restore`` is
    called with ``forget=True``: then nothing lost is ever resent, as from a sender whose
    history is shorter than the drop (a browser's is about a second)."""
    transports = {id(s.transport): s.transport for s in pc.getSenders() if s.transport}
    saved = {}
    for key, transport in transports.items():
        saved[key] = transport._send_rtp

        async def dead(data: bytes) -> None:
            return None

        transport._send_rtp = dead

    def restore(forget: bool = False) -> None:
        if forget:
            for sender in pc.getSenders():
                history = getattr(sender, "_RTCRtpSender__rtp_history", None)
                assert isinstance(history, dict), "aiortc's RTCRtpSender changed"
                history.clear()
        for key, transport in transports.items():
            transport._send_rtp = saved[key]

    return restore


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0 if absent)."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


async def frames_received(http: httpx.AsyncClient, view: str) -> float:
    """Video frames of ``view`` the server has received and decoded (what analysis,
    thumbnails and live views take from), over all candidates."""
    text = (await http.get("/metrics")).text
    return metric(text, "proctor_frames_received_total", view=view)


async def drop_and_recover(
    http: httpx.AsyncClient,
    pc: Any,
    view: str,
    drop_seconds: float,
    timeout: float,
    resendable: bool = False,
) -> tuple[float, datetime]:
    """Drop ``pc``'s uplink for ``drop_seconds``, restore it, and await the first frame
    the server decodes after that. Unless ``resendable``, nothing sent meanwhile is ever
    resent. Returns (seconds from the network's return to that frame, the network's
    return in UTC); fails after ``timeout`` s."""
    restore = drop_outgoing(pc)
    try:
        await asyncio.sleep(drop_seconds)  # the outage itself: a span of time, not an event
        before = await frames_received(http, view)  # nothing can arrive meanwhile
    finally:
        restore(forget=not resendable)
    back, back_at = time.monotonic(), datetime.now(UTC)

    async def came() -> float | None:
        return time.monotonic() - back if await frames_received(http, view) > before else None

    took = await eventually(came, timeout, f"{view} video after a {drop_seconds} s drop")
    return took, back_at
