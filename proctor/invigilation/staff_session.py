"""The staff's session at the console (issue 19: what the login, logout and "who am I"
routes do, without HTTP): log in (rate-limited, proctor.auth.sessions), log out, and the
staff user as the pages show it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proctor.auth.sessions import login_staff, revoke_token
from proctor.errors import NotAuthenticated
from proctor.store.db import Database
from proctor.store.tables import StaffUser


def user_body(user: StaffUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
    }


async def login(database: Database, username: str, password: str, **options: Any) -> dict[str, Any]:
    """A new staff session: ``{"token", "user"}`` (committed). ``options``: the checker,
    the limits, the client, the time and the challenge's solution, as
    :func:`proctor.auth.sessions.login_staff` takes them."""
    token, user = await login_staff(database, username, password, **options)
    return {"token": token, "user": user_body(user)}


async def logout(db: AsyncSession, token: str) -> None:
    """End the session of ``token`` (committed; nothing if it had ended)."""
    await revoke_token(db, token)
    await db.commit()


async def me(db: AsyncSession, staff_id: int) -> dict[str, Any]:
    user = await db.get(StaffUser, staff_id)
    if user is None:  # a live session's user is never deleted; said plainly if it were
        raise NotAuthenticated("not_authenticated", "Please log in.")
    return user_body(user)
