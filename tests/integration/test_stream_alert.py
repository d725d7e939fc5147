"""One sitting end to end over real WebRTC: a headless candidate streams a real clip whose
person leaves; the server detects it and the console socket receives the `absent` alert
with its evidence; a danmaku travels console → candidate and comes back as seen."""

from __future__ import annotations

import asyncio
import hashlib
import io

import av
import httpx
import pytest

from exam_client.headless import HeadlessCandidate
from tests.consolekit import console_socket, next_message, staff_token
from tests.integration.conftest import EVIDENCE, RULES
from tests.mediatools import center_focus_absence
from tests.waiting import eventually

FACE_SECONDS = 5.0


@pytest.fixture(scope="module")
def absence_webm(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("media") / "absence.webm"
    return center_focus_absence(media_dir, out, FACE_SECONDS, 20.0, (320, 568))


async def test_absent_alert_reaches_console_with_evidence(server, absence_webm):
    cand_id, _, id_number = server.seeded.candidates[0]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        token = await staff_token(http, server)
        async with console_socket(server, token) as ws:
            async with HeadlessCandidate(server.url, server.seeded.password, id_number) as cand:
                await cand.login()
                await cand.start_view("first", absence_webm.path, loop=False)
                connected = await next_message(
                    ws, lambda m: m["type"] == "connection" and m["connected"], timeout=20
                )
                assert connected["candidate_id"] == cand_id and connected["view"] == "first"
                # the alert cannot come before the person left + the rule's threshold
                msg = await next_message(ws, lambda m: m["type"] == "alert", timeout=60)
                alert = msg["alert"]
                clip_msg = await next_message(
                    ws,
                    lambda m: (
                        m["type"] == "evidence"
                        and m["evidence"]["kind"] == "alert_clip"
                        and m["evidence"]["alert_id"] == alert["id"]
                    ),
                    timeout=30,
                )
                snapshot_msg = await next_message(
                    ws,
                    lambda m: m["type"] == "evidence" and m["evidence"]["kind"] == "snapshot",
                    timeout=30,
                )
        assert alert["type"] == "absent"
        assert alert["candidate_id"] == cand_id
        assert alert["view"] == "first"
        assert alert["evidence_url"]
        h = {"authorization": f"Bearer {token}"}
        evidence = await http.get(alert["evidence_url"], headers=h)
        assert evidence.status_code == 200
        assert evidence.headers["content-type"] == "image/jpeg"
        assert evidence.content[:2] == b"\xff\xd8"
        listed = (
            await http.get(f"/api/console/alerts?sitting_id={server.seeded.sitting_id}", headers=h)
        ).json()
        assert alert["id"] in [a["id"] for a in listed]
        # the stored file is the one hashed when captured (sha256 recorded)
        ev_id = int(alert["evidence_url"].rsplit("/", 1)[1])
        path = next(server.data_dir.rglob("alert_screenshot-first*.jpg"))
        assert (
            hashlib.sha256(path.read_bytes()).hexdigest()
            == hashlib.sha256(evidence.content).hexdigest()
        )
        assert ev_id > 0
        # the clip around the alert: a playable WebM of the frames before and after it
        clip = await http.get(clip_msg["evidence"]["url"], headers=h)
        assert clip.status_code == 200 and clip.headers["content-type"] == "video/webm"
        assert hashlib.sha256(clip.content).hexdigest() == clip_msg["evidence"]["sha256"]
        with av.open(io.BytesIO(clip.content)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        span = EVIDENCE["clip_before_seconds"] + EVIDENCE["clip_after_seconds"]
        assert frames >= span * 2 * 0.6  # ~2 fps analysis rate, some slack for jitter
        # a random snapshot of the first view
        snap = await http.get(snapshot_msg["evidence"]["url"], headers=h)
        assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"
        assert snapshot_msg["evidence"]["view"] == "first"
        # absence lasted at least the threshold before it was raised
        from datetime import datetime

        started = datetime.fromisoformat(alert["started_at"])
        raised = datetime.fromisoformat(alert["raised_at"])
        assert (raised - started).total_seconds() >= RULES["absent_seconds"]


async def test_thumbnail_and_danmaku_round_trip(server, absence_webm):
    cand_id, _, id_number = server.seeded.candidates[1]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        token = await staff_token(http, server)
        h = {"authorization": f"Bearer {token}"}
        async with console_socket(server, token) as ws:
            async with HeadlessCandidate(server.url, server.seeded.password, id_number) as cand:
                await cand.login()
                await cand.connect_ws()
                await cand.start_view("first", absence_webm.path, loop=True)
                await cand.wait_for_state("first", "connected", timeout=20)

                async def thumbnail() -> bytes | None:
                    url = f"/api/console/candidates/{cand_id}/thumbnail/first.jpg"
                    resp = await http.get(url, headers=h)
                    if resp.status_code == 200:
                        return resp.content
                    assert resp.json()["error"]["code"] == "no_frame"
                    return None

                jpeg = await eventually(thumbnail, 20, "a first-view thumbnail")
                assert jpeg[:2] == b"\xff\xd8"
                listed = (
                    await http.get(
                        f"/api/console/candidates?sitting_id={server.seeded.sitting_id}",
                        headers=h,
                    )
                ).json()
                me = next(c for c in listed if c["id"] == cand_id)
                assert me["views"]["first"]["connected"] is True
                assert me["views"]["second"]["connected"] is False

                sent = await http.post(
                    f"/api/console/candidates/{cand_id}/danmaku",
                    json={"text": "请保持面部在画面中 Keep your face in view"},
                    headers=h,
                )
                assert sent.status_code == 200
                received = await asyncio.wait_for(cand.danmaku.get(), 5)
                assert received.text == "请保持面部在画面中 Keep your face in view"
                seen = await next_message(
                    ws,
                    lambda m: m["type"] == "danmaku" and m["danmaku"]["seen_at"] is not None,
                    timeout=5,
                )
                assert seen["danmaku"]["id"] == sent.json()["id"]
                assert seen["danmaku"]["delivered_at"] is not None
