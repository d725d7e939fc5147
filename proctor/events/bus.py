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


#: "a candidate's exam ended: end both views" ({"type": "end_views", "candidate_id"}); every
#: server process listens, the one holding the candidate's connections closes them
VIEWS_CHANNEL = "views"


def candidate_channel(candidate_id: int) -> str:
    return f"candidate:{candidate_id}"


class Bus(Protocol):
    async def publish(self, channel: str, message: Message) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]: ...

    async def close(self) -> None: ...

    async def ping(self) -> str: ...


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

    async def ping(self) -> str:
        return "ok"


class BusUnavailable(Exception):
    """The bus (Redis) could not take a message within the publish retry time."""


#: how long a publish keeps retrying while Redis is unreachable before giving up
PUBLISH_RETRY_SECONDS = 3.0
#: a subscription's reconnection back-off: from this, doubling, up to the max
RESUBSCRIBE_FIRST_SECONDS = 0.1
RESUBSCRIBE_MAX_SECONDS = 5.0


class RedisBus:
    """Redis pub/sub: every process publishes to Redis and each subscription listens there,
    so a console connected to any process sees every message of its sittings.

    Resilient to Redis restarting: a subscription that loses its connection reconnects
    and subscribes again with exponential back-off (0.1 s doubling to 5 s), then hands its
    reader one ``{"type": "overflow"}`` marker, since what was published meanwhile is
    gone: consoles and pages reload their state from the database (what was committed is
    all there). A publish retries for ``PUBLISH_RETRY_SECONDS`` and then raises
    :class:`BusUnavailable` (the API answers 503)."""

    def __init__(self, url: str, namespace: str = "proctor") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url)
        self.ns = namespace
        self.connected = True

    async def publish(self, channel: str, message: Message) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        data = json.dumps(message, default=str)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_RETRY_SECONDS
        delay = RESUBSCRIBE_FIRST_SECONDS
        while True:
            try:
                await self._redis.publish(f"{self.ns}:{channel}", data)
                self.connected = True
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.connected = False
                if loop.time() + delay > deadline:
                    raise BusUnavailable(str(exc)) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESUBSCRIBE_MAX_SECONDS)

    async def ping(self) -> str:
        try:
            await asyncio.wait_for(self._redis.ping(), 2.0)
            self.connected = True
            return "ok"
        except Exception as exc:  # reported by /health, not raised
            self.connected = False
            return f"error: {exc.__class__.__name__}"

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        sub = Subscription()
        name = f"{self.ns}:{channel}"
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(name)

        async def pump() -> None:
            nonlocal pubsub
            delay = RESUBSCRIBE_FIRST_SECONDS
            lost = False
            while True:
                try:
                    if lost:  # a new connection: subscribe again, then say what was missed
                        old, pubsub = pubsub, self._redis.pubsub()
                        with contextlib.suppress(Exception):
                            await old.aclose()
                        await pubsub.subscribe(name)
                        lost, delay = False, RESUBSCRIBE_FIRST_SECONDS
                        log.info("bus subscription to %s restored", channel)
                        sub.put({"type": "overflow", "reason": "bus_reconnected"})
                    async for raw in pubsub.listen():
                        if raw.get("type") != "message":
                            continue
                        try:
                            sub.put(json.loads(raw["data"]))
                        except ValueError:  # pragma: no cover - only our own messages
                            log.warning("dropped a malformed bus message on %s", channel)
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    if not lost:
                        log.warning("bus subscription to %s lost (%s): reconnecting", channel, exc)
                    lost = True
                    self.connected = False
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RESUBSCRIBE_MAX_SECONDS)

        task = asyncio.create_task(pump(), name=f"bus-sub-{channel}")
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
