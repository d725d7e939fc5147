"""Logins and sessions: candidates (sitting password + ID number, see proctor.exam.flow),
the candidate's phone (a phone-scoped session from a one-time pairing token) and staff."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict, NotAuthenticated
from proctor.store.tables import AuthSession, StaffUser, utcnow

CANDIDATE_SESSION_HOURS = 12
PHONE_SESSION_HOURS = 12
STAFF_SESSION_HOURS = 12
#: a session's last-seen time is written at most this often (one write per poll otherwise)
TOUCH_SECONDS = 5.0


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1)
    return hmac.compare_digest(digest.hex(), digest_hex)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a candidate, a candidate's phone, or a staff user."""

    kind: str  # candidate | phone | staff
    subject_id: int  # the candidate's id for candidate and phone sessions
    role: str  # candidate | phone | invigilator | chief | reviewer | admin
    # when the session ends (TURN credentials never outlive it; issue 20)
    expires_at: datetime | None = field(default=None, compare=False)


async def new_session(
    db: AsyncSession, kind: str, subject_id: int, hours: int, now: datetime | None = None
) -> str:
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    db.add(
        AuthSession(
            token_sha256=token_digest(token),
            kind=kind,
            subject_id=subject_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    return token


async def open_candidate_session(
    db: AsyncSession,
    candidate_id: int,
    now: datetime,
    takeover_seconds: float,
    current_token: str | None = None,
) -> str:
    """A new candidate session, the only one of this candidate from now on.

    Refused (``already_logged_in``) while another session of the candidate made a request
    in the last ``takeover_seconds``: a second concurrent login. A session that went quiet
    (the other device is gone) is taken over; so is the caller's own session (the same
    browser logging in again)."""
    own = token_digest(current_token) if current_token else None
    live = list(
        await db.scalars(
            select(AuthSession).where(
                AuthSession.kind == "candidate",
                AuthSession.subject_id == candidate_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
        )
    )
    for row in live:
        if row.token_sha256 == own:
            continue
        seen = row.last_seen_at or row.created_at
        quiet = (now - seen).total_seconds()
        if quiet < takeover_seconds:
            wait = max(1, int(takeover_seconds - quiet))
            raise Conflict(
                "already_logged_in",
                "该考生已在另一台设备上登录。如果那台设备已关闭，请在"
                f"{wait}秒后重试，或请监考老师解除登录。 This candidate is already logged in on "
                f"another device. If that device is gone, try again in {wait} s or ask the "
                "invigilator to release the session.",
            )
    for row in live:
        row.revoked_at = now
    return await new_session(db, "candidate", candidate_id, CANDIDATE_SESSION_HOURS, now)


async def open_phone_session(db: AsyncSession, candidate_id: int, now: datetime) -> str:
    """A session that may only stream the candidate's second view; earlier phone sessions
    of the candidate end (the newest paired phone is the phone)."""
    rows = await db.scalars(
        select(AuthSession).where(
            AuthSession.kind == "phone",
            AuthSession.subject_id == candidate_id,
            AuthSession.revoked_at.is_(None),
        )
    )
    for row in rows:
        row.revoked_at = now
    return await new_session(db, "phone", candidate_id, PHONE_SESSION_HOURS, now)


async def release_candidate(db: AsyncSession, candidate_id: int, now: datetime) -> int:
    """End every candidate session of a candidate (so they can log in on another device
    at once); returns how many were ended."""
    rows = list(
        await db.scalars(
            select(AuthSession).where(
                AuthSession.kind == "candidate",
                AuthSession.subject_id == candidate_id,
                AuthSession.revoked_at.is_(None),
            )
        )
    )
    for row in rows:
        row.revoked_at = now
    return len(rows)


async def login_staff(db: AsyncSession, username: str, password: str) -> tuple[str, StaffUser]:
    user = await db.scalar(select(StaffUser).where(StaffUser.username == username.strip()))
    if user is None or not verify_password(password, user.password_hash):
        raise NotAuthenticated("invalid_credentials", "Wrong username or password.")
    token = await new_session(db, "staff", user.id, STAFF_SESSION_HOURS)
    return token, user


async def resolve_token(
    db: AsyncSession, token: str, now: datetime | None = None, touch: bool = False
) -> Principal:
    """Who holds ``token``. With ``touch``, the session's last-seen time is brought up to
    date (at most every ``TOUCH_SECONDS``; the caller commits)."""
    now = now or utcnow()
    row = await db.get(AuthSession, token_digest(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise NotAuthenticated("not_authenticated", "Please log in (your session has ended).")
    if touch and (
        row.last_seen_at is None or (now - row.last_seen_at).total_seconds() >= TOUCH_SECONDS
    ):
        row.last_seen_at = now
    if row.kind == "staff":
        user = await db.get(StaffUser, row.subject_id)
        if user is None:
            raise NotAuthenticated("not_authenticated", "Please log in.")
        return Principal("staff", user.id, user.role, row.expires_at)
    if row.kind == "phone":
        return Principal("phone", row.subject_id, "phone", row.expires_at)
    return Principal("candidate", row.subject_id, "candidate", row.expires_at)


async def revoke_token(db: AsyncSession, token: str, now: datetime | None = None) -> None:
    row = await db.get(AuthSession, token_digest(token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = now or utcnow()
