"""The message bus: alerts, connection changes and danmaku travel from where they happen
to every console and candidate page that listens. In-process by default; Redis when
several server processes share a sitting (``PROCTOR_REDIS_URL``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

log = logging.getLogger(__name__)

Message = dict[str, Any]


def sitting_channel(sitting_id: int) -> str:
    return f"sitting:{sitting_id}"


#: "a candidate's exam ended: end both views" ({"kind": "end_views", "candidate_id"}); every
#: server process listens, the one holding the candidate's connections closes them
VIEWS_CHANNEL = "views"


def candidate_channel(candidate_id: int) -> str:
    return f"candidate:{candidate_id}"


class Bus(Protocol):
    async def publish(self, channel: str, message: Message) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]: ...

    async def close(self) -> None: ...


class Subscription:
    """A bounded mailbox, registered as soon as the ``subscribe`` context is entered (so no
    message published after that is missed). A subscriber that falls more than ``maxsize``
    messages behind gets one ``{"type": "overflow"}`` marker instead of unbounded memory
    growth, and is expected to reload its state (the console reloads the alert list)."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize)
        self.overflowed = False

    def put(self, message: Message) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True

    async def get(self) -> Message:
        if self.overflowed and self.queue.empty():
            self.overflowed = False
            return {"type": "overflow"}
        return await self.queue.get()


class InProcessBus:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    async def publish(self, channel: str, message: Message) -> None:
        for sub in list(self._subs.get(channel, ())):
            sub.put(message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        sub = Subscription()
        self._subs.setdefault(channel, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[channel]

    async def close(self) -> None:
        self._subs.clear()


class RedisBus:
    """Redis pub/sub: every process publishes to Redis and each subscription listens there,
    so a console connected to any process sees every message of its sittings."""

    def __init__(self, url: str, namespace: str = "proctor") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url)
        self.ns = namespace

    async def publish(self, channel: str, message: Message) -> None:
        await self._redis.publish(f"{self.ns}:{channel}", json.dumps(message, default=str))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        sub = Subscription()
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(f"{self.ns}:{channel}")

        async def pump() -> None:
            async for raw in pubsub.listen():
                if raw.get("type") != "message":
                    continue
                try:
                    sub.put(json.loads(raw["data"]))
                except ValueError:  # pragma: no cover - only our own messages are there
                    log.warning("dropped a malformed bus message on %s", channel)

        task = asyncio.create_task(pump())
        try:
            yield sub
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
                await pubsub.aclose()

    async def close(self) -> None:
        await self._redis.aclose()


def make_bus(redis_url: str, namespace: str = "proctor") -> Bus:
    return RedisBus(redis_url, namespace) if redis_url else InProcessBus()
