"""Step 4, the photo identity check (拍照核验).

The face work runs in the identity worker pool (proctor.vision.identity_pool). Every failed
check counts; after ``identity_max_failures`` (3) the case goes to the invigilator, who may
admit the candidate by hand with a reason (recorded). A candidate without a usable
registered photo goes to the invigilator at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict, Invalid
from proctor.events.bus import Bus
from proctor.evidence import chain
from proctor.evidence.storage import EvidenceStorage, StoredFile
from proctor.flow.machine import Ctx, act, check, load, move
from proctor.flow.steps import record_event
from proctor.store.db import Database
from proctor.store.tables import CandidateEvent, Evidence
from proctor.vision import imagesize
from proctor.vision.identity_pool import IdentityChecker

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 10 * 1024 * 1024

REASONS = {
    "match": "身份核验通过。 Identity confirmed.",
    "mismatch": "照片与报名照片不一致。 The face does not match your registered photo.",
    "no_face": "没有检测到人脸：请正对摄像头，保持光线充足。 No face found: face the camera in "
    "good light.",
    "several_faces": "画面中有多张人脸：请确保只有你本人在画面中。 More than one face: make sure "
    "only you are in the picture.",
    "face_too_small": "人脸太小：请靠近摄像头。 Your face is too small: come closer to the camera.",
    "no_registered_photo": "没有可用的报名照片，请等待监考老师人工核验。 There is no usable "
    "registered photo: the invigilator will check you by hand.",
    "unavailable": "自动核验暂不可用，请等待监考老师人工核验。 The automatic check is not "
    "available: the invigilator will check you by hand.",
}


# ------------------------------------------------------------------------- the step


@dataclass
class IdentityInput:
    """What the route read before the (slow) check, outside any transaction."""

    registered: bytes | None


def needs_invigilator(ctx: Ctx) -> bool:
    a = ctx.attempt
    return a.identity_passed_at is None and a.identity_failures >= ctx.rules.identity_max_failures


def before_check(ctx: Ctx, storage: EvidenceStorage, image: bytes) -> IdentityInput:
    check(ctx, "identity_check")
    if needs_invigilator(ctx):
        raise Conflict(
            "identity_locked",
            "自动核验未通过的次数已达上限，请等待监考老师人工核验。 The photo check failed too "
            "often: wait for the invigilator to check you.",
        )
    if not image or len(image) > MAX_IMAGE_BYTES:
        raise Invalid("bad_image", "Send one JPEG or PNG picture of at most 10 MB.")
    if imagesize.too_many_pixels(image):
        raise Invalid(
            "image_too_large",
            f"照片像素过多（最多{imagesize.MAX_PIXELS // 1_000_000}百万像素）。 The picture has "
            f"too many pixels (at most {imagesize.MAX_PIXELS // 1_000_000} megapixels).",
        )
    registered = None
    if ctx.candidate.photo_relpath:
        try:
            registered = storage.open(ctx.candidate.photo_relpath).read_bytes()
        except (ValueError, FileNotFoundError):
            log.error(
                "registered photo missing from storage",
                extra={"candidate_id": ctx.candidate.id},
            )
    return IdentityInput(registered)


async def store_capture(
    storage: EvidenceStorage, ctx: Ctx, image: bytes, now: datetime
) -> StoredFile:
    """Write the live capture to the evidence storage (fsynced), before and outside the
    transaction that records it: the database writer does not wait for the disk."""
    return await asyncio.to_thread(
        storage.save,
        (f"sitting-{ctx.sitting.id}", f"candidate-{ctx.candidate.id}"),
        "identity-capture",
        image,
        "jpg",
        now,
    )


async def record_check(
    db: AsyncSession,
    ctx: Ctx,
    stored: StoredFile,
    outcome: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Record the stored live capture as evidence and apply the outcome to the attempt
    (locked, re-checked: the step may have moved while the check ran). The answer's
    ``same_check`` is True when the same picture had just been checked (a client's retry):
    then nothing is recorded and the caller removes the file it stored."""
    check(ctx, "identity_check")
    reason = outcome.get("reason") or "unavailable"
    if reason == "bad_image":
        raise Invalid("bad_image", "The picture could not be read: send a JPEG or PNG.")
    a = ctx.attempt
    digest = stored.sha256
    last = await _same_picture_just_checked(db, ctx.candidate.id, digest, now)
    if last is not None:
        # a client sending the same picture again after a timeout (its first request was
        # answered after it gave up): the same check, not another failure
        return {**_body_of_event(ctx, last), "same_check": True}
    evidence = Evidence(
        sitting_id=ctx.sitting.id,
        candidate_id=ctx.candidate.id,
        kind="identity_capture",
        view="first",
        relpath=stored.relpath,
        sha256=stored.sha256,
        size=stored.size,
        mime="image/jpeg",
        captured_at=stored.captured_at,
    )
    db.add(evidence)
    # in the audit chain like every evidence file (proctor audit verify checks it)
    await chain.append_record(
        db, "evidence.stored", evidence, actor=chain.candidate_actor(ctx.candidate.id)
    )
    passed = bool(outcome.get("passed"))
    if passed:
        a.identity_passed_at = now
        a.identity_method = "face"
        a.identity_distance = outcome.get("distance")
        move(ctx, "identity_passed", now)
    elif reason in ("no_registered_photo", "unavailable"):
        a.identity_failures = max(a.identity_failures, ctx.rules.identity_max_failures)
    else:
        a.identity_failures += 1
    a.updated_at = now
    await record_event(
        db,
        ctx.candidate.id,
        "identity_check",
        now,
        passed=passed,
        reason=reason,
        distance=outcome.get("distance"),
        failures=a.identity_failures,
        image_sha256=digest,
    )
    return _check_body(ctx, passed, reason, outcome.get("distance"))


#: a picture sent again within this time is the same check (a client's retry)
SAME_PICTURE_SECONDS = 120


async def _same_picture_just_checked(
    db: AsyncSession, candidate_id: int, digest: str, now: datetime
) -> CandidateEvent | None:
    """The candidate's last photo check if it was of this very picture, moments ago."""
    last = await db.scalar(
        select(CandidateEvent)
        .where(CandidateEvent.candidate_id == candidate_id, CandidateEvent.kind == "identity_check")
        .order_by(CandidateEvent.at.desc(), CandidateEvent.id.desc())
        .limit(1)
    )
    if (
        last is not None
        and (last.data or {}).get("image_sha256") == digest
        and (now - last.at).total_seconds() < SAME_PICTURE_SECONDS
    ):
        return last
    return None


def _body_of_event(ctx: Ctx, event: CandidateEvent) -> dict[str, Any]:
    data = event.data or {}
    return _check_body(
        ctx, bool(data.get("passed")), data.get("reason") or "unavailable", data.get("distance")
    )


def _check_body(ctx: Ctx, passed: bool, reason: str, distance: Any) -> dict[str, Any]:
    return {
        "passed": passed,
        "reason": reason,
        "message": REASONS.get(reason, reason),
        "distance": distance,
        "failures": ctx.attempt.identity_failures,
        "max_failures": ctx.rules.identity_max_failures,
        "needs_invigilator": needs_invigilator(ctx),
        "step": ctx.attempt.step,
    }


REASON_REQUIRED = (
    "请填写原因（2至500字），例如“已核对考生出示的身份证”。 Give the reason (2-500 characters), "
    "e.g. \u201cchecked the ID card held up to the camera\u201d."
)


def clean_reason(reason: str | None) -> str:
    """The invigilator's reason for a manual identity decision: required, 2-500 chars."""
    reason = " ".join((reason or "").split())
    if not 2 <= len(reason) <= 500:
        raise Invalid("reason_required", REASON_REQUIRED)
    return reason


async def admit(db: AsyncSession, ctx: Ctx, *, staff_id: int, reason: str, now: datetime) -> None:
    """The invigilator admits a candidate whose photo check failed too often (or who has no
    usable registered photo), with a reason."""
    check(ctx, "admit")
    if not needs_invigilator(ctx):
        raise Conflict(
            "identity_not_escalated",
            f"This candidate has not failed the photo check "
            f"{ctx.rules.identity_max_failures} times; they should retry it first.",
        )
    reason = clean_reason(reason)
    a = ctx.attempt
    a.identity_passed_at = now
    a.identity_method = "manual"
    a.identity_admitted_by = staff_id
    a.identity_admit_reason = reason
    move(ctx, "admit", now)
    await record_event(db, ctx.candidate.id, "identity_admitted", now, by=staff_id, reason=reason)


async def allow_retry(
    db: AsyncSession, ctx: Ctx, *, staff_id: int, reason: str, now: datetime
) -> None:
    """The invigilator lets the candidate try the photo check again (failures reset)."""
    check(ctx, "identity_retry")
    reason = clean_reason(reason)
    ctx.attempt.identity_failures = 0
    ctx.attempt.updated_at = now
    await record_event(
        db, ctx.candidate.id, "identity_retry_allowed", now, by=staff_id, reason=reason
    )


async def refuse(db: AsyncSession, ctx: Ctx, *, staff_id: int, reason: str, now: datetime) -> None:
    """The invigilator does not admit the candidate (the face is not the registered
    candidate's): the attempt ends (``refused``), recorded with the reason."""
    check(ctx, "identity_refuse")
    reason = clean_reason(reason)
    a = ctx.attempt
    move(ctx, "identity_refuse", now)
    a.identity_method = "refused"
    a.identity_admitted_by = staff_id
    a.identity_admit_reason = reason
    a.updated_at = now
    await record_event(db, ctx.candidate.id, "identity_refused", now, by=staff_id, reason=reason)


async def photo_check(
    database: Database,
    bus: Bus,
    checker: IdentityChecker | None,
    storage: EvidenceStorage,
    candidate_id: int,
    image: bytes,
    *,
    now: datetime,
    clock: Callable[[], datetime],
) -> dict[str, Any]:
    """Step 4 as one action: check the step and the picture, run the face check on the
    identity workers with no transaction held, then record the outcome on the locked
    attempt (re-checked: the step may have moved meanwhile), commit and publish."""
    digest = hashlib.sha256(image).hexdigest()
    async with database.session() as db:  # no transaction is held while the model runs
        ctx = await load(db, candidate_id)
        before = before_check(ctx, storage, image)
        last = await _same_picture_just_checked(db, candidate_id, digest, clock())
    if last is not None:  # a retry of a check already made: its answer, no second run
        return _body_of_event(ctx, last)
    # the sitting may ask for a stricter same-person limit than the model's
    max_distance = ctx.rules.identity_max_distance
    if before.registered is None:
        outcome: dict[str, Any] = {"passed": False, "reason": "no_registered_photo"}
    elif checker is None:
        outcome = {"passed": False, "reason": "unavailable"}
    else:
        outcome = await checker.check(before.registered, image, max_distance)

    stored = await store_capture(storage, ctx, image, clock())

    async def record(session: AsyncSession, ctx: Ctx) -> dict[str, Any]:
        return await record_check(session, ctx, stored, outcome, clock())

    try:
        _, result = await act(
            database,
            bus,
            candidate_id,
            record,
            now=now,
            publish=lambda r: (
                None
                if r.get("same_check")
                else {
                    "identity": {
                        k: r[k] for k in ("passed", "reason", "failures", "needs_invigilator")
                    }
                }
            ),
        )
    except BaseException:
        _discard(storage, stored)  # not recorded: no file without its record
        raise
    if result.pop("same_check", False):
        _discard(storage, stored)
    return result


def _discard(storage: EvidenceStorage, stored: StoredFile) -> None:
    storage.open(stored.relpath).unlink(missing_ok=True)
