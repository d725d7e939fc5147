"""Review routes (after the exam): queue, timeline, evidence, verdicts, records, summary,
exports, retention. Reviewers, chief examiners and administrators only (the router's one
dependency, from the "review" permission of proctor.auth.roles); every call is logged in
the audit chain (proctor.review.access). Parse, authorise, call proctor.review.reviewing,
answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from proctor.api import wire_review as out
from proctor.api.deps import db_session, principal, runtime
from proctor.api.wire import AS_GIVEN, file_answer, text_answer
from proctor.auth.sessions import Principal
from proctor.errors import Forbidden
from proctor.review import reviewing
from proctor.review.access import DECIDE_ROLES, LOCK_ROLES, RETENTION_ROLES, REVIEW_ROLES
from proctor.runtime import Runtime


async def reviewer(p: Principal = Depends(principal)) -> Principal:
    if p.kind != "staff" or p.role not in REVIEW_ROLES:
        raise Forbidden(
            "reviewers_only",
            "Only reviewers, chief examiners and administrators may open the review. "
            "仅复核人员、主考和管理员可以访问复核。",
        )
    return p


router = APIRouter(prefix="/api/review", dependencies=[Depends(reviewer)])

#: evidence files: screenshots and clips, whole or a byte range (seeking in a clip)
EVIDENCE = {
    200: file_answer("The evidence file", "image/jpeg", "video/webm"),
    206: file_answer("The byte range asked for (Range: bytes=...)", "image/jpeg", "video/webm"),
}
CSV = {200: text_answer("CSV", "text/csv")}
ZIP = {200: file_answer("The evidence pack", "application/zip")}


def _require(who: Principal, roles: frozenset[str], code: str, message: str) -> None:
    if who.role not in roles:
        raise Forbidden(code, message)


# ---------------------------------------------------------------- reading


@router.get("/sittings", response_model=list[out.ReviewSittingOverview], **AS_GIVEN)
async def sittings(
    who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> list[dict[str, Any]]:
    return await reviewing.sittings(db, who.subject_id)


@router.get("/sittings/{sitting_id}/queue", response_model=out.ReviewQueue, **AS_GIVEN)
async def queue(
    sitting_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> dict[str, Any]:
    return await reviewing.queue(db, sitting_id, who.subject_id)


@router.get(
    "/sittings/{sitting_id}/dismissed-rates",
    response_model=list[out.ReviewDismissedRate],
    **AS_GIVEN,
)
async def dismissed_rates(
    sitting_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> list[dict[str, Any]]:
    return await reviewing.dismissed_rates(db, sitting_id, who.subject_id)


@router.get("/candidates/{candidate_id}/timeline", response_model=out.ReviewTimeline, **AS_GIVEN)
async def candidate_timeline(
    candidate_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> dict[str, Any]:
    return await reviewing.candidate_timeline(db, candidate_id, who.subject_id)


@router.get("/evidence/{evidence_id}", response_class=FileResponse, responses=EVIDENCE)
async def evidence_file(
    evidence_id: int,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> FileResponse:
    path, mime = await reviewing.evidence_file(db, rt.storage, evidence_id, who.subject_id)
    return FileResponse(path, media_type=mime, headers={"Cache-Control": "private, no-store"})


@router.get("/sittings/{sitting_id}/supervision", response_model=out.ReviewSupervision, **AS_GIVEN)
async def supervision(
    sitting_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> dict[str, Any]:
    return await reviewing.supervision(db, sitting_id, who.subject_id)


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


@router.post("/alerts/{alert_id}/verdict", response_model=out.ReviewAlertVerdict, **AS_GIVEN)
async def alert_verdict(
    alert_id: int,
    body: AlertVerdictIn,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    _require(who, DECIDE_ROLES, *_DECIDE)
    return await reviewing.decide_alert(
        db, alert_id=alert_id, decision=body.decision, note=body.note, reviewer_id=who.subject_id
    )


@router.post(
    "/candidates/{candidate_id}/verdict", response_model=out.ReviewCandidateVerdict, **AS_GIVEN
)
async def candidate_verdict(
    candidate_id: int,
    body: CandidateVerdictIn,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    _require(who, DECIDE_ROLES, *_DECIDE)
    return await reviewing.decide_candidate(
        db,
        candidate_id=candidate_id,
        outcome=body.outcome,
        category=body.category,
        note=body.note,
        alert_ids=body.alert_ids,
        reviewer_id=who.subject_id,
    )


# ---------------------------------------------------------------- records


class RecordIn(BaseModel):
    content: dict[str, Any]
    version: int = Field(ge=1)


class VersionIn(BaseModel):
    version: int = Field(ge=1)


@router.get("/sittings/{sitting_id}/records/{kind}", response_model=out.ReviewRecord, **AS_GIVEN)
async def get_record(
    sitting_id: int,
    kind: str,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    return await reviewing.open_record(db, sitting_id, kind, who.subject_id)


@router.put("/sittings/{sitting_id}/records/{kind}", response_model=out.ReviewRecord, **AS_GIVEN)
async def put_record(
    sitting_id: int,
    kind: str,
    body: RecordIn,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    _require(who, DECIDE_ROLES, *_DECIDE)
    return await reviewing.edit_record(
        db, sitting_id, kind, content=body.content, version=body.version, staff_id=who.subject_id
    )


@router.post(
    "/sittings/{sitting_id}/records/{kind}/refresh", response_model=out.ReviewRecord, **AS_GIVEN
)
async def refresh_record(
    sitting_id: int,
    kind: str,
    body: VersionIn,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    _require(who, DECIDE_ROLES, *_DECIDE)
    return await reviewing.refresh_record(
        db, sitting_id, kind, version=body.version, staff_id=who.subject_id
    )


@router.post(
    "/sittings/{sitting_id}/records/{kind}/lock", response_model=out.ReviewRecord, **AS_GIVEN
)
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
    return await reviewing.lock_record(
        db, sitting_id, kind, version=body.version, staff_id=who.subject_id
    )


# ---------------------------------------------------------------- exports


@router.get("/sittings/{sitting_id}/export/verdicts.csv", response_class=Response, responses=CSV)
async def export_csv(
    sitting_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> Response:
    text = await reviewing.verdicts_csv(db, sitting_id, who.subject_id)
    return Response(
        text.encode(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="sitting-{sitting_id}-verdicts.csv"',
            "Cache-Control": "private, no-store",
        },
    )


@router.get(
    "/candidates/{candidate_id}/evidence-pack.zip", response_class=FileResponse, responses=ZIP
)
async def export_pack(
    candidate_id: int,
    who: Principal = Depends(reviewer),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> FileResponse:
    pack = await reviewing.evidence_pack(db, rt.storage, candidate_id, who.subject_id)
    return FileResponse(
        pack,
        media_type="application/zip",
        filename=pack.name,
        headers={"Cache-Control": "private, no-store"},
        background=BackgroundTask(reviewing.remove_pack, pack),
    )


# ---------------------------------------------------------------- retention


class RetentionIn(BaseModel):
    years: int = Field(ge=0, le=1000)
    reason: str = Field(default="", max_length=2000)


@router.get("/sittings/{sitting_id}/retention", response_model=out.ReviewRetention, **AS_GIVEN)
async def get_retention(
    sitting_id: int, who: Principal = Depends(reviewer), db: AsyncSession = Depends(db_session)
) -> dict[str, Any]:
    return await reviewing.get_retention(db, sitting_id, who.subject_id)


@router.put("/sittings/{sitting_id}/retention", response_model=out.ReviewRetention, **AS_GIVEN)
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
    return await reviewing.set_retention(
        db, sitting_id=sitting_id, years=body.years, reason=body.reason, staff_id=who.subject_id
    )
