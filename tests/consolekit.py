"""A server process's staff side, as the integration tests talk to it: a staff token, the
console socket of the seeded sitting, the next console message that matches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from websockets.asyncio.client import connect


async def staff_token(http: httpx.AsyncClient, server: Any) -> str:
    """The seeded invigilator's token (``server.seeded.staff``)."""
    user, password = server.seeded.staff
    resp = await http.post("/api/staff/login", json={"username": user, "password": password})
    resp.raise_for_status()
    return resp.json()["token"]


@asynccontextmanager
async def console_socket(server: Any, token: str) -> AsyncIterator[Any]:
    """The console socket of the seeded sitting, once its first message (``health``) came."""
    url = server.url.replace("http", "ws") + (
        f"/ws/console?sitting_id={server.seeded.sitting_id}&token={token}"
    )
    async with connect(url) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "health"
        yield ws


async def next_message(ws: Any, predicate: Callable[[dict], bool], timeout: float) -> dict:
    """The next message matching ``predicate``; TimeoutError after ``timeout`` s."""

    async def find() -> dict:
        while True:
            msg = json.loads(await ws.recv())
            if predicate(msg):
                return msg

    return await asyncio.wait_for(find(), timeout)
