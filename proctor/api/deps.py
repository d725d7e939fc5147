"""Request plumbing shared by the routes: the runtime, a DB session, the exam service and
its clock, who is calling."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

from fastapi import Depends, Request, WebSocket
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.auth.roles import ROLES, roles_with
from proctor.auth.sessions import Principal, resolve_token
from proctor.errors import Forbidden, NotAuthenticated
from proctor.flow.service import ExamService
from proctor.runtime import Runtime
from proctor.store.tables import AuthSession

COOKIE = "proctor_session"
STAFF_ROLES = frozenset(ROLES)
#: who may act on candidates during a sitting (admit, extend, release)
INVIGILATING_ROLES = roles_with("console")
#: who may set sittings up (rosters, banks, papers) and export results
ADMIN_ROLES = roles_with("administer")
#: who may grade short answers
GRADING_ROLES = roles_with("grade")


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def exam_service(request: Request) -> ExamService:
    return request.app.state.exam


def now(exam: ExamService = Depends(exam_service)) -> datetime:
    """The app clock's time, read once per request."""
    return exam.clock.now()


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


async def principal(
    request: Request,
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
    exam: ExamService = Depends(exam_service),
) -> Principal:
    token = token_from(request)
    if not token:
        raise NotAuthenticated("not_authenticated", "Please log in.")
    if not isinstance(exam, ExamService):  # called directly (proctor.api.scope)
        exam = request.app.state.exam
    idle = exam.settings.staff_idle_minutes * 60
    who = await resolve_token(db, token, at, touch=True, staff_idle_seconds=idle)
    touched = [row for row in db.dirty if isinstance(row, AuthSession)]
    if touched:  # the session's last-seen time moved: keep it (a second login checks it)
        await _touch(request.app.state.runtime, touched, db)
    return who


async def _touch(rt: Runtime, rows: list[AuthSession], db: AsyncSession) -> None:
    """Write the sessions' new last-seen times as one short transaction on the database
    writer (``Database.write``), not in the request's session: that one is left without a
    pending write, so it takes no write lock while the request goes on."""
    seen = {row.token_sha256: row.last_seen_at for row in rows}
    for row in rows:
        db.expunge(row)

    async def write(s: AsyncSession) -> None:
        for digest, at in seen.items():
            await s.execute(
                update(AuthSession)
                .where(AuthSession.token_sha256 == digest)
                .values(last_seen_at=at)
            )

    await rt.db.write(write)


async def candidate(p: Principal = Depends(principal)) -> Principal:
    if p.kind != "candidate":
        raise Forbidden("candidates_only", "This is for candidates.")
    return p


async def candidate_or_phone(p: Principal = Depends(principal)) -> Principal:
    """The candidate, or their paired phone (which may only stream the second view)."""
    if p.kind not in ("candidate", "phone"):
        raise Forbidden("candidates_only", "This is for candidates.")
    return p


async def phone(p: Principal = Depends(principal)) -> Principal:
    if p.kind != "phone":
        raise Forbidden("phone_only", "This is for the candidate's paired phone.")
    return p


#: a route dependency that answers the staff user allowed to call the route
StaffCheck = Callable[..., Awaitable[Principal]]


async def staff(p: Principal = Depends(principal)) -> Principal:
    if p.kind != "staff" or p.role not in STAFF_ROLES:
        raise Forbidden("staff_only", "This is for exam staff.")
    return p


def _staff_in(roles: frozenset[str], code: str, message: str) -> StaffCheck:
    """A dependency: the staff user, if their role is one of ``roles`` (403 ``code`` if
    not)."""

    async def check(p: Principal = Depends(staff)) -> Principal:
        if p.role not in roles:
            raise Forbidden(code, message)
        return p

    return check


invigilator = _staff_in(
    INVIGILATING_ROLES, "invigilators_only", "Only invigilators and chief examiners may do this."
)
admin = _staff_in(
    ADMIN_ROLES, "admins_only", "Only administrators and chief examiners may do this."
)
grader = _staff_in(GRADING_ROLES, "graders_only", "Only reviewers and chief examiners may grade.")
