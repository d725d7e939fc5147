"""The JSON shapes of bus / WebSocket messages and API bodies for alerts and danmaku
(docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from proctor.store.tables import Alert, Candidate, Danmaku, Evidence


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def alert_body(alert: Alert, candidate: Candidate) -> dict[str, Any]:
    """An alert is an episode: ``ongoing`` while its condition lasts (``last_seen_at``
    moves), then ``ended_at``; ``duration_seconds`` from ``started_at`` to the end or the
    last sighting. Alerts from before episodes have neither (``ongoing`` false)."""
    end = alert.ended_at or alert.last_seen_at
    return {
        "id": alert.id,
        "candidate_id": alert.candidate_id,
        "candidate_name": candidate.name,
        "sitting_id": alert.sitting_id,
        "type": alert.type,
        "severity": alert.severity,
        "view": alert.view,
        "message": alert.message,
        "status": alert.status,
        "started_at": iso(alert.started_at),
        "raised_at": iso(alert.raised_at),
        "evidence_url": f"/api/evidence/{alert.evidence_id}" if alert.evidence_id else None,
        "last_seen_at": iso(alert.last_seen_at),
        "ended_at": iso(alert.ended_at),
        "ongoing": alert.last_seen_at is not None and alert.ended_at is None,
        "duration_seconds": (
            round((end - alert.started_at).total_seconds(), 1) if end is not None else None
        ),
        "peak_score": alert.peak_score,
        "peak_at": iso(alert.peak_at),
        "peak_evidence_url": (
            f"/api/evidence/{alert.peak_evidence_id}" if alert.peak_evidence_id else None
        ),
        "cause": alert.cause,
    }


def evidence_body(row: Evidence) -> dict[str, Any]:
    return {
        "id": row.id,
        "candidate_id": row.candidate_id,
        "kind": row.kind,
        "view": row.view,
        "alert_id": row.alert_id,
        "mime": row.mime,
        "sha256": row.sha256,
        "captured_at": iso(row.captured_at),
        "url": f"/api/evidence/{row.id}",
    }


def danmaku_body(row: Danmaku) -> dict[str, Any]:
    return {
        "id": row.id,
        "candidate_id": row.candidate_id,
        "text": row.text,
        "sent_at": iso(row.sent_at),
        "delivered_at": iso(row.delivered_at),
        "seen_at": iso(row.seen_at),
        "acknowledged_at": iso(row.acknowledged_at),
    }


def connection_message(
    candidate_id: int, view: str, connected: bool, at: datetime, ended: bool = False
) -> dict:
    """``ended``: the view went because the candidate's exam ended (not an outage)."""
    return {
        "type": "connection",
        "candidate_id": candidate_id,
        "view": view,
        "connected": connected,
        "ended": bool(ended and not connected),
        "at": iso(at),
    }
