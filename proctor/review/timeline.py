"""One time axis per candidate: alerts, random snapshots, alert screenshots and clips,
invigilators' actions (danmaku, time given back, manual identity admission, anything else
staff did to the candidate that the audit chain recorded), the flow's events (whatever
kinds the exam flow records: login, identity check, phone paired, submit, …) and the
connection losses, plus the review queue that orders the candidates of a sitting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import NotFound
from proctor.evidence.recordings import KIND as RECORDING_KIND
from proctor.evidence.zones import zone_body
from proctor.review import optional, risk
from proctor.review.verdicts import (
    alert_verdict_body,
    candidate_verdict_body,
    candidate_verdict_history,
    latest_alert_verdicts,
    latest_candidate_verdicts,
    staff_names,
)
from proctor.store.tables import (
    Alert,
    AuditEntry,
    Candidate,
    CandidateEvent,
    Danmaku,
    Evidence,
    Sitting,
    utcnow,
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


async def get_sitting(db: AsyncSession, sitting_id: int) -> Sitting:
    sitting = await db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound("unknown_sitting", f"No sitting {sitting_id}.")
    return sitting


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


def snooze_covering(alert: Alert, snoozes: list[Any]) -> dict[str, Any] | None:
    """The snooze an alert was raised under (the console did not push it as new), as the
    console decides it: raised within a snooze of its type (from its start to its early end
    or ``until``) and, for an episode, not seen after that end (it came back then)."""
    raised = _as_utc(alert.raised_at or alert.started_at)
    seen = _as_utc(alert.last_seen_at)
    for s in snoozes:
        start, end = _as_utc(s.created_at), _as_utc(s.ended_at or s.until)
        if s.type != alert.type or raised is None or start is None or end is None:
            continue
        if start <= raised < end and (seen is None or seen <= end):
            return {"id": s.id, "minutes": s.minutes, "created_at": iso(start), "until": iso(end)}
    return None


def connection_losses(
    events: list[CandidateEvent], until: datetime | None = None, ended_at: datetime | None = None
) -> list[dict[str, Any]]:
    """Pair each ``media_lost`` with the next ``media_connected`` of the same view. The end
    of the candidate's exam (``ended_at``, or a ``media_ended`` of the view) ends a loss
    still open; a view going after that is not a loss."""
    open_: dict[str, CandidateEvent] = {}
    out = []
    if ended_at is not None:
        until = min(until, ended_at) if until is not None else ended_at

    def close(view: str, end: datetime) -> None:
        lost = open_.pop(view)
        out.append(
            {
                "view": view,
                "at": lost.at,
                "end": end,
                "seconds": max(0.0, (end - lost.at).total_seconds()),
                "restored": False,
            }
        )

    for ev in sorted(events, key=lambda e: (e.at, e.id)):
        view = (ev.data or {}).get("view", "first")
        if ev.kind == "media_ended":
            if view in open_:
                close(view, ev.at)
            continue
        if ev.kind == "media_lost":
            if ended_at is None or ev.at < ended_at:
                open_.setdefault(view, ev)
        elif ev.kind == "media_connected" and view in open_:
            lost = open_.pop(view)
            out.append(
                {
                    "view": view,
                    "at": lost.at,
                    "end": ev.at,
                    "seconds": (ev.at - lost.at).total_seconds(),
                    "restored": True,
                }
            )
    for view, lost in open_.items():
        end = until if until is not None and until > lost.at else None
        out.append(
            {
                "view": view,
                "at": lost.at,
                "end": end,
                "seconds": (end - lost.at).total_seconds() if end else 0.0,
                "restored": False,
            }
        )
    return sorted(out, key=lambda x: x["at"])


async def timeline(db: AsyncSession, candidate_id: int) -> dict[str, Any]:
    candidate = await get_candidate(db, candidate_id)
    sitting = await get_sitting(db, candidate.sitting_id)
    alerts = list(
        await db.scalars(
            select(Alert).where(Alert.candidate_id == candidate_id).order_by(Alert.started_at)
        )
    )
    evidence = list(
        await db.scalars(
            select(Evidence)
            .where(Evidence.candidate_id == candidate_id)
            .order_by(Evidence.captured_at, Evidence.id)
        )
    )
    events = list(
        await db.scalars(
            select(CandidateEvent)
            .where(CandidateEvent.candidate_id == candidate_id)
            .order_by(CandidateEvent.at, CandidateEvent.id)
        )
    )
    danmaku = list(
        await db.scalars(
            select(Danmaku).where(Danmaku.candidate_id == candidate_id).order_by(Danmaku.sent_at)
        )
    )
    extensions = await optional.extensions(db, sitting.id, candidate_id)
    found = await optional.attempts(db, candidate_id=candidate_id)
    attempt = found[0] if found else {}
    actions = await optional.console_actions(db, candidate_id=candidate_id)
    snoozes = await optional.snoozes(db, candidate_id=candidate_id)
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
    history = await candidate_verdict_history(db, candidate_id)
    names = await staff_names(
        db,
        [d.sender_id for d in danmaku]
        + [x.get("granted_by") for x in extensions]
        + [a.get("staff_id") for a in actions]
        + [v.reviewer_id for v in decided.values()]
        + [v.reviewer_id for v in history]
        + [attempt.get("identity_admitted_by")]
        + [int(e.actor.split(":", 1)[1]) for e in staff_entries],
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
            "snoozed": snooze_covering(a, snoozes),
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
                "id": x.get("id"),
                "at": iso(x.get("granted_at")),
                "seconds": x.get("seconds"),
                "reason": x.get("reason"),
                "whole_sitting": x.get("candidate_id") is None,
                "by": names.get(x.get("granted_by") or -1),
            }
        )
    for act in actions:
        items.append(
            {
                "kind": "staff_action" if act.get("staff_id") else "event",
                "type": act.get("kind"),
                "id": act.get("id"),
                "at": iso(act.get("at")),
                "reason": act.get("reason"),
                "alert_id": act.get("alert_id"),
                "evidence_id": act.get("evidence_id"),
                "data": act.get("data"),
                "by": names.get(act.get("staff_id") or -1, "automatic 自动"),
            }
        )
    if attempt.get("identity_method") == "manual" and attempt.get("identity_passed_at"):
        items.append(
            {
                "kind": "staff_action",
                "type": "identity_admitted",
                "at": iso(attempt["identity_passed_at"]),
                "reason": attempt.get("identity_admit_reason"),
                "by": names.get(attempt.get("identity_admitted_by") or -1),
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
    if attempt.get("submitted_at") and not any(
        ev.kind in ("submitted", "submit", "auto_submitted") for ev in events
    ):
        items.append(
            {
                "kind": "event",
                "type": "submitted",
                "at": iso(attempt["submitted_at"]),
                "data": {"how": attempt.get("submit_kind")},
            }
        )
    # a loss still open is counted to now while the sitting runs (not to its end)
    end_of_exam = min(sitting.ends_at, utcnow())
    ended_at = exam_ended_at(attempt)
    for loss in connection_losses(events, until=end_of_exam, ended_at=ended_at):
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
        "verdict": candidate_verdict_body(history[-1], names) if history else None,
        "verdict_history": [candidate_verdict_body(v, names) for v in history],
        "attempt": _attempt_body(attempt),
    }


def _as_utc(value: Any) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def exam_ended_at(a: dict[str, Any]) -> datetime | None:
    """When the candidate's exam ended for them: handed in, ended by the invigilator, or
    (device check) the check done; None while it runs."""
    times = [_as_utc(a.get(k)) for k in ("submitted_at", "terminated_at", "device_checked_at")]
    times = [t for t in times if t is not None]
    return min(times) if times else None


def _attempt_body(a: dict[str, Any]) -> dict[str, Any] | None:
    if not a:
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
    return {k: iso(a[k]) if isinstance(a.get(k), datetime) else a.get(k) for k in keys}
