"""Ownership of candidates between workers (proctor.media.cluster.RedisCluster) on the
real Redis: a dead worker's candidates are taken over at once; a worker that lost a
candidate while away from Redis does not take it back with its heartbeat; a worker that
cannot be reached is a 503 with a code, not a crash."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from fastapi import FastAPI

from proctor.api import errors
from proctor.media.cluster import ClusterError, RedisCluster
from tests.serverproc import REDIS_URL


@pytest.fixture
async def pair():
    ns = f"own{uuid.uuid4().hex[:8]}"
    a, b = RedisCluster(REDIS_URL, ns, ttl=30.0), RedisCluster(REDIS_URL, ns, ttl=30.0)
    try:
        await a._redis.ping()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis unreachable: {exc}")
    await a.start({})
    await b.start({})
    yield a, b
    for worker in (a, b):
        try:
            await worker.stop()
        except Exception:  # noqa: BLE001 - already stopped by the test
            pass


async def test_a_dead_worker_is_not_an_owner(pair) -> None:
    a, b = pair
    assert await a.owner(7) == a.worker_id
    assert await b.owner(7) == a.worker_id  # alive: b forwards to a
    # a dies without a word: its heartbeat key lives on, its RPC subscription does not
    for task in a._tasks:
        task.cancel()
    await a._redis.aclose()
    assert await b.owner(7) == b.worker_id  # taken over at once, not after the TTL


async def test_a_heartbeat_does_not_take_a_candidate_back(pair) -> None:
    a, b = pair
    assert await a.owner(9) == a.worker_id
    # while a was away from Redis, b took the candidate over
    await b._redis.set(f"{b.ns}:owner:9", b.worker_id)
    b.owned.add(9)
    await a._heartbeat_once()
    assert 9 not in a.owned
    assert (await a._redis.get(f"{a.ns}:owner:9")).decode() == b.worker_id
    # an owner key that merely expired is refreshed by its holder
    await b._redis.delete(f"{b.ns}:owner:9")
    await b._heartbeat_once()
    assert (await b._redis.get(f"{b.ns}:owner:9")).decode() == b.worker_id


async def test_new_candidates_go_to_the_least_loaded_worker(pair) -> None:
    a, b = pair
    # every offer reaches a (the shared socket's accept is not balanced): a tie stays on
    # the worker that received it, then the one with fewer candidates gets the next
    owners = [await a.owner(cid) for cid in (1, 2, 3, 4)]
    assert owners == [a.worker_id, b.worker_id, a.worker_id, b.worker_id]
    # b learns it owns what was given to it when the forwarded offer reaches it
    assert [await b.owner(cid) for cid in (2, 4)] == [b.worker_id] * 2 and b.owned == {2, 4}
    assert a.owned == {1, 3}
    # a candidate leaving frees a place: the next new one goes there
    await b.release(2)
    assert await a.owner(5) == b.worker_id
    # counts survive a heartbeat (set from what each really owns)
    await a._heartbeat_once()
    await b.owner(5)
    await b._heartbeat_once()
    assert await a.owner(6) == a.worker_id  # 2 each: a tie, kept by the receiver


async def test_a_dead_worker_gets_no_new_candidate(pair) -> None:
    a, b = pair
    assert await a.owner(1) == a.worker_id
    for task in b._tasks:  # b dies without a word, owning nothing
        task.cancel()
    await b._redis.aclose()
    assert await a.owner(2) == a.worker_id and await a.owner(3) == a.worker_id


async def test_an_unreachable_worker_is_a_503_with_a_code() -> None:
    app = FastAPI()
    errors.install(app)

    @app.post("/offer")
    async def offer() -> None:
        raise ClusterError("worker x is not listening")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        resp = await http.post("/offer")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "worker_unavailable"
