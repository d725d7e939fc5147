"""One time axis per candidate: alerts, random snapshots, alert screenshots and clips,
invigilators' actions (danmaku, time given back, manual identity admission, anything else
staff did to the candidate that the audit chain recorded), the flow's events (whatever
kinds the exam flow records: login, identity check, phone paired, submit, …) and the
connection losses, plus the review queue that orders the candidates of a sitting."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import NotFound
from proctor.events import history
from proctor.events.history import (  # noqa: F401 (connection_losses, exam_ended_at: here too)
    AlertRecord,
    AttemptRecord,
    History,
    as_utc,
    connection_losses,
    exam_ended_at,
)
from proctor.evidence.recordings import KIND as RECORDING_KIND
from proctor.evidence.zones import zone_body
from proctor.review import risk
from proctor.review.verdicts import (
    alert_verdict_body,
    candidate_verdict_body,
    candidate_verdict_history,
    latest_alert_verdicts,
    latest_candidate_verdicts,
    staff_names,
)
from proctor.store.lookup import get_sitting
from proctor.store.tables import (
    Alert,
    AuditEntry,
    Candidate,
    Evidence,
    Sitting,
)
from proctor.times import iso_utc as iso

#: audit kinds shown from their own tables (or not actions on the candidate)
_COVERED_KINDS = ("danmaku.", "review.", "access.", "retention.", "console.")


def evidence_url(evidence_id: int) -> str:
    return f"/api/review/evidence/{evidence_id}"


def sitting_body(s: Sitting) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "subject": s.subject,
        "starts_at": iso(s.starts_at),
        "ends_at": iso(s.ends_at),
        # the pages show times in the sitting's zone (issue 23)
        **zone_body(s, s.starts_at),
    }


def candidate_body(c: Candidate) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "id_number": c.id_number, "sitting_id": c.sitting_id}


def evidence_body(e: Evidence) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "view": e.view,
        "alert_id": e.alert_id,
        "mime": e.mime,
        "sha256": e.sha256,
        "size": e.size,
        "captured_at": iso(e.captured_at),
        "url": evidence_url(e.id),
    }


def recording_body(e: Evidence) -> dict[str, Any]:
    """A recorded segment of a view: from ``start`` to ``end``, played at ``url``."""
    return {
        "id": e.id,
        "view": e.view,
        "start": iso(e.captured_at),
        "end": iso(e.ended_at or e.captured_at),
        "size": e.size,
        "sha256": e.sha256,
        "mime": e.mime,
        "url": evidence_url(e.id),
    }


async def get_candidate(db: AsyncSession, candidate_id: int) -> Candidate:
    candidate = await db.get(Candidate, candidate_id)
    if candidate is None:
        raise NotFound("unknown_candidate", f"No candidate {candidate_id}.")
    return candidate


def facts(alert: Alert, decision: str | None) -> risk.AlertFacts:
    return risk.AlertFacts(
        id=alert.id,
        type=alert.type,
        severity=alert.severity,
        view=alert.view,
        started_at=alert.started_at,
        raised_at=alert.raised_at,
        decision=decision,
    )


async def review_queue(db: AsyncSession, sitting_id: int) -> dict[str, Any]:
    """The sitting's candidates, highest risk first, each with how the score was made."""
    sitting = await get_sitting(db, sitting_id)
    candidates = list(await db.scalars(select(Candidate).where(Candidate.sitting_id == sitting_id)))
    alerts: dict[int, list[Alert]] = {}
    for a in await db.scalars(select(Alert).where(Alert.sitting_id == sitting_id)):
        alerts.setdefault(a.candidate_id, []).append(a)
    decided = await latest_alert_verdicts(db, sitting_id=sitting_id)
    verdicts = await latest_candidate_verdicts(db, sitting_id)
    names = await staff_names(db, [v.reviewer_id for v in verdicts.values()])
    rows = []
    for c in candidates:
        mine = alerts.get(c.id, [])
        decisions = {a.id: decided[a.id].decision if a.id in decided else None for a in mine}
        score = risk.score(facts(a, decisions[a.id]) for a in mine)
        verdict = verdicts.get(c.id)
        rows.append(
            {
                "candidate": candidate_body(c),
                "risk": score.as_dict(),
                "alerts": {
                    "total": len(mine),
                    "confirmed": sum(1 for d in decisions.values() if d == "confirmed"),
                    "dismissed": sum(1 for d in decisions.values() if d == "dismissed"),
                    "unreviewed": sum(1 for d in decisions.values() if d is None),
                },
                "verdict": candidate_verdict_body(verdict, names) if verdict else None,
            }
        )
    rows.sort(
        key=lambda r: (-r["risk"]["score"], -r["alerts"]["unreviewed"], r["candidate"]["name"])
    )
    return {"sitting": sitting_body(sitting), "candidates": rows}


def snooze_covering(alert: AlertRecord, h: History) -> dict[str, Any] | None:
    """The snooze an alert was raised under (the console did not push it as new), by the
    history's one rule (:func:`proctor.events.history.snooze_covers`)."""
    s = h.snooze_covering(alert)
    if s is None:
        return None
    return {
        "id": s.id,
        "minutes": s.minutes,
        "created_at": iso(as_utc(s.created_at)),
        "until": iso(as_utc(s.end)),
    }


async def timeline(db: AsyncSession, candidate_id: int) -> dict[str, Any]:
    candidate = await get_candidate(db, candidate_id)
    sitting = await get_sitting(db, candidate.sitting_id)
    h = await history.load_candidate(db, candidate)
    alerts = h.alerts_of(candidate_id)
    evidence = list(
        await db.scalars(
            select(Evidence)
            .where(Evidence.candidate_id == candidate_id)
            .order_by(Evidence.captured_at, Evidence.id)
        )
    )
    events = h.events_of(candidate_id)
    danmaku = h.danmaku_of(candidate_id)
    extensions = h.extensions_of(candidate_id)
    attempt = h.attempt_of(candidate_id)
    actions = h.actions_of(candidate_id)
    staff_entries = [
        e
        for e in await db.scalars(
            select(AuditEntry)
            .where(AuditEntry.candidate_id == candidate_id, AuditEntry.actor.like("staff:%"))
            .order_by(AuditEntry.seq)
        )
        if not e.kind.startswith(_COVERED_KINDS)
    ]
    decided = await latest_alert_verdicts(db, candidate_id=candidate_id)
    verdict_history = await candidate_verdict_history(db, candidate_id)
    names = dict(h.names)
    names.update(
        await staff_names(
            db,
            [v.reviewer_id for v in decided.values()]
            + [v.reviewer_id for v in verdict_history]
            + [int(e.actor.split(":", 1)[1]) for e in staff_entries],
        )
    )

    by_alert: dict[int, list[dict[str, Any]]] = {}
    for e in evidence:
        if e.alert_id is not None:
            by_alert.setdefault(e.alert_id, []).append(evidence_body(e))
    for a in alerts:  # the screenshot is named by the alert (older rows lack alert_id)
        if a.evidence_id and not any(x["id"] == a.evidence_id for x in by_alert.get(a.id, [])):
            shot = next((e for e in evidence if e.id == a.evidence_id), None)
            if shot is not None:
                by_alert.setdefault(a.id, []).insert(0, evidence_body(shot))

    items: list[dict[str, Any]] = []
    alert_bodies = []
    for a in alerts:
        v = decided.get(a.id)
        body = {
            "kind": "alert",
            "id": a.id,
            "at": iso(a.started_at),
            # an episode spans from its start to its end (ongoing: its last sighting);
            # alerts from before episodes end when they were raised
            "end": iso(a.ended_at or a.last_seen_at or a.raised_at),
            "ongoing": a.last_seen_at is not None and a.ended_at is None,
            "last_seen_at": iso(a.last_seen_at),
            "ended_at": iso(a.ended_at),
            "peak_score": a.peak_score,
            "peak_at": iso(a.peak_at),
            "cause": a.cause,
            "type": a.type,
            "severity": a.severity,
            "view": a.view,
            "message": a.message,
            "status": a.status,
            "raised_at": iso(a.raised_at),
            "evidence": by_alert.get(a.id, []),
            "verdict": alert_verdict_body(v, names) if v else None,
            "snoozed": snooze_covering(a, h),
        }
        items.append(body)
        alert_bodies.append(body)
    # the whole-session recording (issue 22): played beside the timeline, not listed in it
    recordings = [recording_body(e) for e in evidence if e.kind == RECORDING_KIND]
    for e in evidence:
        if e.kind == RECORDING_KIND:
            continue
        items.append(
            {
                "kind": "evidence",
                "at": iso(e.captured_at),
                "type": e.kind,
                **{k: v for k, v in evidence_body(e).items() if k != "kind"},
            }
        )
    for d in danmaku:
        items.append(
            {
                "kind": "staff_action",
                "type": "danmaku",
                "id": d.id,
                "at": iso(d.sent_at),
                "text": d.text,
                "by": names.get(d.sender_id, str(d.sender_id)),
                "delivered_at": iso(d.delivered_at),
                "seen_at": iso(d.seen_at),
                "acknowledged_at": iso(d.acknowledged_at),
            }
        )
    for x in extensions:
        items.append(
            {
                "kind": "staff_action",
                "type": "time_extension",
                "id": x.id,
                "at": iso(x.granted_at),
                "seconds": x.seconds,
                "reason": x.reason,
                "whole_sitting": x.candidate_id is None,
                "by": names.get(x.granted_by or -1),
            }
        )
    for act in actions:
        items.append(
            {
                "kind": "staff_action" if act.staff_id else "event",
                "type": act.kind,
                "id": act.id,
                "at": iso(act.at),
                "reason": act.reason,
                "alert_id": act.alert_id,
                "evidence_id": act.evidence_id,
                "data": act.data,
                "by": names.get(act.staff_id or -1, "automatic 自动"),
            }
        )
    if attempt and attempt.identity_method == "manual" and attempt.identity_passed_at:
        items.append(
            {
                "kind": "staff_action",
                "type": "identity_admitted",
                "at": iso(attempt.identity_passed_at),
                "reason": attempt.identity_admit_reason,
                "by": names.get(attempt.identity_admitted_by or -1),
            }
        )
    for entry in staff_entries:
        items.append(
            {
                "kind": "staff_action",
                "type": entry.kind,
                "at": iso(entry.at),
                "by": names.get(int(entry.actor.split(":", 1)[1]), entry.actor),
                "audit_seq": entry.seq,
            }
        )
    for ev in events:
        items.append(
            {"kind": "event", "type": ev.kind, "id": ev.id, "at": iso(ev.at), "data": ev.data}
        )
    if (
        attempt
        and attempt.submitted_at
        and not any(ev.kind in ("submitted", "submit", "auto_submitted") for ev in events)
    ):
        items.append(
            {
                "kind": "event",
                "type": "submitted",
                "at": iso(attempt.submitted_at),
                "data": {"how": attempt.submit_kind},
            }
        )
    # a loss still open is counted to the end of the candidate's exam, never past now
    for loss in h.losses(candidate_id):
        items.append(
            {
                "kind": "connection_loss",
                "type": "media_lost",
                "view": loss["view"],
                "at": iso(loss["at"]),
                "end": iso(loss["end"]),
                "seconds": round(loss["seconds"], 1),
                "restored": loss["restored"],
            }
        )
    items.sort(key=lambda i: (i["at"] or "", i["kind"]))

    times = [i["at"] for i in items if i["at"]] + [i["end"] for i in items if i.get("end")]
    times += [r["start"] for r in recordings] + [r["end"] for r in recordings]
    start = min([iso(sitting.starts_at), *times])
    end = max([iso(sitting.ends_at), *times])
    score = risk.score(
        facts(a, decided[a.id].decision if a.id in decided else None) for a in alerts
    )
    return {
        "candidate": candidate_body(candidate),
        "sitting": sitting_body(sitting),
        "axis": {"start": start, "end": end},
        "items": items,
        "alerts": alert_bodies,
        "recordings": recordings,
        "risk": score.as_dict(),
        "verdict": (
            candidate_verdict_body(verdict_history[-1], names) if verdict_history else None
        ),
        "verdict_history": [candidate_verdict_body(v, names) for v in verdict_history],
        "attempt": _attempt_body(attempt),
    }


def _attempt_body(a: AttemptRecord | None) -> dict[str, Any] | None:
    if a is None:
        return None
    keys = (
        "step",
        "logged_in_at",
        "identity_passed_at",
        "identity_method",
        "phone_paired_at",
        "answering_started_at",
        "submitted_at",
        "submit_kind",
    )
    values = {k: getattr(a, k) for k in keys}
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in values.items()}
