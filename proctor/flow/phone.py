"""Step 5: pairing the candidate's phone (second view, 鹰眼监控).

The candidate's page asks for a pairing: a one-time token, shown as a QR code of the phone
page's address (the token in the URL's fragment, so it is not written to access logs). The
phone page exchanges the token once for a phone-scoped session that may stream the second
view of this candidate and nothing else. A new pairing voids the older unused tokens.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

import qrcode
import qrcode.image.svg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.auth import sessions as auth
from proctor.errors import Conflict, NotAuthenticated, NotFound
from proctor.flow.machine import Ctx, check
from proctor.flow.steps import record_event
from proctor.store.db import Database
from proctor.store.tables import Attempt, Candidate, PairingToken

PAIRING_MINUTES = 10
PHONE_PAGE = "/exam/phone.html"


@dataclass(frozen=True)
class Pairing:
    token: str
    url: str
    expires_at: datetime
    qr_svg: str


def qr_svg(text: str) -> str:
    """The QR code of ``text`` as an SVG document (no raster library needed)."""
    image = qrcode.make(
        text,
        image_factory=qrcode.image.svg.SvgPathFillImage,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=10,
        border=2,
    )
    buf = io.BytesIO()
    image.save(buf)
    return buf.getvalue().decode()


async def create_pairing(db: AsyncSession, ctx: Ctx, base_url: str, now: datetime) -> Pairing:
    check(ctx, "pair_phone")
    unused = await db.scalars(
        select(PairingToken).where(
            PairingToken.candidate_id == ctx.candidate.id, PairingToken.used_at.is_(None)
        )
    )
    for row in unused:
        row.expires_at = min(row.expires_at, now)
    token = secrets.token_urlsafe(24)
    expires = now + timedelta(minutes=PAIRING_MINUTES)
    db.add(
        PairingToken(
            token_sha256=auth.token_digest(token),
            candidate_id=ctx.candidate.id,
            created_at=now,
            expires_at=expires,
        )
    )
    url = f"{base_url.rstrip('/')}{PHONE_PAGE}#pair={quote(token)}"
    return Pairing(token, url, expires, qr_svg(url))


async def pair(database: Database, token: str, now: datetime) -> tuple[str, Candidate]:
    """Exchange a pairing token (once) for a phone session, committed on the database
    writer thread (issue 22: 30 phones pair within minutes while the server is busy with
    media). The candidate returned is detached (id and name readable)."""
    return await database.write(lambda db: _pair(db, token, now))


async def _pair(db: AsyncSession, token: str, now: datetime) -> tuple[str, Candidate]:
    row = await db.scalar(
        select(PairingToken)
        .where(PairingToken.token_sha256 == auth.token_digest(token.strip()))
        .with_for_update()
    )
    if row is None:
        raise NotAuthenticated(
            "pairing_invalid",
            "二维码无效，请在电脑上重新生成二维码后再扫描。 This QR code is not valid: make a new "
            "one on the computer and scan it again.",
        )
    if row.used_at is not None:
        raise Conflict(
            "pairing_used",
            "此二维码已被使用过。如需更换手机，请在电脑上重新生成二维码。 This QR code was used "
            "already. To pair another phone, make a new QR code on the computer.",
        )
    if row.expires_at <= now:
        raise NotAuthenticated(
            "pairing_expired",
            "二维码已过期，请在电脑上重新生成。 This QR code has expired: make a new one on the "
            "computer.",
        )
    candidate = await db.get(Candidate, row.candidate_id)
    if candidate is None:
        raise NotAuthenticated("pairing_invalid", "This QR code is not valid.")
    row.used_at = now
    session = await auth.open_phone_session(db, candidate.id, now)
    attempt = await db.scalar(select(Attempt).where(Attempt.candidate_id == candidate.id))
    if attempt is not None:
        attempt.phone_paired_at = now
        attempt.updated_at = now
    await record_event(db, candidate.id, "phone_paired", now)
    return session, candidate


async def phone_me(db: AsyncSession, candidate_id: int) -> dict:
    """What the phone page shows: whose phone it is and the candidate's step."""
    cand = await db.get(Candidate, candidate_id)
    if cand is None:
        raise NotFound("unknown_candidate", "This phone's candidate is gone.")
    attempt = await db.scalar(select(Attempt).where(Attempt.candidate_id == cand.id))
    return {
        "candidate": {"id": cand.id, "name": cand.name},
        "step": attempt.step if attempt else None,
    }
