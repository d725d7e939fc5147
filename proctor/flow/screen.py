"""Leaving the exam page (切屏, issue 18): the candidate page's events (hidden / visible,
blur / focus, full screen left / entered) become *leaves*, each from the moment the page
stopped being in front of the candidate to the moment it was back. They are counted per
candidate (count and total seconds, for the console's tile and the exam-room record) and,
as the documents' rule says, warned first and reported after: the leaves before
``screen_left_alert_count`` get a hint on the candidate's page, each leave from that one on
is a ``screen_left`` alert whose episode lasts as long as the candidate stays away.

Leaving full screen counts only when the sitting requires full screen
(``RuleSettings.fullscreen_required``). Nothing here is kept in memory: the leaves are
worked out from the stored events, so every server process agrees."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.events.messages import alert_body
from proctor.evidence import chain
from proctor.rules import RuleSettings
from proctor.store.tables import Alert, Candidate, CandidateEvent, utcnow
from proctor.times import iso

TYPE = "screen_left"
#: a page event that takes the candidate away, and the one that brings them back
AWAY = {"page_hidden": "hidden", "page_blur": "blur", "page_fullscreen_exit": "fullscreen"}
BACK = {"page_visible": "hidden", "page_focus": "blur", "page_fullscreen_enter": "fullscreen"}


@dataclass(frozen=True, slots=True)
class Leave:
    start: datetime
    end: datetime | None  # None: still away

    def seconds(self, now: datetime) -> float:
        return max(0.0, ((self.end or now) - self.start).total_seconds())


def leaves(events: Iterable[tuple[str, datetime]], fullscreen_required: bool) -> list[Leave]:
    """The leaves in time-ordered ``(kind, at)`` page events (``page_hidden`` ...): away
    while any of hidden / unfocused / (if required) out of full screen holds."""
    away: set[str] = set()
    out: list[Leave] = []
    start: datetime | None = None
    for kind, at in events:
        if kind in AWAY:
            reason = AWAY[kind]
            if reason == "fullscreen" and not fullscreen_required:
                continue
            away.add(reason)
        elif kind in BACK:
            away.discard(BACK[kind])
        else:
            continue
        if away and start is None:
            start = at
        elif not away and start is not None:
            out.append(Leave(start, at))
            start = None
    if start is not None:
        out.append(Leave(start, None))
    return out


def summary(found: list[Leave], now: datetime) -> dict[str, Any]:
    """What the tile and the record show: how often, how long in all, away since when."""
    ongoing = found[-1] if found and found[-1].end is None else None
    return {
        "count": len(found),
        "seconds": round(sum(leave.seconds(now) for leave in found), 1),
        "away_since": iso(ongoing.start) if ongoing else None,
    }


async def candidate_leaves(
    db: AsyncSession, candidate_ids: list[int], fullscreen_required: bool
) -> dict[int, list[Leave]]:
    if not candidate_ids:
        return {}
    rows = await db.execute(
        select(CandidateEvent.candidate_id, CandidateEvent.kind, CandidateEvent.at)
        .where(
            CandidateEvent.candidate_id.in_(candidate_ids),
            CandidateEvent.kind.in_([*AWAY, *BACK]),
        )
        .order_by(CandidateEvent.candidate_id, CandidateEvent.at, CandidateEvent.id)
    )
    events: dict[int, list[tuple[str, datetime]]] = {}
    for cid, kind, at in rows.all():
        events.setdefault(cid, []).append((kind, at))
    return {cid: leaves(evs, fullscreen_required) for cid, evs in events.items()}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a batch of page events did: ``warn`` the number of a new leave below the
    threshold (the page gets a hint), ``raised`` alerts opened, ``closed`` alerts ended."""

    summary: dict[str, Any]
    warn: int | None = None
    raised: tuple[int, ...] = ()
    closed: tuple[int, ...] = ()


async def after_page_events(
    db: AsyncSession,
    candidate: Candidate,
    rules: RuleSettings,
    now: datetime,
) -> tuple[Outcome, list[dict[str, Any]]]:
    """Call in the transaction that stored the batch's events (stamped ``now``): raises
    the ``screen_left`` alert of a new leave past the threshold, closes the one of a leave
    that ended, with their audit entries. Returns the outcome and the messages for the
    sitting's consoles, to publish once committed."""
    found = (await candidate_leaves(db, [candidate.id], rules.fullscreen_required)).get(
        candidate.id, []
    )
    threshold = rules.screen_left_alert_count
    warn = None
    raised: list[Alert] = []
    closed: list[Alert] = []
    for number, leave in enumerate(found, start=1):
        if leave.start == now and (threshold == 0 or number < threshold):
            warn = number
        if leave.start == now and threshold and number >= threshold:
            total = sum(x.seconds(now) for x in found[:-1])
            alert = Alert(
                sitting_id=candidate.sitting_id,
                candidate_id=candidate.id,
                type=TYPE,
                severity="critical" if number >= 2 * threshold else "warning",
                view="first",
                message=(
                    f"Left the exam page, {number} times so far "
                    f"(before this one {total:.0f} s away in all)"
                ),
                started_at=leave.start,
                raised_at=utcnow(),
                last_seen_at=leave.start,
                peak_score=float(number),
                peak_at=leave.start,
            )
            db.add(alert)
            await db.flush()
            await chain.append_record(db, "alert.raised", alert, actor=chain.SYSTEM)
            raised.append(alert)
        if leave.end == now:
            alert = await db.scalar(
                select(Alert).where(
                    Alert.candidate_id == candidate.id,
                    Alert.type == TYPE,
                    Alert.started_at == leave.start,
                    Alert.ended_at.is_(None),
                )
            )
            if alert is not None:
                alert.last_seen_at = alert.ended_at = now
                await chain.append_record(db, "alert.closed", alert, actor=chain.SYSTEM)
                closed.append(alert)
    messages = [{"type": "alert", "alert": alert_body(a, candidate)} for a in raised]
    messages += [{"type": "alert_update", "alert": alert_body(a, candidate)} for a in closed]
    outcome = Outcome(
        summary(found, now),
        warn,
        tuple(a.id for a in raised),
        tuple(a.id for a in closed),
    )
    return outcome, messages
