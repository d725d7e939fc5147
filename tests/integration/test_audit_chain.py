"""The hash-chained audit log on SQLite and PostgreSQL: ``proctor audit verify`` passes on an
intact sitting (real alerts, real evidence files), and finds every kind of tampering — an
evidence file changed or gone, a log entry altered (with or without its hash recomputed),
removed or cut from the end, a recorded row changed, deleted outside the retention
procedure or slipped in without an entry. Appends from several processes at once stay one
unbroken chain."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, text, update

from proctor.evidence.chain import hash_of
from proctor.store.tables import Alert, AuditEntry, AuditHead, Danmaku, Evidence
from tests.clikit import proctor_here, proctor_process, run_db
from tests.review_seed import ReviewSeed, seed_review

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes.fromhex(os.environ["PROCTOR_AUDIT_KEY"])  # tests/conftest.py


@dataclass
class Seeded:
    url: str
    data_dir: Path
    seed: ReviewSeed


@pytest.fixture(scope="module")
def seeded(database_url, models_dir, media_dir, tmp_path_factory) -> Seeded:
    data_dir = tmp_path_factory.mktemp("audit-data")
    seed = asyncio.run(seed_review(database_url, data_dir, models_dir, media_dir))
    return Seeded(database_url, data_dir, seed)


def verify_cli(s: Seeded) -> subprocess.CompletedProcess:
    """``proctor audit verify`` as an operator runs it."""
    env = {**os.environ, "PROCTOR_DATABASE_URL": s.url, "PROCTOR_DATA_DIR": str(s.data_dir)}
    return proctor_process(env, "audit", "verify")


def verify(s: Seeded) -> subprocess.CompletedProcess:
    """The same command in this process (quicker than starting Python each time)."""
    return _cli(s, "audit", "verify")


def assert_intact(s: Seeded) -> None:
    done = verify(s)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("audit log intact")


def assert_broken(s: Seeded, *needles: str) -> str:
    done = verify(s)
    assert done.returncode == 1, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("AUDIT CHECK FAILED: "), done.stdout
    for needle in needles:
        assert needle in first, (needle, done.stdout)
    return done.stdout


def evidence_row(s: Seeded, kind: str) -> Evidence:
    async def work(db):
        return await db.scalar(
            select(Evidence)
            .where(Evidence.candidate_id == s.seed.candidates["risky"], Evidence.kind == kind)
            .order_by(Evidence.id)
            .limit(1)
        )

    return run_db(s.url, work)


def entry_of(s: Seeded, kind: str, subject_id: int | None = None) -> AuditEntry:
    async def work(db):
        query = select(AuditEntry).where(AuditEntry.kind == kind)
        if subject_id is not None:
            query = query.where(AuditEntry.subject_id == subject_id)
        return await db.scalar(query.order_by(AuditEntry.seq).limit(1))

    return run_db(s.url, work)


def entry_row(s: Seeded, seq: int) -> dict:
    async def work(db):
        row = (await db.execute(select(AuditEntry.__table__).where(AuditEntry.seq == seq))).one()
        return dict(row._mapping)

    return run_db(s.url, work)


# ------------------------------------------------------------------------------ intact


def test_intact_sitting_verifies(seeded):
    done = verify_cli(seeded)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("audit log intact: ")
    assert "evidence files re-hashed" in done.stdout


# ------------------------------------------------------------------------------ files


def test_an_altered_evidence_file_is_found(seeded):
    row = evidence_row(seeded, "alert_screenshot")
    path = seeded.data_dir / "evidence" / row.relpath
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        out = assert_broken(seeded, f"evidence {row.id}", "was altered")
        assert row.sha256[:16] in out
        done = verify_cli(seeded)  # the operator's command: exit code 1, first break first
        assert done.returncode == 1
        assert done.stdout.startswith(f"AUDIT CHECK FAILED: evidence {row.id}: the file")
    finally:
        path.write_bytes(original)
    assert_intact(seeded)


def test_a_missing_evidence_file_is_found(seeded):
    row = evidence_row(seeded, "alert_clip")
    path = seeded.data_dir / "evidence" / row.relpath
    moved = path.with_name(path.name + ".away")
    path.rename(moved)
    try:
        assert_broken(seeded, f"evidence {row.id}", "missing")
    finally:
        moved.rename(path)
    assert_intact(seeded)


def test_an_evidence_hash_changed_with_its_file_is_found(seeded):
    """Someone replaces a file and writes its new sha256 into the evidence row: the chain
    still holds the original digest."""
    row = evidence_row(seeded, "snapshot")
    path = seeded.data_dir / "evidence" / row.relpath
    original = path.read_bytes()
    forged = original + b"\x00"
    import hashlib

    async def forge(db, digest: str, size: int):
        await db.execute(
            update(Evidence).where(Evidence.id == row.id).values(sha256=digest, size=size)
        )

    try:
        path.write_bytes(forged)
        run_db(seeded.url, lambda db: forge(db, hashlib.sha256(forged).hexdigest(), len(forged)))
        assert_broken(seeded, f"evidence {row.id} differs from what audit entry", "sha256")
    finally:
        path.write_bytes(original)
        run_db(seeded.url, lambda db: forge(db, row.sha256, row.size))
    assert_intact(seeded)


# ------------------------------------------------------------------------------ log rows


def test_an_altered_log_entry_is_found(seeded):
    row = evidence_row(seeded, "alert_screenshot")
    entry = entry_of(seeded, "evidence.stored", row.id)
    forged = entry.payload.replace(row.sha256, "0" * 64)
    assert forged != entry.payload

    async def set_payload(db, payload: str):
        await db.execute(
            update(AuditEntry).where(AuditEntry.seq == entry.seq).values(payload=payload)
        )

    try:
        run_db(seeded.url, lambda db: set_payload(db, forged))
        assert_broken(seeded, f"entry {entry.seq} (evidence.stored) was altered")
    finally:
        run_db(seeded.url, lambda db: set_payload(db, entry.payload))
    assert_intact(seeded)


def test_a_rewritten_entry_with_a_recomputed_hash_breaks_the_next_link(seeded):
    entry = entry_of(seeded, "alert.raised")
    original = entry_row(seeded, entry.seq)

    async def rewrite(db):
        row = await db.get(AuditEntry, entry.seq)
        row.actor = "staff:1"
        row.hash = hash_of(row, KEY)

    async def restore(db):
        await db.execute(
            update(AuditEntry)
            .where(AuditEntry.seq == entry.seq)
            .values(actor=original["actor"], hash=original["hash"])
        )

    try:
        run_db(seeded.url, rewrite)
        assert_broken(seeded, f"entry {entry.seq + 1} does not link to the entry before it")
    finally:
        run_db(seeded.url, restore)
    assert_intact(seeded)


def test_a_removed_entry_is_found(seeded):
    entry = entry_of(seeded, "alert.raised")
    original = entry_row(seeded, entry.seq)

    async def remove(db):
        await db.execute(delete(AuditEntry).where(AuditEntry.seq == entry.seq))

    async def put_back(db):
        await db.execute(insert(AuditEntry.__table__).values(**original))

    try:
        run_db(seeded.url, remove)
        out = assert_broken(seeded, f"entry {entry.seq} is missing")
        # and the alert it recorded is no longer in the log either
        assert f"alert {entry.subject_id} is not in the audit log" in out
    finally:
        run_db(seeded.url, put_back)
    assert_intact(seeded)


def test_entries_cut_from_the_end_are_found(seeded):
    async def last(db):
        return (await db.get(AuditHead, 1)).seq

    seq = run_db(seeded.url, last)
    original = entry_row(seeded, seq)

    async def cut(db):
        await db.execute(delete(AuditEntry).where(AuditEntry.seq == seq))

    async def put_back(db):
        await db.execute(insert(AuditEntry.__table__).values(**original))

    try:
        run_db(seeded.url, cut)
        assert_broken(seeded, f"the log ends at entry {seq - 1} but its head names entry {seq}")
    finally:
        run_db(seeded.url, put_back)
    assert_intact(seeded)


# ------------------------------------------------------------------------------ recorded rows


def test_an_altered_alert_is_found(seeded):
    alert_id, alert_type, _ = seeded.seed.alerts["risky"][0]

    async def set_type(db, value: str):
        await db.execute(update(Alert).where(Alert.id == alert_id).values(type=value))

    try:
        run_db(seeded.url, lambda db: set_type(db, "looking_away"))
        assert_broken(seeded, f"alert {alert_id} differs from what audit entry", "(type)")
    finally:
        run_db(seeded.url, lambda db: set_type(db, alert_type))
    assert_intact(seeded)


def test_a_row_deleted_outside_the_retention_procedure_is_found(seeded):
    row = evidence_row(seeded, "snapshot")

    async def fetch(db):
        return dict(
            (await db.execute(select(Evidence.__table__).where(Evidence.id == row.id)))
            .one()
            ._mapping
        )

    original = run_db(seeded.url, fetch)

    async def remove(db):
        await db.execute(delete(Evidence).where(Evidence.id == row.id))

    async def put_back(db):
        await db.execute(insert(Evidence.__table__).values(**original))

    try:
        run_db(seeded.url, remove)
        assert_broken(seeded, f"evidence {row.id}", "was deleted outside the retention procedure")
    finally:
        run_db(seeded.url, put_back)
    assert_intact(seeded)


def test_a_row_slipped_in_without_an_entry_is_found(seeded):
    async def slip(db):
        from proctor.store.tables import utcnow

        row = Danmaku(
            candidate_id=seeded.seed.candidates["calm"],
            sender_id=seeded.seed.staff_ids["invigilator"],
            text="backdated warning",
            sent_at=utcnow(),
        )
        db.add(row)
        await db.flush()
        return row.id

    danmaku_id = run_db(seeded.url, slip)
    try:
        assert_broken(seeded, f"danmaku {danmaku_id} is not in the audit log")
    finally:

        async def remove(db):
            await db.execute(delete(Danmaku).where(Danmaku.id == danmaku_id))

        run_db(seeded.url, remove)
    assert_intact(seeded)


# ------------------------------------------------------------------------------ concurrency

APPENDER = """
import asyncio, sys
from proctor.evidence import chain
from proctor.store.db import Database

async def main(url: str, n: int, who: str) -> None:
    db = Database(url)
    try:
        for i in range(n):
            async with db.transaction() as s:
                await chain.append(s, "test.concurrent", actor=who, payload={"i": i})
    finally:
        await db.dispose()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


def test_appends_from_several_processes_form_one_chain(seeded):
    processes, per = 4, 25

    async def count(db):
        rows = await db.execute(
            text("SELECT count(*) FROM audit_log WHERE kind = 'test.concurrent'")
        )
        return rows.scalar()

    before = run_db(seeded.url, count)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, seeded.url, str(per), f"test:{p}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for p in range(processes)
    ]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()
    assert run_db(seeded.url, count) == before + processes * per

    async def actors(db):
        rows = await db.execute(
            select(AuditEntry.actor).where(AuditEntry.kind == "test.concurrent")
        )
        return [a for (a,) in rows.all()]

    assert {a: run_db(seeded.url, actors).count(a) for a in {f"test:{p}" for p in range(4)}} == {
        f"test:{p}": per for p in range(processes)
    }
    assert_intact(seeded)


# ------------------------------------------------------------------------------ anchor


def _cli(s: Seeded, *argv: str) -> subprocess.CompletedProcess:
    env = {"PROCTOR_DATABASE_URL": s.url, "PROCTOR_DATA_DIR": str(s.data_dir)}
    return subprocess.CompletedProcess(list(argv), *proctor_here(env, *argv), "")


def test_a_rehashed_chain_is_caught_by_an_anchor_kept_outside(seeded):
    """Issue 21 item 5: whoever has the audit key as well as the database can rewrite an
    entry and re-hash everything after it into a consistent chain; the head printed earlier
    and kept outside the database (``proctor audit head``) catches it. (Without the key
    the re-hash itself fails: tests/integration/test_audit_key.py.)"""
    head = _cli(seeded, "audit", "head")
    assert head.returncode == 0
    anchor = head.stdout.strip()
    seq_head, digest = anchor.split(":")
    assert int(seq_head) > 1 and len(digest) == 64
    assert _cli(seeded, "audit", "verify", "--anchor", anchor).returncode == 0
    entry = entry_of(seeded, "alert.raised")
    originals = []

    async def rewrite(db):
        rows = list(
            await db.scalars(
                select(AuditEntry).where(AuditEntry.seq >= entry.seq).order_by(AuditEntry.seq)
            )
        )
        originals.extend((r.seq, r.actor, r.prev_hash, r.hash) for r in rows)
        prev = rows[0].prev_hash
        rows[0].actor = "staff:1"
        for r in rows:
            r.prev_hash = prev
            r.hash = hash_of(r, KEY)
            prev = r.hash
        (await db.get(AuditHead, 1)).hash = prev

    async def restore(db):
        for seq, actor, prev_hash, digest_ in originals:
            await db.execute(
                update(AuditEntry)
                .where(AuditEntry.seq == seq)
                .values(actor=actor, prev_hash=prev_hash, hash=digest_)
            )
        (await db.get(AuditHead, 1)).hash = originals[-1][3]

    try:
        run_db(seeded.url, rewrite)
        assert_intact(seeded)  # the rewrite is consistent: without the anchor it passes
        caught = _cli(seeded, "audit", "verify", "--anchor", anchor)
        assert caught.returncode == 1
        assert f"entry {seq_head} differs from the anchor taken outside" in caught.stdout
        bad = _cli(seeded, "audit", "verify", "--anchor", "12:nothex")
        assert bad.returncode == 2 and "not an anchor" in bad.stdout
    finally:
        run_db(seeded.url, restore)
    assert_intact(seeded)
