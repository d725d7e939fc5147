"""Sittings, candidates and staff accounts: creation and look-up."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.auth.roles import ROLES, roles_with
from proctor.auth.sessions import hash_password
from proctor.errors import Conflict, Forbidden, Invalid, NotFound
from proctor.evidence import chain
from proctor.evidence.storage import EvidenceStorage
from proctor.rules import RuleSettings
from proctor.sitting.policy import SITTING_KINDS, make_rules, rules_of
from proctor.store.tables import Candidate, Sitting, StaffUser, utcnow

STAFF_ROLES = ROLES
_ID_NUMBER = re.compile(r"^[0-9A-Za-z]{6,32}$")


def normalise_id_number(id_number: str) -> str:
    value = id_number.strip().upper()
    if not _ID_NUMBER.match(value):
        raise Invalid(
            "bad_id_number",
            f"证件号 {id_number!r} 须为6到32位字母或数字。 "
            f"ID number {id_number!r} is not 6-32 letters or digits.",
        )
    return value


async def create_sitting(
    db: AsyncSession,
    *,
    name: str,
    kind: str,
    password: str,
    starts_at: datetime,
    ends_at: datetime,
    subject: str = "",
    analysis_fps: float = 2.0,
    rules: RuleSettings | None = None,
    exam: str = "",
    flow: dict[str, Any] | None = None,
    by: int | None = None,
) -> Sitting:
    """A new sitting; ``flow`` overrides the kind's default exam-flow rules
    (proctor.sitting.policy), which are stored in full with the sitting. Chained
    (``sitting_created``, ``by``: the staff user; None: the operator), so that ``proctor
    audit verify`` notices its times or password changed in the database."""
    if kind not in SITTING_KINDS:
        raise Invalid(
            "bad_sitting_kind",
            "场次类型须为设备调试、试考或正式考试。 "
            "The sitting kind must be a device check, a trial or a formal exam.",
        )
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise Invalid(
            "bad_schedule", "开始和结束时间须带时区。 Give the start and end with a time zone."
        )
    starts_at, ends_at = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
    if ends_at <= starts_at:
        raise Invalid(
            "bad_schedule", "结束时间须晚于开始时间。 A sitting must end after it starts."
        )
    if not 0.2 <= analysis_fps <= 10:
        raise Invalid(
            "bad_analysis_fps",
            "分析帧率须在每秒0.2到10帧之间。 "
            "The analysis rate must be between 0.2 and 10 frames/s.",
        )
    flow_rules = make_rules(kind, flow)
    if not name.strip():
        raise Invalid("bad_name", "请填写场次名称。 A sitting needs a name.")
    if len(password.strip()) < 4:
        raise Invalid(
            "bad_password", "场次口令至少4个字符。 A sitting password needs at least 4 characters."
        )
    if await db.scalar(select(Sitting.id).where(Sitting.password == password.strip())):
        raise Conflict(
            "password_in_use",
            "该口令已被其他场次使用。 Another sitting already uses that password.",
        )
    sitting = Sitting(
        name=name,
        kind=kind,
        subject=subject,
        password=password.strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        analysis_fps=analysis_fps,
        rules=asdict(rules or RuleSettings()),
        exam=exam.strip(),
        flow=flow_rules.as_dict(),
    )
    db.add(sitting)
    await db.flush()
    await chain.append(
        db,
        "sitting_created",
        actor=chain.staff_actor(by) if by is not None else "operator",
        payload={"record": chain.sitting_record(sitting)},
        sitting_id=sitting.id,
        subject_type="sitting",
        subject_id=sitting.id,
    )
    return sitting


async def add_candidate(
    db: AsyncSession,
    storage: EvidenceStorage,
    *,
    sitting_id: int,
    name: str,
    id_number: str,
    photo: bytes | None = None,
    photo_ext: str = "jpg",
    occupation: str = "",
    level: str = "",
) -> Candidate:
    if await db.get(Sitting, sitting_id) is None:
        raise NotFound("unknown_sitting", f"没有场次 {sitting_id}。 No sitting {sitting_id}.")
    candidate = Candidate(
        sitting_id=sitting_id,
        name=name.strip(),
        id_number=normalise_id_number(id_number),
        occupation=occupation,
        level=level,
    )
    if photo is not None:
        stored = storage.save(
            (f"sitting-{sitting_id}", "photos"),
            f"registered-{candidate.id_number}",
            photo,
            ext=photo_ext,
            captured_at=utcnow(),
        )
        candidate.photo_relpath = stored.relpath
        candidate.photo_sha256 = stored.sha256
    db.add(candidate)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict(
            "duplicate_candidate",
            f"证件号 {candidate.id_number} 已在本场次中。 "
            f"ID number {candidate.id_number} is already in this sitting.",
        ) from exc
    return candidate


#: roles only a chief examiner (or the operator at the command line) may hand out: an
#: administrator must not make themselves a second identity that records verdicts
PRIVILEGED_ROLES = roles_with("privileged")


async def create_staff(
    db: AsyncSession,
    *,
    username: str,
    password: str,
    display_name: str,
    role: str,
    by: tuple[int, str] | None = None,
) -> StaffUser:
    """A staff account. ``by`` is (staff id, role) of the staff user creating it (None: the
    operator at the command line). Only a chief examiner creates chiefs and administrators
    (``chief_only``); every creation is in the audit chain."""
    if by is not None and role in PRIVILEGED_ROLES and by[1] != "chief":
        raise Forbidden(
            "chief_only",
            "只有主考可以创建主考或管理员账号。 Only a chief examiner may create chief examiner "
            "or administrator accounts.",
        )
    if role not in STAFF_ROLES:
        raise Invalid(
            "bad_role",
            "角色须为监考、主考、复核或管理员。 "
            "The role must be invigilator, chief examiner, reviewer or administrator.",
        )
    if len(password) < 8:
        raise Invalid(
            "weak_password",
            "工作人员密码至少8个字符。 A staff password needs at least 8 characters.",
        )
    if await db.scalar(select(StaffUser.id).where(StaffUser.username == username)):
        raise Conflict(
            "username_taken", f"用户名 {username!r} 已存在。 User {username!r} exists already."
        )
    user = StaffUser(
        username=username,
        display_name=display_name,
        role=role,
        password_hash=hash_password(password),
    )
    db.add(user)
    await db.flush()
    await chain.append(
        db,
        "staff_created",
        actor=chain.staff_actor(by[0]) if by is not None else "operator",
        payload=chain.staff_record(user),
        subject_type="staff",
        subject_id=user.id,
    )
    return user


SHOWN_COLUMNS = ("id", "name", "id_number", "occupation", "level")


def candidate_facts(c: Candidate) -> dict[str, Any]:
    """What the candidate's page and the roster show of a candidate: its ``SHOWN_COLUMNS``
    and whether a photo is registered."""
    return {**{k: getattr(c, k) for k in SHOWN_COLUMNS}, "has_photo": c.photo_relpath is not None}


async def get_candidate(db: AsyncSession, candidate_id: int) -> Candidate:
    candidate = await db.get(Candidate, candidate_id)
    if candidate is None:
        raise NotFound(
            "unknown_candidate", f"没有考生 {candidate_id}。 No candidate {candidate_id}."
        )
    return candidate


async def list_sittings(db: AsyncSession) -> list[Sitting]:
    return list(await db.scalars(select(Sitting).order_by(Sitting.starts_at.desc())))


async def list_candidates(db: AsyncSession, sitting_id: int) -> list[Candidate]:
    """The sitting's roster by seat, then in import order (issue 23)."""
    from proctor.store.order import roster_order

    rows = await db.scalars(
        select(Candidate).where(Candidate.sitting_id == sitting_id).order_by(Candidate.id)
    )
    order = await roster_order(db, sitting_id)
    return sorted(rows, key=lambda c: order(c.id))


def photo_ext_of(path: Path) -> str:
    return path.suffix.lstrip(".").lower() or "jpg"


async def update_sitting(
    db: AsyncSession,
    sitting_id: int,
    *,
    name: str | None = None,
    password: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    subject: str | None = None,
    exam: str | None = None,
    analysis_fps: float | None = None,
    flow: dict[str, Any] | None = None,
    by: int | None = None,
    now: datetime | None = None,
) -> Sitting:
    """Change a sitting; ``flow`` overrides are merged into its current rules. A finished
    sitting's times are frozen (``schedule_frozen``): moving them into the past would make
    its evidence purgeable at once. Every change is in the audit chain (``by``: the staff
    user; None: the operator)."""
    sitting = await db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound("unknown_sitting", f"没有场次 {sitting_id}。 No sitting {sitting_id}.")
    now = now or utcnow()
    before = chain.sitting_record(sitting)
    if sitting.ends_at <= now and (
        (starts_at is not None and starts_at.astimezone(UTC) != sitting.starts_at)
        or (ends_at is not None and ends_at.astimezone(UTC) != sitting.ends_at)
    ):
        raise Conflict(
            "schedule_frozen",
            "该场次已结束，时间不能再修改。 This sitting is over: its times can no longer be "
            "changed.",
        )
    if name is not None:
        if not name.strip():
            raise Invalid("bad_name", "请填写场次名称。 A sitting needs a name.")
        sitting.name = name.strip()
    if password is not None and password.strip() != sitting.password:
        if len(password.strip()) < 4:
            raise Invalid(
                "bad_password",
                "场次口令至少4个字符。 A sitting password needs at least 4 characters.",
            )
        if await db.scalar(select(Sitting.id).where(Sitting.password == password.strip())):
            raise Conflict(
                "password_in_use",
                "该口令已被其他场次使用。 Another sitting already uses that password.",
            )
        sitting.password = password.strip()
    if (starts_at and starts_at.tzinfo is None) or (ends_at and ends_at.tzinfo is None):
        raise Invalid(
            "bad_schedule", "开始和结束时间须带时区。 Give the start and end with a time zone."
        )
    new_start = (starts_at or sitting.starts_at).astimezone(UTC)
    new_end = (ends_at or sitting.ends_at).astimezone(UTC)
    if new_end <= new_start:
        raise Invalid(
            "bad_schedule", "结束时间须晚于开始时间。 A sitting must end after it starts."
        )
    sitting.starts_at, sitting.ends_at = new_start, new_end
    if subject is not None:
        sitting.subject = subject.strip()
    if exam is not None:
        sitting.exam = exam.strip()
    if analysis_fps is not None:
        if not 0.2 <= analysis_fps <= 10:
            raise Invalid(
                "bad_analysis_fps",
                "分析帧率须在每秒0.2到10帧之间。 "
                "The analysis rate must be between 0.2 and 10 frames/s.",
            )
        sitting.analysis_fps = analysis_fps
    if flow:
        merged = {**rules_of(sitting.kind, sitting.flow).as_dict(), **flow}
        sitting.flow = make_rules(sitting.kind, merged).as_dict()
    await db.flush()
    after = chain.sitting_record(sitting)
    changed = {k: {"from": before[k], "to": after[k]} for k in after if after[k] != before[k]}
    if changed:
        await chain.append(
            db,
            "sitting_changed",
            actor=chain.staff_actor(by) if by is not None else "operator",
            payload={"changed": changed},
            sitting_id=sitting.id,
            subject_type="sitting",
            subject_id=sitting.id,
        )
    return sitting
