"""Issue 21 item 5, on SQLite and PostgreSQL: the audit chain is keyed with a key kept
outside the database. Someone who can write the database but has not the key cannot edit a
verdict and re-hash the chain into one that verifies (neither as keyed links nor rewritten
as unkeyed ones); chains made before the key keep verifying and are sealed with it; staff
roles and passwords and sitting times and passwords changed directly in the database are
found; the server does not start without the key."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from proctor.config import Settings
from proctor.evidence import chain
from proctor.store import migrate
from proctor.store.db import Database
from proctor.store.tables import AuditEntry, AuditHead, CandidateVerdict, Sitting, StaffUser
from tests import clikit
from tests.clikit import proctor_here, proctor_process
from tests.review_seed import seed_review

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes.fromhex(os.environ["PROCTOR_AUDIT_KEY"])  # tests/conftest.py


@pytest.fixture(scope="module")
def seeded(database_url, models_dir, media_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("key-data")
    seed = asyncio.run(seed_review(database_url, data_dir, models_dir, media_dir))
    return database_url, data_dir, seed


def cli(url: str, data_dir: Path, *argv: str, key: str | None = None) -> tuple[int, str]:
    """``proctor ...`` in this process, with the test key or ``key`` ("" = none)."""
    env = {"PROCTOR_DATABASE_URL": url, "PROCTOR_DATA_DIR": str(data_dir)}
    if key is not None:
        env["PROCTOR_AUDIT_KEY"] = key
    return proctor_here(env, *argv)


def run_db(url: str, work, key: bytes | None = KEY):
    return clikit.run_db(url, work, audit_key=key)


def assert_intact(url: str, data_dir: Path) -> None:
    code, out = cli(url, data_dir, "audit", "verify")
    assert code == 0, out
    assert out.startswith("audit log intact")


def assert_broken(url: str, data_dir: Path, *needles: str) -> str:
    code, out = cli(url, data_dir, "audit", "verify")
    assert code == 1, out
    for needle in needles:
        assert needle in out, (needle, out)
    return out


# ------------------------------------------------------------------- re-hash without key


def test_entries_are_keyed_and_need_the_key(seeded):
    url, data_dir, _ = seeded

    async def kinds(db):
        return (await db.execute(select(AuditEntry.seq, AuditEntry.key_id))).all()

    rows = run_db(url, kinds)
    assert rows[0].key_id is None  # the genesis entry, made by the migration
    assert {r.key_id for r in rows[1:]} == {chain.key_id_of(KEY)}
    assert_intact(url, data_dir)
    # without the key the keyed links cannot be checked: verify fails and says why
    code, out = cli(url, data_dir, "audit", "verify", key="")
    assert code == 1
    assert "cannot be checked: no audit key" in out
    # another key: named as such
    code, out = cli(url, data_dir, "audit", "verify", key="77" * 32)
    assert code == 1 and "was keyed with another key" in out


def test_rehashing_after_editing_a_verdict_without_the_key_fails(seeded):
    url, data_dir, seed = seeded
    from proctor.review.verdicts import decide_candidate

    async def decide(db):
        await decide_candidate(
            db,
            candidate_id=seed.candidates["risky"],
            outcome="violation",
            category="paper_voided",
            note="phone on the desk",
            alert_ids=[],
            reviewer_id=seed.staff_ids["reviewer"],
        )
        verdict = await db.scalar(
            select(CandidateVerdict)
            .where(CandidateVerdict.candidate_id == seed.candidates["risky"])
            .order_by(CandidateVerdict.id.desc())
        )
        entry = await db.scalar(
            select(AuditEntry).where(
                AuditEntry.subject_type == "candidate_verdict",
                AuditEntry.subject_id == verdict.id,
            )
        )
        return verdict.id, entry.seq

    verdict_id, seq = run_db(url, decide)
    assert_intact(url, data_dir)
    saved: list[dict] = []

    def forge(unkeyed: bool):
        """The verdict becomes "no_issue", its entry's fingerprint too, and every link from
        that entry on is recomputed the only way one can without the key: plain sha256
        (keeping the entries' key ids, or rewriting them as unkeyed)."""

        async def work(db):
            await db.execute(
                update(CandidateVerdict)
                .where(CandidateVerdict.id == verdict_id)
                .values(outcome="no_issue", category=None)
            )
            rows = list(
                await db.scalars(
                    select(AuditEntry).where(AuditEntry.seq >= seq).order_by(AuditEntry.seq)
                )
            )
            if not saved:
                for r in rows:
                    found = await db.execute(
                        select(AuditEntry.__table__).where(AuditEntry.seq == r.seq)
                    )
                    saved.append(dict(found.one()._mapping))
            rows[0].payload = (
                rows[0]
                .payload.replace('"outcome":"violation"', '"outcome":"no_issue"')
                .replace('"category":"paper_voided"', '"category":null')
            )
            prev = rows[0].prev_hash
            for r in rows:
                r.prev_hash = prev
                if unkeyed:
                    r.key_id = None
                r.hash = chain.entry_hash(
                    prev,
                    key=None,
                    seq=r.seq,
                    at=r.at,
                    actor=r.actor,
                    kind=r.kind,
                    sitting_id=r.sitting_id,
                    candidate_id=r.candidate_id,
                    subject_type=r.subject_type,
                    subject_id=r.subject_id,
                    payload=r.payload,
                )
                prev = r.hash
            (await db.get(AuditHead, 1)).hash = prev

        run_db(url, work, key=None)

    async def restore(db):
        await db.execute(
            update(CandidateVerdict)
            .where(CandidateVerdict.id == verdict_id)
            .values(outcome="violation", category="paper_voided")
        )
        if not saved:
            return
        for row in saved:
            await db.execute(delete(AuditEntry).where(AuditEntry.seq == row["seq"]))
            await db.execute(insert(AuditEntry.__table__).values(**row))
        (await db.get(AuditHead, 1)).hash = saved[-1]["hash"]

    try:
        forge(unkeyed=False)
        assert_broken(url, data_dir, f"entry {seq} (review.candidate_verdict) was altered")
        run_db(url, restore)
        assert_intact(url, data_dir)
        forge(unkeyed=True)
        assert_broken(url, data_dir, f"entry {seq} is not keyed although entry")
        # and the newest entry is not keyed either
        out = assert_broken(url, data_dir, "is not keyed: the log was never sealed")
        assert "AUDIT CHECK FAILED" in out
    finally:
        run_db(url, restore)
    assert_intact(url, data_dir)


# ------------------------------------------------------------------- staff and sitting rows


def test_staff_and_sitting_rows_edited_in_the_database_are_found(seeded):
    url, data_dir, seed = seeded
    invigilator = seed.staff_ids["invigilator"]

    async def fetch(db):
        staff = await db.get(StaffUser, invigilator)
        sitting = await db.get(Sitting, seed.sitting_id)
        return staff.role, staff.password_hash, sitting.password, sitting.starts_at

    role, password_hash, sitting_password, starts_at = run_db(url, fetch)

    def change(table, row_id, **values):
        async def work(db):
            await db.execute(update(table).where(table.id == row_id).values(**values))

        run_db(url, work)

    try:
        change(StaffUser, invigilator, role="admin")
        assert_broken(url, data_dir, f"staff {invigilator} differs from its state", "role")
        change(StaffUser, invigilator, role=role, password_hash="scrypt$forged")
        assert_broken(url, data_dir, f"staff {invigilator} differs", "password_sha256")
        change(StaffUser, invigilator, password_hash=password_hash)
        change(Sitting, seed.sitting_id, password="guessable")
        assert_broken(url, data_dir, f"sitting {seed.sitting_id} differs", "password_sha256")
        change(Sitting, seed.sitting_id, password=sitting_password)
        from datetime import timedelta

        change(Sitting, seed.sitting_id, starts_at=starts_at - timedelta(days=400))
        assert_broken(url, data_dir, f"sitting {seed.sitting_id} differs", "starts_at")
    finally:
        change(StaffUser, invigilator, role=role, password_hash=password_hash)
        change(Sitting, seed.sitting_id, password=sitting_password, starts_at=starts_at)
    assert_intact(url, data_dir)

    # a chief slipped in without create_staff
    async def slip(db):
        row = StaffUser(
            username="backdoor", display_name="x", role="chief", password_hash="scrypt$x"
        )
        db.add(row)
        await db.flush()
        return row.id

    slipped = run_db(url, slip)
    try:
        assert_broken(url, data_dir, f"staff {slipped} is not in the audit log")
    finally:

        async def remove(db):
            await db.execute(delete(StaffUser).where(StaffUser.id == slipped))

        run_db(url, remove)
    assert_intact(url, data_dir)

    # a sitting changed through the service is chained, so it verifies
    async def through_service(db):
        from proctor.sitting.sittings import update_sitting

        await update_sitting(db, seed.sitting_id, password="new-sitting-pass")

    run_db(url, through_service)
    assert_intact(url, data_dir)


# ------------------------------------------------------------------- chains made before the key


def test_a_chain_made_before_the_key_verifies_and_is_sealed(database_url, tmp_path):
    """A database whose log was written unkeyed (before migration 0008 and the key): its
    links keep verifying as they are; the key seals it (``audit.keyed``, vouching for the
    staff and sittings already there); later entries are keyed; a legacy entry edited
    afterwards is still found."""
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        drop = None
    else:
        from tests.serverproc import create_postgres_db, drop_postgres_db

        url, name = create_postgres_db()
        drop = lambda: drop_postgres_db(name)  # noqa: E731
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    try:
        _old_database(url)
        # verify before the seal: the newest entry is unkeyed
        code, out = cli(url, data_dir, "audit", "verify")
        assert code == 1 and "is not keyed: the log was never sealed" in out, out
        # init-key seals it (the key is in the environment here, so no file is made)
        code, out = cli(url, data_dir, "audit", "init-key")
        assert code == 0, out
        assert "sealed with the key at entry 4" in out
        assert_intact(url, data_dir)
        # a second init-key changes nothing
        code, out = cli(url, data_dir, "audit", "init-key")
        assert code == 0 and "sealed" not in out

        # the old sitting and staff rows are vouched for by the seal: edits are found
        async def edit(db):
            await db.execute(update(StaffUser).values(role="admin"))

        run_db(url, edit)
        assert_broken(url, data_dir, "differs from its state in the audit log (entry 4)", "role")

        async def unedit(db):
            await db.execute(update(StaffUser).values(role="invigilator"))
            # a legacy link edited: still found
            await db.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="someone"))

        run_db(url, unedit)
        assert_broken(url, data_dir, "entry 2 (sitting_changed) was altered")
    finally:
        if drop is not None:
            drop()


def _old_database(url: str) -> None:
    """Migrations up to before 0008 and entries written as the code before the key did
    (plain sha256 links, no key id), then the migration to the newest revision."""
    from alembic import command

    async def go():
        db = Database(url, audit_key=None)
        try:

            def old(sync_conn):
                cfg = migrate.alembic_config()
                cfg.attributes["connection"] = sync_conn
                for rev in ("0003", "0004", "0006", "0007_alert_snoozes", "0007_episodes"):
                    command.upgrade(cfg, rev)

            async with db.engine.begin() as conn:
                await conn.run_sync(old)
            async with db.transaction() as s:
                from datetime import UTC, datetime, timedelta

                from proctor.auth.sessions import hash_password

                now = datetime.now(UTC).replace(microsecond=0)
                staff = StaffUser(
                    username="old-invigilator",
                    display_name="Old 老监考",
                    role="invigilator",
                    password_hash=hash_password("old-pass-123"),
                )
                sitting = Sitting(
                    name="Old sitting 旧场次",
                    kind="formal",
                    password="old-sitting",
                    starts_at=now,
                    ends_at=now + timedelta(hours=2),
                    rules={},
                    flow={},
                )
                s.add_all([staff, sitting])
                await s.flush()
                head = await s.get(AuditHead, 1)
                prev = head.hash
                for seq, kind, subject in (
                    (2, "sitting_changed", sitting.id),
                    (3, "staff_created", staff.id),
                ):
                    fields = {
                        "seq": seq,
                        "at": now,
                        "actor": "operator",
                        "kind": kind,
                        "sitting_id": None,
                        "candidate_id": None,
                        "subject_type": "sitting" if kind == "sitting_changed" else "staff",
                        "subject_id": subject,
                        "payload": chain.canonical_json({"old": True}),
                    }
                    digest = chain.entry_hash(prev, **fields)
                    await s.execute(
                        insert(AuditEntry.__table__).values(**fields, prev_hash=prev, hash=digest)
                    )
                    prev = digest
                head.seq, head.hash = 3, prev
            await migrate.upgrade(db.engine)
        finally:
            await db.dispose()

    asyncio.run(go())


# ------------------------------------------------------------------- the server needs the key


def test_the_server_refuses_to_start_without_its_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PROCTOR_AUDIT_KEY"}
    env.update(
        PROCTOR_DATA_DIR=str(tmp_path),
        PROCTOR_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        PROCTOR_PORT="9",
    )
    done = proctor_process(env, "serve")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"the audit key file {tmp_path / 'audit.key'} is missing" in done.stderr
    assert "proctor audit init-key" in done.stderr
    # the app itself (as uvicorn's workers start it) refuses too
    from proctor.runtime import AuditKeyProblem, Runtime

    settings = Settings(data_dir=tmp_path, database_url=env["PROCTOR_DATABASE_URL"], audit_key="")
    with pytest.raises(AuditKeyProblem, match="proctor audit init-key"):
        asyncio.run(Runtime.start(settings))
    # init-key makes the file, readable by its owner only, and seals the new database
    done = proctor_process(env, "audit", "init-key")
    assert done.returncode == 0, done.stdout + done.stderr
    key_file = tmp_path / "audit.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "audit key created" in done.stdout
    assert settings.load_audit_key() == bytes.fromhex(key_file.read_text().strip())
    done = proctor_process(env, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    # a key that is not this database's: refused at start, named
    wrong = Settings(
        data_dir=tmp_path, database_url=env["PROCTOR_DATABASE_URL"], audit_key="99" * 32
    )
    with pytest.raises(AuditKeyProblem, match="was keyed with key"):
        asyncio.run(Runtime.start(wrong))
