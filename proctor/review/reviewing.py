"""The review pages' actions (after the exam), each one unit of work: read or decide, the
``access.*`` entry of the audit chain for every look at the evidence (proctor.review.access),
commit, and the body the pages read (issue 19). The routes (proctor.api.review) parse,
authorise (who may decide, lock, set retention), call these and answer."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import NotFound
from proctor.evidence import retention
from proctor.evidence.storage import EvidenceStorage
from proctor.review import exports, records, summary, timeline, verdicts
from proctor.review.access import log_access
from proctor.store.tables import Alert, Candidate, Evidence, Sitting

# ---------------------------------------------------------------- reading


async def sittings(db: AsyncSession, staff_id: int) -> list[dict[str, Any]]:
    """Every sitting, the latest first, with its candidates, alerts and retention."""
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
    await log_access(db, staff_id, "sittings")
    await db.commit()
    return out


async def queue(db: AsyncSession, sitting_id: int, staff_id: int) -> dict[str, Any]:
    """The sitting's candidates, highest risk first, and the dismissed rates per type."""
    body = await timeline.review_queue(db, sitting_id)
    body["dismissed_rates"] = await verdicts.dismissed_rates(db, sitting_id)
    await log_access(db, staff_id, "queue", sitting_id=sitting_id)
    await db.commit()
    return body


async def dismissed_rates(db: AsyncSession, sitting_id: int, staff_id: int) -> list[dict[str, Any]]:
    await timeline.get_sitting(db, sitting_id)
    body = await verdicts.dismissed_rates(db, sitting_id)
    await log_access(db, staff_id, "dismissed_rates", sitting_id=sitting_id)
    await db.commit()
    return body


async def candidate_timeline(db: AsyncSession, candidate_id: int, staff_id: int) -> dict[str, Any]:
    body = await timeline.timeline(db, candidate_id)
    await log_access(
        db, staff_id, "timeline", sitting_id=body["sitting"]["id"], candidate_id=candidate_id
    )
    await db.commit()
    return body


async def evidence_file(
    db: AsyncSession, storage: EvidenceStorage, evidence_id: int, staff_id: int
) -> tuple[Path, str]:
    """The evidence file's path and type. The look is recorded (and committed) before the
    file is looked for: a file missing from storage is logged as looked at too."""
    row = await db.get(Evidence, evidence_id)
    if row is None:
        raise NotFound("unknown_evidence", f"No evidence {evidence_id}.")
    await log_access(
        db,
        staff_id,
        "evidence",
        sitting_id=row.sitting_id,
        candidate_id=row.candidate_id,
        subject_type="evidence",
        subject_id=row.id,
        detail={"sha256": row.sha256},
    )
    await db.commit()
    try:
        path = storage.open(row.relpath)
    except (ValueError, FileNotFoundError) as exc:
        raise NotFound("evidence_missing", "The evidence file is missing from storage.") from exc
    return path, row.mime


async def supervision(db: AsyncSession, sitting_id: int, staff_id: int) -> dict[str, Any]:
    body = summary.supervision_summary(await summary.load_facts(db, sitting_id))
    await log_access(db, staff_id, "supervision", sitting_id=sitting_id)
    await db.commit()
    return body


# ---------------------------------------------------------------- decisions


async def decide_alert(
    db: AsyncSession, *, alert_id: int, decision: str, note: str, reviewer_id: int
) -> dict[str, Any]:
    out = await verdicts.decide_alert(
        db, alert_id=alert_id, decision=decision, note=note, reviewer_id=reviewer_id
    )
    await db.commit()
    return out


async def decide_candidate(
    db: AsyncSession,
    *,
    candidate_id: int,
    outcome: str,
    category: str | None,
    note: str,
    alert_ids: list[int],
    reviewer_id: int,
) -> dict[str, Any]:
    out = await verdicts.decide_candidate(
        db,
        candidate_id=candidate_id,
        outcome=outcome,
        category=category,
        note=note,
        alert_ids=alert_ids,
        reviewer_id=reviewer_id,
    )
    await db.commit()
    return out


# ---------------------------------------------------------------- records


async def open_record(
    db: AsyncSession, sitting_id: int, kind: str, staff_id: int
) -> dict[str, Any]:
    """The record (pre-filled now if nobody opened it before), its opening logged."""
    row = await records.get_record(db, sitting_id, kind, staff_id)
    await log_access(
        db,
        staff_id,
        "record",
        sitting_id=sitting_id,
        subject_type="sitting_record",
        subject_id=row.id,
    )
    await db.commit()
    return await records.record_body(db, row)


async def edit_record(
    db: AsyncSession,
    sitting_id: int,
    kind: str,
    *,
    content: dict[str, Any],
    version: int,
    staff_id: int,
) -> dict[str, Any]:
    row = await records.update_record(
        db, sitting_id, kind, content=content, version=version, staff_id=staff_id
    )
    await db.commit()
    return await records.record_body(db, row)


async def refresh_record(
    db: AsyncSession, sitting_id: int, kind: str, *, version: int, staff_id: int
) -> dict[str, Any]:
    row = await records.refresh_record(db, sitting_id, kind, version=version, staff_id=staff_id)
    await db.commit()
    return await records.record_body(db, row)


async def lock_record(
    db: AsyncSession, sitting_id: int, kind: str, *, version: int, staff_id: int
) -> dict[str, Any]:
    row = await records.lock_record(db, sitting_id, kind, version=version, staff_id=staff_id)
    await db.commit()
    return await records.record_body(db, row)


# ---------------------------------------------------------------- exports


async def verdicts_csv(db: AsyncSession, sitting_id: int, staff_id: int) -> str:
    text = await exports.verdicts_csv(db, sitting_id)
    await log_access(db, staff_id, "export_csv", sitting_id=sitting_id)
    await db.commit()
    return text


async def evidence_pack(
    db: AsyncSession, storage: EvidenceStorage, candidate_id: int, staff_id: int
) -> Path:
    """The candidate's evidence pack, written to a ZIP file in a directory of its own (the
    caller removes it with ``remove_pack`` once sent; on an error it is removed here)."""
    candidate = await timeline.get_candidate(db, candidate_id)
    tmp = Path(tempfile.mkdtemp(prefix="proctor-pack-"))
    dest = tmp / f"candidate-{candidate_id}-evidence.zip"
    try:
        manifest = await exports.evidence_pack(
            db, storage, candidate_id, dest, generated_by=f"staff:{staff_id}"
        )
        await log_access(
            db,
            staff_id,
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
        remove_pack(dest)
        raise
    return dest


def remove_pack(pack: Path) -> None:
    """Remove an evidence pack and its directory."""
    directory = pack.parent
    for f in directory.iterdir():
        f.unlink(missing_ok=True)
    directory.rmdir()


# ---------------------------------------------------------------- retention


async def get_retention(db: AsyncSession, sitting_id: int, staff_id: int) -> dict[str, Any]:
    sitting = await timeline.get_sitting(db, sitting_id)
    body = (await retention.retention_of(db, sitting)).as_dict()
    await log_access(db, staff_id, "retention", sitting_id=sitting_id)
    await db.commit()
    return body


async def set_retention(
    db: AsyncSession, *, sitting_id: int, years: int, reason: str, staff_id: int
) -> dict[str, Any]:
    out = await retention.set_retention(
        db, sitting_id=sitting_id, years=years, reason=reason, by_user_id=staff_id
    )
    await db.commit()
    return out.as_dict()
