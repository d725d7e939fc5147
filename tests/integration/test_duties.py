"""Issue 21 item 6: separation of duties (real app, SQLite and PostgreSQL): only a chief
examiner creates chiefs and administrators; a finished sitting's times are frozen; both
staff creation and sitting changes are in the audit chain."""

from __future__ import annotations

from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select

from proctor.exam.sittings import create_staff
from proctor.store.tables import AuditEntry
from tests.flowkit import ADMIN, FlowApp, code

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHIEF = ("chief1", "chief-pass-1")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fa(database_url, tmp_path_factory, models_dir):
    async with FlowApp.running(database_url, tmp_path_factory.mktemp("duties"), models_dir) as app:
        async with app.rt.db.transaction() as s:
            await create_staff(
                s, username=CHIEF[0], password=CHIEF[1], display_name="Chief", role="chief"
            )
        yield app


async def _entries(fa: FlowApp, kind: str) -> list[AuditEntry]:
    async with fa.rt.db.session() as db:
        return list(await db.scalars(select(AuditEntry).where(AuditEntry.kind == kind)))


def _staff(username: str, role: str) -> dict:
    return {
        "username": username,
        "password": "long-enough-1",
        "display_name": username,
        "role": role,
    }


async def test_only_a_chief_creates_chiefs_and_admins(fa: FlowApp) -> None:
    admin = await fa.staff(ADMIN)
    for role in ("chief", "admin"):
        refused = await admin.post("/api/admin/staff", json=_staff(f"sneaky-{role}", role))
        assert refused.status_code == 403 and code(refused) == "chief_only"
    made = await admin.ok("post", "/api/admin/staff", json=_staff("new-invig", "invigilator"))
    chief = await fa.staff(CHIEF)
    second = await chief.ok("post", "/api/admin/staff", json=_staff("second-chief", "chief"))
    created = {e.subject_id: e for e in await _entries(fa, "staff_created")}
    assert created[made["id"]].actor.endswith(str((await admin.ok("get", "/api/staff/me"))["id"]))
    assert '"role":"chief"' in created[second["id"]].payload.replace(" ", "")
    assert not any("sneaky" in e.payload for e in created.values())


async def test_a_finished_sittings_times_are_frozen_and_changes_audited(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=10))
    admin = await fa.staff(ADMIN)
    moved = await admin.ok(
        "patch",
        f"/api/admin/sittings/{s.id}",
        json={"ends_at": (s.ends_at + timedelta(minutes=30)).isoformat(), "password": "new-pw-1"},
    )
    assert moved["ends_at"].startswith((s.ends_at + timedelta(minutes=30)).isoformat()[:16])
    fa.clock.set(s.ends_at + timedelta(hours=1))
    past = (s.starts_at - timedelta(days=3000)).isoformat()
    for change in ({"starts_at": past}, {"ends_at": past}):
        frozen = await admin.patch(f"/api/admin/sittings/{s.id}", json=change)
        assert frozen.status_code == 409 and code(frozen) == "schedule_frozen"
    renamed = await admin.ok("patch", f"/api/admin/sittings/{s.id}", json={"name": "renamed"})
    assert renamed["name"] == "renamed"
    changes = [e for e in await _entries(fa, "sitting_changed") if e.sitting_id == s.id]
    assert len(changes) == 2
    assert "ends_at" in changes[0].payload and "password_sha256" in changes[0].payload
    assert "new-pw-1" not in changes[0].payload
    assert "renamed" in changes[1].payload
