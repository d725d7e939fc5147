"""What an invigilator does to a candidate: on-screen text warnings (弹幕警告), alert
handling, snoozing one candidate's alerts of one type (静音), automatic hints and the
escalation ladder, violation screenshots, voice-call and incident records, saved phrases,
and the candidate's timeline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict, Forbidden, Invalid, NotFound
from proctor.events import history
from proctor.events.bus import Bus, BusUnavailable, candidate_channel, sitting_channel
from proctor.events.messages import alert_body, danmaku_body, evidence_body
from proctor.evidence import chain
from proctor.evidence.storage import EvidenceStorage
from proctor.invigilation.rooms import room_of
from proctor.rules import ALERT_TYPES
from proctor.sitting.sittings import get_candidate
from proctor.store.db import Database
from proctor.store.tables import (
    Alert,
    AlertSnooze,
    Candidate,
    ConsoleAction,
    Danmaku,
    DanmakuPhrase,
    Evidence,
    utcnow,
)
from proctor.times import iso as _iso

log = logging.getLogger(__name__)

DANMAKU_MAX = 200


async def send_danmaku(
    database: Database, bus: Bus, *, sender_id: int, candidate_id: int, text: str
) -> dict:
    """Store an on-screen warning (with its audit entry) on the database writer thread,
    then push it to the candidate's page and the sitting's consoles."""
    text = " ".join(text.split())
    if not 1 <= len(text) <= DANMAKU_MAX:
        raise Invalid("bad_danmaku", f"A warning needs 1 to {DANMAKU_MAX} characters.")

    async def store(db: AsyncSession) -> tuple[int, int, dict]:
        candidate = await get_candidate(db, candidate_id)
        row = Danmaku(candidate_id=candidate.id, sender_id=sender_id, text=text, sent_at=utcnow())
        db.add(row)
        await db.flush()
        await chain.append_record(
            db,
            "danmaku.sent",
            row,
            actor=chain.staff_actor(sender_id),
            sitting_id=candidate.sitting_id,
        )
        return candidate.id, candidate.sitting_id, danmaku_body(row)

    # durable (and in the audit chain) before anyone is told
    cid, sitting_id, body = await database.write(store)
    try:
        await bus.publish(candidate_channel(cid), {"type": "danmaku", **body})
        await bus.publish(sitting_channel(sitting_id), {"type": "danmaku", "danmaku": body})
    except BusUnavailable as exc:
        # Committed, so not lost: when the bus is back every socket is told
        # ("overflow", "bus_reconnected") and the candidate's page loads the warnings it
        # has not acknowledged (GET /api/flow/warnings). The sender is told it is pending.
        log.warning("danmaku %s stored, not pushed (bus unavailable: %s)", body["id"], exc)
        return {**body, "pending": True}
    return {**body, "pending": False}


async def mark_danmaku(
    database: Database, bus: Bus, *, candidate_id: int, danmaku_id: int, state: str
) -> dict | None:
    """Record that a danmaku reached the candidate's page (``delivered``) or was shown
    (``seen``). Idempotent; ignores ids that are not this candidate's. Written on the
    database writer thread (every warning is marked twice, from the candidate's socket)."""

    async def store(db: AsyncSession) -> tuple[int, dict] | None:
        row = await db.get(Danmaku, danmaku_id, with_for_update=True)
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
        sitting_id = await db.scalar(
            select(Candidate.sitting_id).where(Candidate.id == candidate_id)
        )
        await chain.append(
            db,
            "danmaku.seen" if row.seen_at else "danmaku.delivered",
            actor=chain.candidate_actor(candidate_id),
            payload={
                "delivered_at": chain.iso(row.delivered_at),
                "seen_at": chain.iso(row.seen_at),
            },
            sitting_id=sitting_id,
            candidate_id=candidate_id,
            subject_type="danmaku",
            subject_id=row.id,
        )
        return sitting_id, danmaku_body(row)

    stored = await database.write(store)
    if stored is None:
        return None
    sitting_id, body = stored
    await bus.publish(sitting_channel(sitting_id), {"type": "danmaku", "danmaku": body})
    return body


async def acknowledge_danmaku(
    database: Database, bus: Bus, *, candidate_id: int, danmaku_id: int, now: datetime
) -> dict:
    """The candidate pressed "我已知晓 I understand" on a warning (issue 23): recorded once
    (in the audit chain), the consoles told; pressing again answers the same. A warning
    that is not this candidate's is ``unknown_danmaku`` (404), as one that does not exist."""

    async def store(db: AsyncSession) -> tuple[int | None, dict]:
        row = await db.get(Danmaku, danmaku_id, with_for_update=True)
        if row is None or row.candidate_id != candidate_id:
            raise NotFound("unknown_danmaku", f"No warning {danmaku_id}. 没有这条警告。")
        if row.acknowledged_at is not None:
            return None, danmaku_body(row)
        row.acknowledged_at = now
        if row.delivered_at is None:
            row.delivered_at = now
        if row.seen_at is None:
            row.seen_at = now
        candidate = await db.get(Candidate, candidate_id)
        await chain.append(
            db,
            "danmaku.acknowledged",
            actor=chain.candidate_actor(candidate_id),
            payload={"acknowledged_at": chain.iso(now)},
            sitting_id=candidate.sitting_id,
            candidate_id=candidate_id,
            subject_type="danmaku",
            subject_id=row.id,
        )
        return candidate.sitting_id, danmaku_body(row)

    sitting_id, body = await database.write(store)
    if sitting_id is not None:
        await bus.publish(sitting_channel(sitting_id), {"type": "danmaku", "danmaku": body})
    return body


#: at most this many unacknowledged warnings are shown again to a candidate (newest kept)
PENDING_DANMAKU_MAX = 50


async def pending_danmaku(db: AsyncSession, candidate_id: int) -> list[dict]:
    """The candidate's warnings not yet acknowledged, oldest first: they stay on the
    candidate's screen (after a reload too) until acknowledged."""
    rows = list(
        await db.scalars(
            select(Danmaku)
            .where(Danmaku.candidate_id == candidate_id, Danmaku.acknowledged_at.is_(None))
            .order_by(Danmaku.sent_at.desc(), Danmaku.id.desc())
            .limit(PENDING_DANMAKU_MAX)
        )
    )
    return [danmaku_body(r) for r in reversed(rows)]


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
    # camera_blocked, by its cause (issue 18: each its own hint)
    "camera_blocked": "摄像头被遮挡，请移开遮挡物。 Your camera is covered: uncover it.",
    "camera_dark": "摄像头画面过暗，请打开灯光或面向光源。 Your camera picture is too dark: "
    "turn on a light or face the light.",
    "camera_blurred": "摄像头画面模糊，请擦拭镜头并保持摄像头稳定。 Your camera picture is "
    "blurred: clean the lens and keep the camera still.",
    "camera_frozen": "摄像头画面静止不动，请检查摄像头是否正常工作（可重新插拔摄像头或刷新页面）。 "
    "Your camera picture is frozen: check that the camera works (plug it in again or "
    "reload the page).",
    "camera_lost": "服务器收不到你的摄像头画面，请检查摄像头和网络连接。 The server receives no "
    "picture from your camera: check the camera and the network.",
    "phone_lost": "服务器收不到你手机（第二视角）的画面，请检查手机监控页面，必要时重新连接。 "
    "The server receives no picture from your phone (second view): check the phone's page "
    "and reconnect it if needed.",
    "screen_left": "请勿离开考试页面（切屏），多次离开将报告监考老师。 Do not leave the exam "
    "page: leaving it again is reported to the invigilator.",
}
#: alert types the candidate can fix → the hint that tells them how
FIXABLE_ALERTS = {
    "absent": "absent",
    "face_covered": "face_covered",
    "camera_blocked": "camera_blocked",
    "second_view_lost": "phone_lost",
    "first_view_lost": "camera_lost",
}
#: hints that tell the candidate to reconnect a view: never sent while it streams
RECONNECT_HINTS = {"phone_lost": "second", "camera_lost": "first"}


def hint_code(alert_type: str | None, cause: str | None = None) -> str | None:
    """The hint for an alert: camera_blocked by its cause (covered, too dark, blurred,
    frozen), other fixable types by their type; None when the candidate cannot fix it."""
    code = FIXABLE_ALERTS.get(alert_type or "")
    if code == "camera_blocked" and cause and f"camera_{cause}" in HINT_TEXTS:
        return f"camera_{cause}"
    return code


HINT_REPEAT_SECONDS = 30.0  # the same hint (without an alert) is not repeated sooner
#: the escalation ladder; a condition the candidate cannot fix starts at the danmaku.
#: "terminate" is the console's pause / terminate (proctor.invigilation.control)
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


async def action_bodies(db: AsyncSession, rows: list[ConsoleAction]) -> list[dict]:
    names = await history.staff_names(db, (r.staff_id for r in rows))
    return [action_body(r, names) for r in rows]


async def publish_bodies(bus: Bus, bodies: list[dict]) -> list[dict]:
    """Tell the sitting's consoles of these console actions (``action_bodies``)."""
    for body in bodies:
        await bus.publish(sitting_channel(body["sitting_id"]), {"type": "action", "action": body})
    return bodies


async def publish_actions(db: AsyncSession, bus: Bus, rows: list[ConsoleAction]) -> list[dict]:
    return await publish_bodies(bus, await action_bodies(db, rows))


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
    names = await history.staff_names(db, (h.staff_id for h in handlings.values()))
    bodies = [console_alert_body(a, c, handlings.get(a.id), names) for a, c in rows]
    return await mark_snoozed(db, sitting_id, bodies)


async def handle_alerts(
    database: Database,
    bus: Bus,
    *,
    staff_id: int,
    alert_ids: list[int],
    action: str,
    reason: str,
    record_violation: bool = False,
) -> list[dict[str, Any]]:
    """Acknowledge or dismiss open alerts, with a reason; every console of the sitting is
    told (the alert again, with its new status, and the action). Acknowledging with
    ``record_violation`` also keeps each alert as a violation record (违纪记录: a
    ``violation`` action with the alert's screenshot and the reason), as a violation
    screenshot from the console is. One transaction on the database writer thread, the
    alerts locked: of two invigilators handling the same alert at once, one does it and
    the other is told it is handled (``alert_already_handled``)."""
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

    async def store(db: AsyncSession) -> tuple[list[dict], list[dict]]:
        alerts = list(
            await db.scalars(
                select(Alert)
                .where(Alert.id.in_(list(alert_ids)))
                .order_by(Alert.id)
                .with_for_update()
            )
        )
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
        names = await history.staff_names(db, [staff_id])
        bodies = []
        handlings = [r for r in rows if r.kind == kind]
        for alert, row in zip(open_alerts, handlings, strict=True):
            candidate = await db.get(Candidate, alert.candidate_id)
            bodies.append(console_alert_body(alert, candidate, row, names))
        await mark_snoozed(db, open_alerts[0].sitting_id, bodies)
        return bodies, await action_bodies(db, rows)

    bodies, actions = await database.write(store)
    for body in bodies:
        await bus.publish(sitting_channel(body["sitting_id"]), {"type": "alert", "alert": body})
    await publish_bodies(bus, actions)
    return bodies


async def open_alerts_of(db: AsyncSession, candidate_id: int) -> list[Alert]:
    return list(
        await db.scalars(
            select(Alert).where(Alert.candidate_id == candidate_id, Alert.status == "open")
        )
    )


# ----------------------------------------------------------------------------- snoozes

SNOOZE_MINUTES_MAX = 120


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def snooze_body(row: AlertSnooze, names: dict[int, str], now: datetime | None = None) -> dict:
    now = now or utcnow()
    ends = row.ended_at or row.until
    return {
        "id": row.id,
        "sitting_id": row.sitting_id,
        "candidate_id": row.candidate_id,
        "type": row.type,
        "minutes": row.minutes,
        "reason": row.reason,
        "staff_id": row.staff_id,
        "staff_name": names.get(row.staff_id),
        "created_at": _iso(row.created_at),
        "until": _iso(row.until),
        "ended_at": _iso(row.ended_at),
        "ended_by": row.ended_by,
        "ended_by_name": names.get(row.ended_by) if row.ended_by else None,
        "active": row.ended_at is None and now < ends,
    }


@dataclass
class SnoozeBook:
    """The snoozes of one sitting, by (candidate, alert type): which alert a snooze covers.
    An alert is covered when it was raised within a snooze of its candidate and type (from
    its start to its end, early or at ``until``) and, for an alert that is updated while
    its condition lasts (an episode with ``last_seen_at``), was not seen after that end:
    such an episode comes back when the snooze is over."""

    windows: dict[tuple[int, str], dict[int, dict]] = field(default_factory=dict)

    def update(self, body: dict) -> None:
        key = (int(body["candidate_id"]), str(body["type"]))
        self.windows.setdefault(key, {})[int(body["id"])] = body

    def covering(self, alert: dict) -> dict | None:
        snoozes = self.windows.get((int(alert.get("candidate_id") or 0), alert.get("type")))
        raised = _parse_time(alert.get("raised_at")) or _parse_time(alert.get("started_at"))
        if not snoozes or raised is None:
            return None
        seen = _parse_time(alert.get("last_seen_at"))
        for body in snoozes.values():
            end = _parse_time(body["ended_at"]) or _parse_time(body["until"])
            if history.snooze_covers(
                body["type"], body["created_at"], end, alert.get("type"), raised, seen
            ):
                return body
        return None

    def hides(self, alert: dict) -> bool:
        """Not pushed to a console as new: an open alert a snooze covers."""
        return (alert.get("status") or "open") == "open" and self.covering(alert) is not None


def _record_snooze_mark(row: history.SnoozeRecord, names: Mapping[int, str]) -> dict:
    """The ``snooze`` of a console alert body, from the history's snooze record."""
    return {
        "id": row.id,
        "until": _iso(row.until),
        "ended_at": _iso(row.ended_at),
        "by_name": names.get(row.staff_id),
        "reason": row.reason,
    }


def _snooze_mark(body: dict) -> dict:
    return {
        "id": body["id"],
        "until": body["until"],
        "ended_at": body["ended_at"],
        "by_name": body["staff_name"],
        "reason": body["reason"],
    }


async def snooze_book(
    db: AsyncSession, sitting_id: int, candidate_ids: Iterable[int] | None = None
) -> SnoozeBook:
    query = select(AlertSnooze).where(AlertSnooze.sitting_id == sitting_id)
    if candidate_ids is not None:
        query = query.where(AlertSnooze.candidate_id.in_(list(candidate_ids)))
    rows = list(await db.scalars(query))
    names = await history.staff_names(db, [r.staff_id for r in rows] + [r.ended_by for r in rows])
    book = SnoozeBook()
    now = utcnow()
    for row in rows:
        book.update(snooze_body(row, names, now))
    return book


async def mark_snoozed(db: AsyncSession, sitting_id: int, bodies: list[dict]) -> list[dict]:
    """Set each console alert body's ``snooze`` (the snooze that covers it, or None)."""
    book = (
        await snooze_book(db, sitting_id, {b["candidate_id"] for b in bodies})
        if bodies
        else SnoozeBook()
    )
    for body in bodies:
        covering = book.covering(body)
        body["snooze"] = _snooze_mark(covering) if covering else None
    return bodies


async def list_snoozes(
    db: AsyncSession,
    sitting_id: int,
    candidate_ids: set[int] | None,
    *,
    active_only: bool = True,
) -> list[dict[str, Any]]:
    """The sitting's snoozes (of these candidates), newest first; by default the running
    ones only."""
    now = utcnow()
    query = (
        select(AlertSnooze)
        .where(AlertSnooze.sitting_id == sitting_id)
        .order_by(AlertSnooze.created_at.desc(), AlertSnooze.id.desc())
        .limit(500)
    )
    if candidate_ids is not None:
        query = query.where(AlertSnooze.candidate_id.in_(candidate_ids))
    if active_only:
        query = query.where(AlertSnooze.ended_at.is_(None), AlertSnooze.until > now)
    rows = list(await db.scalars(query))
    names = await history.staff_names(db, [r.staff_id for r in rows] + [r.ended_by for r in rows])
    return [snooze_body(r, names, now) for r in rows]


async def _publish_snooze(db: AsyncSession, bus: Bus, row: AlertSnooze, action: ConsoleAction):
    names = await history.staff_names(db, [row.staff_id, row.ended_by])
    body = snooze_body(row, names)
    await bus.publish(sitting_channel(row.sitting_id), {"type": "snooze", "snooze": body})
    await publish_actions(db, bus, [action])
    return body


async def snooze_alerts(
    db: AsyncSession,
    bus: Bus,
    *,
    staff_id: int,
    candidate: Candidate,
    alert_type: str,
    minutes: int,
    reason: str,
) -> dict[str, Any]:
    """Snooze one candidate's alerts of one type for ``minutes``, with a reason: alerts
    raised meanwhile are recorded as always (review, timeline, record) but not pushed to
    the consoles as new. A console action (``alerts_snoozed``) in the supervision log and
    the audit chain; every console of the sitting is told (``{"type": "snooze"}``)."""
    if alert_type not in ALERT_TYPES:
        raise Invalid(
            "bad_alert_type",
            f"Unknown alert type {alert_type!r}. 未知的告警类型。 Known: {', '.join(ALERT_TYPES)}.",
        )
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int)
        or not (1 <= minutes <= SNOOZE_MINUTES_MAX)
    ):
        raise Invalid(
            "bad_snooze_minutes",
            f"A snooze lasts 1 to {SNOOZE_MINUTES_MAX} minutes. "
            f"静音时长须为 1 至 {SNOOZE_MINUTES_MAX} 分钟。",
        )
    reason = _text(reason, lo=2, hi=REASON_MAX, code="reason_required", what="The reason (理由)")
    now = utcnow()
    running = await db.scalar(
        select(AlertSnooze).where(
            AlertSnooze.candidate_id == candidate.id,
            AlertSnooze.type == alert_type,
            AlertSnooze.ended_at.is_(None),
            AlertSnooze.until > now,
        )
    )
    if running is not None:
        raise Conflict(
            "already_snoozed",
            f"These alerts are already snoozed until {running.until.isoformat()}; end that "
            "snooze first. 该考生此类告警已在静音中，请先结束静音。",
        )
    row = AlertSnooze(
        sitting_id=candidate.sitting_id,
        candidate_id=candidate.id,
        type=alert_type,
        staff_id=staff_id,
        reason=reason,
        minutes=minutes,
        created_at=now,
        until=now + timedelta(minutes=minutes),
    )
    db.add(row)
    await db.flush()
    action = await record_action(
        db,
        sitting_id=candidate.sitting_id,
        kind="alerts_snoozed",
        staff_id=staff_id,
        candidate_id=candidate.id,
        reason=reason,
        data={
            "snooze_id": row.id,
            "type": alert_type,
            "minutes": minutes,
            "until": _iso(row.until),
        },
        at=now,
        audit={"snooze_id": row.id, "type": alert_type, "until": chain.iso(row.until)},
    )
    await db.commit()
    return await _publish_snooze(db, bus, row, action)


async def get_snooze(db: AsyncSession, snooze_id: int) -> AlertSnooze:
    row = await db.get(AlertSnooze, snooze_id)
    if row is None:
        raise NotFound("unknown_snooze", f"No snooze {snooze_id}. 没有该静音记录。")
    return row


async def end_snooze(
    db: AsyncSession, bus: Bus, *, staff_id: int, snooze: AlertSnooze, reason: str = ""
) -> dict[str, Any]:
    """End a running snooze early: the candidate's alerts of that type are pushed again."""
    now = utcnow()
    if snooze.ended_at is not None or snooze.until <= now:
        raise Conflict("snooze_over", "This snooze is already over. 该静音已结束。")
    reason = " ".join((reason or "").split())[:REASON_MAX]
    snooze.ended_at = now
    snooze.ended_by = staff_id
    action = await record_action(
        db,
        sitting_id=snooze.sitting_id,
        kind="snooze_ended",
        staff_id=staff_id,
        candidate_id=snooze.candidate_id,
        reason=reason,
        data={"snooze_id": snooze.id, "type": snooze.type},
        at=now,
        audit={"snooze_id": snooze.id, "type": snooze.type},
    )
    await db.commit()
    return await _publish_snooze(db, bus, snooze, action)


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
    database: Database,
    bus: Bus,
    *,
    candidate_id: int,
    code: str,
    alert_id: int | None = None,
) -> dict[str, Any] | None:
    """The first rung of the ladder: tell the candidate's page how to fix a condition.
    Once per alert (or, without an alert, not again within HINT_REPEAT_SECONDS). Written
    on the database writer thread (it follows every alert of a connected candidate)."""
    text = HINT_TEXTS.get(code)
    if text is None:
        return None

    async def store(db: AsyncSession) -> tuple[dict, dict] | None:
        candidate = await get_candidate(db, candidate_id)
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
        return hint_message(row), (await action_bodies(db, [row]))[0]

    stored = await database.write(store)
    if stored is None:
        return None
    message, action = stored
    await bus.publish(candidate_channel(candidate_id), message)
    await publish_bodies(bus, [action])
    return message


async def mark_hint(
    database: Database, bus: Bus, *, candidate_id: int, hint_id: int, state: str
) -> dict[str, Any] | None:
    """The hint reached the candidate's page (``delivered``) or was shown (``seen``)."""

    async def store(db: AsyncSession) -> dict | None:
        row = await db.get(ConsoleAction, hint_id, with_for_update=True)
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
        return (await action_bodies(db, [row]))[0]

    body = await database.write(store)
    return None if body is None else (await publish_bodies(bus, [body]))[0]


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


# ----------------------------------------------------------------------------- notes

#: an invigilator's note on a candidate or a room's handover note: at most this long
FREE_NOTE_MAX = 1000
#: at most this many notes per candidate (or handover notes per room)
NOTES_PER_SUBJECT = 200
NOTE_KIND = "note"
HANDOVER_KIND = "handover_note"


async def _count_actions(db: AsyncSession, kind: str, **where: int) -> int:
    query = select(func.count()).select_from(ConsoleAction).where(ConsoleAction.kind == kind)
    for column, value in where.items():
        query = query.where(getattr(ConsoleAction, column) == value)
    return int(await db.scalar(query) or 0)


async def add_note(
    db: AsyncSession, bus: Bus, *, staff_id: int, candidate: Candidate, text: str
) -> dict[str, Any]:
    """A free-text note of an invigilator on one candidate (several, timestamped, with
    the author): a ``note`` console action, so it is in the candidate's timeline, the
    review and the audit chain."""
    text = _text(text, lo=1, hi=FREE_NOTE_MAX, code="bad_note", what="A note (备注)")
    if await _count_actions(db, NOTE_KIND, candidate_id=candidate.id) >= NOTES_PER_SUBJECT:
        raise Conflict(
            "too_many_notes", f"At most {NOTES_PER_SUBJECT} notes per candidate. 备注已达上限。"
        )
    row = await record_action(
        db,
        sitting_id=candidate.sitting_id,
        kind=NOTE_KIND,
        staff_id=staff_id,
        candidate_id=candidate.id,
        reason=text,
    )
    await db.commit()
    return (await publish_actions(db, bus, [row]))[0]


async def list_notes(db: AsyncSession, *, candidate_id: int) -> list[dict[str, Any]]:
    """The candidate's notes, oldest first."""
    rows = list(
        await db.scalars(
            select(ConsoleAction)
            .where(ConsoleAction.candidate_id == candidate_id, ConsoleAction.kind == NOTE_KIND)
            .order_by(ConsoleAction.at, ConsoleAction.id)
        )
    )
    names = await history.staff_names(db, (r.staff_id for r in rows))
    return [action_body(r, names) for r in rows]


async def add_handover(
    db: AsyncSession, bus: Bus, *, staff_id: int, room_id: int, sitting_id: int, text: str
) -> dict[str, Any]:
    """A handover note for a room (交接说明), e.g. when a second invigilator takes over:
    shown to every invigilator of the room when they open it."""
    text = _text(text, lo=2, hi=FREE_NOTE_MAX, code="bad_note", what="A handover note (交接说明)")
    if await _count_actions(db, HANDOVER_KIND, room_id=room_id) >= NOTES_PER_SUBJECT:
        raise Conflict(
            "too_many_notes", f"At most {NOTES_PER_SUBJECT} handover notes per room. 已达上限。"
        )
    row = await record_action(
        db,
        sitting_id=sitting_id,
        kind=HANDOVER_KIND,
        staff_id=staff_id,
        room_id=room_id,
        reason=text,
    )
    await db.commit()
    return (await publish_actions(db, bus, [row]))[0]


async def list_handovers(db: AsyncSession, *, room_id: int, limit: int = 20) -> list[dict]:
    """The room's handover notes, newest first."""
    rows = list(
        await db.scalars(
            select(ConsoleAction)
            .where(ConsoleAction.room_id == room_id, ConsoleAction.kind == HANDOVER_KIND)
            .order_by(ConsoleAction.at.desc(), ConsoleAction.id.desc())
            .limit(limit)
        )
    )
    names = await history.staff_names(db, (r.staff_id for r in rows))
    return [action_body(r, names) for r in rows]


# ----------------------------------------------------------------------------- timeline


async def timeline(db: AsyncSession, candidate_id: int, limit: int = 300) -> list[dict[str, Any]]:
    """One candidate's alerts (with how each was handled and the snooze that covers it),
    console actions, danmaku, events and the time given back to the whole sitting, newest
    first; read from the candidate's history (proctor.events.history)."""
    if not 1 <= limit <= 1000:
        raise Invalid("bad_limit", "limit must be between 1 and 1000")
    candidate = await get_candidate(db, candidate_id)
    h = await history.load_candidate(db, candidate)
    names = h.names

    def newest_first(rows: list, key: Any) -> list:
        return sorted(rows, key=lambda r: (key(r), r.id), reverse=True)

    items: list[dict[str, Any]] = []
    for alert in newest_first(h.alerts_of(candidate_id), lambda a: a.raised_at):
        body = console_alert_body(alert, candidate, h.handling(alert.id), names)
        covering = h.snooze_covering(alert)
        body["snooze"] = _record_snooze_mark(covering, names) if covering else None
        items.append({"at": body["raised_at"], "kind": "alert", "alert": body})
    for row in newest_first(h.actions_of(candidate_id), lambda a: a.at):
        items.append({"at": _iso(row.at), "kind": "action", "action": action_body(row, names)})
    for d in newest_first(h.danmaku_of(candidate_id), lambda d: d.sent_at):
        body = danmaku_body(d)
        body["sender_name"] = names.get(d.sender_id)
        items.append({"at": body["sent_at"], "kind": "danmaku", "danmaku": body})
    for ev in newest_first(h.events_of(candidate_id), lambda e: e.at):
        items.append(
            {"at": _iso(ev.at), "kind": "event", "event": {"kind": ev.kind, "data": ev.data or {}}}
        )
    # time given back (顺延) to the whole sitting (the candidate's own extensions are their
    # ``time_extended`` events above)
    everyone = [x for x in h.extensions if x.candidate_id is None]
    for e in newest_first(everyone, lambda x: x.granted_at):
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
