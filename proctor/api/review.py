"""Review routes (after the exam): queue, timeline, evidence, verdicts, records, summary,
exports, retention. Reviewers, chief examiners and administrators only; every call is
logged in the audit chain (proctor.review.access)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from proctor.api.deps import db_session, principal, runtime
from proctor.auth.sessions import Principal
from proctor.errors import Forbidden, NotFound
from proctor.evidence import retention
from proctor.review import exports, records, summary, timeline, verdicts
from proctor.review.access import (
    DECIDE_ROLES,
    LOCK_ROLES,
    RETENTION_ROLES,
    REVIEW_ROLES,
    log_access,
)
from proctor.runtime import Runtime
from proctor.store.tables import Alert, Candidate, Evidence, Sitting

router = APIRouter(prefix="/api/review")


async def reviewer(p: Principal = Depends(principal)) -> Principal:
    if p.kind != "staff" or p.role not in REVIEW_ROLES:
        raise Forbidden(
            "reviewers_only",
            "Only reviewers, chief examiners and administrators may open the review. "
            "仅复核人员、主考和管理员可以访问复核。",
        )
    return p


def _require(who: Principal, roles: frozenset[str], code: str, message: str) -> None:
    if who.role not in roles:
        raise Forbidden(code, message)


# ---------------------------------------------------------------- reading


@router.get("/sittings")
async def sittings(
    who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> list[dict[str, Any]]:
    counts = dict(
        (
            await db.execute(
                select(Candidate.sitting_id, func.count()).group_by(Candidate.sitting_id)
            )
        ).all()
    )
    alerts = dict(
        (await db.execute(select(Alert.sitting_id, func.count()).group_by(Alert.sitting_id))).all()
    )
    out = []
    for s in await db.scalars(select(Sitting).order_by(Sitting.starts_at.desc())):
        kept = await retention.retention_of(db, s)
        out.append(
            {
                **timeline.sitting_body(s),
                "candidates": counts.get(s.id, 0),
                "alerts": alerts.get(s.id, 0),
                "retention": kept.as_dict(),
            }
        )
    await log_access(db, who.subject_id, "sittings")
    await db.commit()
    return out


@router.get("/sittings/{sitting_id}/queue")
async def queue(
    sitting_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> dict[str, Any]:
    body = await timeline.review_queue(db, sitting_id)
    body["dismissed_rates"] = await verdicts.dismissed_rates(db, sitting_id)
    await log_access(db, who.subject_id, "queue", sitting_id=sitting_id)
    await db.commit()
    return body


@router.get("/sittings/{sitting_id}/dismissed-rates")
async def dismissed_rates(
    sitting_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> list[dict[str, Any]]:
    await timeline.get_sitting(db, sitting_id)
    body = await verdicts.dismissed_rates(db, sitting_id)
    await log_access(db, who.subject_id, "dismissed_rates", sitting_id=sitting_id)
    await db.commit()
    return body


@router.get("/candidates/{candidate_id}/timeline")
async def candidate_timeline(
    candidate_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> dict[str, Any]:
    body = await timeline.timeline(db, candidate_id)
    await log_access(
        db,
        who.subject_id,
        "timeline",
        sitting_id=body["sitting"]["id"],
        candidate_id=candidate_id,
    )
    await db.commit()
    return body


@router.get("/evidence/{evidence_id}")
async def evidence_file(
    evidence_id: int,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> FileResponse:
    row = await db.get(Evidence, evidence_id)
    if row is None:
        raise NotFound("unknown_evidence", f"No evidence {evidence_id}.")
    await log_access(
        db,
        who.subject_id,
        "evidence",
        sitting_id=row.sitting_id,
        candidate_id=row.candidate_id,
        subject_type="evidence",
        subject_id=row.id,
        detail={"sha256": row.sha256},
    )
    await db.commit()
    try:
        path = rt.storage.open(row.relpath)
    except (ValueError, FileNotFoundError) as exc:
        raise NotFound("evidence_missing", "The evidence file is missing from storage.") from exc
    return FileResponse(path, media_type=row.mime, headers={"Cache-Control": "private, no-store"})


@router.get("/sittings/{sitting_id}/supervision")
async def supervision(
    sitting_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> dict[str, Any]:
    body = summary.supervision_summary(await summary.load_facts(db, sitting_id))
    await log_access(db, who.subject_id, "supervision", sitting_id=sitting_id)
    await db.commit()
    return body


# ---------------------------------------------------------------- decisions

_DECIDE = (
    "decision_not_allowed",
    "Only reviewers and chief examiners record verdicts. 仅复核人员和主考可以作出结论。",
)


class AlertVerdictIn(BaseModel):
    decision: str = Field(max_length=16)
    note: str = Field(default="", max_length=4000)


class CandidateVerdictIn(BaseModel):
    outcome: str = Field(max_length=16)
    category: str | None = Field(default=None, max_length=24)
    note: str = Field(default="", max_length=4000)
    alert_ids: list[int] = Field(default_factory=list, max_length=1000)


@router.post("/alerts/{alert_id}/verdict")
async def alert_verdict(
    alert_id: int,
    body: AlertVerdictIn,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    _require(who, DECIDE_ROLES, *_DECIDE)
    out = await verdicts.decide_alert(
        db, alert_id=alert_id, decision=body.decision, note=body.note, reviewer_id=who.subject_id
    )
    await db.commit()
    return out


@router.post("/candidates/{candidate_id}/verdict")
async def candidate_verdict(
    candidate_id: int,
    body: CandidateVerdictIn,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    _require(who, DECIDE_ROLES, *_DECIDE)
    out = await verdicts.decide_candidate(
        db,
        candidate_id=candidate_id,
        outcome=body.outcome,
        category=body.category,
        note=body.note,
        alert_ids=body.alert_ids,
        reviewer_id=who.subject_id,
    )
    await db.commit()
    return out


# ---------------------------------------------------------------- records


class RecordIn(BaseModel):
    content: dict[str, Any]
    version: int = Field(ge=1)


class VersionIn(BaseModel):
    version: int = Field(ge=1)


@router.get("/sittings/{sitting_id}/records/{kind}")
async def get_record(
    sitting_id: int,
    kind: str,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    row = await records.get_record(db, sitting_id, kind, who.subject_id)
    await log_access(
        db,
        who.subject_id,
        "record",
        sitting_id=sitting_id,
        subject_type="sitting_record",
        subject_id=row.id,
    )
    await db.commit()
    return await records.record_body(db, row)


@router.put("/sittings/{sitting_id}/records/{kind}")
async def put_record(
    sitting_id: int,
    kind: str,
    body: RecordIn,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    _require(who, DECIDE_ROLES, *_DECIDE)
    row = await records.update_record(
        db, sitting_id, kind, content=body.content, version=body.version, staff_id=who.subject_id
    )
    await db.commit()
    return await records.record_body(db, row)


@router.post("/sittings/{sitting_id}/records/{kind}/refresh")
async def refresh_record(
    sitting_id: int,
    kind: str,
    body: VersionIn,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    _require(who, DECIDE_ROLES, *_DECIDE)
    row = await records.refresh_record(
        db, sitting_id, kind, version=body.version, staff_id=who.subject_id
    )
    await db.commit()
    return await records.record_body(db, row)


@router.post("/sittings/{sitting_id}/records/{kind}/lock")
async def lock_record(
    sitting_id: int,
    kind: str,
    body: VersionIn,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    _require(
        who,
        LOCK_ROLES,
        "lock_not_allowed",
        "Only a chief examiner locks a record. 仅主考可以锁定记录。",
    )
    row = await records.lock_record(
        db, sitting_id, kind, version=body.version, staff_id=who.subject_id
    )
    await db.commit()
    return await records.record_body(db, row)


# ---------------------------------------------------------------- exports


@router.get("/sittings/{sitting_id}/export/verdicts.csv")
async def export_csv(
    sitting_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> Response:
    text = await exports.verdicts_csv(db, sitting_id)
    await log_access(db, who.subject_id, "export_csv", sitting_id=sitting_id)
    await db.commit()
    return Response(
        text.encode(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="sitting-{sitting_id}-verdicts.csv"',
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/candidates/{candidate_id}/evidence-pack.zip")
async def export_pack(
    candidate_id: int,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> FileResponse:
    candidate = await timeline.get_candidate(db, candidate_id)
    tmp = Path(tempfile.mkdtemp(prefix="proctor-pack-"))
    dest = tmp / f"candidate-{candidate_id}-evidence.zip"
    try:
        manifest = await exports.evidence_pack(
            db, rt.storage, candidate_id, dest, generated_by=f"staff:{who.subject_id}"
        )
        await log_access(
            db,
            who.subject_id,
            "evidence_pack",
            sitting_id=candidate.sitting_id,
            candidate_id=candidate_id,
            detail={
                "files": len(manifest["files"]),
                "all_files_match": manifest["all_files_match"],
            },
        )
        await db.commit()
    except BaseException:
        _remove(tmp)
        raise
    return FileResponse(
        dest,
        media_type="application/zip",
        filename=dest.name,
        headers={"Cache-Control": "private, no-store"},
        background=BackgroundTask(_remove, tmp),
    )


def _remove(directory: Path) -> None:
    for f in directory.iterdir():
        f.unlink(missing_ok=True)
    directory.rmdir()


# ---------------------------------------------------------------- retention


class RetentionIn(BaseModel):
    years: int = Field(ge=0, le=1000)
    reason: str = Field(default="", max_length=2000)


@router.get("/sittings/{sitting_id}/retention")
async def get_retention(
    sitting_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> dict[str, Any]:
    sitting = await timeline.get_sitting(db, sitting_id)
    body = (await retention.retention_of(db, sitting)).as_dict()
    await log_access(db, who.subject_id, "retention", sitting_id=sitting_id)
    await db.commit()
    return body


@router.put("/sittings/{sitting_id}/retention")
async def put_retention(
    sitting_id: int,
    body: RetentionIn,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    _require(
        who,
        RETENTION_ROLES,
        "retention_not_allowed",
        "Only a chief examiner or an administrator sets retention. "
        "仅主考或管理员可以设置保存期限。",
    )
    out = await retention.set_retention(
        db, sitting_id=sitting_id, years=body.years, reason=body.reason, by_user_id=who.subject_id
    )
    await db.commit()
    return out.as_dict()
