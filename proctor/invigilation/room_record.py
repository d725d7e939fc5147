"""The exam-room record (考场记录), kept live: attendance, absentees, late arrivals,
violations and how they were handled, incidents, time extensions; exported as CSV or as a
printable HTML page once the sitting is over.

It is computed from what the engine records: candidates who connected (media) or logged
in are present; a first arrival after the start is late; alerts, the console's supervision
log (``ConsoleAction``), danmaku and voice calls are the violations and their handling;
time extensions, the flow's step, pauses and terminations come from the exam flow (issue 3;
pause / terminate: proctor.invigilation.control).
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor import csvsafe
from proctor.errors import Conflict
from proctor.events import history
from proctor.events.history import (
    ActionRecord,
    AlertRecord,
    DanmakuRecord,
    EventRecord,
    ExtensionRecord,
    History,
)
from proctor.events.recorder import ALERT_TITLES
from proctor.evidence.zones import localize, zone_body, zone_of
from proctor.flow import machine, screen
from proctor.flow import steps as flow
from proctor.invigilation.rooms import room_staff_names, seats_of
from proctor.invigilation.supervision import INCIDENT_CATEGORIES
from proctor.rules import RuleSettings
from proctor.sitting import violations
from proctor.store.tables import (
    Answer,
    Attempt,
    Candidate,
    CandidateEvent,
    Room,
    Sitting,
    TimeExtension,
    utcnow,
)
from proctor.times import iso as _iso

KIND_NAMES = {
    "device_check": "设备调试 Device check",
    "trial": "试考 Trial exam",
    "formal": "正式考试 Formal exam",
}
ACTION_NAMES = {
    "hint": "自动提示 Automatic hint",
    "alert_acknowledged": "确认告警 Alert acknowledged",
    "alert_dismissed": "排除告警 Alert dismissed",
    "violation": "截图违纪记录 Violation screenshot",
    "voice_started": "语音通话开始 Voice call started",
    "voice_ended": "语音通话结束 Voice call ended",
    "incident": "突发事件 Incident",
    "danmaku": "弹幕警告 Danmaku warning",
    "exam_paused": "暂停考试 Exam paused",
    "exam_resumed": "恢复考试 Exam resumed",
    "discipline_warning": "警告 Warning",
    "exam_terminated": "终止考试 Exam ended",
    "alerts_snoozed": "告警静音 Alerts snoozed",
    "snooze_ended": "结束静音 Snooze ended",
    "note": "监考备注 Invigilator's note",
    "handover_note": "交接说明 Handover note",
    "help_request": "考生求助 Raised hand",
}
VIOLATION_FROM_ALERT = "告警记为违纪 Alert recorded as a violation"
#: console actions that handle a violation (考生违规违纪处理): listed with the violations
DISCIPLINE_ACTIONS = ("discipline_warning", "exam_terminated")


def _hand_text(data: dict[str, Any]) -> str:
    """A raised hand in the record: the message and how it was resolved (or "open")."""
    text = f"“{data.get('text') or ''}”"
    if not data.get("resolved_at"):
        return f"{text} — 待处理 open"
    return f"{text} — 已处理 resolved {data['resolved_at']}: {data.get('note') or ''}"


# ----------------------------------------------------------------------------- flow fields


@dataclass
class FlowFacts:
    """What the exam flow knows of one candidate (None where it knows nothing)."""

    step: str | None = None
    logged_in_at: datetime | None = None
    phone_paired_at: datetime | None = None
    answered: int | None = None
    total: int | None = None
    ends_at: datetime | None = None
    submitted_at: datetime | None = None
    paused: dict[str, Any] | None = None
    terminated: dict[str, Any] | None = None


async def flow_facts(
    db: AsyncSession, sitting: Sitting, now: datetime | None = None
) -> dict[int, FlowFacts]:
    """Step, progress, personal end (extensions and pauses), a pause in force and a
    termination of every candidate of the sitting who logged in, read in four queries from
    the flow's tables."""
    now = now or utcnow()
    attempts = list(await db.scalars(select(Attempt).where(Attempt.sitting_id == sitting.id)))
    if not attempts:
        return {}
    names = await history.staff_names(
        db, [a.paused_by for a in attempts] + [a.terminated_by for a in attempts]
    )
    answered: dict[int, int] = defaultdict(int)
    rows = await db.execute(
        select(Answer.attempt_id, Answer.value).where(
            Answer.attempt_id.in_([a.id for a in attempts])
        )
    )
    for attempt_id, value in rows.all():
        if value not in (None, "", []):
            answered[attempt_id] += 1
    everyone, ext = await _extension_seconds(db, sitting)
    out = {}
    for a in attempts:
        seconds = everyone + int(ext.get(a.candidate_id, 0) or 0)
        ends = flow.timing.candidate_end(sitting.ends_at, seconds, flow.paused_seconds(a, now))
        paused = None
        if a.paused_at is not None:
            paused = {
                "since": _iso(a.paused_at),
                "by": a.paused_by,
                "by_name": names.get(a.paused_by) if a.paused_by else None,
                "reason": a.pause_reason,
                "seconds_left": max(0.0, (ends - now).total_seconds()),
            }
        terminated = None
        if a.step == "terminated":
            terminated = {
                "category": a.termination_category,
                "category_title": violations.title_of(a.termination_category),
                "at": _iso(a.terminated_at),
                "by": a.terminated_by,
                "by_name": names.get(a.terminated_by) if a.terminated_by else None,
                "reason": a.termination_reason,
            }
        out[a.candidate_id] = FlowFacts(
            step=a.step,
            logged_in_at=a.logged_in_at,
            phone_paired_at=a.phone_paired_at,
            answered=answered.get(a.id, 0) if a.question_order else None,
            total=len(a.question_order) if a.question_order else None,
            ends_at=ends,
            submitted_at=a.submitted_at,
            paused=paused,
            terminated=terminated,
        )
    return out


def flow_body(facts: FlowFacts | None) -> dict[str, Any] | None:
    if facts is None:
        return None
    return {
        "step": facts.step,
        "step_title": machine.STEP_TITLES.get(facts.step or "", facts.step),
        "ended": facts.step in machine.ENDED,
        "logged_in_at": _iso(facts.logged_in_at),
        "phone_paired": facts.phone_paired_at is not None,
        "progress": (
            {"answered": facts.answered, "total": facts.total} if facts.total is not None else None
        ),
        "ends_at": _iso(facts.ends_at),
        "submitted_at": _iso(facts.submitted_at),
        "paused": facts.paused,
        "terminated": facts.terminated,
    }


async def first_connections(
    db: AsyncSession, candidate_ids: list[int]
) -> dict[int, dict[str, datetime]]:
    """candidate id → view → when it first connected."""
    rows = await db.execute(
        select(CandidateEvent.candidate_id, CandidateEvent.data, CandidateEvent.at).where(
            CandidateEvent.candidate_id.in_(candidate_ids),
            CandidateEvent.kind == "media_connected",
        )
    )
    out: dict[int, dict[str, datetime]] = defaultdict(dict)
    for cid, data, at in rows.all():
        view = (data or {}).get("view", "first")
        if view not in out[cid] or at < out[cid][view]:
            out[cid][view] = at
    return out


# ----------------------------------------------------------------------------- the record


async def _extension_seconds(db: AsyncSession, sitting: Sitting) -> tuple[int, dict[int, Any]]:
    """The seconds given back to everyone of the sitting, and the sum of each candidate's
    own extensions by candidate."""
    rows = await db.execute(
        select(TimeExtension.candidate_id, func.sum(TimeExtension.seconds))
        .where(TimeExtension.sitting_id == sitting.id)
        .group_by(TimeExtension.candidate_id)
    )
    ext = dict(rows.all())
    return int(ext.pop(None, 0) or 0), ext


async def sitting_end(db: AsyncSession, sitting: Sitting) -> datetime:
    """When the last candidate's time is over (the scheduled end plus the longest
    extension)."""
    everyone, ext = await _extension_seconds(db, sitting)
    now = utcnow()
    longest = max((int(v or 0) for v in ext.values()), default=0)
    for a in await db.scalars(
        select(Attempt).where(
            Attempt.sitting_id == sitting.id,
            (Attempt.paused_seconds > 0) | Attempt.paused_at.is_not(None),
        )
    ):
        own = int(ext.get(a.candidate_id, 0) or 0) + flow.paused_seconds(a, now)
        longest = max(longest, own)
    return flow.timing.candidate_end(sitting.ends_at, everyone + longest)


@dataclass
class _Room:
    """What every part of one record reads: the sitting, its rooms and seats, the
    candidates in seat order and their history."""

    sitting: Sitting
    now: datetime
    history: History
    candidates: list[Candidate]
    seats: dict[int, tuple[int, str, int]]
    rooms: list[Room]
    #: the history's records of the record's candidates (and of its rooms), in time order
    alerts: list[AlertRecord]
    actions: list[ActionRecord]
    danmaku: list[DanmakuRecord]
    hands: list[EventRecord]
    extensions: list[ExtensionRecord]
    by_id: dict[int, Candidate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {c.id: c for c in self.candidates}

    @property
    def names(self) -> Mapping[int, str]:
        return self.history.names

    def who(self, cid: int | None) -> dict[str, Any] | None:
        c = self.by_id.get(cid) if cid is not None else None
        if c is None:
            return None
        room = self.seats.get(c.id)
        return {
            "id": c.id,
            "name": c.name,
            "id_number": c.id_number,
            "room": room[1] if room else None,
            "seat": room[2] if room else None,
        }

    def by(self, staff_id: int | None, nobody: str | None = None) -> str | None:
        return self.names.get(staff_id) if staff_id else nobody


async def _gather(
    db: AsyncSession, sitting: Sitting, candidate_ids: set[int], room_ids: list[int] | None
) -> _Room:
    now = utcnow()
    seats = await seats_of(db, sitting.id)
    cands = list(
        await db.scalars(
            select(Candidate).where(Candidate.id.in_(candidate_ids)).order_by(Candidate.id)
        )
    )
    cands.sort(key=lambda c: (seats.get(c.id, (1 << 30, "", 0))[0], seats.get(c.id, (0, "", 0))[2]))
    ids = {c.id for c in cands}
    room_query = select(Room).where(Room.sitting_id == sitting.id).order_by(Room.id)
    if room_ids is not None:
        room_query = room_query.where(Room.id.in_(room_ids))
    rooms = list(await db.scalars(room_query))
    h = await history.load_sitting(db, sitting, ids, now)
    shown_rooms = {r.id for r in rooms}

    def ours(a: ActionRecord) -> bool:  # the candidates', or a room's (incidents, notes)
        if a.candidate_id is not None:
            return a.candidate_id in ids
        return a.sitting_id == sitting.id and (room_ids is None or a.room_id in shown_rooms)

    return _Room(
        sitting=sitting,
        now=now,
        history=h,
        candidates=cands,
        seats=seats,
        rooms=rooms,
        alerts=sorted(h.alerts, key=lambda a: (a.raised_at, a.id)),
        actions=[a for a in h.actions if ours(a)],
        danmaku=list(h.danmaku),
        hands=[e for e in h.events if e.kind == "help_request"],  # raised hands (求助)
        extensions=list(h.extensions),
    )


async def _attendance(db: AsyncSession, r: _Room) -> list[dict[str, Any]]:
    """Each candidate: present or absent, arrival and lateness, step, counts of alerts
    (not dismissed) and violation records, leaving the exam page."""
    facts = await flow_facts(db, r.sitting, r.now)
    watch = RuleSettings.from_dict(r.sitting.rules)
    left = await screen.candidate_leaves(
        db, [c.id for c in r.candidates], watch.fullscreen_required
    )
    alerts_of: dict[int, int] = defaultdict(int)
    for a in r.alerts:
        if a.status != "dismissed":
            alerts_of[a.candidate_id] += 1
    violations_of: dict[int, int] = defaultdict(int)
    for a in r.actions:
        if a.kind == "violation" and a.candidate_id is not None:
            violations_of[a.candidate_id] += 1
    rows = []
    for c in r.candidates:
        f = facts.get(c.id)
        conn = r.history.first_connected(c.id)
        page = screen.summary(left.get(c.id, []), r.now)
        came = r.history.arrived_at(c.id)
        late_by = (came - r.sitting.starts_at).total_seconds() if came else None
        rows.append(
            {
                **(r.who(c.id) or {}),
                "present": came is not None,
                "arrived_at": _iso(came),
                "late": late_by is not None and late_by > 0,
                "late_seconds": round(late_by) if late_by and late_by > 0 else 0,
                "first_view_at": _iso(conn.get("first")),
                "second_view_at": _iso(conn.get("second")),
                "step": f.step if f else None,
                # the step in words (issue 23: no raw codes in the record)
                "step_title": machine.STEP_TITLES.get(f.step, f.step) if f and f.step else None,
                "submitted_at": _iso(f.submitted_at) if f else None,
                "paused": bool(f and f.paused),
                "terminated": (f.terminated or {}).get("category") if f else None,
                "alerts": alerts_of.get(c.id, 0),
                "violations": violations_of.get(c.id, 0),
                # leaving the exam page (切屏): how often, how long in all
                "screen_left_count": page["count"],
                "screen_left_seconds": page["seconds"],
            }
        )
    return rows


def _handling(r: _Room, a: ActionRecord) -> dict[str, Any]:
    return {
        "kind": a.kind,
        "what": ACTION_NAMES.get(a.kind, a.kind),
        "by": r.by(a.staff_id, "系统 system"),
        "at": _iso(a.at),
        "reason": a.reason,
    }


def _alert_violation(r: _Room, a: AlertRecord, handling: list[dict[str, Any]]) -> dict:
    return {
        "at": _iso(a.raised_at),
        "candidate": r.who(a.candidate_id),
        "source": "alert",
        "type": a.type,
        "title": ALERT_TITLES.get(a.type, a.type),
        "severity": a.severity,
        "view": a.view,
        "status": a.status,
        "note": a.message,
        "evidence_url": f"/api/evidence/{a.evidence_id}" if a.evidence_id else None,
        "handling": handling,
    }


def _discipline_violation(r: _Room, a: ActionRecord) -> dict[str, Any]:
    """A warning (警告) or an exam ended by the invigilator, with its category."""
    data = a.data or {}
    return {
        "at": _iso(a.at),
        "candidate": r.who(a.candidate_id),
        "source": "invigilator",
        "type": a.kind,
        "title": data.get("category_title")
        or violations.title_of(data.get("category"))
        or ACTION_NAMES[a.kind],
        "severity": "critical" if a.kind == "exam_terminated" else "warning",
        "view": None,
        "status": data.get("category") or "recorded",
        "note": a.reason,
        "evidence_url": None,
        "handling": [{**_handling(r, a), "what": ACTION_NAMES[a.kind], "by": r.by(a.staff_id)}],
    }


def _screenshot_violation(r: _Room, a: ActionRecord) -> dict[str, Any]:
    """A violation record: kept from an alert ("recorded as a violation" when
    acknowledging) or a screenshot the invigilator took."""
    data = a.data or {}
    alert_type = ALERT_TITLES.get(str(data.get("type")), "")
    title = (
        f"{VIOLATION_FROM_ALERT} · {alert_type}"
        if data.get("from_alert")
        else ACTION_NAMES["violation"]
    )
    return {
        "at": _iso(a.at),
        "candidate": r.who(a.candidate_id),
        "source": "invigilator",
        "type": "violation_screenshot",
        "title": title,
        "alert_id": a.alert_id,
        "severity": "warning",
        "view": data.get("view"),
        "status": "recorded",
        "note": a.reason,
        "evidence_url": f"/api/evidence/{a.evidence_id}" if a.evidence_id else None,
        "handling": [
            {**_handling(r, a), "what": ACTION_NAMES["violation"], "by": r.by(a.staff_id)}
        ],
    }


def _violations(r: _Room) -> list[dict[str, Any]]:
    """Alerts and the invigilators' violation records, each with how it was handled."""
    handling_of: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for a in r.actions:
        if a.alert_id is not None:
            handling_of[a.alert_id].append(_handling(r, a))
    listed = [_alert_violation(r, a, handling_of.get(a.id, [])) for a in r.alerts]
    for a in r.actions:
        if a.kind in DISCIPLINE_ACTIONS:
            listed.append(_discipline_violation(r, a))
        if a.kind == "violation":
            listed.append(_screenshot_violation(r, a))
    listed.sort(key=lambda v: v["at"] or "")
    return listed


def _log(r: _Room) -> list[dict[str, Any]]:
    """The supervision log: everything done, by whom, in order."""
    log = [
        {
            "at": _iso(a.at),
            "kind": a.kind,
            "what": ACTION_NAMES.get(a.kind, a.kind),
            "candidate": r.who(a.candidate_id),
            "by": r.by(a.staff_id, "系统 system"),
            "reason": a.reason,
            "data": a.data or {},
        }
        for a in r.actions
        if a.kind != "incident"
    ]
    log += [
        {
            "at": _iso(d.sent_at),
            "kind": "danmaku",
            "what": ACTION_NAMES["danmaku"],
            "candidate": r.who(d.candidate_id),
            "by": r.names.get(d.sender_id),
            "reason": d.text,
            "data": {
                "delivered_at": _iso(d.delivered_at),
                "seen_at": _iso(d.seen_at),
                "acknowledged_at": _iso(d.acknowledged_at),
            },
        }
        for d in r.danmaku
    ]
    for h in r.hands:
        data = h.data or {}
        log.append(
            {
                "at": _iso(h.at),
                "kind": "help_request",
                "what": ACTION_NAMES["help_request"],
                "candidate": r.who(h.candidate_id),
                "by": data.get("resolved_by_name"),
                "reason": _hand_text(data),
                "data": {
                    "resolved_at": data.get("resolved_at"),
                    "note": data.get("note"),
                    "replied": bool(data.get("replied")),
                },
            }
        )
    log.sort(key=lambda i: i["at"] or "")
    return log


def _incidents(r: _Room) -> list[dict[str, Any]]:
    return [
        {
            "at": _iso(a.at),
            "category": (a.data or {}).get("category"),
            "category_title": INCIDENT_CATEGORIES.get((a.data or {}).get("category", ""), ""),
            "room": next((room.name for room in r.rooms if room.id == a.room_id), None),
            "candidate": r.who(a.candidate_id),
            "by": r.names.get(a.staff_id),
            "description": a.reason,
        }
        for a in r.actions
        if a.kind == "incident"
    ]


def _extensions(r: _Room) -> list[dict[str, Any]]:
    return [
        {
            "at": _iso(e.granted_at),
            "candidate": r.who(e.candidate_id),
            "everyone": e.candidate_id is None,
            "minutes": round(e.seconds / 60, 1),
            "by": r.names.get(e.granted_by),
            "reason": e.reason,
        }
        for e in r.extensions
    ]


def _summary(r: _Room, parts: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    attendance, listed = parts["attendance"], parts["violations"]
    present = sum(1 for a in attendance if a["present"])
    return {
        "expected": len(attendance),
        "present": present,
        "absent": len(attendance) - present,
        "late": sum(1 for a in attendance if a["late"]),
        "alerts": sum(1 for v in listed if v["source"] == "alert"),
        "open_alerts": sum(1 for a in r.alerts if a.status == "open"),
        "violation_records": sum(1 for v in listed if v["type"] == "violation_screenshot"),
        "warnings": sum(1 for a in r.actions if a.kind == "discipline_warning"),
        "terminated": sum(1 for a in r.actions if a.kind == "exam_terminated"),
        "incidents": len(parts["incidents"]),
        "extensions": len(parts["extensions"]),
        "help_requests": len(r.hands),
    }


async def room_record(
    db: AsyncSession,
    sitting: Sitting,
    candidate_ids: set[int],
    room_ids: list[int] | None,
) -> dict[str, Any]:
    """The record of the sitting's ``candidate_ids`` (those of ``room_ids``, or of every
    room when None), read from their history (proctor.events.history)."""
    r = await _gather(db, sitting, candidate_ids, room_ids)
    ends = await sitting_end(db, sitting)
    parts = {
        "attendance": await _attendance(db, r),
        "violations": _violations(r),
        "log": _log(r),
        "incidents": _incidents(r),
        "extensions": _extensions(r),
    }
    record = {
        "sitting": {
            "id": sitting.id,
            "name": sitting.name,
            "kind": sitting.kind,
            "kind_title": KIND_NAMES.get(sitting.kind, sitting.kind),
            "subject": sitting.subject,
            "starts_at": _iso(sitting.starts_at),
            "ends_at": _iso(sitting.ends_at),
            "last_end": _iso(ends),
            "over": r.now >= ends,
            **zone_body(sitting, r.now),
        },
        "rooms": [
            {
                "id": room.id,
                "name": room.name,
                "invigilators": await room_staff_names(db, [room.id]),
            }
            for room in r.rooms
        ],
        "generated_at": _iso(r.now),
        "summary": _summary(r, parts),
        **parts,
    }
    # every time in the sitting's time zone with its offset (issue 23), not UTC
    return localize(record, zone_of(sitting))


def check_exportable(record: dict[str, Any], draft: bool) -> None:
    if not record["sitting"]["over"] and not draft:
        raise Conflict(
            "sitting_in_progress",
            "The record is exported when the sitting is over (ask for a draft with draft=1). "
            "考试结束后方可导出考场记录。",
        )


# ----------------------------------------------------------------------------- export


def _who(c: dict[str, Any] | None) -> str:
    if not c:
        return ""
    seat = f" #{c['seat']}" if c.get("seat") else ""
    return f"{c['name']} ({c['id_number']}){seat}"


def _handled(v: dict[str, Any]) -> str:
    return "; ".join(
        f"{h['what']} · {h['by'] or ''} · {h['at'][:19]} · {h['reason']}" for h in v["handling"]
    )


def to_csv(record: dict[str, Any]) -> str:
    """One table with a ``section`` column (attendance, violation, action, incident,
    extension); UTF-8 with a BOM so that spreadsheet programs read the Chinese."""
    out = io.StringIO()
    out.write("\ufeff")
    w = csvsafe.writer(out)
    s = record["sitting"]
    w.writerow(
        ["考场记录 Exam-room record", s["name"], s["kind_title"], s["starts_at"], s["ends_at"]]
    )
    w.writerow(["rooms", "; ".join(r["name"] for r in record["rooms"])])
    w.writerow(
        ["invigilators", "; ".join(sorted({n for r in record["rooms"] for n in r["invigilators"]}))]
    )
    w.writerow(["generated_at", record["generated_at"], "over" if s["over"] else "DRAFT 草稿"])
    if s.get("time_zone"):
        w.writerow(["time_zone 时区", s["time_zone"], s.get("utc_offset", "")])
    w.writerow([])
    w.writerow(
        ["section", "time", "room", "seat", "candidate", "id_number", "item", "detail", "by"]
    )

    def row(
        section: str, at: str | None, c: dict[str, Any] | None, item: str, detail: str, by: str = ""
    ):  # noqa: E501
        w.writerow(
            [
                section,
                at or "",
                (c or {}).get("room") or "",
                (c or {}).get("seat") or "",
                (c or {}).get("name") or "",
                (c or {}).get("id_number") or "",
                item,
                detail,
                by or "",
            ]
        )

    for a in record["attendance"]:
        state = "present 出席" if a["present"] else "absent 缺考"
        if a["late"]:
            state += f" · late 迟到 {a['late_seconds'] // 60} min"
        if a["screen_left_count"]:
            state += (
                f" · left the page 切屏 {a['screen_left_count']}× {a['screen_left_seconds']:.0f} s"
            )
        row("attendance", a["arrived_at"], a, state, f"进度 step: {a.get('step_title') or '—'}")
    for v in record["violations"]:
        row(
            "violation",
            v["at"],
            v["candidate"],
            v["title"],
            f"{v['status']} · {v['note']}",
            _handled(v),
        )
    for i in record["log"]:
        row("action", i["at"], i["candidate"], i["what"], i["reason"], i["by"])
    for i in record["incidents"]:
        row("incident", i["at"], i["candidate"], i["category_title"], i["description"], i["by"])
    for e in record["extensions"]:
        who = "everyone 全体" if e["everyone"] else ""
        row(
            "extension", e["at"], e["candidate"], f"+{e['minutes']} min {who}", e["reason"], e["by"]
        )
    return out.getvalue()


def to_html(record: dict[str, Any]) -> str:
    """A printable page (A4, no scripts, no outside resources)."""
    e = html.escape
    s = record["sitting"]
    sm = record["summary"]

    def table(head: list[str], rows: list[list[str]]) -> str:
        if not rows:
            return '<p class="none">无 None</p>'
        th = "".join(f"<th>{h}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

    def t(value: str | None) -> str:
        return e((value or "")[:19].replace("T", " "))

    attendance = [
        [
            e(str(a["seat"] or "")),
            e(a["name"]),
            e(a["id_number"]),
            "出席 present" if a["present"] else "<strong>缺考 absent</strong>",
            t(a["arrived_at"]),
            f"<strong>迟到 late {a['late_seconds'] // 60} min</strong>" if a["late"] else "",
            e(a.get("step_title") or ""),
            str(a["alerts"]),
            str(a["violations"]),
            f"{a['screen_left_count']} / {a['screen_left_seconds']:.0f} s",
        ]
        for a in record["attendance"]
    ]
    violations = [
        [
            t(v["at"]),
            e(_who(v["candidate"])),
            e(v["title"]),
            e(v["status"]),
            e(v["note"] or ""),
            "<br>".join(e(_handling_line(h)) for h in v["handling"]),
        ]
        for v in record["violations"]
    ]
    log = [
        [t(i["at"]), e(_who(i["candidate"])), e(i["what"]), e(i["by"] or ""), e(i["reason"])]
        for i in record["log"]
    ]
    incidents = [
        [
            t(i["at"]),
            e(i["room"] or ""),
            e(_who(i["candidate"])),
            e(i["category_title"]),
            e(i["description"]),
            e(i["by"] or ""),
        ]
        for i in record["incidents"]
    ]
    extensions = [
        [
            t(x["at"]),
            "全体 everyone" if x["everyone"] else e(_who(x["candidate"])),
            f"+{x['minutes']} min",
            e(x["reason"]),
            e(x["by"] or ""),
        ]
        for x in record["extensions"]
    ]
    rooms = "; ".join(e(r["name"]) for r in record["rooms"])
    staff = "; ".join(e(n) for n in sorted({n for r in record["rooms"] for n in r["invigilators"]}))
    facts = [
        ("场次 Sitting", f"{e(s['name'])} · {e(s['kind_title'])} {e(s['subject'] or '')}"),
        (
            "时间 Time",
            f"{t(s['starts_at'])} – {t(s['ends_at'])} (最后结束 last end {t(s['last_end'])})"
            + (
                f" · 时区 time zone {e(s['time_zone'])} ({e(s.get('utc_offset', ''))})"
                if s.get("time_zone")
                else ""
            ),
        ),
        ("考场 Rooms", rooms or "—"),
        ("监考 Invigilators", staff or "—"),
        (
            "应考 Expected",
            f"{sm['expected']} · 实考 present {sm['present']} · 缺考 absent {sm['absent']} · "
            f"迟到 late {sm['late']}",
        ),
        (
            "违纪 Violations",
            f"告警 alerts {sm['alerts']} (未处理 open {sm['open_alerts']}) · 截图记录 screenshots "
            f"{sm['violation_records']} · 警告 warnings {sm['warnings']} · 终止考试 ended "
            f"{sm['terminated']} · 突发事件 incidents {sm['incidents']} · 延时 extensions "
            f"{sm['extensions']}",
        ),
        ("生成 Generated", f"{t(record['generated_at'])} UTC"),
    ]
    sections = [
        ("考生出勤 Attendance", ATTENDANCE_HEAD, attendance),
        ("违纪及处理 Violations and handling", VIOLATION_HEAD, violations),
        ("突发事件 Incidents", INCIDENT_HEAD, incidents),
        ("延时 Time extensions", EXTENSION_HEAD, extensions),
        ("监考操作记录 Supervision log", LOG_HEAD, log),
    ]
    draft = "" if s["over"] else f'<p class="draft">{DRAFT_NOTE}</p>'
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    body = "".join(f"<h2>{title}</h2>{table(head, rows)}" for title, head, rows in sections)
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>考场记录 Exam-room record · {e(s['name'])}</title><style>{PRINT_CSS}</style>"
        f"</head><body><h1>考场记录 Exam-room record</h1>{draft}<dl>{dl}</dl>{body}"
        f"<p>{SIGNATURES}</p></body></html>"
    )


def _handling_line(h: dict[str, Any]) -> str:
    return (
        f"{h['what']} · {h['by'] or ''} · {(h['at'] or '')[:19].replace('T', ' ')} · {h['reason']}"
    )


DRAFT_NOTE = "草稿 DRAFT — 考试尚未结束 the sitting is not over"
SIGNATURES = (
    "监考老师签名 Invigilators' signatures: ______________________ &nbsp; "
    "主考签名 Chief examiner: ______________________"
)
ATTENDANCE_HEAD = [
    "座位 Seat",
    "姓名 Name",
    "身份证号 ID number",
    "出勤 Attendance",
    "到达 Arrived",
    "迟到 Late",
    "步骤 Step",
    "告警 Alerts",
    "违纪记录 Records",
    "切屏 Left the page (times / s)",
]
VIOLATION_HEAD = [
    "时间 Time",
    "考生 Candidate",
    "类型 Type",
    "状态 Status",
    "说明 Note",
    "处理 Handling",
]
INCIDENT_HEAD = [
    "时间 Time",
    "考场 Room",
    "考生 Candidate",
    "类别 Category",
    "情况 Description",
    "记录人 By",
]
EXTENSION_HEAD = ["时间 Time", "考生 Candidate", "延时 Extension", "原因 Reason", "批准人 By"]
LOG_HEAD = ["时间 Time", "考生 Candidate", "操作 Action", "操作人 By", "内容 Detail"]
PRINT_CSS = """
body { font: 12px/1.45 "Noto Sans CJK SC", "Noto Sans", sans-serif; margin: 16mm; color: #111; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #999; padding: 3px 5px; text-align: left; vertical-align: top; }
th { background: #eee; } .none { color: #666; } .draft { color: #a00; font-weight: bold; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; } dt { color: #555; }
@page { size: A4; margin: 12mm; }
"""
