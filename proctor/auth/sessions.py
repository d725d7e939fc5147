"""Logins and sessions: candidates (sitting password + ID number, see proctor.flow.steps),
the candidate's phone (a phone-scoped session from a one-time pairing token) and staff."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.auth import ratelimit
from proctor.errors import Conflict, NotAuthenticated
from proctor.store.db import Database
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


#: checked instead when the username is unknown, so that the answer takes as long as for a
#: known one (the answer time must not tell which usernames exist)
_DUMMY_HASH = (
    "scrypt$9686621a30a087e4e1cd46fe7ed5aa1d$3d79ff15e271ef1649b65916ab452a1c87f6bd580899c89a"
    "6b8304473e4171cf9e0532f5560493f9464c1786eaf9a5862871c0b53a872cc438d5f20eb56e0306"
)


class PasswordChecker:
    """Runs scrypt (about 50 ms of CPU and 16 MB each) in a small thread pool, never on the
    event loop; at most ``threads`` run at once, the rest wait their turn in the pool's
    queue while the loop keeps serving everyone else. Owned by the app's lifespan."""

    def __init__(self, threads: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="scrypt")

    async def verify(self, password: str, stored: str | None) -> bool:
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(
            self._pool, verify_password, password, stored or _DUMMY_HASH
        )
        return ok and stored is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


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
    _end(live, now)
    return await new_session(db, "candidate", candidate_id, CANDIDATE_SESSION_HOURS, now)


async def open_phone_session(db: AsyncSession, candidate_id: int, now: datetime) -> str:
    """A session that may only stream the candidate's second view; earlier phone sessions
    of the candidate end (the newest paired phone is the phone)."""
    await end_phone_sessions(db, candidate_id, now)
    return await new_session(db, "phone", candidate_id, PHONE_SESSION_HOURS, now)


async def release_candidate(db: AsyncSession, candidate_id: int, now: datetime) -> int:
    """End every candidate session of a candidate (so they can log in on another device
    at once), and their paired phone's (it pairs again from the new login); returns how
    many candidate sessions were ended."""
    await end_phone_sessions(db, candidate_id, now)
    return _end(await _live_sessions(db, "candidate", candidate_id), now)


async def end_phone_sessions(db: AsyncSession, candidate_id: int, now: datetime) -> None:
    """The paired phone's session ends with the candidate's (logout, release)."""
    _end(await _live_sessions(db, "phone", candidate_id), now)


async def _live_sessions(db: AsyncSession, kind: str, subject_id: int) -> list[AuthSession]:
    """The sessions of this kind and subject not ended yet."""
    return list(
        await db.scalars(
            select(AuthSession).where(
                AuthSession.kind == kind,
                AuthSession.subject_id == subject_id,
                AuthSession.revoked_at.is_(None),
            )
        )
    )


def _end(rows: list[AuthSession], now: datetime) -> int:
    """End these sessions; returns how many."""
    for row in rows:
        row.revoked_at = now
    return len(rows)


async def login_staff(
    database: Database,
    username: str,
    password: str,
    *,
    checker: PasswordChecker,
    limits: ratelimit.LoginLimits,
    client: str,
    now: datetime,
    challenge: str | None = None,
    solution: str | None = None,
) -> tuple[str, StaffUser]:
    """Rate-limited like the candidates' login (per username *and* address, per address;
    exponential back-off with a challenge): checked before any scrypt runs, so a flood of
    wrong passwords costs a database query each, not 50 ms of CPU. Refused with
    ``invalid_credentials`` whether the username exists or not, in the same time.

    Its writes (a used challenge, a counted failure, the new session) are short
    transactions on the database writer thread and the password is checked between them,
    outside any transaction: committed on the request's session, the new session's row
    held SQLite's write lock across the loop's turns, 1-7 s each on a busy demo (a smoke
    sitting of 10 candidates whose headless clients log in as the invigilator to admit
    them), while every other writer waited. The returned user is detached (its columns
    readable)."""
    keys = [
        ratelimit.staff_key(username, client, limits.max_failures_per_id),
        ratelimit.address_key(client, limits.max_failures_per_address),
    ]

    async def admitted(db: AsyncSession) -> StaffUser | None:
        await ratelimit.check(
            db, keys, now, limits.backoff, limits.secret, challenge=challenge, solution=solution
        )
        return await db.scalar(select(StaffUser).where(StaffUser.username == username.strip()))

    user = await database.write(admitted)
    if not await checker.verify(password, user.password_hash if user is not None else None):
        await database.write(lambda db: ratelimit.record(db, keys, now, limits.window_seconds))
        raise NotAuthenticated(
            "invalid_credentials",
            "用户名或密码不正确。 Wrong username or password.",
        )
    assert user is not None
    staff_id = user.id
    token = await database.write(
        lambda db: new_session(db, "staff", staff_id, STAFF_SESSION_HOURS, now)
    )
    return token, user


async def resolve_token(
    db: AsyncSession,
    token: str,
    now: datetime | None = None,
    touch: bool = False,
    staff_idle_seconds: float = 0.0,
) -> Principal:
    """Who holds ``token``. With ``touch``, the session's last-seen time is brought up to
    date (at most every ``TOUCH_SECONDS``; the caller commits). A staff session that made
    no request for ``staff_idle_seconds`` (0: no limit) has ended (``session_idle``)."""
    now = now or utcnow()
    row = await db.get(AuthSession, token_digest(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise NotAuthenticated("not_authenticated", "Please log in (your session has ended).")
    seen = row.last_seen_at or row.created_at
    if row.kind == "staff" and staff_idle_seconds > 0 and seen is not None:
        if (now - seen).total_seconds() > staff_idle_seconds:
            raise NotAuthenticated(
                "session_idle",
                f"长时间未操作（{int(staff_idle_seconds // 60)}分钟），请重新登录。 Nothing was "
                f"done for {int(staff_idle_seconds // 60)} minutes: please log in again.",
            )
    if row.kind == "staff":
        # loaded before the touch below: a query after it would autoflush the change and
        # leave the session no longer "dirty", so the caller would not commit it
        user = await db.get(StaffUser, row.subject_id)
        if user is None:
            raise NotAuthenticated("not_authenticated", "Please log in.")
        who = Principal("staff", user.id, user.role, row.expires_at)
    elif row.kind == "phone":
        who = Principal("phone", row.subject_id, "phone", row.expires_at)
    else:
        who = Principal("candidate", row.subject_id, "candidate", row.expires_at)
    if touch and (
        row.last_seen_at is None or (now - row.last_seen_at).total_seconds() >= TOUCH_SECONDS
    ):
        row.last_seen_at = now
    return who


async def revoke_token(
    db: AsyncSession, token: str, now: datetime | None = None
) -> AuthSession | None:
    """End the session (if it was live); returns it."""
    row = await db.get(AuthSession, token_digest(token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = now or utcnow()
        return row
    return None


async def logout_candidate(database: Database, token: str, now: datetime) -> None:
    """End a candidate's session and their paired phone's, in one short transaction on the
    database writer thread (a logout never holds SQLite's write lock across the loop)."""

    async def write(db: AsyncSession) -> None:
        ended = await revoke_token(db, token, now)
        if ended is not None and ended.kind == "candidate":
            await end_phone_sessions(db, ended.subject_id, now)

    await database.write(write)
