"""Two server processes sharing PostgreSQL and Redis serve one sitting: a candidate
streams to one, a console watches on the other; offers for a candidate reach the process
that owns it, whichever process receives them."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect

from exam_client.headless import HeadlessCandidate
from tests.consolekit import staff_token
from tests.integration.conftest import RULES
from tests.mediatools import center_focus_absence
from tests.serverproc import (
    REDIS_URL,
    ServerProcess,
    create_postgres_db,
    drop_postgres_db,
    require_postgres_and_redis,
    seed,
)
from tests.waiting import eventually


@pytest.fixture(scope="module")
def two_workers(models_dir, tmp_path_factory):
    require_postgres_and_redis()
    url, name = create_postgres_db()
    data_dir = tmp_path_factory.mktemp("cluster")
    seeded = asyncio.run(seed(url, data_dir / "shared", rules=RULES, n_candidates=2))
    env = {
        "PROCTOR_REDIS_URL": REDIS_URL,
        "PROCTOR_WORKERS": "1",  # each ServerProcess is one worker of the pair
        "PROCTOR_REDIS_NAMESPACE": f"t{uuid.uuid4().hex[:8]}",
    }
    workers = []
    try:
        for _ in range(2):
            # one data directory for both: evidence files are shared storage
            w = ServerProcess(url, data_dir / "shared", models_dir, env_extra=env)
            workers.append(w.start())
            w.seeded = seeded
        yield workers
    finally:
        for w in workers:
            w.stop()
        drop_postgres_db(name)


def _stream_gauge(metrics: str, view: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'proctor_streams{{view="{view}"}}'):
            return float(line.split()[-1])
    return 0.0


async def test_alert_from_one_worker_reaches_console_on_the_other(two_workers, media_dir, tmp_path):
    a, b = two_workers
    seeded = a.seeded
    media = center_focus_absence(media_dir, tmp_path / "absence.webm", 4.0, 15.0, (320, 568))
    cand_id, _, id_number = seeded.candidates[0]
    async with httpx.AsyncClient(base_url=b.url, timeout=10) as http:
        token = await staff_token(http, a)
        h = {"authorization": f"Bearer {token}"}
        ws_url = b.url.replace("http", "ws") + (
            f"/ws/console?sitting_id={seeded.sitting_id}&token={token}"
        )
        async with connect(ws_url) as ws:
            await asyncio.wait_for(ws.recv(), 10)  # health
            async with HeadlessCandidate(a.url, seeded.password, id_number) as cand:
                await cand.login()
                await cand.start_view("first", media.path)

                async def alert() -> dict:
                    while True:
                        msg = json.loads(await ws.recv())
                        if msg["type"] == "alert":
                            return msg["alert"]

                got = await asyncio.wait_for(alert(), 60)
                assert got["type"] == "absent" and got["candidate_id"] == cand_id

                # worker B serves the grid for a candidate streaming to worker A
                async def thumb() -> bytes | None:
                    r = await http.get(
                        f"/api/console/candidates/{cand_id}/thumbnail/first.jpg", headers=h
                    )
                    return r.content if r.status_code == 200 else None

                jpeg = await eventually(thumb, 10, "a thumbnail on worker B")
                assert jpeg[:2] == b"\xff\xd8"
                listed = (
                    await http.get(
                        f"/api/console/candidates?sitting_id={seeded.sitting_id}", headers=h
                    )
                ).json()
                me = next(c for c in listed if c["id"] == cand_id)
                assert me["views"]["first"]["connected"] is True
                # the evidence written by A is served by B (shared storage and database)
                ev = await http.get(got["evidence_url"], headers=h)
                assert ev.status_code == 200 and ev.content[:2] == b"\xff\xd8"


async def test_offers_reach_the_owner_whichever_worker_receives_them(
    two_workers, media_dir, tmp_path
):
    a, b = two_workers
    seeded = a.seeded
    media = center_focus_absence(media_dir, tmp_path / "person.webm", 8.0, 0.0, (320, 568))
    _, _, id_number = seeded.candidates[1]
    async with (
        HeadlessCandidate(a.url, seeded.password, id_number) as first,
        HeadlessCandidate(b.url, seeded.password, id_number) as phone,
    ):
        await first.login()
        await first.start_view("first", media.path, loop=True)
        await first.wait_for_state("first", "connected", timeout=20)
        # the same session from another connection (a second login of the candidate would
        # be refused as concurrent: already_logged_in)
        phone.token, phone.profile = first.token, first.profile
        await phone.start_view("second", media.path, loop=True)  # offer sent to worker B
        await phone.wait_for_state("second", "connected", timeout=20)
        async with httpx.AsyncClient(timeout=10) as http:
            ma = (await http.get(a.url + "/metrics")).text
            mb = (await http.get(b.url + "/metrics")).text
        # both views of the candidate are held by worker A, which owned it first
        assert _stream_gauge(ma, "second") == 1
        assert _stream_gauge(mb, "second") == 0
