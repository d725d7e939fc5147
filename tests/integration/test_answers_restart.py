"""Answers are acknowledged only once durable: a real server process is killed (SIGKILL,
no clean shutdown) after acknowledging answers and started again on the same database;
the candidate's page resumes with every acknowledged answer and the right remaining time,
and the candidate can also come back on another device. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.flowkit import INVIGILATOR, seed_exam
from tests.serverproc import served
from tests.waiting import eventually


@pytest.fixture(scope="module")
def exam_server(database_url, models_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("restart")
    sitting = asyncio.run(
        seed_exam(
            database_url,
            data_dir,
            flow={"require_phone": False, "session_takeover_seconds": 2},
        )
    )
    yield from served(database_url, data_dir, models_dir, sitting=sitting)


async def _walk_to_answering(http: httpx.AsyncClient, server, token: str) -> None:
    h = {"authorization": f"Bearer {token}"}
    assert (await http.post("/api/flow/confirm", headers=h)).status_code == 200
    assert (
        await http.post("/api/flow/pledge", json={"accept": True}, headers=h)
    ).status_code == 200
    check = (await http.post("/api/flow/identity", content=b"x", headers=h)).json()
    assert check["needs_invigilator"] is True  # no registered photo
    staff = (
        await http.post(
            "/api/staff/login", json={"username": INVIGILATOR[0], "password": INVIGILATOR[1]}
        )
    ).json()["token"]
    cid = server.sitting.candidates[0].id
    admitted = await http.post(
        f"/api/invigilate/candidates/{cid}/admit",
        json={"reason": "checked the ID card on camera"},
        headers={"authorization": f"Bearer {staff}"},
    )
    assert admitted.status_code == 200, admitted.text
    assert (await http.post("/api/flow/phone/done", headers=h)).json()["step"] == "waiting"
    assert (await http.post("/api/flow/start", headers=h)).json()["step"] == "answering"


async def test_acknowledged_answers_survive_a_server_crash(exam_server) -> None:
    s = exam_server.sitting
    async with httpx.AsyncClient(base_url=exam_server.url, timeout=20) as http:
        login = await http.post(
            "/api/candidate/login",
            json={"sitting_password": s.password, "id_number": s.candidates[0].id_number},
        )
        token = login.json()["token"]
        h = {"authorization": f"Bearer {token}"}
        http.cookies.clear()
        await _walk_to_answering(http, exam_server, token)
        paper = (await http.get("/api/flow/paper", headers=h)).json()["questions"]
        acked = {}
        for seq, q in enumerate(paper, start=1):
            keys = [o["key"] for o in q["options"]]
            if q["type"] == "single":
                value: object = keys[0]
            elif q["type"] == "multiple":
                value = keys[:2]
            else:
                value = seq % 2 == 0
            resp = await http.put(
                f"/api/flow/answers/{q['id']}", json={"value": value, "seq": seq}, headers=h
            )
            assert resp.status_code == 200
            acked[str(q["id"])] = sorted(value) if isinstance(value, list) else value

    exam_server.proc.kill()  # no clean shutdown: what was acknowledged must be on disk
    exam_server.proc.wait()
    exam_server.start()

    async with httpx.AsyncClient(base_url=exam_server.url, timeout=20) as http:
        # the same page carries on with its token
        state = (await http.get("/api/flow/state", headers=h)).json()
        assert state["step"] == "answering"
        assert state["progress"] == {"answered": len(paper), "total": len(paper)}
        expected_left = (s.ends_at - datetime.now(UTC)).total_seconds()
        assert abs(state["timing"]["seconds_left"] - expected_left) < 10
        resumed = (await http.get("/api/flow/paper", headers=h)).json()
        assert {k: v["value"] for k, v in resumed["answers"].items()} == acked
        assert [q["id"] for q in resumed["questions"]] == [q["id"] for q in paper]

        # another device: once the old page has gone quiet (2 s in this sitting) the new
        # login takes over and sees the same answers
        async def other_device() -> str | None:
            resp = await http.post(
                "/api/candidate/login",
                json={"sitting_password": s.password, "id_number": s.candidates[0].id_number},
            )
            if resp.status_code == 409:
                assert resp.json()["error"]["code"] == "already_logged_in"
                return None
            assert resp.status_code == 200, resp.text
            return resp.json()["token"]

        http.cookies.clear()
        other = await eventually(other_device, 15, "a login on another device")
        http.cookies.clear()
        again = (
            await http.get("/api/flow/paper", headers={"authorization": f"Bearer {other}"})
        ).json()
        assert {k: v["value"] for k, v in again["answers"].items()} == acked
        assert (await http.get("/api/flow/state", headers=h)).status_code == 401
    assert timedelta(0) < s.ends_at - datetime.now(UTC)
