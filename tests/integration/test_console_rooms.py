"""The invigilator console's server side over real HTTP, WebSockets and WebRTC, on SQLite
and PostgreSQL: rooms and who may see them (every route and the socket), alert handling
with reasons, the automatic hint (first rung of the ladder), violation screenshots stored
with their hash and note, voice-call records, incidents and the exam-room record."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from exam_client.headless import HeadlessCandidate
from tests.consolekit import next_message
from tests.integration.conftest import EVIDENCE, RULES
from tests.mediatools import center_focus_absence, clip
from tests.serverproc import seed, served

PASSWORDS = {
    "chief": "chief-pass-1",
    "invigilator2": "invigilate-pass-2",
    "reviewer": "review-pass-1",
}


async def _more_staff(url: str, room2: int) -> None:
    """A chief examiner, a reviewer, and a second invigilator assigned to room 2."""
    from proctor.invigilation.rooms import assign_staff, get_room
    from proctor.sitting.sittings import create_staff
    from proctor.store.db import Database

    db = Database(url)
    try:
        async with db.transaction() as s:
            await create_staff(
                s,
                username="chief",
                password=PASSWORDS["chief"],
                display_name="主考 Chief",
                role="chief",
            )
            await create_staff(
                s,
                username="reviewer",
                password=PASSWORDS["reviewer"],
                display_name="Reviewer",
                role="reviewer",
            )
            inv2 = await create_staff(
                s,
                username="invigilator2",
                password=PASSWORDS["invigilator2"],
                display_name="Invigilator Two",
                role="invigilator",
            )
            await assign_staff(s, await get_room(s, room2), [inv2.id])
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def console_server(database_url: str, models_dir: Path, tmp_path_factory) -> Iterator:
    """Four candidates in two rooms of two; invigilator1 has room 1, invigilator2 room 2."""
    data_dir = tmp_path_factory.mktemp("console-data")
    seeded = asyncio.run(
        seed(database_url, data_dir, n_candidates=4, room_size=2, rules=RULES, evidence=EVIDENCE)
    )
    assert len(seeded.room_ids) == 2
    asyncio.run(_more_staff(database_url, seeded.room_ids[1]))
    yield from served(database_url, data_dir, models_dir, seeded=seeded)


@pytest.fixture(scope="module")
def person_webm(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("media") / "person.webm"
    return clip(
        media_dir / "clips" / "center_focus.mp4", out, 6.0, fps=10, size=(320, 424), fmt="webm"
    )


@pytest.fixture(scope="module")
def absence_webm(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("media") / "absence.webm"
    return center_focus_absence(media_dir, out, 4.0, 30.0, (320, 424))


async def login(http: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    resp = await http.post("/api/staff/login", json={"username": username, "password": password})
    resp.raise_for_status()
    return {"authorization": f"Bearer {resp.json()['token']}"}


async def invigilator1(http: httpx.AsyncClient, server) -> dict[str, str]:
    return await login(http, *server.seeded.staff)


def code(resp: httpx.Response) -> str:
    return resp.json()["error"]["code"]


@asynccontextmanager
async def socket(server, path: str, headers: dict[str, str] | None = None, token: str = ""):
    url = server.url.replace("http", "ws") + path
    if token:
        url += ("&" if "?" in url else "?") + f"token={token}"
    async with connect(url) as ws:
        yield ws


def bearer(h: dict[str, str]) -> str:
    return h["authorization"].split(" ", 1)[1]


# ----------------------------------------------------------------------------- scope


async def test_rooms_scope_every_route(console_server):
    s = console_server.seeded
    (c1, _, _), (c2, _, _), (c3, _, _), (c4, _, _) = s.candidates
    room1, room2 = s.room_ids
    async with httpx.AsyncClient(base_url=console_server.url, timeout=15) as http:
        inv1 = await invigilator1(http, console_server)
        inv2 = await login(http, "invigilator2", PASSWORDS["invigilator2"])
        chief = await login(http, "chief", PASSWORDS["chief"])
        reviewer = await login(http, "reviewer", PASSWORDS["reviewer"])

        # the invigilator sees their room only
        rooms = (
            await http.get(f"/api/console/rooms?sitting_id={s.sitting_id}", headers=inv1)
        ).json()
        assert [r["id"] for r in rooms] == [room1]
        assert rooms[0]["seated"] == 2 and rooms[0]["invigilators_required"] == 2
        assert rooms[0]["understaffed"] is True
        listed = (
            await http.get(f"/api/console/candidates?sitting_id={s.sitting_id}", headers=inv1)
        ).json()
        assert sorted(c["id"] for c in listed) == sorted([c1, c2])
        assert all(c["room"]["id"] == room1 for c in listed)
        assert {c["room"]["seat"] for c in listed} == {1, 2}

        # ... and is refused everything of the other room, with one stable code
        other = [
            ("GET", f"/api/console/candidates/{c3}", None),
            ("GET", f"/api/console/candidates/{c3}/timeline", None),
            ("GET", f"/api/console/candidates/{c3}/thumbnail/first.jpg", None),
            ("POST", f"/api/console/candidates/{c3}/danmaku", {"text": "hello"}),
            ("POST", f"/api/console/candidates/{c3}/screenshot", {"view": "first", "note": "x"}),
            ("POST", f"/api/console/candidates/{c3}/live/offer", {"sdp": "v=0", "view": "first"}),
            ("POST", f"/api/console/candidates/{c3}/voice/offer", {"sdp": "v=0"}),
            ("DELETE", f"/api/console/candidates/{c3}/voice", None),
            (
                "POST",
                f"/api/console/candidates/{c3}/alerts/handle",
                {"action": "dismiss", "reason": "no"},
            ),
            ("GET", f"/api/console/candidates?sitting_id={s.sitting_id}&room_id={room2}", None),
            ("GET", f"/api/console/alerts?sitting_id={s.sitting_id}&room_id={room2}", None),
            ("GET", f"/api/console/sittings/{s.sitting_id}/record?room_id={room2}", None),
            (
                "POST",
                f"/api/console/rooms/{room2}/incidents",
                {"category": "power", "description": "x"},
            ),
        ]
        for method, path, body in other:
            resp = await http.request(method, path, json=body, headers=inv1)
            assert resp.status_code == 403, (method, path, resp.text)
            assert code(resp) == "not_your_room", (method, path)
        # unknown things are still 404, not 403
        assert code(await http.get("/api/console/candidates/999999", headers=inv1)) == (
            "unknown_candidate"
        )
        assert (
            await http.get("/api/console/candidates?sitting_id=999999", headers=inv1)
        ).status_code == 404

        # the second invigilator is refused room 1 the same way
        resp = await http.post(
            f"/api/console/candidates/{c1}/danmaku", json={"text": "hi"}, headers=inv2
        )
        assert resp.status_code == 403 and code(resp) == "not_your_room"

        # room management is the chief's; a reviewer has no console
        resp = await http.put(
            f"/api/console/rooms/{room1}/invigilators", json={"staff_ids": []}, headers=inv1
        )
        assert resp.status_code == 403 and code(resp) == "chief_only"
        resp = await http.get(
            f"/api/console/candidates?sitting_id={s.sitting_id}", headers=reviewer
        )
        assert resp.status_code == 403 and code(resp) == "console_forbidden"

        # the chief sees and acts on every room
        both = (
            await http.get(f"/api/console/rooms?sitting_id={s.sitting_id}", headers=chief)
        ).json()
        assert [r["id"] for r in both] == [room1, room2]
        everyone = (
            await http.get(f"/api/console/candidates?sitting_id={s.sitting_id}", headers=chief)
        ).json()
        assert sorted(c["id"] for c in everyone) == sorted([c1, c2, c3, c4])
        resp = await http.post(
            f"/api/console/candidates/{c3}/danmaku", json={"text": "坐好"}, headers=chief
        )
        assert resp.status_code == 200

        # a room seats at most its capacity
        new = await http.post(
            "/api/console/rooms",
            json={"sitting_id": s.sitting_id, "name": "小考场", "capacity": 1},
            headers=chief,
        )
        assert new.status_code == 200, new.text
        full = await http.post(
            f"/api/console/rooms/{new.json()['id']}/candidates",
            json={"candidate_ids": [c1, c2]},
            headers=chief,
        )
        assert full.status_code == 409 and code(full) == "room_full"
        too_big = await http.post(
            "/api/console/rooms",
            json={"sitting_id": s.sitting_id, "name": "big", "capacity": 31},
            headers=chief,
        )
        assert too_big.status_code == 422 and code(too_big) == "bad_capacity"

        # the console socket: only the caller's candidates' messages, refused elsewhere
        async with socket(
            console_server,
            f"/ws/console?sitting_id={s.sitting_id}&room_id={room2}",
            token=bearer(inv1),
        ) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd.code == 4403
        async with socket(
            console_server, f"/ws/console?sitting_id={s.sitting_id}", token=bearer(inv1)
        ) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "health"
            # a danmaku to room 2 (by the chief) is not shown to invigilator 1; room 1's is
            await http.post(
                f"/api/console/candidates/{c3}/danmaku", json={"text": "a"}, headers=chief
            )
            await http.post(
                f"/api/console/candidates/{c1}/danmaku", json={"text": "b"}, headers=chief
            )
            msg = await next_message(ws, lambda m: m["type"] == "danmaku", 10)
            assert msg["danmaku"]["candidate_id"] == c1


# ----------------------------------------------------------------------------- alerts, hints


async def test_alert_hint_ladder_and_handling(console_server, absence_webm):
    s = console_server.seeded
    cand_id, _, id_number = s.candidates[0]
    async with httpx.AsyncClient(base_url=console_server.url, timeout=15) as http:
        inv1 = await invigilator1(http, console_server)
        async with (
            socket(
                console_server, f"/ws/console?sitting_id={s.sitting_id}", token=bearer(inv1)
            ) as ws,
            HeadlessCandidate(console_server.url, s.password, id_number) as cand,
        ):
            await cand.login()
            async with socket(console_server, "/ws/candidate/console", token=cand.token) as link:
                hello = json.loads(await asyncio.wait_for(link.recv(), 10))
                assert hello == {"type": "link", "candidate_id": cand_id, "voice": None}
                await cand.start_view("first", absence_webm.path, loop=False)
                alert = (
                    await next_message(
                        ws,
                        lambda m: m["type"] == "alert" and m["alert"]["candidate_id"] == cand_id,
                        60,
                    )
                )["alert"]
                assert alert["type"] == "absent" and alert["status"] == "open"
                # the candidate's page gets the automatic hint (rung 1), once per alert
                hint = await next_message(link, lambda m: m["type"] == "hint", 10)
                assert hint["code"] == "absent" and "摄像头" in hint["text"]
                await link.send(json.dumps({"type": "hint_seen", "id": hint["id"]}))
                seen = await next_message(
                    ws,
                    lambda m: (
                        m["type"] == "action"
                        and m["action"]["id"] == hint["id"]
                        and m["action"]["data"].get("seen_at")
                    ),
                    10,
                )
                assert seen["action"]["kind"] == "hint" and seen["action"]["staff_id"] is None
                assert seen["action"]["alert_id"] == alert["id"]

            listed = (
                await http.get(f"/api/console/candidates?sitting_id={s.sitting_id}", headers=inv1)
            ).json()
            me = next(c for c in listed if c["id"] == cand_id)
            assert me["open_alerts"] >= 1 and me["open_by_severity"]
            assert me["ladder"]["rungs"] == ["hint", "danmaku", "voice", "terminate"]
            assert me["ladder"]["done"] == ["hint"] and me["ladder"]["next"] == "danmaku"
            await http.post(
                f"/api/console/candidates/{cand_id}/danmaku",
                json={"text": "请回到座位"},
                headers=inv1,
            )
            listed = (
                await http.get(f"/api/console/candidates?sitting_id={s.sitting_id}", headers=inv1)
            ).json()
            assert next(c for c in listed if c["id"] == cand_id)["ladder"]["next"] == "voice"

            # acknowledge: a reason is required; who/when/why are recorded and broadcast
            path = f"/api/console/alerts/{alert['id']}/handle"
            bad = await http.post(path, json={"action": "acknowledge", "reason": " "}, headers=inv1)
            assert bad.status_code == 422 and code(bad) == "reason_required"
            ok = await http.post(
                path, json={"action": "acknowledge", "reason": "已警告考生 warned"}, headers=inv1
            )
            assert ok.status_code == 200, ok.text
            assert ok.json()["status"] == "acknowledged"
            assert ok.json()["handling"]["by_name"] == "Invigilator One"
            assert ok.json()["handling"]["reason"] == "已警告考生 warned"
            pushed = await next_message(
                ws,
                lambda m: (
                    m["type"] == "alert"
                    and m["alert"]["id"] == alert["id"]
                    and m["alert"]["status"] == "acknowledged"
                ),
                10,
            )
            assert pushed["alert"]["handling"]["action"] == "acknowledge"
            again = await http.post(
                path, json={"action": "dismiss", "reason": "again"}, headers=inv1
            )
            assert again.status_code == 409 and code(again) == "alert_already_handled"
            # the rest of the candidate's open alerts, dismissed at once
            rest = await http.post(
                f"/api/console/candidates/{cand_id}/alerts/handle",
                json={"action": "dismiss", "reason": "camera test"},
                headers=inv1,
            )
            assert rest.status_code in (200, 409)
            timeline = (
                await http.get(f"/api/console/candidates/{cand_id}/timeline", headers=inv1)
            ).json()
            kinds = {item["kind"] for item in timeline}
            assert {"alert", "action", "danmaku", "event"} <= kinds
            acks = [
                i
                for i in timeline
                if i["kind"] == "action" and i["action"]["kind"] == "alert_acknowledged"
            ]
            assert acks and acks[0]["action"]["reason"] == "已警告考生 warned"


# ----------------------------------------------------------------------------- screenshot


async def evidence_accesses(database_url: str, evidence_id: int) -> list[str]:
    """Actors of the ``access.evidence`` audit entries of one evidence file."""
    from sqlalchemy import select

    from proctor.store.db import Database
    from proctor.store.tables import AuditEntry

    db = Database(database_url)
    try:
        async with db.session() as s:
            rows = await s.scalars(
                select(AuditEntry).where(
                    AuditEntry.kind == "access.evidence",
                    AuditEntry.subject_type == "evidence",
                    AuditEntry.subject_id == evidence_id,
                )
            )
            return [r.actor for r in rows]
    finally:
        await db.dispose()


async def test_violation_screenshot_is_stored_with_hash_and_note(
    console_server, person_webm, database_url
):
    s = console_server.seeded
    cand_id, _, id_number = s.candidates[1]
    async with httpx.AsyncClient(base_url=console_server.url, timeout=15) as http:
        inv1 = await invigilator1(http, console_server)
        path = f"/api/console/candidates/{cand_id}/screenshot"
        idle = await http.post(path, json={"view": "first", "note": "phone"}, headers=inv1)
        assert idle.status_code == 409 and code(idle) == "not_streaming"
        voice_idle = await http.post(
            f"/api/console/candidates/{cand_id}/voice/offer", json={"sdp": "v=0"}, headers=inv1
        )
        assert voice_idle.status_code == 409 and code(voice_idle) == "not_streaming"
        async with HeadlessCandidate(console_server.url, s.password, id_number) as cand:
            await cand.login()
            await cand.start_view("first", person_webm.path, loop=True)
            await cand.wait_for_state("first", "connected", timeout=20)
            no_note = await http.post(path, json={"view": "first", "note": "  "}, headers=inv1)
            assert no_note.status_code == 422 and code(no_note) == "note_required"

            async def shot() -> httpx.Response | None:
                resp = await http.post(
                    path,
                    json={"view": "first", "note": "桌上有手机 phone on the desk"},
                    headers=inv1,
                )
                return resp if resp.status_code == 200 else None

            from tests.waiting import eventually

            resp = await eventually(shot, 20, "a frame in the ring")
        body = resp.json()
        assert body["evidence"]["kind"] == "violation_screenshot"
        assert body["action"]["kind"] == "violation"
        assert body["action"]["reason"] == "桌上有手机 phone on the desk"
        image = await http.get(body["evidence"]["url"], headers=inv1)
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
        assert hashlib.sha256(image.content).hexdigest() == body["evidence"]["sha256"]
        import cv2
        import numpy as np

        frame = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_COLOR)
        assert frame.shape[:2] == (424, 320)  # full size, not a thumbnail
        inv2 = await login(http, "invigilator2", PASSWORDS["invigilator2"])
        assert (await http.get(body["evidence"]["url"], headers=inv2)).status_code == 403
        # the console's access is in the audit chain, the refused one is not
        assert await evidence_accesses(database_url, body["evidence"]["id"]) == [
            f"staff:{body['action']['staff_id']}"
        ]
        rec = (await http.get(f"/api/console/sittings/{s.sitting_id}/record", headers=inv1)).json()
        mine = [v for v in rec["violations"] if v["source"] == "invigilator"]
        assert mine and mine[-1]["note"] == "桌上有手机 phone on the desk"


# ----------------------------------------------------------------------------- voice


async def test_voice_call_records_and_reaches_both_sides(console_server, person_webm):
    """aiortc on both ends: the invigilator's offer gets the candidate's microphone, the
    candidate's page is called and gets the invigilator's; the call is logged."""
    from aiortc.mediastreams import AudioStreamTrack

    s = console_server.seeded
    cand_id, _, id_number = s.candidates[2]  # room 2
    async with httpx.AsyncClient(base_url=console_server.url, timeout=15) as http:
        inv2 = await login(http, "invigilator2", PASSWORDS["invigilator2"])
        async with HeadlessCandidate(console_server.url, s.password, id_number) as cand:
            await cand.login()
            tone = Path(person_webm.path).with_name("tone.webm")
            if not tone.exists():
                import subprocess

                subprocess.run(
                    [
                        "ffmpeg",
                        "-loglevel",
                        "error",
                        "-y",
                        "-i",
                        str(person_webm.path),
                        "-f",
                        "lavfi",
                        "-i",
                        "sine=frequency=440:duration=6",
                        "-c:v",
                        "copy",
                        "-c:a",
                        "libopus",
                        "-shortest",
                        str(tone),
                    ],
                    check=True,
                )
            await cand.start_view("first", tone, loop=True)
            await cand.wait_for_state("first", "connected", timeout=20)
            async with socket(console_server, "/ws/candidate/console", token=cand.token) as link:
                await asyncio.wait_for(link.recv(), 10)  # link hello
                staff_pc = RTCPeerConnection()
                staff_pc.addTrack(AudioStreamTrack())  # the invigilator's "microphone"
                heard = asyncio.get_running_loop().create_future()

                @staff_pc.on("track")
                def on_track(track) -> None:
                    if not heard.done():
                        heard.set_result(track)

                await staff_pc.setLocalDescription(await staff_pc.createOffer())
                resp = await http.post(
                    f"/api/console/candidates/{cand_id}/voice/offer",
                    json={"sdp": staff_pc.localDescription.sdp},
                    headers=inv2,
                )
                assert resp.status_code == 200, resp.text
                call_id = resp.json()["call_id"]
                await staff_pc.setRemoteDescription(
                    RTCSessionDescription(resp.json()["sdp"], "answer")
                )
                call = await next_message(link, lambda m: m["type"] == "voice_call", 10)
                assert call["call_id"] == call_id and call["from"] == "Invigilator Two"

                cand_pc = RTCPeerConnection()
                cand_pc.addTransceiver("audio", direction="recvonly")
                got = asyncio.get_running_loop().create_future()

                @cand_pc.on("track")
                def on_cand_track(track) -> None:
                    if not got.done():
                        got.set_result(track)

                await cand_pc.setLocalDescription(await cand_pc.createOffer())
                answer = await http.post(
                    "/api/candidate/voice/offer",
                    json={"sdp": cand_pc.localDescription.sdp, "call_id": call_id},
                    headers={"authorization": f"Bearer {cand.token}"},
                )
                assert answer.status_code == 200, answer.text
                await cand_pc.setRemoteDescription(
                    RTCSessionDescription(answer.json()["sdp"], "answer")
                )
                try:
                    to_staff = await asyncio.wait_for(heard, 15)
                    to_cand = await asyncio.wait_for(got, 15)
                    for track in (to_staff, to_cand):  # audio flows both ways
                        for _ in range(25):
                            frame = await asyncio.wait_for(track.recv(), 10)
                            assert frame.sample_rate == 48000
                    ended = await http.delete(
                        f"/api/console/candidates/{cand_id}/voice", headers=inv2
                    )
                    assert ended.status_code == 200 and ended.json()["ended"] is True
                    await next_message(link, lambda m: m["type"] == "voice_ended", 10)
                finally:
                    await staff_pc.close()
                    await cand_pc.close()
        timeline = (
            await http.get(f"/api/console/candidates/{cand_id}/timeline", headers=inv2)
        ).json()
        kinds = [i["action"]["kind"] for i in timeline if i["kind"] == "action"]
        assert "voice_started" in kinds and "voice_ended" in kinds
        ended_row = next(
            i["action"]
            for i in timeline
            if i["kind"] == "action" and i["action"]["kind"] == "voice_ended"
        )
        assert ended_row["data"]["call_id"] == call_id
        assert ended_row["data"]["candidate_connected"] is True
        assert ended_row["reason"] == "ended by the invigilator"


# ----------------------------------------------------------------------------- the record


async def test_incident_record_and_export(console_server):
    s = console_server.seeded
    room1 = s.room_ids[0]
    async with httpx.AsyncClient(base_url=console_server.url, timeout=15) as http:
        inv1 = await invigilator1(http, console_server)
        bad = await http.post(
            f"/api/console/rooms/{room1}/incidents",
            json={"category": "weather", "description": "rain"},
            headers=inv1,
        )
        assert bad.status_code == 422 and code(bad) == "bad_category"
        ok = await http.post(
            f"/api/console/rooms/{room1}/incidents",
            json={"category": "network", "description": "考场网络中断5分钟 network down 5 min"},
            headers=inv1,
        )
        assert ok.status_code == 200, ok.text
        rec = (
            await http.get(
                f"/api/console/sittings/{s.sitting_id}/record?room_id={room1}", headers=inv1
            )
        ).json()
        assert rec["summary"]["expected"] == 2
        assert [r["name"] for r in rec["rooms"]] and rec["rooms"][0]["invigilators"] == [
            "Invigilator One"
        ]
        assert any("network down" in i["description"] for i in rec["incidents"])
        assert {a["present"] for a in rec["attendance"]} <= {True, False}
        assert rec["sitting"]["over"] is False
        # issue 23: the sitting's time zone with the offset, attendance by seat
        assert rec["sitting"]["time_zone"] == "Asia/Shanghai"
        assert rec["sitting"]["utc_offset"] == "UTC+08:00"
        assert rec["generated_at"].endswith("+08:00")
        assert all(i["at"].endswith("+08:00") for i in rec["incidents"])
        seats = [a["seat"] for a in rec["attendance"]]
        assert seats == sorted(seats) and None not in seats
        base = f"/api/console/sittings/{s.sitting_id}/record"
        early = await http.get(f"{base}.csv", headers=inv1)
        assert early.status_code == 409 and code(early) == "sitting_in_progress"
        draft = await http.get(f"{base}.csv?draft=1", headers=inv1)
        assert draft.status_code == 200 and draft.headers["content-type"].startswith("text/csv")
        assert draft.content.startswith("\ufeff".encode())
        assert "network down" in draft.text and "attendance" in draft.text
        assert "Asia/Shanghai" in draft.text and "+00:00" not in draft.text
        page = await http.get(f"{base}.html?draft=1", headers=inv1)
        assert page.status_code == 200 and "考场记录" in page.text and "DRAFT" in page.text
        assert "Asia/Shanghai (UTC+08:00)" in page.text
        assert "<script" not in page.text
