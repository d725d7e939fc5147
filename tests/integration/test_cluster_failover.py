"""A worker dies under a candidate: two server processes A and B share PostgreSQL and
Redis; the candidate answers on A and streams its first view to A (its owner) over real
WebRTC; A is killed (SIGKILL, no clean shutdown) and the candidate's page is sent to B,
as a load balancer in front of the workers does. Every acknowledged answer is still
there with the right remaining time, the page carries on with its token (and may log in
again at once), and its media reconnects to B, which takes the candidate over: B's
console sees the view connected again and fresh thumbnails."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis
from websockets.asyncio.client import connect

from exam_client.headless import HeadlessCandidate
from tests.flowkit import INVIGILATOR, seed_exam, still_y4m
from tests.serverproc import (
    REDIS_URL,
    ServerProcess,
    create_postgres_db,
    drop_postgres_db,
    require_postgres_and_redis,
)
from tests.waiting import eventually


@pytest.fixture
def cluster(models_dir, tmp_path_factory):
    require_postgres_and_redis()
    url, name = create_postgres_db()
    data_dir = tmp_path_factory.mktemp("failover") / "shared"  # shared by both workers
    namespace = f"t{uuid.uuid4().hex[:8]}"
    env = {
        "PROCTOR_REDIS_URL": REDIS_URL,
        "PROCTOR_REDIS_NAMESPACE": namespace,
        "PROCTOR_WORKERS": "1",  # each ServerProcess is one worker of the pair
    }
    workers: list[ServerProcess] = []
    try:
        sitting = asyncio.run(seed_exam(url, data_dir, flow={"require_phone": False}))
        for _ in range(2):
            workers.append(ServerProcess(url, data_dir, models_dir, env_extra=env).start())
        yield SimpleNamespace(a=workers[0], b=workers[1], sitting=sitting, namespace=namespace)
    finally:
        for w in workers:
            w.stop()
        drop_postgres_db(name)


@pytest.fixture(scope="module")
def clip(media_dir, tmp_path_factory):
    return still_y4m(
        media_dir / "images" / "obama2.jpg",
        tmp_path_factory.mktemp("failover-media") / "face.webm",
        size=(320, 568),
        seconds=3,
        fmt="webm",
    )


def _owner_pid(namespace: str, candidate_id: int) -> int | None:
    """The pid of the worker that owns the candidate in Redis (worker ids are
    ``host:pid:random``)."""
    raw = redis.Redis.from_url(REDIS_URL).get(f"{namespace}:owner:{candidate_id}")
    return int(raw.decode().split(":")[-2]) if raw else None


def _streams(metrics: str, view: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'proctor_streams{{view="{view}"}}'):
            return float(line.split()[-1])
    return 0.0


async def _staff_headers(console: httpx.AsyncClient) -> dict[str, str]:
    resp = await console.post(
        "/api/staff/login", json={"username": INVIGILATOR[0], "password": INVIGILATOR[1]}
    )
    assert resp.status_code == 200, resp.text
    return {"authorization": f"Bearer {resp.json()['token']}"}


async def _listed_view(
    console: httpx.AsyncClient, h: dict[str, str], sitting_id: int, cid: int, view: str
) -> dict[str, Any]:
    resp = await console.get(f"/api/console/candidates?sitting_id={sitting_id}", headers=h)
    assert resp.status_code == 200, resp.text
    return next(c for c in resp.json() if c["id"] == cid)["views"][view]


async def _connection_messages(ws: Any, cid: int) -> AsyncIterator[dict[str, Any]]:
    """The console socket's connection messages about candidate ``cid``."""
    async for raw in ws:
        msg = json.loads(raw)
        if msg.get("type") == "connection" and msg.get("candidate_id") == cid:
            yield msg


def _value(q: dict[str, Any], seq: int) -> Any:
    keys = [o["key"] for o in q.get("options") or []]
    if q["type"] == "single":
        return keys[seq % len(keys)]
    if q["type"] == "multiple":
        return keys[:2]
    return seq % 2 == 0


def _stored(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value


async def test_candidate_survives_the_death_of_its_worker(cluster, clip) -> None:
    a, b, s = cluster.a, cluster.b, cluster.sitting
    cid, idn = s.candidates[0].id, s.candidates[0].id_number
    async with (
        httpx.AsyncClient(base_url=b.url, timeout=10) as console,
        # a dead server is noticed after 4 s of silence, about when a browser's ICE
        # declares the connection disconnected (the client's default is 8 s)
        HeadlessCandidate(a.url, s.password, idn, silence_timeout=4.0) as cand,
    ):
        h = await _staff_headers(console)
        staff = h["authorization"].removeprefix("Bearer ")

        async def listed_first_view() -> dict[str, Any]:
            return await _listed_view(console, h, s.id, cid, "first")

        ws_url = b.url.replace("http", "ws") + f"/ws/console?sitting_id={s.id}&token={staff}"
        async with connect(ws_url) as ws:
            await asyncio.wait_for(ws.recv(), 10)  # health
            connections: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

            async def collect() -> None:
                async for msg in _connection_messages(ws, cid):
                    connections.put_nowait(msg)

            collector = asyncio.create_task(collect())
            try:
                # -- on worker A: log in, walk to answering, stream, answer -------------
                await cand.login()
                paper = (await cand.walk_to_answering(clip, invigilator=INVIGILATOR, timeout=60))[
                    "questions"
                ]
                await cand.wait_for_state("first", "connected", timeout=20)
                assert _owner_pid(cluster.namespace, cid) == a.proc.pid
                acked: dict[str, Any] = {}
                seq = 0
                for q in [*paper, paper[0]]:  # the first one twice: the later value counts
                    seq += 1
                    value = _value(q, seq)
                    ack = await cand.answer(q["id"], value, seq)  # raises unless HTTP 200
                    assert ack["seq"] == seq
                    acked[str(q["id"])] = _stored(value)
                before = await cand.flow_state()
                at_before = time.monotonic()

                # B's console already sees the candidate that streams to A
                async def seen_on_b() -> dict[str, Any] | None:
                    first = await listed_first_view()
                    return first if first["connected"] and first["last_frame_at"] else None

                await eventually(seen_on_b, 15, "worker B showing the stream to worker A")

                # and the page hears from A that its video arrives (RTCP receiver
                # reports): how the page notices later that A went silent
                async def reports_from_a() -> bool | None:
                    pc = cand._views["first"].pc
                    for sender in pc.getSenders() if pc else []:
                        stats = (await sender.getStats()).values()
                        if any(st.type == "remote-inbound-rtp" for st in stats):
                            return True
                    return None

                await eventually(reports_from_a, 15, "receiver reports from worker A")

                # -- A dies -----------------------------------------------------------
                a.proc.kill()
                a.proc.wait()
                killed_at = datetime.now(UTC)
                at_kill = time.monotonic()
                cand.server = b.url  # the load balancer now sends the page to worker B

                # (1) the page carries on with its token: every acknowledged answer, the
                # same remaining time (less the time that passed), still answering
                state = await cand.flow_state()
                assert state["step"] == "answering"
                assert state["progress"] == {"answered": len(paper), "total": len(paper)}
                elapsed = time.monotonic() - at_before
                left_now = before["timing"]["seconds_left"] - elapsed
                assert abs(state["timing"]["seconds_left"] - left_now) < 5
                expected_left = (s.ends_at - datetime.now(UTC)).total_seconds()
                assert abs(state["timing"]["seconds_left"] - expected_left) < 10
                resumed = await cand.call("GET", "/api/flow/paper")
                assert {k: v["value"] for k, v in resumed["answers"].items()} == acked
                assert [q["id"] for q in resumed["questions"]] == [q["id"] for q in paper]
                seq += 1
                q = paper[1]
                await cand.answer(q["id"], _value(q, seq), seq)  # B acknowledges new ones
                acked[str(q["id"])] = _stored(_value(q, seq))

                # (2) the media reconnects to B, which takes the candidate over
                await cand.wait_connects("first", 2, timeout=30)
                took = time.monotonic() - at_kill
                assert _owner_pid(cluster.namespace, cid) == b.proc.pid
                assert _streams((await console.get("/metrics")).text, "first") == 1

                async def reconnected() -> dict[str, Any]:
                    while True:
                        msg = await connections.get()
                        at = datetime.fromisoformat(msg["at"])
                        if msg["view"] == "first" and msg["connected"] and at > killed_at:
                            return msg

                await asyncio.wait_for(reconnected(), 10)

                async def fresh_on_b() -> dict[str, Any] | None:
                    first = await listed_first_view()
                    frame = first["last_frame_at"]
                    fresh = (
                        first["connected"]
                        and datetime.fromisoformat(first["since"]) > killed_at
                        and frame is not None
                        and datetime.fromisoformat(frame) > killed_at
                    )
                    return first if fresh else None

                await eventually(fresh_on_b, 15, "a fresh thumbnail of the view on worker B")
                thumb = await console.get(
                    f"/api/console/candidates/{cid}/thumbnail/first.jpg", headers=h
                )
                assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
            finally:
                collector.cancel()

        # (3) logging in again: another device is still refused while the page is alive
        # (session_takeover_seconds), but the page itself logs in again at once on B
        async with httpx.AsyncClient(base_url=b.url, timeout=10) as other:
            refused = await other.post(
                "/api/candidate/login", json={"sitting_password": s.password, "id_number": idn}
            )
            assert refused.status_code == 409
            assert refused.json()["error"]["code"] == "already_logged_in"
        old_token = cand.token
        await cand.login()  # with its current token: the same browser
        assert cand.token != old_token
        again = await cand.call("GET", "/api/flow/paper")
        assert {k: v["value"] for k, v in again["answers"].items()} == acked
        stale = await cand._request("GET", "/api/flow/state", token=old_token)
        assert stale.status_code == 401
    print(f"media back on worker B {took:.1f} s after worker A was killed")
    assert took < 20


async def test_a_dead_workers_views_are_shown_lost_and_recorded_once(cluster, clip) -> None:
    """The candidate does not come back (its network died with the worker, say): the
    surviving worker must not go on showing the view connected. It notices that the
    owner is gone, records the loss once (the reviewer's timeline shows it) and its
    consoles see the view lost."""
    a, b, s = cluster.a, cluster.b, cluster.sitting
    cid, idn = s.candidates[0].id, s.candidates[0].id_number
    async with (
        httpx.AsyncClient(base_url=b.url, timeout=10) as console,
        # the page never notices the silence: it does not reconnect anywhere
        HeadlessCandidate(a.url, s.password, idn, silence_timeout=3600) as cand,
    ):
        h = await _staff_headers(console)
        staff = h["authorization"].removeprefix("Bearer ")
        await cand.login()
        await cand.walk_to_answering(clip, invigilator=INVIGILATOR, timeout=60)
        await cand.wait_for_state("first", "connected", timeout=20)
        assert _owner_pid(cluster.namespace, cid) == a.proc.pid

        async def seen_on_b() -> dict[str, Any] | None:
            first = await _listed_view(console, h, s.id, cid, "first")
            return first if first["connected"] else None

        await eventually(seen_on_b, 15, "worker B showing the stream to worker A")

        async def alerts() -> dict[int, dict[str, Any]]:
            resp = await console.get(f"/api/console/alerts?sitting_id={s.id}", headers=h)
            assert resp.status_code == 200, resp.text
            return {x["id"]: x for x in resp.json() if x["candidate_id"] == cid}

        async def ongoing() -> dict[str, Any] | None:
            # the still photo is a frozen picture: A's monitor keeps a camera_blocked
            # episode open (its last sighting moving) while it streams
            return next((x for x in (await alerts()).values() if x["ongoing"]), None)

        episode = await eventually(ongoing, 40, "an episode kept open by worker A")
        ws_url = b.url.replace("http", "ws") + f"/ws/console?sitting_id={s.id}&token={staff}"
        async with connect(ws_url) as ws:
            await asyncio.wait_for(ws.recv(), 10)  # health
            a.proc.kill()
            a.proc.wait()
            killed_at = datetime.now(UTC)

            msg = await asyncio.wait_for(anext(_connection_messages(ws, cid)), 30)
            assert msg["view"] == "first" and msg["connected"] is False
            assert datetime.fromisoformat(msg["at"]) > killed_at

        first = await _listed_view(console, h, s.id, cid, "first")
        assert first["connected"] is False
        assert datetime.fromisoformat(first["since"]) > killed_at
        timeline = await console.get(f"/api/console/candidates/{cid}/timeline", headers=h)
        assert timeline.status_code == 200, timeline.text
        losses = [
            i["event"]
            for i in timeline.json()
            if i["kind"] == "event"
            and i["event"]["kind"] == "media_lost"
            and datetime.fromisoformat(i["at"]) > killed_at
        ]
        assert losses == [{"kind": "media_lost", "data": {"view": "first"}}]
        # B recorded the loss and let the candidate go: whoever it reaches next owns it
        assert _owner_pid(cluster.namespace, cid) is None

        # the episode A's monitor kept open is closed by B, at its last sighting (before
        # the kill), once A's lease is gone; no server had to start for it
        async def closed() -> dict[str, Any] | None:
            now = (await alerts())[episode["id"]]
            return now if now["ended_at"] else None

        ended = await eventually(closed, 30, "the dead worker's episode closed")
        assert ended["ended_at"] == ended["last_seen_at"] and not ended["ongoing"]
        assert datetime.fromisoformat(ended["ended_at"]) <= killed_at
        assert all(not x["ongoing"] for x in (await alerts()).values())
