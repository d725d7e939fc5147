"""The hash-chained audit log: an append-only table in which every alert, evidence file,
staff action and review access is an entry whose hash covers the previous entry's hash.

An entry's hash is ``HMAC-SHA256(key, prev_hash + "\\n" + canonical JSON of (seq, at, actor,
kind, sitting_id, candidate_id, subject_type, subject_id, payload, key_id))`` under the audit
key, which is kept outside the database (``PROCTOR_AUDIT_KEY`` or the key file, see
proctor.config); ``key_id`` is the key's fingerprint. Entries made before the chain was keyed
have no ``key_id`` and keep their plain ``sha256(prev_hash + "\\n" + JSON without key_id)``
links; once one keyed entry exists no unkeyed one may follow, and the newest entry must be
keyed (a server started with the key seals an unkeyed chain with an ``audit.keyed`` entry).
Someone who can write the database but has not the key cannot re-hash the chain after
editing it: every link they recompute fails, and one rewritten as unkeyed is refused.
Changing, removing or inserting an entry breaks every later link; the head row
(``audit_head``) names the newest entry, so entries cut from the end are noticed too.

Appends are serialised: the first statement of :func:`append` is an ``UPDATE`` of the
single head row, which takes that row's lock (PostgreSQL: a row lock held to the end of the
transaction, so every server process appends in turn; SQLite: the database write lock).
Call it inside the transaction that writes the row it records, so that both are committed
together or neither is.

Rows that the log *records* (alerts, evidence, danmaku, verdicts) carry a fingerprint of
their unchangeable fields in the payload (``payload["record"]``); :func:`verify` compares
every such row with its fingerprint, re-hashes every evidence file, and notices rows that
vanished outside the retention procedure. Free text (danmaku, notes) is kept as a sha256:
the log outlives the records it describes (see proctor.evidence.retention) and holds no
personal data.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.evidence.storage import EvidenceStorage
from proctor.store.db import AUDIT_KEY
from proctor.store.tables import (
    Alert,
    AlertVerdict,
    Answer,
    Attempt,
    AuditEntry,
    AuditHead,
    Base,
    Candidate,
    CandidateVerdict,
    Danmaku,
    Evidence,
    Sitting,
    StaffUser,
    utcnow,
)
from proctor.times import iso_utc as iso  # the audit records' time format

GENESIS_HASH = "0" * 64
HEAD_ID = 1
SYSTEM = "system"
#: the first entry (written by migration 0004): ids of rows that existed before the log
GENESIS_KIND = "log.started"
PURGE_KIND = "retention.purged"
#: the first entry made with the audit key after unkeyed ones (and the rows it vouches for)
KEYED_KIND = "audit.keyed"


def staff_actor(user_id: int) -> str:
    return f"staff:{user_id}"


def file_facts(data: bytes, filename: str) -> dict[str, Any]:
    """What an import's entry says of the file imported: its sha256 and (cut) name."""
    return {"file_sha256": hashlib.sha256(data).hexdigest(), "filename": filename[:200]}


def candidate_actor(candidate_id: int) -> str:
    return f"candidate:{candidate_id}"


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def text_sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def key_id_of(key: bytes) -> str:
    """The key's fingerprint kept with each entry (says which key, never reveals it)."""
    return hashlib.sha256(b"proctor audit key id\n" + key).hexdigest()[:16]


def entry_hash(
    prev_hash: str,
    *,
    key: bytes | None = None,
    seq: int,
    at: datetime,
    actor: str,
    kind: str,
    sitting_id: int | None,
    candidate_id: int | None,
    subject_type: str | None,
    subject_id: int | None,
    payload: str,
) -> str:
    """The entry's link: HMAC-SHA256 under ``key``; without a key the plain sha256 of the
    entries made before the chain was keyed."""
    fields: dict[str, Any] = {
        "seq": seq,
        "at": iso(at),
        "actor": actor,
        "kind": kind,
        "sitting_id": sitting_id,
        "candidate_id": candidate_id,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "payload": payload,
    }
    if key is None:
        return hashlib.sha256(f"{prev_hash}\n{canonical_json(fields)}".encode()).hexdigest()
    fields["key_id"] = key_id_of(key)
    message = f"{prev_hash}\n{canonical_json(fields)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def hash_of(entry: AuditEntry, key: bytes | None = None) -> str:
    """The entry's link recomputed: keyed entries need the key (ValueError without)."""
    if entry.key_id is not None and key is None:
        raise ValueError(f"entry {entry.seq} is keyed: its link needs the audit key")
    return entry_hash(
        entry.prev_hash,
        key=key if entry.key_id is not None else None,
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        kind=entry.kind,
        sitting_id=entry.sitting_id,
        candidate_id=entry.candidate_id,
        subject_type=entry.subject_type,
        subject_id=entry.subject_id,
        payload=entry.payload,
    )


class AuditLogMissing(RuntimeError):
    """The database has no audit head row: migrations were not applied."""


class AuditKeyMissing(RuntimeError):
    """No audit key: nothing may be appended (the server refuses to start)."""


class AuditKeyMismatch(RuntimeError):
    """The chain was keyed with another key than the one given."""


NO_KEY_MESSAGE = (
    "no audit key: set PROCTOR_AUDIT_KEY or create the key file with 'proctor audit "
    "init-key' (PROCTOR_AUDIT_KEY_FILE, default DATA_DIR/audit.key)"
)


def key_of(db: AsyncSession) -> bytes | None:
    return db.info.get(AUDIT_KEY)


async def append(
    db: AsyncSession,
    kind: str,
    *,
    actor: str,
    payload: dict[str, Any] | None = None,
    sitting_id: int | None = None,
    candidate_id: int | None = None,
    subject_type: str | None = None,
    subject_id: int | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (which is left open: the caller
    commits). Locks the chain head until that commit. The link is keyed with the
    session's audit key (AuditKeyMissing without one)."""
    key = key_of(db)
    if key is None:
        raise AuditKeyMissing(NO_KEY_MESSAGE)
    row = (
        await db.execute(
            update(AuditHead)
            .where(AuditHead.id == HEAD_ID)
            .values(seq=AuditHead.seq + 1)
            .returning(AuditHead.seq, AuditHead.hash)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if row is None:
        raise AuditLogMissing("the audit log has no head row: run 'proctor db upgrade'")
    seq, prev = row
    at = utcnow()
    text = canonical_json(payload or {})
    digest = entry_hash(
        prev,
        key=key,
        seq=seq,
        at=at,
        actor=actor,
        kind=kind,
        sitting_id=sitting_id,
        candidate_id=candidate_id,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=text,
    )
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        kind=kind,
        sitting_id=sitting_id,
        candidate_id=candidate_id,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=text,
        prev_hash=prev,
        hash=digest,
        key_id=key_id_of(key),
    )
    db.add(entry)
    await db.flush()
    await db.execute(
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(hash=digest)
        .execution_options(synchronize_session=False)
    )
    return entry


# ---------------------------------------------------------------- recorded rows


def alert_record(row: Alert) -> dict[str, Any]:
    return {
        "sitting_id": row.sitting_id,
        "candidate_id": row.candidate_id,
        "type": row.type,
        "severity": row.severity,
        "view": row.view,
        "message_sha256": text_sha256(row.message),
        "started_at": iso(row.started_at),
        "raised_at": iso(row.raised_at),
        "evidence_id": row.evidence_id,
        # episodes (issue 18): absent from older records, which read as None; the moving
        # last_seen_at is not recorded, the end and the worst moment are (alert.updated,
        # alert.closed entries)
        "ended_at": iso(row.ended_at),
        "peak_evidence_id": row.peak_evidence_id,
        "peak_score": row.peak_score,
        "peak_at": iso(row.peak_at),
        "cause": row.cause,
    }


def evidence_record(row: Evidence) -> dict[str, Any]:
    record = {
        "sitting_id": row.sitting_id,
        "candidate_id": row.candidate_id,
        "kind": row.kind,
        "view": row.view,
        "alert_id": row.alert_id,
        "relpath": row.relpath,
        "sha256": row.sha256,
        "size": row.size,
        "mime": row.mime,
        "captured_at": iso(row.captured_at),
    }
    # a recorded segment's end (issue 22); absent for a moment, as in older records
    if row.ended_at is not None:
        record["ended_at"] = iso(row.ended_at)
    return record


def danmaku_record(row: Danmaku) -> dict[str, Any]:
    return {
        "candidate_id": row.candidate_id,
        "sender_id": row.sender_id,
        "text_sha256": text_sha256(row.text),
        "sent_at": iso(row.sent_at),
    }


def alert_verdict_record(row: AlertVerdict) -> dict[str, Any]:
    return {
        "alert_id": row.alert_id,
        "candidate_id": row.candidate_id,
        "decision": row.decision,
        "note_sha256": text_sha256(row.note),
        "reviewer_id": row.reviewer_id,
        "decided_at": iso(row.decided_at),
    }


def candidate_verdict_record(row: CandidateVerdict) -> dict[str, Any]:
    return {
        "candidate_id": row.candidate_id,
        "outcome": row.outcome,
        "category": row.category,
        "note_sha256": text_sha256(row.note),
        "alert_ids": sorted(row.alert_ids or []),
        "reviewer_id": row.reviewer_id,
        "decided_at": iso(row.decided_at),
    }


def staff_record(row: StaffUser) -> dict[str, Any]:
    """What the log keeps of a staff account (the password only as the sha256 of its
    hash): :func:`verify` notices a role, name or password changed in the database."""
    return {
        "username": row.username,
        "role": row.role,
        "display_name": row.display_name,
        "password_sha256": text_sha256(row.password_hash),
    }


def sitting_record(row: Sitting) -> dict[str, Any]:
    """What the log keeps of a sitting (the password only as its sha256): :func:`verify`
    notices times, password or rules changed in the database."""
    return {
        "name": row.name,
        "kind": row.kind,
        "password_sha256": text_sha256(row.password),
        "starts_at": iso(row.starts_at),
        "ends_at": iso(row.ends_at),
        "subject": row.subject,
        "exam": row.exam,
        "analysis_fps": row.analysis_fps,
        "flow": row.flow,
    }


async def seal(db: AsyncSession) -> AuditEntry | None:
    """Key the chain: when its newest entry is unkeyed (a database from before the key,
    or a new one), append an ``audit.keyed`` entry with the key, vouching for every staff
    account and sitting as they are (rows made before they were chained). Called when a
    server starts and by ``proctor audit init-key``; None when already keyed with this
    key. AuditKeyMismatch when the chain was keyed with another key."""
    key = key_of(db)
    if key is None:
        raise AuditKeyMissing(NO_KEY_MESSAGE)
    top = await db.get(AuditHead, HEAD_ID)
    if top is None:
        raise AuditLogMissing("the audit log has no head row: run 'proctor db upgrade'")
    last = (
        await db.scalar(select(AuditEntry.key_id).where(AuditEntry.seq == top.seq))
        if top.seq
        else None
    )
    keyed = await db.scalar(
        select(AuditEntry.key_id).where(AuditEntry.key_id.is_not(None)).limit(1)
    )
    if keyed is not None and keyed != key_id_of(key):
        raise AuditKeyMismatch(
            f"the audit log was keyed with key {keyed}, the key given is {key_id_of(key)}: "
            "this is not the audit key of this database (PROCTOR_AUDIT_KEY / "
            "PROCTOR_AUDIT_KEY_FILE)"
        )
    if last is not None:
        return None
    staff = await db.scalars(select(StaffUser).order_by(StaffUser.id))
    sittings = await db.scalars(select(Sitting).order_by(Sitting.id))
    return await append(
        db,
        KEYED_KIND,
        actor=SYSTEM,
        payload={
            "key_id": key_id_of(key),
            "unkeyed_until": top.seq,
            "staff": {str(u.id): staff_record(u) for u in staff},
            "sittings": {str(x.id): sitting_record(x) for x in sittings},
        },
    )


def paper_record(attempt: Attempt, answers: list[Answer]) -> dict[str, Any]:
    """What the log keeps of a handed-in paper (at hand-in and after each grade): a sha256
    per answer (question, value, points) and the scores, so that :func:`verify` notices an
    answer or a score changed afterwards."""
    return {
        "answers": {
            str(a.id): text_sha256(
                canonical_json({"q": a.question_id, "v": a.value, "p": a.points})
            )
            for a in answers
        },
        "objective_score": attempt.objective_score,
        "manual_score": attempt.manual_score,
        "total_score": attempt.total_score,
        "passed": attempt.passed,
    }


async def paper_record_of(db: AsyncSession, attempt: Attempt) -> dict[str, Any]:
    answers = await db.scalars(
        select(Answer).where(Answer.attempt_id == attempt.id).order_by(Answer.id)
    )
    return paper_record(attempt, list(answers))


@dataclass(frozen=True)
class Recorded:
    subject_type: str
    table: type[Base]
    fingerprint: Callable[[Any], dict[str, Any]]


RECORDED: tuple[Recorded, ...] = (
    Recorded("evidence", Evidence, evidence_record),
    Recorded("alert", Alert, alert_record),
    Recorded("danmaku", Danmaku, danmaku_record),
    Recorded("alert_verdict", AlertVerdict, alert_verdict_record),
    Recorded("candidate_verdict", CandidateVerdict, candidate_verdict_record),
)
_BY_TABLE = {r.table: r for r in RECORDED}


async def append_record(
    db: AsyncSession,
    kind: str,
    row: Any,
    *,
    actor: str,
    sitting_id: int | None = None,
    extra: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry recording ``row`` (flushed, so it has its id): its fingerprint goes
    in the payload, so that :func:`verify` notices later changes to it."""
    spec = _BY_TABLE[type(row)]
    if row.id is None:
        await db.flush()
    if sitting_id is None:
        sitting_id = getattr(row, "sitting_id", None)
    return await append(
        db,
        kind,
        actor=actor,
        payload={"record": spec.fingerprint(row), **(extra or {})},
        sitting_id=sitting_id,
        candidate_id=getattr(row, "candidate_id", None),
        subject_type=spec.subject_type,
        subject_id=row.id,
    )


#: tables whose rows the log records, by subject type (the genesis entry's baseline)
RECORDED_TABLES = {r.subject_type: r.table.__tablename__ for r in RECORDED}


def genesis_entry(baseline: dict[str, int], at: datetime) -> dict[str, Any]:
    """The column values of entry 1 (written by migration 0004). ``baseline`` is the highest
    id of each recorded table then: rows at or below it existed before the log and are only
    checked against their files."""
    payload = canonical_json({"baseline": baseline})
    fields: dict[str, Any] = {
        "seq": 1,
        "at": at,
        "actor": SYSTEM,
        "kind": GENESIS_KIND,
        "sitting_id": None,
        "candidate_id": None,
        "subject_type": None,
        "subject_id": None,
        "payload": payload,
    }
    return {**fields, "prev_hash": GENESIS_HASH, "hash": entry_hash(GENESIS_HASH, **fields)}


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class Problem:
    where: str  # "entry 17", "evidence 4", "head", ...
    message: str
    seq: int | None = None  # the log entry concerned, when there is one


@dataclass
class VerifyReport:
    entries: int = 0
    files: int = 0
    rows: int = 0
    chain_problems: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # rows and files

    @property
    def ok(self) -> bool:
        return not self.chain_problems and not self.problems

    @property
    def first_break(self) -> Problem | None:
        if self.chain_problems:
            return self.chain_problems[0]
        return self.problems[0] if self.problems else None

    def all_problems(self) -> list[Problem]:
        return [*self.chain_problems, *self.problems]


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as printed by ``proctor audit head`` (ValueError otherwise)."""
    seq, _, digest = text.strip().partition(":")
    if not seq.isdigit() or int(seq) < 1 or len(digest) != 64:
        raise ValueError(f"not an anchor (SEQ:HASH as 'proctor audit head' prints): {text!r}")
    int(digest, 16)
    return int(seq), digest.lower()


async def head(db: AsyncSession) -> tuple[int, str] | None:
    """The chain's head (seq, hash): keep it outside the database (print it, mail it, put
    it in the exam-room record) to verify later that the log was not rewritten."""
    row = await db.get(AuditHead, HEAD_ID)
    return (row.seq, row.hash) if row is not None else None


async def verify(
    db: AsyncSession, storage: EvidenceStorage, anchors: list[tuple[int, str]] | None = None
) -> VerifyReport:
    """Check the whole chain, every recorded row against its entry, the staff accounts and
    sittings against their newest chained state, every evidence file and registered photo
    against its sha256. Read-only. Keyed links are checked with the session's audit key
    (a problem without it). ``anchors``: (seq, hash) pairs taken outside the database
    earlier (``proctor audit head``): the entry at each seq must still have that hash, or
    the log was rewritten (even when re-hashed into a consistent chain)."""
    report = VerifyReport()
    key = key_of(db)
    kid = key_id_of(key) if key is not None else None
    anchored = dict(anchors or [])
    records: dict[str, dict[int, tuple[int, dict[str, Any], int | None]]] = {
        r.subject_type: {} for r in RECORDED
    }
    purged: dict[int, int] = {}  # sitting id -> seq of its purge entry
    papers: dict[int, tuple[int, dict[str, Any], int | None]] = {}  # attempt id -> entry
    # staff accounts and sittings: id -> (seq, what the newest entries say of them)
    staff: dict[int, tuple[int, dict[str, Any]]] = {}
    sittings: dict[int, tuple[int, dict[str, Any]]] = {}
    baseline: dict[str, int] = {}
    expected_seq = 1
    prev = GENESIS_HASH
    first_keyed: int | None = None
    last_key_id: str | None = None
    unchecked_keyed = 0
    result = await db.stream_scalars(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000)
    )
    async for entry in result:
        report.entries += 1
        here = f"entry {entry.seq}"
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                what = f"entries {expected_seq}..{entry.seq - 1} are missing"
                if entry.seq == expected_seq + 1:
                    what = f"entry {expected_seq} is missing"
            else:
                what = f"entry {entry.seq} appears out of order"
            report.chain_problems.append(
                Problem(here, f"the log is not contiguous: {what}", entry.seq)
            )
        if entry.prev_hash != prev:
            report.chain_problems.append(
                Problem(
                    here,
                    f"entry {entry.seq} does not link to the entry before it (its previous "
                    "hash differs): an entry was removed, inserted or rewritten",
                    entry.seq,
                )
            )
        last_key_id = entry.key_id
        if entry.key_id is None:
            if first_keyed is not None:
                report.chain_problems.append(
                    Problem(
                        here,
                        f"entry {entry.seq} is not keyed although entry {first_keyed} before "
                        "it is: the log was rewritten by someone without the audit key",
                        entry.seq,
                    )
                )
            elif hash_of(entry) != entry.hash:
                report.chain_problems.append(_altered(entry))
        else:
            first_keyed = first_keyed or entry.seq
            if key is None:
                unchecked_keyed += 1
            elif entry.key_id != kid:
                report.chain_problems.append(
                    Problem(
                        here,
                        f"entry {entry.seq} was keyed with another key (id {entry.key_id}; "
                        f"the key given has id {kid}): the wrong audit key, or the entry was "
                        "forged",
                        entry.seq,
                    )
                )
            elif hash_of(entry, key) != entry.hash:
                report.chain_problems.append(_altered(entry))
        want = anchored.pop(entry.seq, None)
        if want is not None and want != entry.hash:
            report.chain_problems.append(
                Problem(
                    here,
                    f"entry {entry.seq} differs from the anchor taken outside the database: "
                    "the log was rewritten (and re-hashed) since",
                    entry.seq,
                )
            )
        prev = entry.hash
        expected_seq = entry.seq + 1
        try:
            payload = json.loads(entry.payload)
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if entry.seq == 1:
            if entry.kind != GENESIS_KIND:
                report.chain_problems.append(
                    Problem(here, "the log does not start with its genesis entry", 1)
                )
            baseline = {k: int(v) for k, v in (payload.get("baseline") or {}).items()}
        if entry.kind == PURGE_KIND and entry.sitting_id is not None:
            purged[entry.sitting_id] = entry.seq
        _follow_rows(entry, payload, staff, sittings)
        rec = payload.get("record")
        if entry.subject_type == "paper" and entry.subject_id is not None and rec is not None:
            papers[entry.subject_id] = (entry.seq, rec, entry.sitting_id)
        if entry.subject_type in records and entry.subject_id is not None and rec is not None:
            records[entry.subject_type][entry.subject_id] = (entry.seq, rec, entry.sitting_id)

    if unchecked_keyed:
        report.chain_problems.append(
            Problem(
                "key",
                f"{unchecked_keyed} keyed entries (from entry {first_keyed}) cannot be checked: "
                + NO_KEY_MESSAGE,
            )
        )
    if report.entries > 1 and last_key_id is None:
        report.chain_problems.append(
            Problem(
                "key",
                f"the newest entry ({expected_seq - 1}) is not keyed: the log was never sealed "
                "with the audit key (a server started with the key, or 'proctor audit "
                "init-key', seals it), or keyed entries were rewritten without the key",
                expected_seq - 1,
            )
        )
    for seq in sorted(anchored):
        report.chain_problems.append(
            Problem(
                f"entry {seq}",
                f"entry {seq}, anchored outside the database, is no longer in the log: "
                "entries were removed",
                seq,
            )
        )
    head = await db.get(AuditHead, HEAD_ID)
    if head is None:
        report.chain_problems.append(Problem("head", "the audit head row is missing"))
    elif head.seq != expected_seq - 1 or head.hash != prev:
        report.chain_problems.append(
            Problem(
                "head",
                f"the log ends at entry {expected_seq - 1} but its head names entry "
                f"{head.seq}: entries were removed from the end or the head was changed",
                head.seq,
            )
        )

    for spec in RECORDED:
        await _verify_rows(db, spec, records[spec.subject_type], baseline, purged, report)
    await _verify_papers(db, papers, purged, report)
    await _verify_state(db, "staff", StaffUser, staff_record, staff, {}, report)
    await _verify_state(db, "sitting", Sitting, sitting_record, sittings, purged, report)
    await _verify_files(db, storage, report)
    return report


def _altered(entry: AuditEntry) -> Problem:
    return Problem(
        f"entry {entry.seq}",
        f"entry {entry.seq} ({entry.kind}) was altered: its content no longer matches its hash",
        entry.seq,
    )


def _follow_rows(
    entry: AuditEntry,
    payload: dict[str, Any],
    staff: dict[int, tuple[int, dict[str, Any]]],
    sittings: dict[int, tuple[int, dict[str, Any]]],
) -> None:
    """The newest chained state of staff accounts and sittings, entry by entry: created
    (what was recorded then), changed (the new values), or vouched for by a seal."""
    if entry.kind == KEYED_KIND:
        for raw, facts in (payload.get("staff") or {}).items():
            staff[int(raw)] = (entry.seq, dict(facts))
        for raw, facts in (payload.get("sittings") or {}).items():
            sittings[int(raw)] = (entry.seq, dict(facts))
        return
    if entry.subject_id is None:
        return
    if entry.kind == "staff_created" and entry.subject_type == "staff":
        staff[entry.subject_id] = (
            entry.seq,
            {k: v for k, v in payload.items() if k in STAFF_FIELDS},
        )
    elif entry.kind == "sitting_created" and entry.subject_type == "sitting":
        sittings[entry.subject_id] = (entry.seq, dict(payload.get("record") or {}))
    elif entry.kind == "sitting_changed" and entry.subject_type == "sitting":
        _, was = sittings.get(entry.subject_id, (0, {}))
        now = {**was}
        for k, change in (payload.get("changed") or {}).items():
            if isinstance(change, dict) and "to" in change:
                now[k] = change["to"]
        sittings[entry.subject_id] = (entry.seq, now)


STAFF_FIELDS = ("username", "role", "display_name", "password_sha256")


async def _verify_state(
    db: AsyncSession,
    name: str,
    table: Any,
    fingerprint: Callable[[Any], dict[str, Any]],
    chained: dict[int, tuple[int, dict[str, Any]]],
    purged: dict[int, int],
    report: VerifyReport,
) -> None:
    """Each row against the newest state the log holds of it (the fields it holds: older
    entries recorded fewer); a row the log never saw, or one gone, is a problem."""
    seen: set[int] = set()
    for row in await db.scalars(select(table).order_by(table.id)):
        report.rows += 1
        seen.add(row.id)
        found = chained.get(row.id)
        if found is None:
            report.problems.append(
                Problem(
                    f"{name} {row.id}",
                    f"{name} {row.id} is not in the audit log: the row was added to the "
                    "database directly",
                )
            )
            continue
        seq, was = found
        now = fingerprint(row)
        changed = sorted(k for k in was if k in now and now[k] != was[k])
        if changed:
            report.problems.append(
                Problem(
                    f"{name} {row.id}",
                    f"{name} {row.id} differs from its state in the audit log (entry {seq}): "
                    f"{', '.join(changed)} changed in the database",
                    seq,
                )
            )
    for row_id, (seq, _) in sorted(chained.items()):
        if row_id in seen:
            continue
        purge_seq = purged.get(row_id)
        if purge_seq is not None and purge_seq > seq:
            continue
        report.problems.append(
            Problem(
                f"{name} {row_id}",
                f"{name} {row_id} (audit entry {seq}) was deleted from the database",
                seq,
            )
        )


async def _verify_rows(
    db: AsyncSession,
    spec: Recorded,
    recorded: dict[int, tuple[int, dict[str, Any], int | None]],
    baseline: dict[str, int],
    purged: dict[int, int],
    report: VerifyReport,
) -> None:
    name = spec.subject_type.replace("_", " ")
    before = baseline.get(spec.subject_type, 0)
    result = await db.stream_scalars(
        select(spec.table).order_by(spec.table.id).execution_options(yield_per=1000)
    )
    async for row in result:
        report.rows += 1
        found = recorded.pop(row.id, None)
        if found is None:
            if row.id > before:
                report.problems.append(
                    Problem(
                        f"{spec.subject_type} {row.id}", f"{name} {row.id} is not in the audit log"
                    )
                )
            continue
        seq, rec, _ = found
        now = spec.fingerprint(row)
        changed = sorted(k for k in set(now) | set(rec) if now.get(k) != rec.get(k))
        if changed:
            report.problems.append(
                Problem(
                    f"{spec.subject_type} {row.id}",
                    f"{name} {row.id} differs from what audit entry {seq} recorded "
                    f"({', '.join(changed)})",
                    seq,
                )
            )
    for subject_id, (seq, _, sitting_id) in sorted(recorded.items()):
        purge_seq = purged.get(sitting_id) if sitting_id is not None else None
        if purge_seq is not None and purge_seq > seq:
            continue  # destroyed by the retention procedure (a later entry says so)
        report.problems.append(
            Problem(
                f"{spec.subject_type} {subject_id}",
                f"{name} {subject_id} (audit entry {seq}) was deleted outside the retention "
                "procedure",
                seq,
            )
        )


async def _verify_papers(
    db: AsyncSession,
    papers: dict[int, tuple[int, dict[str, Any], int | None]],
    purged: dict[int, int],
    report: VerifyReport,
) -> None:
    """Each handed-in paper against the newest entry that recorded it."""
    for attempt_id, (seq, rec, sitting_id) in sorted(papers.items()):
        report.rows += 1
        attempt = await db.get(Attempt, attempt_id)
        if attempt is None:
            purge_seq = purged.get(sitting_id) if sitting_id is not None else None
            if purge_seq is None or purge_seq < seq:
                report.problems.append(
                    Problem(
                        f"paper {attempt_id}",
                        f"paper {attempt_id} (audit entry {seq}) was deleted outside the "
                        "retention procedure",
                        seq,
                    )
                )
            continue
        now = await paper_record_of(db, attempt)
        changed = sorted(
            k for k in set(now) | set(rec) if k != "answers" and now.get(k) != rec.get(k)
        )
        was, is_ = rec.get("answers") or {}, now["answers"]
        answers = sorted(set(was) ^ set(is_) | {k for k in was if k in is_ and was[k] != is_[k]})
        if answers:
            changed.insert(0, f"answers {', '.join(answers[:5])}")
        if changed:
            report.problems.append(
                Problem(
                    f"paper {attempt_id}",
                    f"paper {attempt_id} (candidate {attempt.candidate_id}) differs from what "
                    f"audit entry {seq} recorded ({'; '.join(changed)})",
                    seq,
                )
            )


async def _verify_files(db: AsyncSession, storage: EvidenceStorage, report: VerifyReport) -> None:
    checks: list[tuple[str, str, str]] = []  # (where, relpath, sha256)
    for ev_id, relpath, digest in (
        await db.execute(
            select(Evidence.id, Evidence.relpath, Evidence.sha256).order_by(Evidence.id)
        )
    ).all():
        checks.append((f"evidence {ev_id}", relpath, digest))
    for cand_id, relpath, digest in (
        await db.execute(
            select(Candidate.id, Candidate.photo_relpath, Candidate.photo_sha256)
            .where(Candidate.photo_relpath.is_not(None))
            .order_by(Candidate.id)
        )
    ).all():
        checks.append((f"candidate {cand_id} registered photo", relpath, digest or ""))

    def run() -> list[Problem]:
        out = []
        for where, relpath, digest in checks:
            path = storage.find(relpath)
            if path is None:
                out.append(Problem(where, f"{where}: the file {relpath} is missing from storage"))
                continue
            actual = _file_sha256(path)
            if actual != digest:
                out.append(
                    Problem(
                        where,
                        f"{where}: the file {relpath} was altered (sha256 {actual[:16]}…, "
                        f"recorded {digest[:16]}…)",
                    )
                )
        return out

    report.problems.extend(await asyncio.to_thread(run))
    report.files = len(checks)
