"""Administration routes (docs/api.md "Administration"): sittings, rosters, question banks,
papers, results, grading and device-check reports. Parse, authorise, call the domain
(proctor.sitting, proctor.flow), answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api.deps import admin, db_session, exam_service, grader, now, runtime
from proctor.auth.sessions import Principal
from proctor.errors import Invalid, NotFound
from proctor.evidence.zones import zone_body
from proctor.flow import device
from proctor.flow.service import ExamService
from proctor.invigilation.rooms import seats_of
from proctor.runtime import Runtime
from proctor.sitting import bank, papers, roster, scoring
from proctor.sitting.importing import ImportFailed
from proctor.sitting.policy import rules_of
from proctor.sitting.sittings import create_sitting, create_staff, update_sitting
from proctor.store.order import roster_order
from proctor.store.tables import Attempt, Candidate, Question, Sitting

router = APIRouter()

MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_PHOTOS_ZIP = 512 * 1024 * 1024


def install(app: FastAPI) -> None:
    """Import errors answer 422 with the line-numbered list as well."""

    @app.exception_handler(ImportFailed)
    async def _import_failed(_: Request, exc: ImportFailed) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)


async def _read(upload: UploadFile, limit: int, what: str) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ImportFailed([roster.LineError(0, what, f"the file is over {limit >> 20} MB")])
    return data


async def _sitting(db: AsyncSession, sitting_id: int) -> Sitting:
    sitting = await db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound("unknown_sitting", f"No sitting {sitting_id}.")
    return sitting


async def sitting_body(db: AsyncSession, s: Sitting) -> dict[str, Any]:
    registered = await db.scalar(select(func.count()).where(Candidate.sitting_id == s.id))
    steps = dict(
        (
            await db.execute(
                select(Attempt.step, func.count())
                .where(Attempt.sitting_id == s.id)
                .group_by(Attempt.step)
            )
        ).all()
    )
    paper = await papers.get_paper(db, s.id)
    return {
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "exam": s.exam,
        "subject": s.subject,
        "password": s.password,
        "starts_at": s.starts_at.isoformat(),
        "ends_at": s.ends_at.isoformat(),
        **zone_body(s, s.starts_at),  # the page shows times in the sitting's zone
        "analysis_fps": s.analysis_fps,
        "flow": rules_of(s.kind, s.flow).as_dict(),
        "registered": registered or 0,
        "steps": steps,
        "paper": None
        if paper is None
        else {
            "questions": len(paper.items),
            "blueprint": paper.blueprint,
            "created_at": paper.created_at.isoformat() if paper.created_at else None,
        },
    }


# ------------------------------------------------------------------------- sittings


@router.get("/api/admin/sittings")
async def sittings(
    _: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> list[dict]:
    rows = await db.scalars(select(Sitting).order_by(Sitting.starts_at.desc()))
    return [await sitting_body(db, s) for s in rows]


class SittingIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(max_length=32)
    password: str = Field(min_length=1, max_length=64)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    subject: str = Field(default="", max_length=200)
    exam: str = Field(default="", max_length=200)
    analysis_fps: float = 2.0
    flow: dict[str, Any] | None = None


@router.post("/api/admin/sittings")
async def new_sitting(
    body: SittingIn, who: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> dict:
    s = await create_sitting(
        db,
        name=body.name,
        kind=body.kind,
        password=body.password,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        subject=body.subject,
        exam=body.exam,
        analysis_fps=body.analysis_fps,
        flow=body.flow,
        by=who.subject_id,
    )
    await db.commit()
    return await sitting_body(db, s)


@router.get("/api/admin/sittings/{sitting_id}")
async def sitting(
    sitting_id: int, _: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> dict:
    return await sitting_body(db, await _sitting(db, sitting_id))


class SittingPatch(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=64)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    subject: str | None = Field(default=None, max_length=200)
    exam: str | None = Field(default=None, max_length=200)
    analysis_fps: float | None = None
    flow: dict[str, Any] | None = None


@router.patch("/api/admin/sittings/{sitting_id}")
async def change_sitting(
    sitting_id: int,
    body: SittingPatch,
    who: Principal = Depends(admin),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    s = await update_sitting(db, sitting_id, **body.model_dump(), by=who.subject_id, now=at)
    await db.commit()
    return await sitting_body(db, s)


# ------------------------------------------------------------------------- roster


@router.post("/api/admin/sittings/{sitting_id}/roster")
async def import_roster(
    sitting_id: int,
    file: UploadFile = File(...),
    photos: UploadFile | None = File(None),
    check_photos: bool = Form(True),
    who: Principal = Depends(admin),
    db: AsyncSession = Depends(db_session),
    rt: Runtime = Depends(runtime),
    exam: ExamService = Depends(exam_service),
    at: datetime = Depends(now),
) -> dict:
    """Multipart: ``file`` (CSV or XLSX), optional ``photos`` (a ZIP of the photo files
    named in the roster's photo column), optional ``check_photos`` (default true)."""
    await _sitting(db, sitting_id)
    data = await _read(file, MAX_IMPORT_BYTES, "file")
    lookup = None
    if photos is not None and photos.filename:
        lookup = roster.photos_from_zip(await _read(photos, MAX_PHOTOS_ZIP, "photos"))
    result = await roster.import_roster(
        db,
        rt.storage,
        exam.identity,
        sitting_id=sitting_id,
        data=data,
        filename=file.filename or "",
        photos=lookup,
        verify_photos=check_photos,
        now=at,
        by=who.subject_id,
    )
    await db.commit()
    return result.as_dict()


@router.get("/api/admin/sittings/{sitting_id}/candidates")
async def roster_list(
    sitting_id: int, _: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> list[dict]:
    await _sitting(db, sitting_id)
    rows = await db.execute(
        select(Candidate, Attempt)
        .outerjoin(Attempt, Attempt.candidate_id == Candidate.id)
        .where(Candidate.sitting_id == sitting_id)
        .order_by(Candidate.id)
    )
    order = await roster_order(db, sitting_id)  # by seat, then import order (issue 23)
    seats = await seats_of(db, sitting_id)  # None: in no room, no invigilator sees them
    return [
        {
            "id": c.id,
            "name": c.name,
            "id_number": c.id_number,
            "occupation": c.occupation,
            "level": c.level,
            "has_photo": c.photo_relpath is not None,
            "step": a.step if a else None,
            "room": (
                {"id": seats[c.id][0], "name": seats[c.id][1], "seat": seats[c.id][2]}
                if c.id in seats
                else None
            ),
        }
        for c, a in sorted(rows.all(), key=lambda r: order(r[0].id))
    ]


# ------------------------------------------------------------------------- banks, papers


@router.post("/api/admin/banks/import")
async def import_bank(
    file: UploadFile = File(...),
    bank_name: str = Form("", alias="bank"),
    who: Principal = Depends(admin),
    db: AsyncSession = Depends(db_session),
) -> dict:
    """Multipart: ``file`` (JSON or CSV), ``bank`` (the bank's name, unless the JSON file
    names it)."""
    data = await _read(file, MAX_IMPORT_BYTES, "file")
    result = await bank.import_bank(
        db, data, file.filename or "", bank_name or None, by=who.subject_id
    )
    await db.commit()
    return result.as_dict()


@router.get("/api/admin/banks")
async def banks(who: Principal = Depends(admin), db: AsyncSession = Depends(db_session)) -> list:
    return await bank.bank_summary(db)


@router.put("/api/admin/sittings/{sitting_id}/paper")
async def assemble_paper(
    sitting_id: int,
    request: Request,
    who: Principal = Depends(admin),
    db: AsyncSession = Depends(db_session),
) -> dict:
    """Body: the blueprint (proctor.sitting.papers)."""
    try:
        blueprint = await request.json()
    except ValueError:
        raise Invalid("bad_blueprint", "The blueprint must be JSON.") from None
    await papers.assemble(db, sitting_id, blueprint, staff_id=who.subject_id)
    await db.commit()
    return await paper_body(db, sitting_id)


@router.get("/api/admin/sittings/{sitting_id}/paper")
async def paper_body_route(
    sitting_id: int, _: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> dict:
    return await paper_body(db, sitting_id)


async def paper_body(db: AsyncSession, sitting_id: int) -> dict:
    await _sitting(db, sitting_id)
    paper = await papers.get_paper(db, sitting_id)
    if paper is None:
        raise NotFound("no_paper", "This sitting has no paper yet.")
    qs = await papers.questions_of(db, [int(i["question_id"]) for i in paper.items])
    return {
        "sitting_id": sitting_id,
        "blueprint": paper.blueprint,
        "total_points": sum(float(i["points"]) for i in paper.items),
        "in_use": await papers.paper_in_use(db, sitting_id),
        "questions": [
            _question_body(qs[int(i["question_id"])], float(i["points"]), int(i["section"]))
            for i in paper.items
        ],
    }


def _question_body(q: Question, points: float, section: int) -> dict:
    return {
        "id": q.id,
        "bank": q.bank,
        "external_id": q.external_id,
        "type": q.type,
        "knowledge_point": q.knowledge_point,
        "difficulty": q.difficulty,
        "stem": q.stem,
        "options": q.options,
        "answer": q.answer,
        "points": points,
        "section": section,
    }


# ------------------------------------------------------------------------- results


@router.get("/api/admin/sittings/{sitting_id}/results")
async def results(
    sitting_id: int, _: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> list[dict]:
    return await scoring.results(db, sitting_id)


def _csv_response(text: str, name: str) -> Response:
    return Response(
        text.encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/api/admin/sittings/{sitting_id}/results.csv")
async def results_csv(
    sitting_id: int, _: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> Response:
    await _sitting(db, sitting_id)
    return _csv_response(await scoring.results_csv(db, sitting_id), f"results-{sitting_id}.csv")


@router.get("/api/admin/sittings/{sitting_id}/answers.csv")
async def answers_csv(
    sitting_id: int, _: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> Response:
    await _sitting(db, sitting_id)
    return _csv_response(await scoring.answers_csv(db, sitting_id), f"answers-{sitting_id}.csv")


@router.get("/api/admin/sittings/{sitting_id}/grading")
async def grading_queue(
    sitting_id: int, _: Principal = Depends(grader), db: AsyncSession = Depends(db_session)
) -> list[dict]:
    await _sitting(db, sitting_id)
    return await scoring.grading_queue(db, sitting_id)


class GradeIn(BaseModel):
    points: float
    note: str = Field(default="", max_length=2000)


@router.post("/api/admin/answers/{answer_id}/grade")
async def grade(
    answer_id: int,
    body: GradeIn,
    who: Principal = Depends(grader),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    result = await scoring.grade(
        db, answer_id=answer_id, points=body.points, note=body.note, staff_id=who.subject_id, now=at
    )
    await db.commit()
    return result


@router.get("/api/admin/sittings/{sitting_id}/device-reports")
async def device_reports(
    sitting_id: int, _: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> list[dict]:
    await _sitting(db, sitting_id)
    return await device.reports(db, sitting_id)


# ------------------------------------------------------------------------- staff


class StaffIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    display_name: str = Field(min_length=1, max_length=128)
    role: str = Field(max_length=32)


@router.post("/api/admin/staff")
async def new_staff(
    body: StaffIn, who: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> dict:
    user = await create_staff(db, **body.model_dump(), by=(who.subject_id, who.role))
    await db.commit()
    return {"id": user.id, "username": user.username, "role": user.role}
