"""Issue 21 items 8 and 9: nothing a client sends makes a 5xx (real app, SQLite and
PostgreSQL): ids beyond what the database stores, NUL characters, a room capacity of 0,
oversized JSON bodies; and a foreign page's state-changing request (item 10)."""

from __future__ import annotations

import pytest

from tests.flowkit import ADMIN, FlowApp, code

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("big", ["2147483648", str(2**63), "1" + "0" * 30, "9" * 5000])
async def test_huge_ids_are_not_found(fa: FlowApp, big: str) -> None:
    admin = await fa.staff(ADMIN)
    for path in (
        f"/api/console/candidates/{big}",
        f"/api/admin/sittings/{big}",
        f"/api/console/rooms?sitting_id={big}",
    ):
        resp = await admin.get(path)
        assert resp.status_code in (404, 422), (path, resp.status_code, resp.text)
    # in a JSON body
    resp = await admin.post(
        "/api/invigilate/extensions",
        content=f'{{"sitting_id": {big}, "minutes": 5, "reason": "x"}}',
        headers={"content-type": "application/json"},
    )
    assert 400 <= resp.status_code < 500, resp.text
    s = await fa.sitting(kind="formal")
    resp = await admin.post(
        "/api/invigilate/extensions",
        content=f'{{"sitting_id": {s.id}, "candidate_ids": [{big}], "minutes": 5, "reason": "x"}}',
        headers={"content-type": "application/json"},
    )
    assert 400 <= resp.status_code < 500, resp.text


async def test_nul_characters_are_refused(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal")
    login = await fa.client().post(
        "/api/candidate/login",
        json={"sitting_password": "pw\u0000", "id_number": s.candidates[0].id_number},
    )
    assert login.status_code == 422 and code(login) == "nul_character"
    staff = await fa.client().post(
        "/api/staff/login", json={"username": "admin\u0000", "password": "x"}
    )
    assert staff.status_code == 422 and code(staff) == "nul_character"
    admin = await fa.staff(ADMIN)
    danmaku = await admin.post(
        f"/api/console/candidates/{s.candidates[0].id}/danmaku", json={"text": "hi\u0000there"}
    )
    assert danmaku.status_code == 422 and code(danmaku) == "nul_character"
    query = await admin.get("/api/console/sittings", params={"x": "a\x00b"})
    assert query.status_code == 422 and code(query) == "nul_character"


async def test_room_capacity_zero_is_refused(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", candidates=2)
    admin = await fa.staff(ADMIN)
    for capacity, per_room in ((0, 1), (-1, 1), (31, 1), (10, 0)):
        resp = await admin.post(
            f"/api/console/sittings/{s.id}/rooms/auto",
            json={"capacity": capacity, "invigilators_per_room": per_room},
        )
        assert resp.status_code == 422 and code(resp) == "bad_capacity", resp.text


async def test_json_bodies_are_bounded(fa: FlowApp) -> None:
    big = b'{"sitting_password": "' + b"x" * (2 << 20) + b'", "id_number": "1"}'
    resp = await fa.client().post(
        "/api/candidate/login", content=big, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 413 and code(resp) == "too_large"

    async def chunks():  # no Content-Length: counted as it comes
        yield b'{"sitting_password": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'", "id_number": "1"}'

    resp = await fa.client().post(
        "/api/candidate/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 413 and code(resp) == "too_large"


async def test_a_foreign_origin_cannot_change_state(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal")
    body = {"sitting_password": s.password, "id_number": s.candidates[0].id_number}
    foreign = await fa.client().post(
        "/api/candidate/login", json=body, headers={"origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and code(foreign) == "foreign_origin"
    inv = await fa.staff(ADMIN)
    release = await inv.post(
        f"/api/invigilate/candidates/{s.candidates[0].id}/release",
        headers={"origin": "http://evil.example"},
    )
    assert release.status_code == 403 and code(release) == "foreign_origin"
    own = await fa.client().post(
        "/api/candidate/login", json=body, headers={"origin": "http://proctor.test"}
    )
    assert own.status_code == 200
