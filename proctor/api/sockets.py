"""WebSocket plumbing shared by the candidate and console sockets: authenticate (accepting
first, so the browser sees the close code), then pump bus messages out and client messages
in, with a ping every 20 s so dead connections are noticed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from fastapi import WebSocket, WebSocketDisconnect

from proctor.api.deps import token_from
from proctor.errors import DomainError
from proctor.events.bus import Message, Subscription
from proctor.exam.auth import Principal, resolve_token
from proctor.runtime import Runtime

PING_SECONDS = 20.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


async def accept_principal(ws: WebSocket, rt: Runtime) -> Principal | None:
    """Accept the socket and identify the caller; on failure close with 4401."""
    await ws.accept()
    try:
        async with rt.db.session() as db:
            return await resolve_token(db, token_from(ws) or "")
    except DomainError:
        await ws.close(code=CLOSE_UNAUTHENTICATED, reason="not authenticated")
        return None


async def pump(
    ws: WebSocket,
    sub: Subscription,
    on_out: Callable[[Message], Awaitable[None]] | None = None,
    on_in: Callable[[dict], Awaitable[None]] | None = None,
) -> None:
    """Until the client goes: forward bus messages (calling ``on_out`` after each is sent)
    and hand JSON objects the client sends to ``on_in``. Non-JSON input is ignored."""

    async def forward() -> None:
        while True:
            try:
                msg = await asyncio.wait_for(sub.get(), PING_SECONDS)
            except TimeoutError:
                await ws.send_json({"type": "ping"})
                continue
            await ws.send_json(msg)
            if on_out is not None:
                await on_out(msg)

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
