"""Refused logins are counted per key (the ID number typed, the client's address) in the
database, so that the limit holds across server processes; too many in the window and the
key must wait."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import TooMany
from proctor.store.tables import LoginFailure


async def check(
    db: AsyncSession, limits: list[tuple[str, int]], now: datetime, window_seconds: float
) -> None:
    """Raise ``too_many_attempts`` when a key has reached its limit of failures within the
    last ``window_seconds``; the message says when to try again."""
    since = now - timedelta(seconds=window_seconds)
    for key, limit in limits:
        count, oldest = (
            await db.execute(
                select(func.count(), func.min(LoginFailure.at)).where(
                    LoginFailure.key == key, LoginFailure.at > since
                )
            )
        ).one()
        if count >= limit:
            # the window frees up when enough of the counted failures have aged out; a
            # conservative estimate: when the oldest one leaves it
            wait = max(1, int((oldest + timedelta(seconds=window_seconds) - now).total_seconds()))
            raise TooMany(
                "too_many_attempts",
                f"登录失败次数过多，请{max(1, -(-wait // 60))}分钟后再试。 Too many failed "
                f"logins: wait {wait} s, then check the password and ID number and try again.",
            )


async def record(db: AsyncSession, keys: list[str], now: datetime, window_seconds: float) -> None:
    for key in keys:
        db.add(LoginFailure(key=key[:96], at=now))
    # keep the table small: drop what no window can count any more
    await db.execute(
        delete(LoginFailure).where(LoginFailure.at < now - timedelta(seconds=2 * window_seconds))
    )
