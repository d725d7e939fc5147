"""Who may do what after the exam, and the record of every look at the evidence.

Reviewers, chief examiners and administrators reach the review; invigilators and
candidates do not. Reviewers and chief examiners decide; a chief examiner locks the
records; a chief examiner or an administrator sets retention. Every access (the queue, a
timeline, an evidence file, an export) is an ``access.*`` entry of the audit chain."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proctor.auth.roles import roles_with
from proctor.evidence import chain
from proctor.store.tables import Evidence

REVIEW_ROLES = roles_with("review")
DECIDE_ROLES = roles_with("decide")
LOCK_ROLES = roles_with("lock")
RETENTION_ROLES = roles_with("retention")


async def log_access(
    db: AsyncSession,
    staff_id: int,
    what: str,
    *,
    sitting_id: int | None = None,
    candidate_id: int | None = None,
    subject_type: str | None = None,
    subject_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append ``access.<what>`` for this staff user (the caller commits)."""
    await chain.append(
        db,
        f"access.{what}",
        actor=chain.staff_actor(staff_id),
        payload=detail or {},
        sitting_id=sitting_id,
        candidate_id=candidate_id,
        subject_type=subject_type,
        subject_id=subject_id,
    )


async def evidence_opened(db: AsyncSession, staff_id: int, row: Evidence, *, via: str) -> None:
    """An evidence file is about to be sent to this staff user: ``access.evidence`` in
    the audit chain (with the file's hash and where it was opened), committed first."""
    await log_access(
        db,
        staff_id,
        "evidence",
        sitting_id=row.sitting_id,
        candidate_id=row.candidate_id,
        subject_type="evidence",
        subject_id=row.id,
        detail={"sha256": row.sha256, "via": via},
    )
    await db.commit()
