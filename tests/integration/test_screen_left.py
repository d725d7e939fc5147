"""Leaving the exam page (切屏, issue 18) through the real app (SQLite and PostgreSQL,
manual clock): each leave is counted (count and total seconds on the console's candidate
list and in the exam-room record); the first leaves are warned on the candidate's page,
from the sitting's threshold on each is a ``screen_left`` alert lasting as long as the
candidate is away; leaving full screen counts only where the sitting requires it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from proctor.evidence import chain
from proctor.rules import RuleSettings
from proctor.store.tables import Alert, ConsoleAction
from tests.flowkit import ADMIN, FlowApp

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def leave_and_return(fa: FlowApp, cand, away: float, kinds=("hidden", "blur")) -> None:
    back = {"hidden": "visible", "blur": "focus", "fullscreen_exit": "fullscreen_enter"}
    await cand.ok("post", "/api/flow/events", json={"events": [{"kind": k} for k in kinds]})
    fa.clock.advance(away)
    await cand.ok("post", "/api/flow/events", json={"events": [{"kind": back[k]} for k in kinds]})
    fa.clock.advance(5)


async def test_leaves_are_counted_warned_then_reported(fa: FlowApp) -> None:
    s = await fa.sitting(
        kind="formal",
        starts_in=timedelta(minutes=-1),
        rules=RuleSettings(screen_left_alert_count=2),
        flow={"require_phone": False},
    )
    cid = s.candidates[0].id
    cand = await fa.login(s.password, s.candidates[0].id_number)
    state = await fa.walk(cand, "answering")
    assert state["page_watch"] == {"fullscreen_required": False, "screen_left_alert_count": 2}

    await leave_and_return(fa, cand, 10.0)  # 1st: warned
    async with fa.rt.db.session() as db:
        hints = list(
            await db.scalars(
                select(ConsoleAction).where(
                    ConsoleAction.candidate_id == cid, ConsoleAction.kind == "hint"
                )
            )
        )
        assert [h.data["code"] for h in hints] == ["screen_left"]
        assert not list(await db.scalars(select(Alert).where(Alert.candidate_id == cid)))

    await leave_and_return(fa, cand, 20.0)  # 2nd: reported, an episode of 20 s
    # out of full screen: not a leave here (full screen is not required in this sitting)
    await cand.ok("post", "/api/flow/events", json={"events": [{"kind": "fullscreen_exit"}]})
    await cand.ok("post", "/api/flow/events", json={"events": [{"kind": "hidden"}]})  # 3rd

    async with fa.rt.db.session() as db:
        alerts = list(
            await db.scalars(select(Alert).where(Alert.candidate_id == cid).order_by(Alert.id))
        )
        assert [(a.type, a.severity) for a in alerts] == [
            ("screen_left", "warning"),
            ("screen_left", "warning"),  # critical from twice the threshold (4)
        ]
        first, ongoing = alerts
        assert (first.ended_at - first.started_at).total_seconds() == 20.0
        assert ongoing.ended_at is None
        report = await chain.verify(db, fa.rt.storage)
        assert report.ok, report.all_problems()

    inv = await fa.staff(ADMIN)
    rows = await inv.ok("get", f"/api/console/candidates?sitting_id={s.id}")
    left = next(r for r in rows if r["id"] == cid)["screen_left"]
    assert left["count"] == 3 and left["away_since"] is not None
    assert left["seconds"] >= 30.0
    alerts_api = await inv.ok("get", f"/api/console/alerts?sitting_id={s.id}")
    ongoing_body = next(a for a in alerts_api if a["id"] == ongoing.id)
    assert ongoing_body["ongoing"] is True and ongoing_body["type"] == "screen_left"

    # back: the ongoing episode closes
    fa.clock.advance(7)
    await cand.ok("post", "/api/flow/events", json={"events": [{"kind": "visible"}]})
    async with fa.rt.db.session() as db:
        closed = await db.get(Alert, ongoing.id)
        assert closed is not None and closed.ended_at is not None
        assert (closed.ended_at - closed.started_at).total_seconds() == 7.0

    record = await inv.ok("get", f"/api/console/sittings/{s.id}/record?draft=1")
    row = next(a for a in record["attendance"] if a["id"] == cid)
    assert row["screen_left_count"] == 3 and row["screen_left_seconds"] == 37.0


async def test_leaving_full_screen_counts_where_required(fa: FlowApp) -> None:
    s = await fa.sitting(
        kind="formal",
        starts_in=timedelta(minutes=-1),
        rules=RuleSettings(screen_left_alert_count=1, fullscreen_required=True),
        flow={"require_phone": False},
    )
    cid = s.candidates[0].id
    cand = await fa.login(s.password, s.candidates[0].id_number)
    state = await fa.walk(cand, "answering")
    assert state["page_watch"]["fullscreen_required"] is True
    await leave_and_return(fa, cand, 4.0, kinds=("fullscreen_exit",))
    async with fa.rt.db.session() as db:
        alerts = list(await db.scalars(select(Alert).where(Alert.candidate_id == cid)))
        assert [(a.type, (a.ended_at - a.started_at).total_seconds()) for a in alerts] == [
            ("screen_left", 4.0)
        ]
