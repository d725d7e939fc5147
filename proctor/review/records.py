"""The exam-room record (考场记录: absentees, violations, incidents) and the incident report
(突发事件报告: connection losses, wide-area outages, time lost and given back) of a sitting.

Each is pre-filled from what the engine recorded the first time someone opens it, then
edited by staff (the narrative fields under ``text``, and corrections to the pre-filled
lists), then locked by a chief examiner: after that it never changes. Pre-filling, every
edit and the lock are entries of the audit chain carrying the content's sha256, so the
record's history can be traced and the locked content proven."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from proctor.errors import Conflict, Invalid, NotFound
from proctor.evidence import chain
from proctor.evidence.zones import localize, zone_of
from proctor.review.summary import SittingFacts, load_facts, outages
from proctor.review.timeline import candidate_body, get_sitting, iso, sitting_body
from proctor.review.verdicts import CATEGORIES, staff_names
from proctor.store.tables import SittingRecord, utcnow

RECORD_KINDS = {
    "room_record": "Exam-room record 考场记录",
    "incident_report": "Incident report 突发事件报告",
}
TEXT_FIELDS: dict[str, dict[str, str]] = {
    "room_record": {
        "invigilators": "Invigilators on duty 监考人员",
        "notes": "Other notes 其他情况记录",
    },
    "incident_report": {
        "initial_report": "Initial report (within 10 minutes) 初报",
        "follow_up": "Follow-up reports 续报",
        "measures": "Measures taken: time given back, rescheduling 处置措施",
        "conclusion": "Conclusion 结论",
    },
}
TEXT_MAX = 20_000
CONTENT_MAX = 500_000


def content_sha256(content: dict[str, Any]) -> str:
    return hashlib.sha256(chain.canonical_json(content).encode()).hexdigest()


def _extensions(facts: SittingFacts) -> list[dict[str, Any]]:
    names = {c.id: c.name for c in facts.candidates}
    return [
        {
            "candidate_id": x.candidate_id,
            "name": names.get(x.candidate_id) if x.candidate_id else "whole sitting 全场",
            "seconds": x.seconds,
            "reason": x.reason,
            "granted_by": facts.names.get(x.granted_by, str(x.granted_by)),
            "granted_at": iso(x.granted_at),
        }
        for x in facts.extensions
    ]


def _incidents(facts: SittingFacts) -> list[dict[str, Any]]:
    out = []
    for c in facts.candidates:
        for loss in facts.losses(c.id):
            out.append(
                {
                    "candidate_id": c.id,
                    "name": c.name,
                    "view": loss["view"],
                    "from": iso(loss["at"]),
                    "to": iso(loss["end"]),
                    "seconds": round(loss["seconds"], 1),
                    "restored": loss["restored"],
                }
            )
    return sorted(out, key=lambda x: x["from"])


def _actions(facts: SittingFacts, kind: str) -> list[dict[str, Any]]:
    """The console's log entries of one kind (violation screenshots, incidents)."""
    names = {c.id: c.name for c in facts.candidates}
    return [
        {
            "at": iso(x.at),
            "candidate_id": x.candidate_id,
            "name": names.get(x.candidate_id) if x.candidate_id else None,
            "by": facts.names.get(x.staff_id) if x.staff_id else "automatic 自动",
            "reason": x.reason,
            "alert_id": x.alert_id,
            "evidence_id": x.evidence_id,
            "data": x.data or {},
        }
        for x in facts.actions
        if x.kind == kind
    ]


def prefill(kind: str, facts: SittingFacts, reviewer_names: dict[int, str]) -> dict[str, Any]:
    sitting = sitting_body(facts.sitting)
    if kind == "incident_report":
        incidents = _incidents(facts)
        return {
            "sitting": sitting,
            "reported": _actions(facts, "incident"),
            "outages": outages(facts),
            "incidents": incidents,
            # per candidate: each moment once, however many views or losses cover it
            "time_lost_seconds": round(sum(facts.time_lost(c.id) for c in facts.candidates), 1),
            "extensions": _extensions(facts),
            "text": {k: "" for k in TEXT_FIELDS[kind]},
        }
    by_id = {c.id: c for c in facts.candidates}
    violations = []
    second = []
    for cid, v in sorted(facts.verdicts.items()):
        who = candidate_body(by_id[cid]) if cid in by_id else {"id": cid}
        if v.outcome == "violation":
            violations.append(
                {
                    "candidate_id": cid,
                    "name": who.get("name"),
                    "id_number": who.get("id_number"),
                    "category": v.category,
                    "category_label": CATEGORIES.get(v.category or ""),
                    "note": v.note,
                    "alert_ids": list(v.alert_ids or []),
                    "decided_by": reviewer_names.get(v.reviewer_id, str(v.reviewer_id)),
                    "decided_at": iso(v.decided_at),
                }
            )
        elif v.outcome == "second_review":
            second.append({"candidate_id": cid, "name": who.get("name"), "note": v.note})
    by_type: dict[str, int] = {}
    for a in facts.alerts:
        by_type[a.type] = by_type.get(a.type, 0) + 1
    decisions = [facts.decided[a.id].decision for a in facts.alerts if a.id in facts.decided]
    acting = sorted({facts.names.get(d.sender_id, "") for d in facts.danmaku} - {""})
    return {
        "sitting": sitting,
        "registered": len(facts.candidates),
        "present": sum(1 for c in facts.candidates if facts.present(c.id)),
        "absentees": [
            {"candidate_id": c.id, "name": c.name, "id_number": c.id_number}
            for c in facts.candidates
            if not facts.present(c.id)
        ],
        "violations": violations,
        "violations_recorded_live": _actions(facts, "violation"),
        "second_reviews": second,
        "alerts_by_type": by_type,
        "alerts_confirmed": decisions.count("confirmed"),
        "alerts_dismissed": decisions.count("dismissed"),
        "alerts_unreviewed": len(facts.alerts) - len(decisions),
        "incidents": _incidents(facts),
        "extensions": _extensions(facts),
        "text": {"invigilators": ", ".join(acting), "notes": ""},
    }


async def _engine_content(db: AsyncSession, sitting_id: int, kind: str) -> dict[str, Any]:
    facts = await load_facts(db, sitting_id)
    names = await staff_names(db, [v.reviewer_id for v in facts.verdicts.values()])
    # times in the sitting's time zone with the offset (issue 23)
    return localize(prefill(kind, facts, names), zone_of(facts.sitting))


def _kind(kind: str) -> str:
    if kind not in RECORD_KINDS:
        raise NotFound("unknown_record", f"Records are: {', '.join(RECORD_KINDS)}.")
    return kind


async def record_body(db: AsyncSession, row: SittingRecord) -> dict[str, Any]:
    names = await staff_names(db, [row.updated_by, row.locked_by])
    return {
        "sitting_id": row.sitting_id,
        "kind": row.kind,
        "label": RECORD_KINDS[row.kind],
        "content": row.content,
        "text_fields": TEXT_FIELDS[row.kind],
        "version": row.version,
        "prefilled_at": iso(row.prefilled_at),
        "updated_at": iso(row.updated_at),
        "updated_by": names.get(row.updated_by) if row.updated_by else None,
        "locked": row.locked_at is not None,
        "locked_at": iso(row.locked_at),
        "locked_by": names.get(row.locked_by) if row.locked_by else None,
        "locked_sha256": row.locked_sha256,
    }


async def _row(db: AsyncSession, sitting_id: int, kind: str) -> SittingRecord | None:
    return await db.scalar(
        select(SittingRecord).where(
            SittingRecord.sitting_id == sitting_id, SittingRecord.kind == kind
        )
    )


async def _save(db: AsyncSession, row: SittingRecord, what: str, staff_id: int) -> None:
    """Write a change; the version column makes a concurrent change fail, not vanish."""
    try:
        await db.flush()
    except StaleDataError as exc:
        raise Conflict(
            "record_changed", "Someone saved this record meanwhile: reload it and try again."
        ) from exc
    await _audit(db, what, row, staff_id)


async def _audit(db: AsyncSession, what: str, row: SittingRecord, staff_id: int) -> None:
    await chain.append(
        db,
        f"record.{what}",
        actor=chain.staff_actor(staff_id),
        payload={"kind": row.kind, "version": row.version, "sha256": content_sha256(row.content)},
        sitting_id=row.sitting_id,
        subject_type="sitting_record",
        subject_id=row.id,
    )


async def get_record(db: AsyncSession, sitting_id: int, kind: str, staff_id: int) -> SittingRecord:
    """The record, pre-filled now if nobody opened it before (caller commits)."""
    _kind(kind)
    await get_sitting(db, sitting_id)
    row = await _row(db, sitting_id, kind)
    if row is not None:
        return row
    now = utcnow()
    row = SittingRecord(
        sitting_id=sitting_id,
        kind=kind,
        content=await _engine_content(db, sitting_id, kind),
        prefilled_at=now,
        updated_at=now,
    )
    try:
        async with db.begin_nested():
            db.add(row)
    except IntegrityError:  # someone else opened it first: theirs is the record
        existing = await _row(db, sitting_id, kind)
        assert existing is not None
        return existing
    await _audit(db, "prefilled", row, staff_id)
    return row


def _check_unlocked(row: SittingRecord) -> None:
    if row.locked_at is not None:
        raise Conflict("record_locked", "This record is locked and can no longer be changed.")


def _check_version(row: SittingRecord, version: int) -> None:
    if version != row.version:
        raise Conflict(
            "record_changed",
            f"Someone saved this record meanwhile (version {row.version}, yours {version}): "
            "reload it and apply your change again.",
        )


async def _editable(
    db: AsyncSession, sitting_id: int, kind: str, staff_id: int, version: int
) -> SittingRecord:
    """The record, if not locked and still at ``version`` (409 otherwise)."""
    row = await get_record(db, sitting_id, _kind(kind), staff_id)
    _check_unlocked(row)
    _check_version(row, version)
    return row


async def _replace(
    db: AsyncSession, row: SittingRecord, content: dict[str, Any], what: str, staff_id: int
) -> SittingRecord:
    """The record's new content, by this staff user, now; audited as ``record.<what>``."""
    row.content = content
    row.updated_by = staff_id
    row.updated_at = utcnow()
    await _save(db, row, what, staff_id)
    return row


def validate_content(kind: str, content: Any) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise Invalid("bad_record", "A record's content is a JSON object.")
    allowed = _allowed_keys(kind)
    unknown = sorted(set(content) - allowed)
    if unknown:
        raise Invalid("bad_record", f"Unknown fields in the {kind}: {', '.join(unknown)}.")
    text = content.get("text", {})
    if not isinstance(text, dict):
        raise Invalid("bad_record", "'text' holds the narrative fields as strings.")
    for key, value in text.items():
        if key not in TEXT_FIELDS[kind]:
            raise Invalid("bad_record", f"Unknown narrative field {key!r}.")
        if not isinstance(value, str) or len(value) > TEXT_MAX:
            raise Invalid("bad_record", f"{key!r} must be text of at most {TEXT_MAX} characters.")
    try:
        size = len(chain.canonical_json(content))
    except (TypeError, ValueError) as exc:
        raise Invalid("bad_record", "The record holds values that are not plain JSON.") from exc
    if size > CONTENT_MAX:
        raise Invalid("record_too_large", "The record is too large.")
    return content


def _allowed_keys(kind: str) -> set[str]:
    if kind == "incident_report":
        return {
            "sitting",
            "reported",
            "outages",
            "incidents",
            "time_lost_seconds",
            "extensions",
            "text",
        }
    return {
        "sitting",
        "registered",
        "present",
        "absentees",
        "violations",
        "violations_recorded_live",
        "second_reviews",
        "alerts_by_type",
        "alerts_confirmed",
        "alerts_dismissed",
        "alerts_unreviewed",
        "incidents",
        "extensions",
        "text",
    }


async def update_record(
    db: AsyncSession,
    sitting_id: int,
    kind: str,
    *,
    content: Any,
    version: int,
    staff_id: int,
) -> SittingRecord:
    """Replace the content (fields not given keep their value; ``text`` fields merge)."""
    row = await _editable(db, sitting_id, kind, staff_id, version)
    content = validate_content(kind, content)
    merged = {**row.content, **{k: v for k, v in content.items() if k != "text"}}
    merged["text"] = {**row.content.get("text", {}), **content.get("text", {})}
    return await _replace(db, row, merged, "edited", staff_id)


async def refresh_record(
    db: AsyncSession, sitting_id: int, kind: str, *, version: int, staff_id: int
) -> SittingRecord:
    """Pre-fill again from the engine (after more verdicts), keeping the narrative text."""
    row = await _editable(db, sitting_id, kind, staff_id, version)
    fresh = await _engine_content(db, sitting_id, kind)
    fresh["text"] = {
        **fresh.get("text", {}),
        **{k: v for k, v in row.content.get("text", {}).items() if v},
    }
    return await _replace(db, row, fresh, "refreshed", staff_id)


async def lock_record(
    db: AsyncSession, sitting_id: int, kind: str, *, version: int, staff_id: int
) -> SittingRecord:
    row = await _editable(db, sitting_id, kind, staff_id, version)
    row.locked_at = utcnow()
    row.locked_by = staff_id
    row.locked_sha256 = content_sha256(row.content)
    await _save(db, row, "locked", staff_id)
    return row
