"""Refused logins are counted per key in the database, so that the limit holds across
server processes. The keys are chosen so that nobody can lock another person out:

- ``id:<ID number>@<address>`` (candidates) and ``staff:<username digest>@<address>``
  (staff): guesses at one account from one address. Failures typed elsewhere (an impostor
  with the victim's ID number) never count against the victim's own address.
- ``addr:<address>``: every refused login from one address (an exam centre behind one NAT
  shares it), with a higher limit.

Past a key's limit the back-off is exponential: the n-th failure over the limit closes
the key for ``base * 2**n`` seconds (at most the window). A closed key does not refuse the
right credentials for good: the refusal carries a proof-of-work *challenge* (find a
``solution`` such that ``sha256(challenge + ":" + solution)`` starts with ``bits`` zero
bits); a login that sends a solved, unused challenge is checked whatever the back-off.
Every further failure makes the next challenge harder (one bit per failure, up to
``MAX_BITS``), so guessing stays slow while a candidate's browser solves one in about a
second. An invigilator clears a candidate's keys (:func:`clear_candidate`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Invalid, TooMany
from proctor.store.tables import LoginFailure

#: challenge difficulty: leading zero bits of sha256 (16: ~65k hashes, well under a second
#: in a browser); each failure past a key's limit adds one bit, up to MAX_BITS
BASE_BITS = 16
MAX_BITS = 20
#: how long an issued challenge may be answered
CHALLENGE_SECONDS = 300


@dataclass(frozen=True)
class Key:
    name: str
    limit: int


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 10.0
    window_seconds: float = 300.0

    def delay(self, failures: int, limit: int) -> float:
        """How long a key stays closed after its latest failure."""
        if failures < limit:
            return 0.0
        over = min(failures - limit, 30)
        return min(self.window_seconds, self.base_seconds * 2**over)


@dataclass(frozen=True)
class LoginLimits:
    max_failures_per_id: int = 5  # per ID number (or staff username) *and* address
    max_failures_per_address: int = 30
    window_seconds: float = 300.0
    backoff_base_seconds: float = 10.0
    secret: str = ""  # signs the login challenges

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.backoff_base_seconds, self.window_seconds)


def address_key(client: str, limit: int) -> Key:
    return Key(f"addr:{client[:45]}", limit)


def candidate_key(id_number: str, client: str, limit: int) -> Key:
    return Key(f"id:{id_number[:32]}@{client[:45]}", limit)


def staff_key(username: str, client: str, limit: int) -> Key:
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:24]
    return Key(f"staff:{digest}@{client[:45]}", limit)


# ----------------------------------------------------------------------------- challenge


def _sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]


def issue_challenge(secret: str, bits: int, now: datetime) -> dict[str, object]:
    expires = int(now.timestamp()) + CHALLENGE_SECONDS
    text = f"{expires}.{secrets.token_hex(8)}.{bits}"
    return {"challenge": f"{text}.{_sign(secret, text)}", "bits": bits}


def leading_zero_bits(digest: bytes) -> int:
    n = 0
    for byte in digest:
        if byte == 0:
            n += 8
            continue
        return n + 8 - byte.bit_length()
    return n


def solve(challenge: str, bits: int) -> str:
    """What a client does (the headless client and the tests; the page in JavaScript)."""
    i = 0
    while True:
        digest = hashlib.sha256(f"{challenge}:{i}".encode()).digest()
        if leading_zero_bits(digest) >= bits:
            return str(i)
        i += 1


BAD_CHALLENGE = Invalid(
    "bad_challenge",
    "验证已失效，请重新登录。 The login check expired or was already used: log in again.",
)


async def _challenge_ok(
    db: AsyncSession, secret: str, challenge: str, solution: str, bits_needed: int, now: datetime
) -> bool:
    try:
        expires, nonce, bits, sig = challenge.split(".")
        expires_at, bits_n = int(expires), int(bits)
    except ValueError:
        raise BAD_CHALLENGE from None
    if not hmac.compare_digest(sig, _sign(secret, f"{expires}.{nonce}.{bits}")):
        raise BAD_CHALLENGE
    if expires_at < now.timestamp():
        raise BAD_CHALLENGE
    digest = hashlib.sha256(f"{challenge}:{solution}".encode()).digest()
    if leading_zero_bits(digest) < bits_n:
        return False
    if bits_n < bits_needed:  # the key failed again since: a harder one is due
        return False
    used = f"pow:{sig}"
    if await db.scalar(select(func.count()).where(LoginFailure.key == used)):
        raise BAD_CHALLENGE
    db.add(LoginFailure(key=used, at=now))
    return True


# ----------------------------------------------------------------------------- the limit


async def check(
    db: AsyncSession,
    keys: list[Key],
    now: datetime,
    backoff: Backoff,
    secret: str,
    challenge: str | None = None,
    solution: str | None = None,
) -> None:
    """Raise ``too_many_attempts`` (429, with a challenge) while a key is closed, unless
    the caller sent a solved challenge of the difficulty due; then the login is checked."""
    since = now - timedelta(seconds=backoff.window_seconds)
    wait, bits = 0.0, 0
    for key in keys:
        count, latest = (
            await db.execute(
                select(func.count(), func.max(LoginFailure.at)).where(
                    LoginFailure.key == key.name, LoginFailure.at > since
                )
            )
        ).one()
        delay = backoff.delay(count, key.limit)
        if delay <= 0 or latest is None:
            continue
        left = (latest + timedelta(seconds=delay) - now).total_seconds()
        if left > 0:
            wait = max(wait, left)
            bits = max(bits, min(MAX_BITS, BASE_BITS + count - key.limit))
    if wait <= 0:
        return
    if challenge and solution is not None:
        if await _challenge_ok(db, secret, challenge, solution, bits, now):
            return
    seconds = max(1, int(wait + 0.999))
    error = TooMany(
        "too_many_attempts",
        f"登录失败次数过多，请{max(1, -(-seconds // 60))}分钟后再试，或完成验证后立即登录。 "
        f"Too many failed logins: wait {seconds} s, then check the password and ID number "
        "and try again (or let the page pass its check to log in at once).",
    )
    error.details = {"retry_after": seconds, **issue_challenge(secret, bits, now)}
    raise error


async def record(db: AsyncSession, keys: list[Key], now: datetime, window_seconds: float) -> None:
    for key in keys:
        db.add(LoginFailure(key=key.name[:96], at=now))
    # keep the table small: drop what no window can count any more
    await db.execute(
        delete(LoginFailure).where(LoginFailure.at < now - timedelta(seconds=2 * window_seconds))
    )


async def clear_candidate(db: AsyncSession, id_number: str) -> int:
    """Forget the refused logins typed with this ID number (from any address); returns how
    many were forgotten. The address keys stay (they never refuse a solved challenge)."""
    result = await db.execute(
        delete(LoginFailure).where(LoginFailure.key.like(f"id:{id_number[:32]}@%"))
    )
    return result.rowcount or 0
