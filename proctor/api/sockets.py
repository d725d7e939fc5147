"""WebSocket plumbing shared by the candidate and console sockets: authenticate (accepting
first, so the browser sees the close code), then pump bus messages out and client messages
in, with a ping every 20 s so dead connections are noticed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection

from fastapi import WebSocket, WebSocketDisconnect

from proctor.api.deps import token_from
from proctor.auth.sessions import Principal, resolve_token
from proctor.errors import DomainError
from proctor.events.bus import Message, Subscription
from proctor.runtime import Runtime

log = logging.getLogger(__name__)

PING_SECONDS = 20.0
#: how often a socket asks whether its session still holds (logout, idle, release)
SESSION_CHECK_SECONDS = 5.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def session_alive(rt: Runtime, ws: WebSocket) -> Callable[[], Awaitable[bool]]:
    """Whether the socket's session still holds (checked every SESSION_CHECK_SECONDS):
    a console socket closes (4401) soon after its user logs out or idles out."""
    token = token_from(ws) or ""

    async def alive() -> bool:
        try:
            idle = rt.settings.staff_idle_minutes * 60
            async with rt.db.session() as db:
                await resolve_token(db, token, staff_idle_seconds=idle)
            return True
        except DomainError:
            return False
        except Exception:  # the database is down for a moment: keep the socket
            return True

    return alive


async def accept_principal(ws: WebSocket, rt: Runtime) -> Principal | None:
    """Accept the socket and identify the caller; on failure close with 4401."""
    await ws.accept()
    try:
        async with rt.db.session() as db:
            return await resolve_token(db, token_from(ws) or "")
    except DomainError:
        await ws.close(code=CLOSE_UNAUTHENTICATED, reason="not authenticated")
        return None


async def accept_kind(
    ws: WebSocket, rt: Runtime, kind: str, refusal: str, roles: Collection[str] | None = None
) -> Principal | None:
    """``accept_principal`` for one kind of caller (and, for staff, one of ``roles``): any
    other caller is closed with 4403 and ``refusal`` as the reason."""
    who = await accept_principal(ws, rt)
    if who is None:
        return None
    if who.kind != kind or (roles is not None and who.role not in roles):
        await ws.close(code=CLOSE_FORBIDDEN, reason=refusal)
        return None
    return who


async def pump(
    ws: WebSocket,
    sub: Subscription,
    on_out: Callable[[Message], Awaitable[None]] | None = None,
    on_in: Callable[[dict], Awaitable[None]] | None = None,
    select: Callable[[Message], Awaitable[Message | None]] | None = None,
    alive: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Until the client goes: forward bus messages (each as ``select`` makes it, or not at
    all when it answers None; all of them unchanged without ``select``), calling ``on_out``
    after each is sent, and hand JSON objects the client sends to ``on_in``. Non-JSON
    input is ignored."""

    async def forward() -> None:
        loop = asyncio.get_running_loop()
        quiet_until = loop.time() + PING_SECONDS  # a ping when nothing was sent this long
        check_at = loop.time() + SESSION_CHECK_SECONDS
        while True:
            wake = min(quiet_until, check_at) if alive is not None else quiet_until
            try:
                msg = await asyncio.wait_for(sub.get(), max(0.0, wake - loop.time()))
            except TimeoutError:
                if alive is not None and loop.time() >= check_at:
                    check_at = loop.time() + SESSION_CHECK_SECONDS
                    if not await alive():  # logged out, released, expired or idle
                        await ws.close(code=CLOSE_UNAUTHENTICATED, reason="session ended")
                        return
                if loop.time() >= quiet_until:
                    await ws.send_json({"type": "ping"})
                    quiet_until = loop.time() + PING_SECONDS
                continue
            if select is not None:
                picked = await select(msg)
                if picked is None:
                    continue
                msg = picked
            await ws.send_json(msg)
            quiet_until = loop.time() + PING_SECONDS
            if on_out is not None:
                try:
                    await on_out(msg)
                except Exception:  # e.g. the bus or the database is down for a moment:
                    # the message was sent; the socket must go on forwarding
                    log.warning(
                        "after sending %s: follow-up failed", msg.get("type"), exc_info=True
                    )

    sender = asyncio.create_task(forward())
    try:
        while True:
            text = await ws.receive_text()
            if on_in is None:
                continue
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            if isinstance(msg, dict):
                await on_in(msg)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away
    finally:
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender


class Merged:
    """Several subscriptions read as one (``get`` returns whichever message comes first);
    each message carries the channel it came from under ``_channel``, for the reader only."""

    def __init__(self, subs: dict[str, Subscription]) -> None:
        self._subs = subs
        self._pending: dict[asyncio.Task[Message], str] = {}

    async def get(self) -> Message:
        for name, sub in self._subs.items():
            if name not in self._pending.values():
                self._pending[asyncio.ensure_future(sub.get())] = name
        done, _ = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
        task = next(iter(done))
        name = self._pending.pop(task)
        return {**task.result(), "_channel": name}

    def close(self) -> None:
        for task in self._pending:
            task.cancel()
        self._pending.clear()
