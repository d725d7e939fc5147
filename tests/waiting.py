"""Await a condition with a timeout (for state that has no push notification, such as an
HTTP resource appearing). Fails with the last value seen, never passes by timing out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_INTERVAL = 0.1


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float, what: str = "condition"
) -> T:
    """Call ``probe`` until it returns something other than None; raise after ``timeout``."""

    async def loop() -> T:
        while True:
            value = await probe()
            if value is not None:
                return value
            await asyncio.sleep(POLL_INTERVAL)

    try:
        return await asyncio.wait_for(loop(), timeout)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {timeout} s") from None
