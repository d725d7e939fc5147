"""The console's live view: the server relays a streaming candidate's video (and
microphone) back out over real WebRTC to an invigilator."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from exam_client.headless import HeadlessCandidate
from tests.consolekit import staff_token
from tests.mediatools import clip
from tests.waiting import eventually


@pytest.fixture(scope="module")
def person_webm(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("live") / "person.webm"
    return clip(
        media_dir / "clips" / "center_focus.mp4", out, 6.0, fps=10, size=(320, 424), fmt="webm"
    )


async def test_live_video_reaches_the_console(server, person_webm):
    seeded = server.seeded
    cand_id, _, id_number = seeded.candidates[0]
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        token = await staff_token(http, server)
        h = {"authorization": f"Bearer {token}"}
        async with HeadlessCandidate(server.url, seeded.password, id_number) as cand:
            await cand.login()
            await cand.connect_ws()
            await cand.start_view("first", person_webm.path, loop=True)
            await cand.wait_for_state("first", "connected", timeout=20)
            # issue 22: nobody watches: sent at the analysis rate (2 fps, 50 % headroom)
            assert cand.send_fps["first"] == 3.0

            def sent_at(fps: float):
                async def probe() -> bool | None:
                    return True if cand.send_fps.get("first") == fps else None

                return probe

            # the second view is not streaming: a clear refusal
            pc2 = RTCPeerConnection()
            pc2.addTransceiver("video", direction="recvonly")
            await pc2.setLocalDescription(await pc2.createOffer())
            refused = await http.post(
                f"/api/console/candidates/{cand_id}/live/offer",
                json={"sdp": pc2.localDescription.sdp, "view": "second"},
                headers=h,
            )
            await pc2.close()
            assert refused.status_code == 409
            assert refused.json()["error"]["code"] == "not_streaming"

            pc = RTCPeerConnection()
            got_track: asyncio.Future = asyncio.get_running_loop().create_future()

            @pc.on("track")
            def on_track(track) -> None:
                if track.kind == "video" and not got_track.done():
                    got_track.set_result(track)

            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            try:
                await pc.setLocalDescription(await pc.createOffer())
                resp = await http.post(
                    f"/api/console/candidates/{cand_id}/live/offer",
                    json={"sdp": pc.localDescription.sdp, "view": "first"},
                    headers=h,
                )
                assert resp.status_code == 200, resp.text
                await pc.setRemoteDescription(RTCSessionDescription(**resp.json()))
                track = await asyncio.wait_for(got_track, 15)

                async def frames(n: int) -> list:
                    out = []
                    while len(out) < n:
                        out.append(await track.recv())
                    return out

                received = await asyncio.wait_for(frames(10), 30)
                assert all(f.width == 320 and f.height == 424 for f in received[-3:])
                # watched: the candidate is told to send at the full rate
                await eventually(sent_at(10.0), 15, "send_rate full while watched")
            finally:
                with contextlib.suppress(MediaStreamError):
                    await pc.close()
            closed = await http.delete("/api/console/live", headers=h)
            assert closed.status_code == 200
            # the last viewer went: back to the analysis rate
            await eventually(sent_at(3.0), 15, "send_rate back to the analysis rate")
