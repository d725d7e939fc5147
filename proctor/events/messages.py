"""The JSON shapes of bus / WebSocket messages and API bodies for alerts and danmaku
(docs/api.md), and the catalogue of every message ``type`` (``MESSAGE_TYPES``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from proctor.store.tables import Alert, Candidate, Danmaku, Evidence
from proctor.times import iso

#: every ``type`` of a message on the bus or a WebSocket: where it goes, what it says.
#: The pages, the headless client and the benchmarks match on these names; a new message
#: type is added here first (tests/unit/test_message_types.py finds those that are not).
MESSAGE_TYPES: dict[str, str] = {
    # every socket
    "hello": "candidate / phone socket: first message (the candidate, the step)",
    "ping": "every socket: keep-alive",
    "overflow": "every subscription: messages were dropped (a slow reader, a bus reconnect)",
    # the candidate's flow (proctor.flow)
    "flow": "sitting + candidate: a candidate's step changed (with what changed it)",
    "end_views": "views (server processes): a candidate's exam ended, close both views",
    "info_problem": "sitting: a candidate says their details are wrong",
    "info_problem_resolved": "sitting: an invigilator dealt with it",
    "help_request": "sitting: a candidate raised a hand (求助) with a message",
    "help_resolved": "candidate: an invigilator dealt with the raised hand",
    "page_event": "sitting: the candidate's page left / came back / lost focus ...",
    "extension": "sitting: time was given back",
    "time": "candidate: their time was extended",
    "send_rate": "candidate / phone socket: the frame rate to send a view at",
    # the live path (proctor.events, proctor.media)
    "alert": "sitting: an alert was raised or handled",
    "alert_update": "sitting: an alert's episode moved on (last seen, ended, peak)",
    "evidence": "sitting: a screenshot or clip was stored",
    "connection": "sitting: a candidate's view connected, was lost or ended",
    "thumbnails": "console socket: the small pictures of the watched candidates",
    "thumbnail": "media (server processes): one view's small picture, for other processes",
    "view": "media (server processes): a view's connection state, for other processes",
    "health": "console socket: the server's health",
    # invigilation (proctor.invigilation, the console's voice)
    "danmaku": "candidate + sitting: an on-screen text warning, and its delivery",
    "hint": "candidate: how to fix a condition (the ladder's first rung)",
    "action": "sitting: an entry of the console's supervision log",
    "snooze": "sitting: one candidate's alerts of one type were snoozed or woken",
    "rooms": "sitting: rooms, seats or assignments changed",
    "voice_call": "voice socket / candidate: an invigilator calls the candidate",
    "voice_ended": "candidate: the voice call ended",
    "link": "voice socket: the call's peer",
}


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
