"""Issue 21 item 10: sessions end when they should (real app, SQLite and PostgreSQL): the
paired phone's with the candidate's logout or release, a staff session after the idle
time, a console socket soon after its user logs out; page events are rate-limited."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from proctor.flow.steps import MAX_PAGE_EVENTS_PER_MINUTE
from tests.flowkit import INVIGILATOR, FlowApp, code

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fa(database_url, tmp_path_factory, models_dir):
    tmp = tmp_path_factory.mktemp("sessions")
    async with FlowApp.running(database_url, tmp, models_dir, staff_idle_minutes=30) as app:
        yield app


async def _paired_phone(fa: FlowApp, s) -> tuple:
    cand = await fa.login(s.password, s.candidates[0].id_number)
    await fa.walk(cand, "phone")
    pairing = await cand.ok("post", "/api/flow/phone/pairing")
    phone = fa.client()
    paired = await phone.ok("post", "/api/phone/pair", json={"token": pairing["token"]})
    phone.token = paired["token"]
    assert (await phone.get("/api/phone/me")).status_code == 200
    return cand, phone


async def test_the_phone_session_ends_with_the_candidates_logout(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    cand, phone = await _paired_phone(fa, s)
    assert (await cand.post("/api/candidate/logout")).status_code == 200
    gone = await phone.get("/api/phone/me")
    assert gone.status_code == 401 and code(gone) == "not_authenticated"


async def test_the_phone_session_ends_with_a_release(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    _, phone = await _paired_phone(fa, s)
    inv = await fa.staff()
    await inv.ok("post", f"/api/invigilate/candidates/{s.candidates[0].id}/release")
    assert (await phone.get("/api/phone/me")).status_code == 401


async def test_staff_sessions_idle_out(fa: FlowApp) -> None:
    inv = await fa.staff(INVIGILATOR)
    fa.clock.advance(minutes=29)
    assert (await inv.get("/api/staff/me")).status_code == 200  # used: the idle time restarts
    fa.clock.advance(minutes=29)
    assert (await inv.get("/api/staff/me")).status_code == 200
    fa.clock.advance(minutes=30, seconds=1)
    idle = await inv.get("/api/staff/me")
    assert idle.status_code == 401 and code(idle) == "session_idle"


async def test_page_events_are_rate_limited(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    cand = await fa.login(s.password, s.candidates[0].id_number)
    batch = {"events": [{"kind": "blur"}] * 30}
    assert (await cand.ok("post", "/api/flow/events", json=batch))["recorded"] == 30
    assert (await cand.ok("post", "/api/flow/events", json=batch))["recorded"] == 30
    flood = await cand.post("/api/flow/events", json={"events": [{"kind": "blur"}]})
    assert MAX_PAGE_EVENTS_PER_MINUTE == 60
    assert flood.status_code == 429 and code(flood) == "too_many_events"
    fa.clock.advance(seconds=61)
    assert (await cand.ok("post", "/api/flow/events", json=batch))["recorded"] == 30


async def test_a_console_socket_closes_after_logout(server) -> None:
    seeded = server.seeded
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        login = await http.post(
            "/api/staff/login", json={"username": seeded.staff[0], "password": seeded.staff[1]}
        )
        token = login.json()["token"]
        url = server.url.replace("http", "ws") + (
            f"/ws/console?sitting_id={seeded.sitting_id}&token={token}"
        )
        async with connect(url) as ws:
            out = await http.post("/api/staff/logout", headers={"authorization": f"Bearer {token}"})
            assert out.status_code == 200

            async def closed() -> int | None:
                try:
                    while True:
                        await ws.recv()
                except ConnectionClosed as exc:
                    return exc.rcvd.code if exc.rcvd else None

            assert await asyncio.wait_for(closed(), timeout=15) == 4401
