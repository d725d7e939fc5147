"""Snoozing one candidate's alerts of one type (静音) over real HTTP and the console's
WebSocket, on SQLite and PostgreSQL, with Redis as the bus: every refusal with its code;
the snooze in the candidate's timeline and the audit chain; an alert raised meanwhile
recorded (listed with its ``snooze``, not counted on the tile) but not pushed to the
console, while another type of the same candidate and the same type of another candidate
still are; ended early, the type is pushed again. Alerts are raised through the server's
recording path from the test process (tests/alertinject.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.alertinject import AlertInjector
from tests.serverproc import REDIS_URL, require_postgres_and_redis, seed, served


@pytest.fixture(scope="module")
def snooze_server(database_url: str, models_dir: Path, tmp_path_factory):
    require_postgres_and_redis()
    data_dir = tmp_path_factory.mktemp("snooze-data")
    seeded = asyncio.run(seed(database_url, data_dir, n_candidates=4, room_size=2))
    ns = f"t{uuid.uuid4().hex[:8]}"
    env = {"PROCTOR_REDIS_URL": REDIS_URL, "PROCTOR_REDIS_NAMESPACE": ns, "PROCTOR_WORKERS": "1"}
    yield from served(database_url, data_dir, models_dir, env, seeded=seeded, namespace=ns)


def code(resp: httpx.Response) -> str:
    return resp.json()["error"]["code"]


async def next_alert(ws, timeout: float) -> dict:
    """The next alert message on the console socket (other messages skipped)."""

    async def read() -> dict:
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("type") == "alert":
                return msg["alert"]

    return await asyncio.wait_for(read(), timeout)


async def test_snooze_alerts_of_one_type(snooze_server, media_dir):
    s = snooze_server.seeded
    (c1, n1, _), (c2, n2, _), (c3, _, _) = s.candidates[:3]  # c3 sits in room 2
    image = media_dir / "images" / "two_people.jpg"
    inject = AlertInjector(
        snooze_server.database_url, snooze_server.data_dir, REDIS_URL, snooze_server.namespace
    )
    async with httpx.AsyncClient(base_url=snooze_server.url, timeout=15) as http:
        login = await http.post(
            "/api/staff/login", json={"username": s.staff[0], "password": s.staff[1]}
        )
        token = login.json()["token"]
        h = {"authorization": f"Bearer {token}"}
        path = f"/api/console/candidates/{c1}/snoozes"
        body = {"type": "multiple_persons", "minutes": 10, "reason": "家属在背景 family behind"}
        # refusals, each with its code
        for bad, status, expected in [
            ({**body, "type": "nonsense"}, 422, "bad_alert_type"),
            ({**body, "minutes": 0}, 422, "bad_snooze_minutes"),
            ({**body, "minutes": 121}, 422, "bad_snooze_minutes"),
            ({**body, "reason": " "}, 422, "reason_required"),
            ({"type": "speech"}, 422, "validation_error"),
        ]:
            resp = await http.post(path, json=bad, headers=h)
            assert resp.status_code == status and code(resp) == expected, resp.text
        resp = await http.post(f"/api/console/candidates/{c3}/snoozes", json=body, headers=h)
        assert resp.status_code == 403 and code(resp) == "not_your_room"
        assert code(await http.post("/api/console/snoozes/999999/end", headers=h)) == (
            "unknown_snooze"
        )

        ws_url = snooze_server.url.replace("http", "ws") + (
            f"/ws/console?sitting_id={s.sitting_id}&token={token}"
        )
        async with connect(ws_url) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert hello["type"] == "health"
            created = await http.post(path, json=body, headers=h)
            assert created.status_code == 200, created.text
            snooze = created.json()
            assert snooze["active"] and snooze["type"] == "multiple_persons"
            assert snooze["staff_name"] == "Invigilator One" and snooze["minutes"] == 10
            again = await http.post(path, json=body, headers=h)
            assert again.status_code == 409 and code(again) == "already_snoozed"

            # snoozed: recorded, not pushed; the next alert pushed is another type
            snoozed_id = await inject.raise_alert(
                candidate_id=c1,
                sitting_id=s.sitting_id,
                name=n1,
                type="multiple_persons",
                severity="critical",
                image=image,
            )
            other_type = await inject.raise_alert(
                candidate_id=c1,
                sitting_id=s.sitting_id,
                name=n1,
                type="speech",
                severity="warning",
                image=image,
            )
            assert (await next_alert(ws, 15))["id"] == other_type
            other_candidate = await inject.raise_alert(
                candidate_id=c2,
                sitting_id=s.sitting_id,
                name=n2,
                type="multiple_persons",
                severity="critical",
                image=image,
            )
            assert (await next_alert(ws, 15))["id"] == other_candidate

            listed = {
                a["id"]: a
                for a in (
                    await http.get(f"/api/console/alerts?sitting_id={s.sitting_id}", headers=h)
                ).json()
            }
            assert listed[snoozed_id]["status"] == "open"
            assert listed[snoozed_id]["snooze"]["id"] == snooze["id"]
            assert listed[other_type]["snooze"] is None
            assert listed[other_candidate]["snooze"] is None
            cands = {
                c["id"]: c
                for c in (
                    await http.get(f"/api/console/candidates?sitting_id={s.sitting_id}", headers=h)
                ).json()
            }
            assert cands[c1]["open_alerts"] == 1 and cands[c1]["snoozed_alerts"] == 1
            running = (
                await http.get(f"/api/console/snoozes?sitting_id={s.sitting_id}", headers=h)
            ).json()
            assert [r["id"] for r in running] == [snooze["id"]]

            # ended early: that type is pushed again
            ended = await http.post(
                f"/api/console/snoozes/{snooze['id']}/end",
                json={"reason": "走了 gone"},
                headers=h,
            )
            assert ended.status_code == 200 and not ended.json()["active"]
            assert ended.json()["ended_by_name"] == "Invigilator One"
            over = await http.post(f"/api/console/snoozes/{snooze['id']}/end", headers=h)
            assert over.status_code == 409 and code(over) == "snooze_over"
            after = await inject.raise_alert(
                candidate_id=c1,
                sitting_id=s.sitting_id,
                name=n1,
                type="multiple_persons",
                severity="critical",
                image=image,
            )
            assert (await next_alert(ws, 15))["id"] == after
        running = (
            await http.get(f"/api/console/snoozes?sitting_id={s.sitting_id}", headers=h)
        ).json()
        assert running == []
        every = (
            await http.get(
                f"/api/console/snoozes?sitting_id={s.sitting_id}&include_ended=true", headers=h
            )
        ).json()
        assert [r["id"] for r in every] == [snooze["id"]]

        # the candidate's history: both console actions, with who and why
        timeline = (await http.get(f"/api/console/candidates/{c1}/timeline", headers=h)).json()
        actions = {i["action"]["kind"]: i["action"] for i in timeline if i["kind"] == "action"}
        assert actions["alerts_snoozed"]["reason"] == body["reason"]
        assert actions["alerts_snoozed"]["data"]["type"] == "multiple_persons"
        assert actions["alerts_snoozed"]["staff_name"] == "Invigilator One"
        assert actions["snooze_ended"]["reason"] == "走了 gone"
        alerts = [i["alert"]["id"] for i in timeline if i["kind"] == "alert"]
        assert snoozed_id in alerts  # recorded for review
    await inject.close()

    # the audit chain holds both, and verifies
    from sqlalchemy import select

    from proctor.evidence import chain
    from proctor.evidence.storage import EvidenceStorage
    from proctor.store.db import Database
    from proctor.store.tables import AuditEntry

    db = Database(snooze_server.database_url)
    try:
        async with db.session() as session:
            report = await chain.verify(
                session, EvidenceStorage(snooze_server.data_dir / "evidence")
            )
            kinds = set(await session.scalars(select(AuditEntry.kind)))
    finally:
        await db.dispose()
    assert report.ok, report.first_break
    assert {"console.alerts_snoozed", "console.snooze_ended"} <= kinds
