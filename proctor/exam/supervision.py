"""What an invigilator does to a candidate: on-screen text warnings (弹幕警告), alert
handling, automatic hints and the escalation ladder, violation screenshots, voice-call and
incident records, saved phrases, and the candidate's timeline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict, Forbidden, Invalid, NotFound
from proctor.events.bus import Bus, candidate_channel, sitting_channel
from proctor.events.messages import alert_body, danmaku_body, evidence_body
from proctor.evidence import chain
from proctor.evidence.storage import EvidenceStorage
from proctor.exam.rooms import room_of
from proctor.exam.sittings import get_candidate
from proctor.store.tables import (
    Alert,
    Candidate,
    CandidateEvent,
    ConsoleAction,
    Danmaku,
    DanmakuPhrase,
    Evidence,
    StaffUser,
    TimeExtension,
    utcnow,
)

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
    await db.flush()
    await chain.append_record(
        db, "danmaku.sent", row, actor=chain.staff_actor(sender_id), sitting_id=candidate.sitting_id
    )
    await db.commit()  # durable (and in the audit chain) before anyone is told
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
    sitting_id = await db.scalar(select(Candidate.sitting_id).where(Candidate.id == candidate_id))
    await chain.append(
        db,
        "danmaku.seen" if row.seen_at else "danmaku.delivered",
        actor=chain.candidate_actor(candidate_id),
        payload={"delivered_at": chain.iso(row.delivered_at), "seen_at": chain.iso(row.seen_at)},
        sitting_id=sitting_id,
        candidate_id=candidate_id,
        subject_type="danmaku",
        subject_id=row.id,
    )
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


# =========================================================================================
# The console (issue 5): alert handling, automatic hints and the escalation ladder,
# violation screenshots, voice-call and incident records, saved phrases, the timeline.
# Every action is a ConsoleAction row (who, when, why), in the audit chain, then published.
# =========================================================================================

REASON_MAX = 500
NOTE_MAX = 500
ACK = "acknowledge"
DISMISS = "dismiss"
HANDLING = {ACK: ("acknowledged", "alert_acknowledged"), DISMISS: ("dismissed", "alert_dismissed")}
HANDLING_KINDS = tuple(kind for _, kind in HANDLING.values())

#: what the candidate's page shows, automatically, for a condition they can fix themselves
HINT_TEXTS = {
    "absent": "请回到座位并正对摄像头。 Please return to your seat and face the camera.",
    "face_covered": "请勿遮挡面部，保持面部在画面中清晰可见。 Keep your face uncovered and "
    "clearly visible to the camera.",
    "camera_blocked": "摄像头画面被遮挡或过暗，请检查摄像头和照明。 Your camera is blocked or "
    "too dark: check the camera and the light.",
    "phone_lost": "第二视角（手机）已断开，请重新连接手机监控。 Your phone (second view) is "
    "disconnected: reconnect it.",
}
#: alert types the candidate can fix → the hint that tells them how
FIXABLE_ALERTS = {
    "absent": "absent",
    "face_covered": "face_covered",
    "camera_blocked": "camera_blocked",
    "second_view_lost": "phone_lost",
}
HINT_REPEAT_SECONDS = 30.0  # the same hint (without an alert) is not repeated sooner
#: the escalation ladder; a condition the candidate cannot fix starts at the danmaku.
#: "terminate" is the console's pause / terminate (proctor.exam.control)
RUNGS = ("hint", "danmaku", "voice", "terminate")
#: console actions → the rung they take
LADDER_ACTIONS = {
    "hint": "hint",
    "voice_started": "voice",
    "exam_paused": "terminate",
    "discipline_warning": "terminate",
    "exam_terminated": "terminate",
}

INCIDENT_CATEGORIES = {
    "power": "停电 Power cut",
    "network": "网络故障 Network failure",
    "equipment": "设备故障 Equipment failure",
    "software": "系统或服务器故障 Software or server failure",
    "disturbance": "扰乱考场秩序 Disturbance",
    "other": "其他 Other",
}

DEFAULT_PHRASES = (
    "请正对摄像头，保持面部清晰可见。 Face the camera and keep your face visible.",
    "请勿离开座位。 Stay in your seat.",
    "请将手机（第二视角）摆放到位。 Put your phone (second view) back in place.",
    "请保持安静，不要说话。 Keep quiet, do not talk.",
    "请勿使用与考试无关的资料或电子设备。 Do not use any material or device unrelated to the exam.",
    "考试期间不得有他人进入房间。 Nobody else may enter your room during the exam.",
    "请勿离开考试界面。 Do not leave the exam screen.",
)


def _text(value: str, *, lo: int, hi: int, code: str, what: str) -> str:
    value = " ".join((value or "").split())
    if not lo <= len(value) <= hi:
        raise Invalid(code, f"{what} needs {lo} to {hi} characters.")
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def staff_names(db: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await db.execute(
        select(StaffUser.id, StaffUser.display_name).where(StaffUser.id.in_(wanted))
    )
    return dict(rows.all())


def action_body(row: ConsoleAction, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "sitting_id": row.sitting_id,
        "room_id": row.room_id,
        "candidate_id": row.candidate_id,
        "staff_id": row.staff_id,
        "staff_name": names.get(row.staff_id) if row.staff_id else None,
        "kind": row.kind,
        "alert_id": row.alert_id,
        "evidence_id": row.evidence_id,
        "evidence_url": f"/api/evidence/{row.evidence_id}" if row.evidence_id else None,
        "reason": row.reason,
        "data": row.data or {},
        "at": _iso(row.at),
    }


async def record_action(
    db: AsyncSession,
    *,
    sitting_id: int,
    kind: str,
    staff_id: int | None,
    candidate_id: int | None = None,
    room_id: int | None = None,
    alert_id: int | None = None,
    evidence_id: int | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
    audit: dict[str, Any] | None = None,
) -> ConsoleAction:
    """Add one supervision-log row and its audit-chain entry (the caller commits).
    ``at``: when (the exam flow's clock; now by default); ``audit``: more fields for the
    chain entry's payload (e.g. a termination's category)."""
    if room_id is None and candidate_id is not None:
        room_id = await room_of(db, candidate_id)
    row = ConsoleAction(
        sitting_id=sitting_id,
        room_id=room_id,
        candidate_id=candidate_id,
        staff_id=staff_id,
        kind=kind,
        alert_id=alert_id,
        evidence_id=evidence_id,
        reason=reason,
        data=dict(data or {}),
        at=at or utcnow(),
    )
    db.add(row)
    await db.flush()
    await chain.append(
        db,
        f"console.{kind}",
        actor=chain.staff_actor(staff_id) if staff_id else chain.SYSTEM,
        payload={
            "alert_id": alert_id,
            "evidence_id": evidence_id,
            "room_id": room_id,
            "reason_sha256": chain.text_sha256(reason) if reason else None,
            "at": chain.iso(row.at),
            **(audit or {}),
        },
        sitting_id=sitting_id,
        candidate_id=candidate_id,
        subject_type="console_action",
        subject_id=row.id,
    )
    return row


async def publish_actions(db: AsyncSession, bus: Bus, rows: list[ConsoleAction]) -> list[dict]:
    names = await staff_names(db, (r.staff_id for r in rows))
    bodies = [action_body(r, names) for r in rows]
    for body in bodies:
        await bus.publish(sitting_channel(body["sitting_id"]), {"type": "action", "action": body})
    return bodies


# ----------------------------------------------------------------------------- alerts


async def get_alert(db: AsyncSession, alert_id: int) -> Alert:
    alert = await db.get(Alert, alert_id)
    if alert is None:
        raise NotFound("unknown_alert", f"No alert {alert_id}.")
    return alert


async def _handlings(db: AsyncSession, alert_ids: list[int]) -> dict[int, ConsoleAction]:
    """The newest acknowledge/dismiss action of each alert."""
    if not alert_ids:
        return {}
    rows = await db.scalars(
        select(ConsoleAction)
        .where(ConsoleAction.alert_id.in_(alert_ids), ConsoleAction.kind.in_(HANDLING_KINDS))
        .order_by(ConsoleAction.at, ConsoleAction.id)
    )
    return {r.alert_id: r for r in rows if r.alert_id is not None}


def console_alert_body(
    alert: Alert, candidate: Candidate, handling: ConsoleAction | None, names: dict[int, str]
) -> dict[str, Any]:
    body = alert_body(alert, candidate)
    body["handling"] = (
        {
            "action": ACK if handling.kind == "alert_acknowledged" else DISMISS,
            "by": handling.staff_id,
            "by_name": names.get(handling.staff_id) if handling.staff_id else None,
            "at": _iso(handling.at),
            "reason": handling.reason,
        }
        if handling is not None
        else None
    )
    return body


async def console_alerts(
    db: AsyncSession,
    sitting_id: int,
    candidate_ids: set[int] | None,
    *,
    limit: int = 100,
    status: str | None = None,
    candidate_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first, with how each was handled; ``candidate_ids`` None = every candidate."""
    if not 1 <= limit <= 1000:
        raise Invalid("bad_limit", "limit must be between 1 and 1000")
    if status not in (None, "open", "acknowledged", "dismissed"):
        raise Invalid("bad_status", "status must be open, acknowledged or dismissed")
    query = (
        select(Alert, Candidate)
        .join(Candidate, Candidate.id == Alert.candidate_id)
        .where(Alert.sitting_id == sitting_id)
        .order_by(Alert.raised_at.desc(), Alert.id.desc())
        .limit(limit)
    )
    if candidate_ids is not None:
        query = query.where(Alert.candidate_id.in_(candidate_ids))
    if candidate_id is not None:
        query = query.where(Alert.candidate_id == candidate_id)
    if status is not None:
        query = query.where(Alert.status == status)
    rows = (await db.execute(query)).all()
    handlings = await _handlings(db, [a.id for a, _ in rows])
    names = await staff_names(db, (h.staff_id for h in handlings.values()))
    return [console_alert_body(a, c, handlings.get(a.id), names) for a, c in rows]


async def handle_alerts(
    db: AsyncSession,
    bus: Bus,
    *,
    staff_id: int,
    alerts: list[Alert],
    action: str,
    reason: str,
    record_violation: bool = False,
) -> list[dict[str, Any]]:
    """Acknowledge or dismiss open alerts, with a reason; every console of the sitting is
    told (the alert again, with its new status, and the action). Acknowledging with
    ``record_violation`` also keeps each alert as a violation record (违纪记录: a
    ``violation`` action with the alert's screenshot and the reason), as a violation
    screenshot from the console is."""
    if action not in HANDLING:
        raise Invalid("bad_action", "action must be acknowledge or dismiss")
    if record_violation and action != ACK:
        raise Invalid(
            "violation_needs_acknowledge",
            "只有确认的告警才能记录为违纪。 Only an acknowledged alert can be recorded as a "
            "violation.",
        )
    reason = _text(reason, lo=2, hi=REASON_MAX, code="reason_required", what="The reason")
    status, kind = HANDLING[action]
    open_alerts = [a for a in alerts if a.status == "open"]
    if not open_alerts:
        raise Conflict(
            "alert_already_handled", "This alert has already been handled. 该告警已处理。"
        )
    rows = []
    for alert in open_alerts:
        alert.status = status
        rows.append(
            await record_action(
                db,
                sitting_id=alert.sitting_id,
                kind=kind,
                staff_id=staff_id,
                candidate_id=alert.candidate_id,
                alert_id=alert.id,
                reason=reason,
                data={"type": alert.type},
            )
        )
        if record_violation:
            rows.append(
                await record_action(
                    db,
                    sitting_id=alert.sitting_id,
                    kind="violation",
                    staff_id=staff_id,
                    candidate_id=alert.candidate_id,
                    alert_id=alert.id,
                    evidence_id=alert.evidence_id,
                    reason=reason,
                    data={"from_alert": alert.id, "type": alert.type, "view": alert.view},
                )
            )
    await db.commit()
    names = await staff_names(db, [staff_id])
    bodies = []
    handlings = [r for r in rows if r.kind == kind]
    for alert, row in zip(open_alerts, handlings, strict=True):
        candidate = await db.get(Candidate, alert.candidate_id)
        body = console_alert_body(alert, candidate, row, names)
        bodies.append(body)
        await bus.publish(sitting_channel(alert.sitting_id), {"type": "alert", "alert": body})
    await publish_actions(db, bus, rows)
    return bodies


async def open_alerts_of(db: AsyncSession, candidate_id: int) -> list[Alert]:
    return list(
        await db.scalars(
            select(Alert).where(Alert.candidate_id == candidate_id, Alert.status == "open")
        )
    )


# ----------------------------------------------------------------------------- hints


def hint_message(row: ConsoleAction) -> dict[str, Any]:
    return {
        "type": "hint",
        "id": row.id,
        "code": (row.data or {}).get("code"),
        "text": row.reason,
        "sent_at": _iso(row.at),
    }


async def auto_hint(
    db: AsyncSession, bus: Bus, *, candidate: Candidate, code: str, alert_id: int | None = None
) -> dict[str, Any] | None:
    """The first rung of the ladder: tell the candidate's page how to fix a condition.
    Once per alert (or, without an alert, not again within HINT_REPEAT_SECONDS)."""
    text = HINT_TEXTS.get(code)
    if text is None:
        return None
    query = select(ConsoleAction.id).where(
        ConsoleAction.candidate_id == candidate.id, ConsoleAction.kind == "hint"
    )
    if alert_id is not None:
        query = query.where(ConsoleAction.alert_id == alert_id)
    else:
        since = utcnow() - timedelta(seconds=HINT_REPEAT_SECONDS)
        query = query.where(ConsoleAction.at >= since, ConsoleAction.reason == text)
    if await db.scalar(query.limit(1)) is not None:
        return None
    row = await record_action(
        db,
        sitting_id=candidate.sitting_id,
        kind="hint",
        staff_id=None,
        candidate_id=candidate.id,
        alert_id=alert_id,
        reason=text,
        data={"code": code, "delivered_at": None, "seen_at": None},
    )
    await db.commit()
    message = hint_message(row)
    await bus.publish(candidate_channel(candidate.id), message)
    await publish_actions(db, bus, [row])
    return message


async def mark_hint(
    db: AsyncSession, bus: Bus, *, candidate_id: int, hint_id: int, state: str
) -> dict[str, Any] | None:
    """The hint reached the candidate's page (``delivered``) or was shown (``seen``)."""
    row = await db.get(ConsoleAction, hint_id)
    if row is None or row.kind != "hint" or row.candidate_id != candidate_id:
        return None
    data = dict(row.data or {})
    now = utcnow().isoformat()
    changed = False
    if not data.get("delivered_at"):
        data["delivered_at"] = now
        changed = True
    if state == "seen" and not data.get("seen_at"):
        data["seen_at"] = now
        changed = True
    if not changed:
        return None
    row.data = data
    await db.commit()
    return (await publish_actions(db, bus, [row]))[0]


async def ladders(
    db: AsyncSession, sitting_id: int, candidate_ids: set[int] | None = None
) -> dict[int, dict[str, Any]]:
    """For each candidate with open alerts: the rungs of the escalation ladder, those done
    since the oldest open alert, and the next one to take."""
    query = select(Alert.candidate_id, Alert.type, Alert.raised_at).where(
        Alert.sitting_id == sitting_id, Alert.status == "open"
    )
    if candidate_ids is not None:
        query = query.where(Alert.candidate_id.in_(candidate_ids))
    open_rows = (await db.execute(query)).all()
    if not open_rows:
        return {}
    since: dict[int, datetime] = {}
    fixable: dict[int, bool] = {}
    for cid, type_, raised in open_rows:
        since[cid] = min(since.get(cid, raised), raised)
        fixable[cid] = fixable.get(cid, True) and type_ in FIXABLE_ALERTS
    oldest = min(since.values())
    done: dict[int, set[str]] = {cid: set() for cid in since}
    actions = await db.execute(
        select(ConsoleAction.candidate_id, ConsoleAction.kind, ConsoleAction.at).where(
            ConsoleAction.sitting_id == sitting_id,
            ConsoleAction.kind.in_(tuple(LADDER_ACTIONS)),
            ConsoleAction.at >= oldest,
            ConsoleAction.candidate_id.in_(list(since)),
        )
    )
    for cid, kind, at in actions.all():
        if at >= since[cid]:
            done[cid].add(LADDER_ACTIONS[kind])
    sent = await db.execute(
        select(Danmaku.candidate_id, Danmaku.sent_at).where(
            Danmaku.candidate_id.in_(list(since)), Danmaku.sent_at >= oldest
        )
    )
    for cid, at in sent.all():
        if at >= since[cid]:
            done[cid].add("danmaku")
    out = {}
    overdue = utcnow() - timedelta(seconds=HINT_REPEAT_SECONDS)
    for cid in since:
        rungs = list(RUNGS if fixable[cid] else RUNGS[1:])
        reached = [i for i, r in enumerate(rungs) if r in done[cid]]
        # no hint could be sent (the candidate's page was not connected): move on
        skipped = ["hint"] if rungs[0] == "hint" and not reached and since[cid] < overdue else []
        if skipped:
            reached = [0]
        nxt = rungs[reached[-1] + 1] if reached and reached[-1] + 1 < len(rungs) else None
        out[cid] = {
            "rungs": rungs,
            "done": [r for r in rungs if r in done[cid]],
            "skipped": skipped,
            "next": rungs[0] if not reached else nxt,
            "since": _iso(since[cid]),
        }
    return out


# ----------------------------------------------------------------------------- screenshots


def check_note(note: str) -> str:
    return _text(note, lo=1, hi=NOTE_MAX, code="note_required", what="The note")


async def save_violation(
    db: AsyncSession,
    bus: Bus,
    storage: EvidenceStorage,
    *,
    staff_id: int,
    candidate: Candidate,
    view: str,
    jpeg: bytes,
    captured_at: datetime,
    note: str,
) -> dict[str, Any]:
    """A screenshot of the candidate's view kept as a violation record (截图保存违纪记录):
    the JPEG is stored content-hashed (evidence kind ``violation_screenshot``) and the
    record carries the invigilator's note."""
    note = check_note(note)
    stored = await asyncio.to_thread(
        storage.save,
        (f"sitting-{candidate.sitting_id}", f"candidate-{candidate.id}"),
        f"violation_screenshot-{view}",
        jpeg,
        "jpg",
        captured_at,
    )
    evidence = Evidence(
        sitting_id=candidate.sitting_id,
        candidate_id=candidate.id,
        kind="violation_screenshot",
        view=view,
        relpath=stored.relpath,
        sha256=stored.sha256,
        size=stored.size,
        mime="image/jpeg",
        captured_at=captured_at,
    )
    db.add(evidence)
    await db.flush()
    await chain.append_record(db, "evidence.stored", evidence, actor=chain.staff_actor(staff_id))
    row = await record_action(
        db,
        sitting_id=candidate.sitting_id,
        kind="violation",
        staff_id=staff_id,
        candidate_id=candidate.id,
        evidence_id=evidence.id,
        reason=note,
        data={"view": view, "sha256": stored.sha256, "captured_at": _iso(captured_at)},
    )
    await db.commit()
    ev_body = evidence_body(evidence)
    await bus.publish(
        sitting_channel(candidate.sitting_id), {"type": "evidence", "evidence": ev_body}
    )
    (action,) = await publish_actions(db, bus, [row])
    return {"action": action, "evidence": ev_body}


# ----------------------------------------------------------------------------- voice, incidents


async def log_voice(
    db: AsyncSession,
    bus: Bus,
    *,
    started: bool,
    staff_id: int,
    candidate: Candidate,
    call_id: str,
    data: dict[str, Any] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    row = await record_action(
        db,
        sitting_id=candidate.sitting_id,
        kind="voice_started" if started else "voice_ended",
        staff_id=staff_id,
        candidate_id=candidate.id,
        reason=reason,
        data={"call_id": call_id, **(data or {})},
    )
    await db.commit()
    return (await publish_actions(db, bus, [row]))[0]


async def record_incident(
    db: AsyncSession,
    bus: Bus,
    *,
    staff_id: int,
    sitting_id: int,
    room_id: int | None,
    candidate_ids: list[int],
    category: str,
    description: str,
) -> list[dict[str, Any]]:
    """An incident (突发事件) of a room, or of some of its candidates: one row each."""
    if category not in INCIDENT_CATEGORIES:
        raise Invalid("bad_category", f"category must be one of {', '.join(INCIDENT_CATEGORIES)}")
    description = _text(
        description, lo=2, hi=2000, code="description_required", what="The description"
    )
    rows = []
    for cid in candidate_ids or [None]:
        rows.append(
            await record_action(
                db,
                sitting_id=sitting_id,
                kind="incident",
                staff_id=staff_id,
                candidate_id=cid,
                room_id=room_id,
                reason=description,
                data={"category": category},
            )
        )
    await db.commit()
    return await publish_actions(db, bus, rows)


# ----------------------------------------------------------------------------- phrases


async def list_phrases(db: AsyncSession, staff_id: int) -> list[dict[str, Any]]:
    rows = await db.scalars(
        select(DanmakuPhrase)
        .where((DanmakuPhrase.staff_id.is_(None)) | (DanmakuPhrase.staff_id == staff_id))
        .order_by(DanmakuPhrase.id)
    )
    return [{"id": None, "text": t, "scope": "builtin"} for t in DEFAULT_PHRASES] + [
        {"id": r.id, "text": r.text, "scope": "shared" if r.staff_id is None else "own"}
        for r in rows
    ]


async def add_phrase(
    db: AsyncSession, *, staff_id: int, text: str, shared: bool, manager: bool
) -> dict[str, Any]:
    text = _text(text, lo=1, hi=DANMAKU_MAX, code="bad_danmaku", what="A phrase")
    if shared and not manager:
        raise Forbidden("chief_only", "Only a chief examiner may save phrases for everyone.")
    owner = None if shared else staff_id
    count = await db.scalar(
        select(func.count()).select_from(DanmakuPhrase).where(DanmakuPhrase.staff_id == owner)
    )
    if (count or 0) >= 100:
        raise Conflict("too_many_phrases", "At most 100 saved phrases.")
    row = DanmakuPhrase(staff_id=owner, text=text, created_at=utcnow())
    db.add(row)
    await db.commit()
    return {"id": row.id, "text": row.text, "scope": "shared" if shared else "own"}


async def delete_phrase(db: AsyncSession, *, staff_id: int, manager: bool, phrase_id: int) -> None:
    row = await db.get(DanmakuPhrase, phrase_id)
    if row is None or (row.staff_id is not None and row.staff_id != staff_id):
        raise NotFound("unknown_phrase", f"No saved phrase {phrase_id}.")
    if row.staff_id is None and not manager:
        raise Forbidden("chief_only", "Only a chief examiner may delete a shared phrase.")
    await db.delete(row)
    await db.commit()


# ----------------------------------------------------------------------------- timeline


async def timeline(db: AsyncSession, candidate_id: int, limit: int = 300) -> list[dict[str, Any]]:
    """One candidate's alerts, console actions, danmaku and events, newest first."""
    candidate = await get_candidate(db, candidate_id)
    items: list[dict[str, Any]] = []
    for alert in await console_alerts(
        db, candidate.sitting_id, None, limit=limit, candidate_id=candidate_id
    ):
        items.append({"at": alert["raised_at"], "kind": "alert", "alert": alert})
    actions = list(
        await db.scalars(
            select(ConsoleAction)
            .where(ConsoleAction.candidate_id == candidate_id)
            .order_by(ConsoleAction.at.desc())
            .limit(limit)
        )
    )
    names = await staff_names(db, (a.staff_id for a in actions))
    for row in actions:
        items.append({"at": _iso(row.at), "kind": "action", "action": action_body(row, names)})
    sent = list(
        await db.scalars(
            select(Danmaku)
            .where(Danmaku.candidate_id == candidate_id)
            .order_by(Danmaku.sent_at.desc())
            .limit(limit)
        )
    )
    names.update(await staff_names(db, (d.sender_id for d in sent)))
    for d in sent:
        body = danmaku_body(d)
        body["sender_name"] = names.get(d.sender_id)
        items.append({"at": body["sent_at"], "kind": "danmaku", "danmaku": body})
    events = await db.scalars(
        select(CandidateEvent)
        .where(CandidateEvent.candidate_id == candidate_id)
        .order_by(CandidateEvent.at.desc())
        .limit(limit)
    )
    for ev in events:
        items.append(
            {"at": _iso(ev.at), "kind": "event", "event": {"kind": ev.kind, "data": ev.data or {}}}
        )
    # time given back (顺延) to the whole sitting (the candidate's own extensions are their
    # ``time_extended`` events above)
    extensions = list(
        await db.scalars(
            select(TimeExtension)
            .where(
                TimeExtension.sitting_id == candidate.sitting_id,
                TimeExtension.candidate_id.is_(None),
            )
            .order_by(TimeExtension.granted_at.desc())
            .limit(limit)
        )
    )
    names.update(await staff_names(db, (e.granted_by for e in extensions)))
    for e in extensions:
        data = {
            "id": e.id,
            "seconds": e.seconds,
            "reason": e.reason,
            "by": e.granted_by,
            "by_name": names.get(e.granted_by),
            "whole_sitting": e.candidate_id is None,
        }
        items.append(
            {
                "at": _iso(e.granted_at),
                "kind": "event",
                "event": {"kind": "time_extended", "data": data},
            }
        )
    items.sort(key=lambda i: i["at"] or "", reverse=True)
    return items[:limit]
