"""``proctor retention purge`` on SQLite and PostgreSQL: three sittings with real alerts and
evidence — one whose five years have passed, one still within them, one kept longer by a
chief examiner's decision. A dry run lists exactly the expired one and changes nothing; the
procedure refuses to run without a responsible chief/admin and an approval; executed, it
destroys exactly the expired sitting's rows and files, records who, when, on what approval
and how much, in its own table and in the audit chain, and the chain still verifies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from proctor.evidence import retention
from proctor.store.tables import (
    Alert,
    AuditEntry,
    Candidate,
    CandidateEvent,
    CandidateVerdict,
    Danmaku,
    Evidence,
    RetentionPurge,
    Sitting,
)
from tests.clikit import proctor_process, run_db
from tests.review_seed import ReviewSeed, seed_review

ROOT = Path(__file__).resolve().parents[2]
YEAR = timedelta(days=365.25)


@dataclass
class World:
    url: str
    data_dir: Path
    old: ReviewSeed  # ended six years ago: expired
    recent: ReviewSeed  # ended four years ago: kept
    kept: ReviewSeed  # ended seven years ago, kept ten years by decision


@pytest.fixture(scope="module")
def world(database_url, models_dir, media_dir, tmp_path_factory) -> World:
    data_dir = tmp_path_factory.mktemp("retention-data")

    async def make() -> World:
        old = await seed_review(
            database_url,
            data_dir,
            models_dir,
            media_dir,
            password="old-sit-1",
            starts_ago=6 * YEAR,
            name="Six years ago",
        )
        recent = await seed_review(
            database_url,
            data_dir,
            models_dir,
            media_dir,
            password="new-sit-2",
            starts_ago=4 * YEAR,
            name="Four years ago",
        )
        kept = await seed_review(
            database_url,
            data_dir,
            models_dir,
            media_dir,
            password="kpt-sit-3",
            starts_ago=7 * YEAR,
            name="Seven years ago, kept ten",
        )
        return World(database_url, data_dir, old, recent, kept)

    w = asyncio.run(make())

    async def decide(db):
        await retention.set_retention(
            db,
            sitting_id=w.kept.sitting_id,
            years=10,
            reason="appeal in court",
            by_user_id=w.kept.staff_ids["chief"],
        )
        # a reviewer's verdict in the old sitting: review records go with the sitting
        from proctor.review.verdicts import decide_alert

        alert_id = w.old.alerts["risky"][0][0]
        await decide_alert(
            db,
            alert_id=alert_id,
            decision="confirmed",
            note="seen",
            reviewer_id=w.old.staff_ids["reviewer"],
        )

    run_db(database_url, decide)
    return w


def cli(w: World, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROCTOR_DATABASE_URL": w.url, "PROCTOR_DATA_DIR": str(w.data_dir)}
    return proctor_process(env, *args, timeout=180)


def execute_purge(w: World, approval: str, *more: str) -> subprocess.CompletedProcess:
    """``proctor retention purge --execute`` by the chief examiner with this approval."""
    by_chief = ("--execute", "--by", "chief1", "--approval", approval)
    return cli(w, "retention", "purge", *by_chief, *more)


def snapshot(w: World, sitting_id: int) -> dict:
    """Rows of the sitting per table, and its files with their sha256."""

    async def counts(db):
        ids = select(Candidate.id).where(Candidate.sitting_id == sitting_id)
        return {
            "sitting": await db.scalar(select(func.count()).where(Sitting.id == sitting_id)),
            "candidates": await db.scalar(
                select(func.count()).where(Candidate.sitting_id == sitting_id)
            ),
            "alerts": await db.scalar(select(func.count()).where(Alert.sitting_id == sitting_id)),
            "evidence": await db.scalar(
                select(func.count()).where(Evidence.sitting_id == sitting_id)
            ),
            "events": await db.scalar(
                select(func.count()).where(CandidateEvent.candidate_id.in_(ids))
            ),
            "danmaku": await db.scalar(select(func.count()).where(Danmaku.candidate_id.in_(ids))),
            "evidence_ids": [
                [i, d]
                for i, d in (
                    await db.execute(
                        select(Evidence.id, Evidence.sha256)
                        .where(Evidence.sitting_id == sitting_id)
                        .order_by(Evidence.id)
                    )
                ).all()
            ],
        }

    out = run_db(w.url, counts)
    directory = w.data_dir / "evidence" / f"sitting-{sitting_id}"
    out["files"] = (
        {
            p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*"))
            if p.is_file()
        }
        if directory.exists()
        else {}
    )
    return out


def test_dry_run_lists_exactly_what_expired_and_changes_nothing(world):
    before = {
        s.sitting_id: snapshot(world, s.sitting_id) for s in (world.old, world.recent, world.kept)
    }
    done = cli(world, "retention", "purge")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("DRY RUN: nothing is deleted.")
    assert f"sitting {world.old.sitting_id} 'Six years ago'" in done.stdout
    assert "Four years ago" not in done.stdout and "Seven years ago" not in done.stdout
    as_json = json.loads(cli(world, "retention", "purge", "--json").stdout)
    assert [p["sitting_id"] for p in as_json] == [world.old.sitting_id]
    plan = as_json[0]
    old = before[world.old.sitting_id]
    assert plan["rows"]["candidates"] == old["candidates"] == 3
    assert plan["rows"]["alerts"] == old["alerts"] > 0
    assert plan["rows"]["evidence"] == old["evidence"] > 0
    assert plan["rows"]["alert_verdicts"] == 1
    assert plan["files"] == len(old["files"]) > 0
    assert plan["years"] == 5 and plan["source"] == "default"
    # a later purge can be rehearsed: in four years the 'recent' one is due too
    later = json.loads(cli(world, "retention", "purge", "--json", "--now", "2200-01-01").stdout)
    assert {p["sitting_id"] for p in later} == {
        world.old.sitting_id,
        world.recent.sitting_id,
        world.kept.sitting_id,
    }
    after = {
        s.sitting_id: snapshot(world, s.sitting_id) for s in (world.old, world.recent, world.kept)
    }
    assert after == before


def test_the_procedure_needs_a_responsible_person_and_an_approval(world):
    before = snapshot(world, world.old.sitting_id)
    alone = cli(world, "retention", "purge", "--execute")
    assert alone.returncode == 2 and "--by USER" in alone.stdout
    no_approval = cli(world, "retention", "purge", "--execute", "--by", "chief1")
    assert no_approval.returncode == 2
    invigilator = cli(
        world, "retention", "purge", "--execute", "--by", "invigilator9", "--approval", "A-1"
    )
    assert invigilator.returncode == 2 and "purge_not_allowed" in invigilator.stdout
    nobody = cli(world, "retention", "purge", "--execute", "--by", "ghost", "--approval", "A-1")
    assert nobody.returncode == 2 and "unknown_staff" in nobody.stdout
    early = execute_purge(world, "A-1", "--now", "2200-01-01")
    assert early.returncode == 2 and "dry runs only" in early.stdout
    assert snapshot(world, world.old.sitting_id) == before


def test_purge_destroys_exactly_what_expired_and_records_it(world):
    plan = json.loads(cli(world, "retention", "purge", "--json").stdout)[0]
    before = {
        s.sitting_id: snapshot(world, s.sitting_id) for s in (world.old, world.recent, world.kept)
    }
    done = execute_purge(world, "考务委员会批准 2032-007 Approval")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"sitting {world.old.sitting_id}: destroyed" in done.stdout

    old = snapshot(world, world.old.sitting_id)
    assert old["sitting"] == 1  # the sitting row stays, as the index of what existed
    for key in ("candidates", "alerts", "evidence", "events", "danmaku"):
        assert old[key] == 0, key
    assert old["files"] == {}
    assert not (world.data_dir / "evidence" / f"sitting-{world.old.sitting_id}").exists()
    for seed in (world.recent, world.kept):  # untouched, to the byte
        assert snapshot(world, seed.sitting_id) == before[seed.sitting_id]

    async def recorded(db):
        purge = await db.scalar(
            select(RetentionPurge).where(RetentionPurge.sitting_id == world.old.sitting_id)
        )
        entries = list(
            await db.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.kind.like("retention.%"),
                    AuditEntry.sitting_id == world.old.sitting_id,
                )
                .order_by(AuditEntry.seq)
            )
        )
        verdicts = await db.scalar(
            select(func.count()).where(CandidateVerdict.sitting_id == world.old.sitting_id)
        )
        return purge, entries, verdicts

    purge, entries, verdicts = run_db(world.url, recorded)
    assert verdicts == 0
    assert purge.executed_by == world.old.staff_ids["chief"]
    assert purge.approval == "考务委员会批准 2032-007 Approval"
    assert purge.operator and "@" in purge.operator
    assert purge.rows == plan["rows"]
    assert purge.files["deleted"] == len(before[world.old.sitting_id]["files"])
    assert purge.files["failed"] == []
    assert [e.kind for e in entries] == ["retention.purged", "retention.files_deleted"]
    assert purge.audit_seq == entries[0].seq
    payload = json.loads(entries[0].payload)
    assert entries[0].actor == f"staff:{world.old.staff_ids['chief']}"
    assert payload["rows"] == plan["rows"]
    assert payload["evidence"] == before[world.old.sitting_id]["evidence_ids"]
    assert payload["approval"] == purge.approval
    assert json.loads(entries[1].payload)["deleted"] == purge.files["deleted"]

    verify = cli(world, "audit", "verify")
    assert verify.returncode == 0, verify.stdout
    # and nothing is left to do
    again = cli(world, "retention", "purge")
    assert again.returncode == 0 and again.stdout.startswith("nothing has expired")
