"""Administration routes (docs/api.md "Administration"): sittings, rosters, question banks,
papers, results, grading and device-check reports. Parse, authorise, call the domain
(proctor.sitting.administration, proctor.flow), answer.

Two routers, each with its role once: setting sittings up (``admin``: the "administer"
permission of proctor.auth.roles) and grading (``grader``: "grade", which reviewers have
too); ``router`` holds both."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api import wire_admin as out
from proctor.api.deps import admin, db_session, exam_service, grader, now, runtime
from proctor.api.wire import AS_GIVEN, text_answer
from proctor.auth.sessions import Principal
from proctor.errors import Invalid
from proctor.flow import device
from proctor.flow.service import ExamService
from proctor.invigilation.rooms import seats_of
from proctor.runtime import Runtime
from proctor.sitting import administration as desk
from proctor.sitting import bank, roster, scoring
from proctor.sitting.importing import ImportFailed

#: what the app includes: ``manage`` and ``grading`` (added at the end of this module)
router = APIRouter()
manage = APIRouter(dependencies=[Depends(admin)])
grading = APIRouter(dependencies=[Depends(grader)])

MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_PHOTOS_ZIP = 512 * 1024 * 1024
CSV = {200: text_answer("CSV", "text/csv")}


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


# ------------------------------------------------------------------------- sittings


@manage.get("/api/admin/sittings", response_model=list[out.AdminSitting], **AS_GIVEN)
async def sittings(db: AsyncSession = Depends(db_session)) -> list[dict]:
    return await desk.sittings(db)


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


@manage.post("/api/admin/sittings", response_model=out.AdminSitting, **AS_GIVEN)
async def new_sitting(
    body: SittingIn, who: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> dict:
    return await desk.new_sitting(db, **body.model_dump(), by=who.subject_id)


@manage.get("/api/admin/sittings/{sitting_id}", response_model=out.AdminSitting, **AS_GIVEN)
async def sitting(sitting_id: int, db: AsyncSession = Depends(db_session)) -> dict:
    return await desk.sitting(db, sitting_id)


class SittingPatch(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=64)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    subject: str | None = Field(default=None, max_length=200)
    exam: str | None = Field(default=None, max_length=200)
    analysis_fps: float | None = None
    flow: dict[str, Any] | None = None


@manage.patch("/api/admin/sittings/{sitting_id}", response_model=out.AdminSitting, **AS_GIVEN)
async def change_sitting(
    sitting_id: int,
    body: SittingPatch,
    who: Principal = Depends(admin),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    return await desk.change_sitting(db, sitting_id, **body.model_dump(), by=who.subject_id, now=at)


# ------------------------------------------------------------------------- roster


@manage.post(
    "/api/admin/sittings/{sitting_id}/roster", response_model=out.AdminRosterImport, **AS_GIVEN
)
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
    await desk.get_sitting(db, sitting_id)  # an unknown sitting before reading the files
    data = await _read(file, MAX_IMPORT_BYTES, "file")
    lookup = None
    if photos is not None and photos.filename:
        lookup = roster.photos_from_zip(await _read(photos, MAX_PHOTOS_ZIP, "photos"))
    return await desk.import_roster(
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


@manage.get(
    "/api/admin/sittings/{sitting_id}/candidates",
    response_model=list[out.AdminRosterCandidate],
    **AS_GIVEN,
)
async def roster_list(sitting_id: int, db: AsyncSession = Depends(db_session)) -> list[dict]:
    # by seat, then import order (issue 23); a candidate in no room: room None
    return await desk.roster_rows(db, sitting_id, await seats_of(db, sitting_id))


# ------------------------------------------------------------------------- banks, papers


@manage.post("/api/admin/banks/import", response_model=out.AdminBankImport, **AS_GIVEN)
async def import_bank(
    file: UploadFile = File(...),
    bank_name: str = Form("", alias="bank"),
    who: Principal = Depends(admin),
    db: AsyncSession = Depends(db_session),
) -> dict:
    """Multipart: ``file`` (JSON or CSV), ``bank`` (the bank's name, unless the JSON file
    names it)."""
    data = await _read(file, MAX_IMPORT_BYTES, "file")
    return await desk.import_bank(
        db, data, file.filename or "", bank_name or None, by=who.subject_id
    )


@manage.get("/api/admin/banks", response_model=list[out.AdminBankSummary], **AS_GIVEN)
async def banks(db: AsyncSession = Depends(db_session)) -> list:
    return await bank.bank_summary(db)


@manage.put("/api/admin/sittings/{sitting_id}/paper", response_model=out.AdminPaper, **AS_GIVEN)
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
    return await desk.assemble_paper(db, sitting_id, blueprint, staff_id=who.subject_id)


@manage.get("/api/admin/sittings/{sitting_id}/paper", response_model=out.AdminPaper, **AS_GIVEN)
async def paper_body_route(sitting_id: int, db: AsyncSession = Depends(db_session)) -> dict:
    return await desk.paper_body(db, sitting_id)


# ------------------------------------------------------------------------- results


@manage.get(
    "/api/admin/sittings/{sitting_id}/results", response_model=list[out.AdminResult], **AS_GIVEN
)
async def results(sitting_id: int, db: AsyncSession = Depends(db_session)) -> list[dict]:
    return await scoring.results(db, sitting_id)


def _csv_response(text: str, name: str) -> Response:
    return Response(
        text.encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@manage.get("/api/admin/sittings/{sitting_id}/results.csv", response_class=Response, responses=CSV)
async def results_csv(sitting_id: int, db: AsyncSession = Depends(db_session)) -> Response:
    return _csv_response(await desk.results_csv(db, sitting_id), f"results-{sitting_id}.csv")


@manage.get("/api/admin/sittings/{sitting_id}/answers.csv", response_class=Response, responses=CSV)
async def answers_csv(sitting_id: int, db: AsyncSession = Depends(db_session)) -> Response:
    return _csv_response(await desk.answers_csv(db, sitting_id), f"answers-{sitting_id}.csv")


@grading.get(
    "/api/admin/sittings/{sitting_id}/grading",
    response_model=list[out.AdminGradingItem],
    **AS_GIVEN,
)
async def grading_queue(sitting_id: int, db: AsyncSession = Depends(db_session)) -> list[dict]:
    return await desk.grading_queue(db, sitting_id)


class GradeIn(BaseModel):
    points: float
    note: str = Field(default="", max_length=2000)


@grading.post("/api/admin/answers/{answer_id}/grade", response_model=out.AdminGraded, **AS_GIVEN)
async def grade(
    answer_id: int,
    body: GradeIn,
    who: Principal = Depends(grader),
    db: AsyncSession = Depends(db_session),
    at: datetime = Depends(now),
) -> dict:
    return await desk.grade(
        db, answer_id=answer_id, points=body.points, note=body.note, staff_id=who.subject_id, now=at
    )


@manage.get(
    "/api/admin/sittings/{sitting_id}/device-reports",
    response_model=list[out.AdminDeviceReport],
    **AS_GIVEN,
)
async def device_reports(sitting_id: int, db: AsyncSession = Depends(db_session)) -> list[dict]:
    await desk.get_sitting(db, sitting_id)
    return await device.reports(db, sitting_id)


# ------------------------------------------------------------------------- staff


class AdminStaffIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    display_name: str = Field(min_length=1, max_length=128)
    role: str = Field(max_length=32)


@manage.post("/api/admin/staff", response_model=out.AdminStaff, **AS_GIVEN)
async def new_staff(
    body: AdminStaffIn, who: Principal = Depends(admin), db: AsyncSession = Depends(db_session)
) -> dict:
    return await desk.new_staff(db, **body.model_dump(), by=(who.subject_id, who.role))


router.include_router(manage)
router.include_router(grading)
