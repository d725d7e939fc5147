"""Several server processes (or machines) serving one sitting.

A candidate's media must all land on one process: the one that owns the candidate holds
its peer connections, its monitor (rules keep state across both views) and the live view
of it. Any process may receive the candidate's or the console's WebRTC offer: it asks the
cluster who owns the candidate and, if that is another process, forwards the offer to it
over Redis and returns its answer. Media then flows straight to the owner (its ICE
candidates are in the answer). The owner publishes thumbnails and view states on the bus so
every process can serve the console's grid.

A candidate nobody owns yet goes to the live worker that owns the fewest candidates (this
one on a tie), whichever received the offer: the listening socket that uvicorn's workers
share hands connections to whichever process accepts first, which split 16 candidates 11
to 5 between two workers (one at a full core, its analysis falling behind, the other
half idle).

Single process (no Redis): :class:`LocalCluster`, this process owns everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from proctor.errors import DomainError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ClusterError(Exception):
    pass


#: set the owner key to this worker (ARGV[1]) for ARGV[2] ms unless another worker holds it
_REFRESH_OWNER = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class LocalCluster:
    """One process: it owns every candidate."""

    distributed = False

    def __init__(self) -> None:
        self.worker_id = "local"

    async def start(self, handlers: dict[str, Handler]) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def owner(self, candidate_id: int) -> str:
        return self.worker_id

    async def release(self, candidate_id: int) -> None:
        return None

    async def holder(self, candidate_id: int) -> str | None:
        return self.worker_id

    async def alive(self, worker: str) -> bool:
        return worker == self.worker_id

    async def call(self, worker: str, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise ClusterError("a single-process server has no other worker")


class RedisCluster:
    """Ownership and forwarding through Redis.

    Keys, under ``namespace`` (default ``proctor``): ``proctor:worker:<id>`` (alive while
    its process heartbeats, TTL ``ttl``), ``proctor:owner:<candidate>`` → worker id
    (refreshed by the owner while it holds the candidate), ``proctor:load`` (a hash:
    worker id → candidates it owns, counted up when a candidate is given to it and set
    by its heartbeat). RPC: requests on ``proctor:rpc:<worker>``, replies on
    ``proctor:rpc-reply:<worker>``."""

    distributed = True

    def __init__(self, url: str, namespace: str = "proctor", ttl: float = 10.0) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url)
        self.ns = namespace
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ttl = ttl
        self.owned: set[int] = set()
        self._handlers: dict[str, Handler] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, handlers: dict[str, Handler]) -> None:
        self._handlers = handlers
        await self._heartbeat_once()
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(
            f"{self.ns}:rpc:{self.worker_id}", f"{self.ns}:rpc-reply:{self.worker_id}"
        )
        self._tasks = [
            asyncio.create_task(self._listen(pubsub), name="cluster rpc"),
            asyncio.create_task(self._heartbeat(), name="cluster heartbeat"),
        ]
        log.info("cluster worker %s started", self.worker_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            for cid in list(self.owned):
                await self.release(cid)
            await self._redis.delete(f"{self.ns}:worker:{self.worker_id}")
            await self._redis.hdel(f"{self.ns}:load", self.worker_id)
        await self._redis.aclose()

    async def _heartbeat_once(self) -> None:
        ms = int(self.ttl * 1000)
        await self._redis.set(f"{self.ns}:worker:{self.worker_id}", "1", px=ms)
        await self._redis.hset(f"{self.ns}:load", self.worker_id, len(self.owned))
        for cid in list(self.owned):
            # refresh only what is still ours: after a moment without Redis another worker
            # may have taken the candidate over, and must keep it
            kept = await self._redis.eval(
                _REFRESH_OWNER, 1, f"{self.ns}:owner:{cid}", self.worker_id, ms * 3
            )
            if not kept:
                log.warning("candidate %s was taken over by another worker", cid)
                self.owned.discard(cid)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self._heartbeat_once()
            except Exception:  # Redis hiccup: try again next beat
                log.exception("cluster heartbeat failed")

    # -- ownership ---------------------------------------------------------------------
    async def alive(self, worker: str) -> bool:
        """Alive while its heartbeat key lives *and* it listens on its RPC channel. A
        process that dies (killed, crashed) drops its Redis connections at once, so its
        candidates are taken over at their next offer rather than only once the heartbeat
        key expires (up to ``ttl`` later, during which forwarding to it would fail)."""
        if not await self._redis.exists(f"{self.ns}:worker:{worker}"):
            return False
        listening = await self._redis.pubsub_numsub(f"{self.ns}:rpc:{worker}")
        return bool(listening and listening[0][1])

    async def least_loaded(self) -> str:
        """The live worker owning the fewest candidates (this one on a tie)."""
        loads = {
            k.decode(): int(v) for k, v in (await self._redis.hgetall(f"{self.ns}:load")).items()
        }
        best, fewest = self.worker_id, loads.get(self.worker_id, len(self.owned))
        prefix = f"{self.ns}:worker:"
        listed = set()
        async for raw in self._redis.scan_iter(match=f"{prefix}*"):
            worker = raw.decode()[len(prefix) :]
            listed.add(worker)
            load = loads.get(worker, 0)
            if worker != self.worker_id and load < fewest and await self.alive(worker):
                best, fewest = worker, load
        gone = set(loads) - listed - {self.worker_id}  # workers whose heartbeat expired
        if gone:
            await self._redis.hdel(f"{self.ns}:load", *gone)
        return best

    async def owner(self, candidate_id: int) -> str:
        """The live worker that owns the candidate. When nobody (alive) does: a dead
        owner's candidate is taken over by this worker; a new one is given to the least
        loaded live worker (:meth:`least_loaded`)."""
        key = f"{self.ns}:owner:{candidate_id}"
        ms = int(self.ttl * 3000)
        for _ in range(3):
            current = await self._redis.get(key)
            if current is not None:
                current = current.decode()
                if current == self.worker_id or await self.alive(current):
                    if current == self.worker_id:
                        self.owned.add(candidate_id)
                    return current
                # the owner died: take over only if nobody else did meanwhile
                async with self._redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(key)
                        if (await pipe.get(key) or b"").decode() != current:
                            continue
                        pipe.multi()
                        pipe.set(key, self.worker_id, px=ms)
                        await pipe.execute()
                    except Exception:  # WatchError: someone else moved first
                        continue
                self.owned.add(candidate_id)
                return self.worker_id
            chosen = await self.least_loaded()
            if await self._redis.set(key, chosen, px=ms, nx=True):
                await self._redis.hincrby(f"{self.ns}:load", chosen, 1)
                if chosen == self.worker_id:
                    self.owned.add(candidate_id)
                return chosen
        raise ClusterError(f"could not settle the owner of candidate {candidate_id}")

    async def holder(self, candidate_id: int) -> str | None:
        """Who holds the candidate's ownership lease now (None: nobody, or it expired),
        without claiming it."""
        current = await self._redis.get(f"{self.ns}:owner:{candidate_id}")
        return current.decode() if current is not None else None

    async def release(self, candidate_id: int) -> None:
        self.owned.discard(candidate_id)
        key = f"{self.ns}:owner:{candidate_id}"
        current = await self._redis.get(key)
        if current is not None and current.decode() == self.worker_id:
            await self._redis.delete(key)
        await self._redis.hset(f"{self.ns}:load", self.worker_id, len(self.owned))

    # -- forwarding --------------------------------------------------------------------
    async def call(
        self, worker: str, method: str, payload: dict[str, Any], timeout: float = 15.0
    ) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            message = {
                "id": request_id,
                "method": method,
                "payload": payload,
                "reply_to": self.worker_id,
            }
            receivers = await self._redis.publish(f"{self.ns}:rpc:{worker}", json.dumps(message))
            if receivers == 0:
                raise ClusterError(f"worker {worker} is not listening")
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise ClusterError(f"worker {worker} did not answer {method}") from exc
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            err = reply["error"]
            if err.get("code") != "cluster_error":  # a user's error, raised by the owner
                exc = DomainError(err.get("code", "error"), err.get("message", ""))
                exc.status = int(err.get("status", 400))
                raise exc
            raise ClusterError(err.get("message", "remote call failed"))
        return reply["result"]

    async def _listen(self, pubsub) -> None:  # type: ignore[no-untyped-def]
        async for raw in pubsub.listen():
            if raw.get("type") != "message":
                continue
            channel = raw["channel"].decode()
            try:
                message = json.loads(raw["data"])
            except ValueError:
                continue
            if channel.startswith(f"{self.ns}:rpc-reply:"):
                future = self._pending.get(message.get("id"))
                if future is not None and not future.done():
                    future.set_result(message)
            else:
                asyncio.create_task(self._serve(message))

    async def _serve(self, message: dict[str, Any]) -> None:
        handler = self._handlers.get(message.get("method", ""))
        reply: dict[str, Any] = {"id": message.get("id")}
        try:
            if handler is None:
                raise ClusterError(f"unknown method {message.get('method')!r}")
            reply["result"] = await handler(message.get("payload") or {})
        except Exception as exc:
            if isinstance(exc, DomainError):
                reply["error"] = {"code": exc.code, "message": exc.message, "status": exc.status}
            else:
                log.exception("cluster call %s failed", message.get("method"))
                reply["error"] = {"code": "cluster_error", "message": str(exc), "status": 503}
        reply_channel = f"{self.ns}:rpc-reply:{message.get('reply_to')}"
        await self._redis.publish(reply_channel, json.dumps(reply))


def make_cluster(redis_url: str, namespace: str = "proctor") -> LocalCluster | RedisCluster:
    return RedisCluster(redis_url, namespace) if redis_url else LocalCluster()
