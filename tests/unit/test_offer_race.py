"""proctor.media.peers: two offers for one view at once (a client retrying a request
that timed out on a busy server while the first is still being answered). The newer one
must stand: before, the older one's failure closed the newer connection too, the newer
request was answered 422 invalid_sdp "RTCPeerConnection is closed", and the headless
client gave that view up (seen in a loaded 10-candidate run)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aiortc import RTCPeerConnection, VideoStreamTrack

from proctor.domain import CandidateRef
from proctor.errors import Conflict
from proctor.media.monitor import CandidateMonitor
from proctor.media.peers import PeerManager
from proctor.media.thumbnails import ThumbnailCache
from proctor.rules import RuleSettings


class Nothing:
    def analyse(self, *args, **kwargs):  # never reached: no frame is analysed here
        raise AssertionError


class Sink:
    async def record_alert(self, *args) -> int:
        return 1

    async def record_episode(self, *args, **kwargs) -> None:
        pass

    async def record_clip(self, *args) -> None:
        pass

    async def record_snapshot(self, *args) -> None:
        pass


async def offer() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    pc.addTrack(VideoStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def test_the_newer_of_two_offers_for_a_view_stands() -> None:
    ref = CandidateRef(1, 1, "A", 2.0, RuleSettings())

    async def connection(*args) -> None:
        pass

    with ThreadPoolExecutor(1) as pool:
        peers = PeerManager(
            lambda r: CandidateMonitor(r, Nothing(), pool, Sink(), ThumbnailCache()), connection
        )
        (pc_a, sdp_a), (pc_b, sdp_b) = await offer(), await offer()
        try:
            older = asyncio.ensure_future(peers.answer(ref, "first", sdp_a))
            # the older request is under way (its connection made) when the newer comes
            async with asyncio.timeout(10):
                while (1, "first") not in peers._peers and not older.done():
                    await asyncio.sleep(0)  # noqa: sleep-ok - yields to the older request
            newer = await peers.answer(ref, "first", sdp_b)
            outcome = await asyncio.gather(older, return_exceptions=True)
            assert newer.type == "answer"
            # the newer connection is the view's, open
            peer = peers._peers[(1, "first")]
            assert peer.pc.signalingState == "stable", peer.pc.signalingState
            assert peer.pc.connectionState != "closed"
            # the older one either finished first (then replaced) or was told it was
            older_result = outcome[0]
            if isinstance(older_result, Exception):
                assert isinstance(older_result, Conflict), older_result
                assert older_result.code == "offer_superseded"
        finally:
            await peers.close_all()
            await pc_a.close()
            await pc_b.close()


async def test_offers_while_the_old_connection_closes_leave_one_open(monkeypatch) -> None:
    """A client's offer replaces the view's connection, whose close takes a while on a busy
    server; meanwhile another offer comes (the client's retry). Before, both found nothing
    left to close and the later registration overwrote the other new connection without
    closing it: it went on streaming, analysed and counted ("13 connected first views" for
    10 candidates after a storm of retried offers). Now the connection the server keeps is
    the only one of the manager's left open."""
    from proctor.media import peers as peers_module

    made: list[RTCPeerConnection] = []

    class Recorded(RTCPeerConnection):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(peers_module, "RTCPeerConnection", Recorded)
    ref = CandidateRef(1, 1, "A", 2.0, RuleSettings())

    async def connection(*args) -> None:
        pass

    key = (1, "first")
    with ThreadPoolExecutor(1) as pool:
        peers = PeerManager(
            lambda r: CandidateMonitor(r, Nothing(), pool, Sink(), ThumbnailCache()), connection
        )
        clients = [await offer() for _ in range(3)]
        try:
            await peers.answer(ref, "first", clients[0][1])
            old = peers._peers[key]
            closing, real_close = asyncio.Event(), old.pc.close

            async def slow_close() -> None:  # the busy server's close of the old connection
                await closing.wait()
                await real_close()

            old.pc.close = slow_close
            first = asyncio.ensure_future(peers.answer(ref, "first", clients[1][1]))
            async with asyncio.timeout(10):
                while peers._peers.get(key) is old:
                    await asyncio.sleep(0)  # noqa: sleep-ok - yields to the first request
            second = asyncio.ensure_future(peers.answer(ref, "first", clients[2][1]))
            async with asyncio.timeout(10):
                while not second.done():
                    await asyncio.sleep(0)  # noqa: sleep-ok - yields to the second request
            closing.set()
            outcomes = await asyncio.gather(first, second, return_exceptions=True)
            assert not isinstance(outcomes[1], Exception), outcomes
            current = peers._peers[key]
            others = [pc for pc in made if pc is not current.pc]
            assert len(others) == 2  # the first offer's and one of the two later ones
            left_open = [pc for pc in others if pc.signalingState != "closed"]
            assert left_open == [], [(pc.signalingState, pc.connectionState) for pc in left_open]
            assert current.pc.signalingState == "stable"
            if isinstance(outcomes[0], Exception):  # the first was overtaken while waiting
                assert isinstance(outcomes[0], Conflict) and outcomes[0].code == "offer_superseded"
        finally:
            await peers.close_all()
            for pc, _ in clients:
                await pc.close()
