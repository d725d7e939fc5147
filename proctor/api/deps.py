"""Request plumbing shared by the routes: the runtime, a DB session, who is calling."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Depends, Request, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Forbidden, NotAuthenticated
from proctor.exam.auth import Principal, resolve_token
from proctor.runtime import Runtime

COOKIE = "proctor_session"
STAFF_ROLES = frozenset({"invigilator", "chief", "reviewer", "admin"})


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def db_session(rt: Runtime = Depends(runtime)) -> AsyncIterator[AsyncSession]:
    async with rt.db.session() as session:
        yield session


def token_from(request: Request | WebSocket) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    if isinstance(request, WebSocket) and request.query_params.get("token"):
        return request.query_params["token"]
    return request.cookies.get(COOKIE)


async def principal(request: Request, db: AsyncSession = Depends(db_session)) -> Principal:
    token = token_from(request)
    if not token:
        raise NotAuthenticated("not_authenticated", "Please log in.")
    return await resolve_token(db, token)


async def candidate(p: Principal = Depends(principal)) -> Principal:
    if p.kind != "candidate":
        raise Forbidden("candidates_only", "This is for candidates.")
    return p


async def staff(p: Principal = Depends(principal)) -> Principal:
    if p.kind != "staff" or p.role not in STAFF_ROLES:
        raise Forbidden("staff_only", "This is for exam staff.")
    return p
