"""Logins and sessions for candidates (sitting password + ID number) and staff."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import NotAuthenticated
from proctor.store.tables import AuthSession, Candidate, Sitting, StaffUser, utcnow

CANDIDATE_SESSION_HOURS = 12
STAFF_SESSION_HOURS = 12


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


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a candidate or a staff user."""

    kind: str  # candidate | staff
    subject_id: int
    role: str  # candidate | invigilator | chief | reviewer | admin


async def _new_session(db: AsyncSession, kind: str, subject_id: int, hours: int) -> str:
    token = secrets.token_urlsafe(32)
    db.add(
        AuthSession(
            token_sha256=_token_digest(token),
            kind=kind,
            subject_id=subject_id,
            expires_at=utcnow() + timedelta(hours=hours),
        )
    )
    return token


INVALID_CANDIDATE = NotAuthenticated(
    "invalid_credentials",
    "The exam password or ID number is not right. Check both and try again. "
    "考试口令或身份证号不正确，请核对后重试。",
)


async def login_candidate(
    db: AsyncSession, sitting_password: str, id_number: str
) -> tuple[str, Candidate, Sitting]:
    sitting = await db.scalar(select(Sitting).where(Sitting.password == sitting_password.strip()))
    if sitting is None:
        raise INVALID_CANDIDATE
    candidate = await db.scalar(
        select(Candidate).where(
            Candidate.sitting_id == sitting.id,
            Candidate.id_number == id_number.strip().upper(),
        )
    )
    if candidate is None:
        raise INVALID_CANDIDATE
    token = await _new_session(db, "candidate", candidate.id, CANDIDATE_SESSION_HOURS)
    return token, candidate, sitting


async def login_staff(db: AsyncSession, username: str, password: str) -> tuple[str, StaffUser]:
    user = await db.scalar(select(StaffUser).where(StaffUser.username == username.strip()))
    if user is None or not verify_password(password, user.password_hash):
        raise NotAuthenticated("invalid_credentials", "Wrong username or password.")
    token = await _new_session(db, "staff", user.id, STAFF_SESSION_HOURS)
    return token, user


async def resolve_token(db: AsyncSession, token: str, now: datetime | None = None) -> Principal:
    now = now or utcnow()
    row = await db.get(AuthSession, _token_digest(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise NotAuthenticated("not_authenticated", "Please log in (your session has ended).")
    if row.kind == "staff":
        user = await db.get(StaffUser, row.subject_id)
        if user is None:
            raise NotAuthenticated("not_authenticated", "Please log in.")
        return Principal("staff", user.id, user.role)
    return Principal("candidate", row.subject_id, "candidate")


async def revoke_token(db: AsyncSession, token: str) -> None:
    row = await db.get(AuthSession, _token_digest(token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
