"""What an invigilator does to a candidate: for now, on-screen text warnings (弹幕警告)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Invalid, NotFound
from proctor.events.bus import Bus, candidate_channel, sitting_channel
from proctor.events.messages import alert_body, danmaku_body
from proctor.exam.sittings import get_candidate
from proctor.store.tables import Alert, Candidate, Danmaku, utcnow

DANMAKU_MAX = 200


async def send_danmaku(
    db: AsyncSession, bus: Bus, *, sender_id: int, candidate_id: int, text: str
) -> dict:
    text = " ".join(text.split())
    if not 1 <= len(text) <= DANMAKU_MAX:
        raise Invalid("bad_danmaku", f"A warning needs 1 to {DANMAKU_MAX} characters.")
    candidate = await get_candidate(db, candidate_id)
    row = Danmaku(candidate_id=candidate.id, sender_id=sender_id, text=text, sent_at=utcnow())
    db.add(row)
    await db.commit()  # durable before anyone is told
    body = danmaku_body(row)
    await bus.publish(candidate_channel(candidate.id), {"type": "danmaku", **body})
    await bus.publish(sitting_channel(candidate.sitting_id), {"type": "danmaku", "danmaku": body})
    return body


async def mark_danmaku(
    db: AsyncSession, bus: Bus, *, candidate_id: int, danmaku_id: int, state: str
) -> dict | None:
    """Record that a danmaku reached the candidate's page (``delivered``) or was shown
    (``seen``). Idempotent; ignores ids that are not this candidate's."""
    row = await db.get(Danmaku, danmaku_id)
    if row is None or row.candidate_id != candidate_id:
        return None
    now = utcnow()
    changed = False
    if row.delivered_at is None:
        row.delivered_at = now
        changed = True
    if state == "seen" and row.seen_at is None:
        row.seen_at = now
        changed = True
    if not changed:
        return None
    await db.commit()
    candidate = await db.get(Candidate, candidate_id)
    body = danmaku_body(row)
    await bus.publish(sitting_channel(candidate.sitting_id), {"type": "danmaku", "danmaku": body})
    return body


async def list_alerts(db: AsyncSession, sitting_id: int, limit: int = 100) -> list[dict]:
    if not 1 <= limit <= 1000:
        raise Invalid("bad_limit", "limit must be between 1 and 1000")
    rows = await db.execute(
        select(Alert, Candidate)
        .join(Candidate, Candidate.id == Alert.candidate_id)
        .where(Alert.sitting_id == sitting_id)
        .order_by(Alert.raised_at.desc(), Alert.id.desc())
        .limit(limit)
    )
    return [alert_body(a, c) for a, c in rows.all()]


async def open_alert_counts(db: AsyncSession, sitting_id: int) -> dict[int, int]:
    from sqlalchemy import func

    rows = await db.execute(
        select(Alert.candidate_id, func.count())
        .where(Alert.sitting_id == sitting_id, Alert.status == "open")
        .group_by(Alert.candidate_id)
    )
    return {cid: n for cid, n in rows.all()}


async def get_evidence_row(db: AsyncSession, evidence_id: int):
    from proctor.store.tables import Evidence

    row = await db.get(Evidence, evidence_id)
    if row is None:
        raise NotFound("unknown_evidence", f"No evidence {evidence_id}.")
    return row
