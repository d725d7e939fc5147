"""Retention of a sitting's electronic records, and their destruction when it has expired.

Electronic records are kept at least five years (DOMAIN: records, retention and security),
counted from the sitting's scheduled end; a chief examiner or an administrator may keep a
sitting longer, never shorter. Destruction is a recorded procedure, never silent:

1. :func:`plan` lists every sitting whose retention has expired and, for each, how many rows
   of every table and which files would go (``proctor retention purge`` shows it; nothing
   changes);
2. :func:`execute` (``--execute``), per sitting, in one transaction: deletes the rows,
   writes a :class:`RetentionPurge` row (who, when, on what approval, counts) and a
   ``retention.purged`` entry in the audit chain listing the evidence files (id, sha256);
   once committed it deletes the files (the sitting's evidence directory) and records how
   many were deleted in a second entry, ``retention.files_deleted``.

What a sitting's records are is found from the schema, not listed by hand: every row that
belongs to the sitting through a foreign key (candidates; their alerts, evidence, events,
danmaku, attempts, answers, …; the sitting's paper, records and verdicts), so tables added
later are covered. Kept for good: the sitting row itself (name and schedule, no personal
data), staff accounts, question banks, the audit log (which names rows by id and free text
by sha256 only) and the retention tables.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Forbidden, Invalid, NotFound
from proctor.evidence import chain
from proctor.evidence.storage import EvidenceStorage
from proctor.store.db import Database
from proctor.store.tables import (
    Base,
    Candidate,
    Evidence,
    RetentionPolicy,
    RetentionPurge,
    Sitting,
    StaffUser,
    utcnow,
)

DEFAULT_YEARS = 5  # electronic records: at least five years
MIN_YEARS = 5
MAX_YEARS = 100
PURGE_ROLES = frozenset({"chief", "admin"})
KEEP_TABLES = frozenset(
    {
        "sittings",
        "staff_users",
        "questions",
        "audit_log",
        "audit_head",
        "retention_policies",
        "retention_purges",
    }
)


def add_years(value: datetime, years: int) -> datetime:
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # 29 February
        return value.replace(year=value.year + years, day=28)


@dataclass(frozen=True)
class Retention:
    sitting_id: int
    sitting_name: str
    ends_at: datetime
    years: int
    retain_until: datetime
    source: str  # default | policy
    purged_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sitting_id": self.sitting_id,
            "sitting_name": self.sitting_name,
            "ends_at": self.ends_at.isoformat(),
            "years": self.years,
            "retain_until": self.retain_until.isoformat(),
            "source": self.source,
            "purged_at": self.purged_at.isoformat() if self.purged_at else None,
        }


async def retention_of(db: AsyncSession, sitting: Sitting) -> Retention:
    policy = await db.get(RetentionPolicy, sitting.id)
    years = policy.years if policy else DEFAULT_YEARS
    purged_at = await db.scalar(
        select(func.max(RetentionPurge.executed_at)).where(RetentionPurge.sitting_id == sitting.id)
    )
    return Retention(
        sitting_id=sitting.id,
        sitting_name=sitting.name,
        ends_at=sitting.ends_at,
        years=years,
        retain_until=add_years(sitting.ends_at, years),
        source="policy" if policy else "default",
        purged_at=purged_at,
    )


async def set_retention(
    db: AsyncSession, *, sitting_id: int, years: int, reason: str, by_user_id: int
) -> Retention:
    """Keep a sitting's records ``years`` after it ended (at least the legal minimum)."""
    sitting = await db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound("unknown_sitting", f"No sitting {sitting_id}.")
    if not MIN_YEARS <= years <= MAX_YEARS:
        raise Invalid(
            "retention_too_short" if years < MIN_YEARS else "bad_retention",
            f"Electronic records are kept {MIN_YEARS} to {MAX_YEARS} years "
            f"(电子档案至少保存{MIN_YEARS}年).",
        )
    reason = " ".join(reason.split())
    if not reason:
        raise Invalid("reason_required", "Say why this sitting is kept longer.")
    if (await retention_of(db, sitting)).purged_at is not None:
        raise Invalid("already_purged", "This sitting's records were destroyed already.")
    now = utcnow()
    policy = await db.get(RetentionPolicy, sitting_id)
    if policy is None:
        policy = RetentionPolicy(sitting_id=sitting_id)
        db.add(policy)
    policy.years, policy.reason, policy.set_by, policy.set_at = years, reason, by_user_id, now
    await db.flush()
    await chain.append(
        db,
        "retention.set",
        actor=chain.staff_actor(by_user_id),
        payload={"years": years, "reason_sha256": chain.text_sha256(reason)},
        sitting_id=sitting_id,
    )
    return await retention_of(db, sitting)


# ---------------------------------------------------------------- what a sitting holds


def _selection(sitting_id: int) -> list[tuple[Table, ColumnElement[bool]]]:
    """Every table holding rows of the sitting, parents before children, with the condition
    that picks those rows (through the foreign keys, transitively)."""
    chosen: dict[str, ColumnElement[bool]] = {}
    order: list[tuple[Table, ColumnElement[bool]]] = []
    for table in Base.metadata.sorted_tables:
        if table.name in KEEP_TABLES:
            continue
        conditions = []
        for fk in table.foreign_keys:
            target = fk.column.table
            if target.name == "sittings":
                conditions.append(fk.parent == sitting_id)
            elif target.name in chosen:
                conditions.append(fk.parent.in_(select(fk.column).where(chosen[target.name])))
        if conditions:
            where = or_(*conditions)
            chosen[table.name] = where
            order.append((table, where))
    return order


@dataclass
class SittingPlan:
    retention: Retention
    rows: dict[str, int]  # table -> rows that go
    files: list[str]  # relpaths of the files that go (evidence, photos, anything else)
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.retention.as_dict(),
            "rows": self.rows,
            "files": len(self.files),
            "bytes": self.bytes,
        }


def _sitting_dir(storage: EvidenceStorage, sitting_id: int) -> Path:
    return storage.root / f"sitting-{sitting_id}"


async def _files_of(db: AsyncSession, storage: EvidenceStorage, sitting_id: int) -> list[str]:
    """Every file of the sitting: what its rows name, and whatever else lies in its
    directory (a file without a row is a record too)."""
    names = set(await db.scalars(select(Evidence.relpath).where(Evidence.sitting_id == sitting_id)))
    names |= {
        p
        for p in await db.scalars(
            select(Candidate.photo_relpath).where(
                Candidate.sitting_id == sitting_id, Candidate.photo_relpath.is_not(None)
            )
        )
        if p
    }
    directory = _sitting_dir(storage, sitting_id)
    if directory.is_dir():
        for path in directory.rglob("*"):
            if path.is_file():
                names.add(path.relative_to(storage.root).as_posix())
    return sorted(names)


def _size(storage: EvidenceStorage, relpath: str) -> int:
    try:
        return storage.open(relpath).stat().st_size
    except (ValueError, FileNotFoundError):
        return 0


async def plan_sitting(db: AsyncSession, storage: EvidenceStorage, sitting: Sitting) -> SittingPlan:
    rows = {}
    for table, where in _selection(sitting.id):
        n = int(await db.scalar(select(func.count()).select_from(table).where(where)) or 0)
        if n:
            rows[table.name] = n
    files = await _files_of(db, storage, sitting.id)
    return SittingPlan(
        retention=await retention_of(db, sitting),
        rows=rows,
        files=files,
        bytes=sum(_size(storage, f) for f in files),
    )


async def plan(
    db: AsyncSession,
    storage: EvidenceStorage,
    now: datetime | None = None,
    sitting_ids: list[int] | None = None,
) -> list[SittingPlan]:
    """The sittings whose retention has expired by ``now`` and were not purged yet, with
    what would be destroyed. ``sitting_ids`` limits the look to those sittings."""
    now = now or utcnow()
    query = select(Sitting).order_by(Sitting.ends_at, Sitting.id)
    if sitting_ids:
        query = query.where(Sitting.id.in_(sitting_ids))
    out = []
    for sitting in await db.scalars(query):
        retention = await retention_of(db, sitting)
        if retention.purged_at is None and retention.retain_until <= now:
            out.append(await plan_sitting(db, storage, sitting))
    return out


# ---------------------------------------------------------------- the procedure


@dataclass
class PurgeResult:
    sitting_id: int
    purge_id: int
    rows: dict[str, int]
    files_deleted: int = 0
    bytes_deleted: int = 0
    files_failed: list[str] = field(default_factory=list)
    audit_seqs: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sitting_id": self.sitting_id,
            "purge_id": self.purge_id,
            "rows": self.rows,
            "files_deleted": self.files_deleted,
            "bytes_deleted": self.bytes_deleted,
            "files_failed": self.files_failed,
            "audit_seqs": self.audit_seqs,
        }


def operator_name() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"[:200]


async def authorise(db: AsyncSession, username: str) -> StaffUser:
    """The staff user in whose name a purge runs: a chief examiner or an administrator."""
    user = await db.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is None:
        raise NotFound("unknown_staff", f"No staff user {username!r}.")
    if user.role not in PURGE_ROLES:
        raise Forbidden(
            "purge_not_allowed",
            f"{username} is a {user.role}; only a chief examiner or an administrator may "
            "destroy records.",
        )
    return user


async def execute(
    database: Database,
    storage: EvidenceStorage,
    *,
    by_username: str,
    approval: str,
    now: datetime | None = None,
    sitting_ids: list[int] | None = None,
    operator: str | None = None,
) -> list[PurgeResult]:
    """Destroy what has expired, sitting by sitting, recording each step (module doc)."""
    approval = " ".join(approval.split())
    if not approval:
        raise Invalid("approval_required", "Name the approval of this destruction (--approval).")
    if now is not None and now > utcnow():
        raise Invalid("future_purge", "Records are destroyed when they expire, not before.")
    now = now or utcnow()
    operator = operator or operator_name()
    async with database.session() as db:
        user = await authorise(db, by_username)
        due = [p.retention.sitting_id for p in await plan(db, storage, now, sitting_ids)]
    results = []
    for sitting_id in due:
        results.append(
            await _purge_sitting(database, storage, sitting_id, user, approval, operator, now)
        )
    return results


async def _purge_sitting(
    database: Database,
    storage: EvidenceStorage,
    sitting_id: int,
    user: StaffUser,
    approval: str,
    operator: str,
    now: datetime,
) -> PurgeResult:
    actor = chain.staff_actor(user.id)
    async with database.transaction() as db:
        sitting = await db.get(Sitting, sitting_id)
        assert sitting is not None
        retention = await retention_of(db, sitting)
        if retention.purged_at is not None or retention.retain_until > now:
            raise Invalid("not_expired", f"Sitting {sitting_id} is not due for destruction.")
        files = await _files_of(db, storage, sitting_id)
        evidence = [
            [ev_id, digest]
            for ev_id, digest in (
                await db.execute(
                    select(Evidence.id, Evidence.sha256)
                    .where(Evidence.sitting_id == sitting_id)
                    .order_by(Evidence.id)
                )
            ).all()
        ]
        rows: dict[str, int] = {}
        for table, where in reversed(_selection(sitting_id)):  # children first
            n = (await db.execute(delete(table).where(where))).rowcount or 0
            if n:
                rows[table.name] = n
        purge = RetentionPurge(
            sitting_id=sitting_id,
            executed_at=now,
            executed_by=user.id,
            approval=approval,
            operator=operator,
            retain_until=retention.retain_until,
            rows=rows,
            files={"planned": len(files)},
        )
        db.add(purge)
        await db.flush()
        entry = await chain.append(
            db,
            chain.PURGE_KIND,
            actor=actor,
            payload={
                "purge_id": purge.id,
                "approval": approval,
                "operator": operator,
                "retain_until": chain.iso(retention.retain_until),
                "rows": rows,
                "evidence": evidence,
                "files_planned": len(files),
            },
            sitting_id=sitting_id,
        )
        purge.audit_seq = entry.seq
    result = PurgeResult(sitting_id, purge.id, rows, audit_seqs=[entry.seq])

    # the rows are gone (committed): now the files
    for relpath in files:
        try:
            path = storage.open(relpath)
        except FileNotFoundError:
            continue  # named by a row, never stored
        except ValueError:
            result.files_failed.append(relpath)
            continue
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            result.files_failed.append(relpath)
            continue
        result.files_deleted += 1
        result.bytes_deleted += size
    directory = _sitting_dir(storage, sitting_id)
    if directory.is_dir() and not any(p.is_file() for p in directory.rglob("*")):
        shutil.rmtree(directory, ignore_errors=True)

    async with database.transaction() as db:
        row = await db.get(RetentionPurge, purge.id)
        assert row is not None
        row.files = {
            "planned": len(files),
            "deleted": result.files_deleted,
            "bytes": result.bytes_deleted,
            "failed": result.files_failed,
        }
        entry = await chain.append(
            db,
            "retention.files_deleted",
            actor=actor,
            payload={"purge_id": purge.id, **row.files},
            sitting_id=sitting_id,
        )
    result.audit_seqs.append(entry.seq)
    return result
