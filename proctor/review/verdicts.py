"""Reviewers' decisions: on each alert (confirmed / dismissed, with a note) and on each
candidate (no issue / a violation with its category / a second review needed).

An automated alert never becomes a violation by itself: a violation is a candidate verdict
that a named reviewer records, with a category from the documents and a note saying why,
and the alerts it cites must each have been confirmed by a person. A candidate sent to a
second review is decided next by someone else. Every decision is a new row (the history
stays) and an entry of the audit chain; the newest row is the decision in force.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict, Invalid, NotFound
from proctor.evidence import chain
from proctor.store.tables import (
    Alert,
    AlertVerdict,
    Candidate,
    CandidateVerdict,
    StaffUser,
    utcnow,
)

ALERT_DECISIONS = ("confirmed", "dismissed")
OUTCOMES = {
    "no_issue": "No issue 无违规",
    "violation": "Violation 违规违纪",
    "second_review": "Needs a second review 需复核",
}
#: DOMAIN, violations and their handling (考生违规违纪处理)
CATEGORIES = {
    "warning": "Warning 警告",
    "paper_voided": "Paper voided 试卷作废",
    "score_cancelled": "Score of this sitting cancelled 取消本场考试成绩",
    "disqualified": "Disqualified and removed 取消考试资格",
}
NOTE_MAX = 2000


def _note(note: str | None) -> str:
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise Invalid("note_too_long", f"A note has at most {NOTE_MAX} characters.")
    return note


async def staff_names(db: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await db.execute(
        select(StaffUser.id, StaffUser.display_name, StaffUser.username).where(
            StaffUser.id.in_(wanted)
        )
    )
    return {i: (name or user) for i, name, user in rows.all()}


async def latest_alert_verdicts(
    db: AsyncSession, *, sitting_id: int | None = None, candidate_id: int | None = None
) -> dict[int, AlertVerdict]:
    query = select(AlertVerdict).order_by(AlertVerdict.id)
    if sitting_id is not None:
        query = query.where(AlertVerdict.sitting_id == sitting_id)
    if candidate_id is not None:
        query = query.where(AlertVerdict.candidate_id == candidate_id)
    out: dict[int, AlertVerdict] = {}
    for row in await db.scalars(query):
        out[row.alert_id] = row  # newest wins
    return out


async def candidate_verdict_history(db: AsyncSession, candidate_id: int) -> list[CandidateVerdict]:
    return list(
        await db.scalars(
            select(CandidateVerdict)
            .where(CandidateVerdict.candidate_id == candidate_id)
            .order_by(CandidateVerdict.id)
        )
    )


async def latest_candidate_verdicts(
    db: AsyncSession, sitting_id: int
) -> dict[int, CandidateVerdict]:
    out: dict[int, CandidateVerdict] = {}
    for row in await db.scalars(
        select(CandidateVerdict)
        .where(CandidateVerdict.sitting_id == sitting_id)
        .order_by(CandidateVerdict.id)
    ):
        out[row.candidate_id] = row
    return out


def alert_verdict_body(row: AlertVerdict, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "alert_id": row.alert_id,
        "decision": row.decision,
        "note": row.note,
        "reviewer_id": row.reviewer_id,
        "reviewer": names.get(row.reviewer_id, str(row.reviewer_id)),
        "decided_at": row.decided_at.isoformat(),
    }


def candidate_verdict_body(row: CandidateVerdict, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "candidate_id": row.candidate_id,
        "outcome": row.outcome,
        "outcome_label": OUTCOMES.get(row.outcome, row.outcome),
        "category": row.category,
        "category_label": CATEGORIES.get(row.category or "", None),
        "note": row.note,
        "alert_ids": list(row.alert_ids or []),
        "reviewer_id": row.reviewer_id,
        "reviewer": names.get(row.reviewer_id, str(row.reviewer_id)),
        "decided_at": row.decided_at.isoformat(),
    }


async def decide_alert(
    db: AsyncSession, *, alert_id: int, decision: str, note: str | None, reviewer_id: int
) -> dict[str, Any]:
    """Record a reviewer's decision on one alert (in the caller's transaction)."""
    if decision not in ALERT_DECISIONS:
        raise Invalid("bad_decision", "An alert is either confirmed or dismissed.")
    alert = await db.get(Alert, alert_id)
    if alert is None:
        raise NotFound("unknown_alert", f"No alert {alert_id}.")
    row = AlertVerdict(
        alert_id=alert.id,
        sitting_id=alert.sitting_id,
        candidate_id=alert.candidate_id,
        decision=decision,
        note=_note(note),
        reviewer_id=reviewer_id,
        decided_at=utcnow(),
    )
    db.add(row)
    # the live console's status follows the reviewer's decision
    alert.status = "dismissed" if decision == "dismissed" else "acknowledged"
    await db.flush()
    await chain.append_record(db, "review.alert_verdict", row, actor=chain.staff_actor(reviewer_id))
    return alert_verdict_body(row, await staff_names(db, [reviewer_id]))


async def decide_candidate(
    db: AsyncSession,
    *,
    candidate_id: int,
    outcome: str,
    category: str | None,
    note: str | None,
    alert_ids: list[int] | None,
    reviewer_id: int,
) -> dict[str, Any]:
    """Record a reviewer's decision on one candidate (in the caller's transaction)."""
    candidate = await db.get(Candidate, candidate_id)
    if candidate is None:
        raise NotFound("unknown_candidate", f"No candidate {candidate_id}.")
    if outcome not in OUTCOMES:
        raise Invalid("bad_outcome", f"Outcome must be one of {', '.join(OUTCOMES)}.")
    note = _note(note)
    cited = sorted(set(alert_ids or []))
    if outcome == "violation":
        if category not in CATEGORIES:
            raise Invalid(
                "category_required",
                f"A violation needs its category: {', '.join(CATEGORIES)} (考生违规违纪处理).",
            )
        if not note:
            raise Invalid("note_required", "Say what the violation was (a note is required).")
    elif category is not None:
        raise Invalid("bad_category", "Only a violation has a category.")
    if outcome == "second_review" and not note:
        raise Invalid("note_required", "Say what the second reviewer should look at.")
    if cited:
        rows = (
            await db.execute(select(Alert.id, Alert.candidate_id).where(Alert.id.in_(cited)))
        ).all()
        theirs = {i for i, c in rows if c == candidate_id}
        missing = [i for i in cited if i not in theirs]
        if missing:
            raise Invalid("unknown_alert", f"Alerts {missing} are not alerts of this candidate.")
        if outcome == "violation":
            decided = await latest_alert_verdicts(db, candidate_id=candidate_id)
            unconfirmed = [
                i for i in cited if i not in decided or decided[i].decision != "confirmed"
            ]
            if unconfirmed:
                raise Invalid(
                    "alert_not_confirmed",
                    f"Alerts {unconfirmed} were not confirmed by a reviewer: an automated "
                    "alert alone is never a violation. Confirm each cited alert first.",
                )
    history = await candidate_verdict_history(db, candidate_id)
    if (
        history
        and history[-1].outcome == "second_review"
        and history[-1].reviewer_id == reviewer_id
    ):
        raise Conflict(
            "second_reviewer_required",
            "This candidate was sent to a second review by you: another reviewer decides.",
        )
    row = CandidateVerdict(
        candidate_id=candidate.id,
        sitting_id=candidate.sitting_id,
        outcome=outcome,
        category=category if outcome == "violation" else None,
        note=note,
        alert_ids=cited,
        reviewer_id=reviewer_id,
        decided_at=utcnow(),
    )
    db.add(row)
    await db.flush()
    await chain.append_record(
        db, "review.candidate_verdict", row, actor=chain.staff_actor(reviewer_id)
    )
    return candidate_verdict_body(row, await staff_names(db, [reviewer_id]))


async def dismissed_rates(db: AsyncSession, sitting_id: int) -> list[dict[str, Any]]:
    """Per alert type of the sitting: how many alerts, how many reviewed, and the share of
    reviewed ones that were dismissed (a high rate says the rule's thresholds are too
    eager for this sitting)."""
    totals = dict(
        (
            await db.execute(
                select(Alert.type, func.count())
                .where(Alert.sitting_id == sitting_id)
                .group_by(Alert.type)
            )
        ).all()
    )
    decided = await latest_alert_verdicts(db, sitting_id=sitting_id)
    types = dict(
        (
            await db.execute(
                select(Alert.id, Alert.type).where(Alert.id.in_(list(decided) or [-1]))
            )
        ).all()
    )
    out = []
    for alert_type in sorted(totals):
        confirmed = sum(
            1
            for a, v in decided.items()
            if types.get(a) == alert_type and v.decision == "confirmed"
        )
        dismissed = sum(
            1
            for a, v in decided.items()
            if types.get(a) == alert_type and v.decision == "dismissed"
        )
        reviewed = confirmed + dismissed
        out.append(
            {
                "type": alert_type,
                "alerts": totals[alert_type],
                "reviewed": reviewed,
                "confirmed": confirmed,
                "dismissed": dismissed,
                "dismissed_rate": round(dismissed / reviewed, 3) if reviewed else None,
            }
        )
    return out
