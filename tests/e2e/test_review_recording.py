"""The whole-session recording on the review page (issue 22 item 3), in real headless
Chromium against a real server: a headless candidate streams a real clip (a person, then
an empty room) over real WebRTC; the server raises `absent` and records both views. A
reviewer opens the candidate: both views' players are there, a click on the alert on the
timeline puts both at the alert's moment (the segment that holds it, at the right offset),
and Play plays the segment (its time advances, the picture is decoded)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from playwright.async_api import async_playwright, expect
from sqlalchemy import select

from exam_client.headless import HeadlessCandidate
from proctor.store.db import Database
from proctor.store.tables import Alert, CandidateEvent, Evidence
from tests.e2e.conftest import chromium_args
from tests.mediatools import center_focus_absence
from tests.review_seed import STAFF, ensure_staff
from tests.serverproc import ServerProcess, seed, sqlite_data
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

SEGMENT_SECONDS = 5
FACE_SECONDS = 4.0
BLANK_SECONDS = 10.0


@pytest.fixture(scope="module")
def recorded(models_dir, media_dir, tmp_path_factory):
    """A server whose candidate 1 streamed both views and got an `absent` alert."""
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-recording")
    seeded = asyncio.run(seed(url, data_dir, rules={"absent_seconds": 3.0}))

    async def staff() -> None:
        db = Database(url)
        try:
            async with db.transaction() as s:
                await ensure_staff(s, {"reviewer": STAFF["reviewer"]})
        finally:
            await db.dispose()

    asyncio.run(staff())
    clip = center_focus_absence(
        media_dir,
        tmp_path_factory.mktemp("e2e-rec-media") / "absence.webm",
        FACE_SECONDS,
        BLANK_SECONDS,
        (320, 240),
    )
    env = {"PROCTOR_RECORDING_SEGMENT_SECONDS": str(SEGMENT_SECONDS)}
    proc = ServerProcess(url, data_dir, models_dir, env_extra=env).start()
    proc.seeded = seeded
    try:
        asyncio.run(_stream(proc, url, clip.path))
        yield proc
    finally:
        proc.stop()


async def _stream(server, url: str, path) -> None:
    cand_id, _, id_number = server.seeded.candidates[0]
    async with HeadlessCandidate(server.url, server.seeded.password, id_number) as cand:
        await cand.login()
        await cand.start_view("first", path, loop=False)
        await cand.start_view("second", path, loop=False)
        await asyncio.wait_for(cand.media_ended(), FACE_SECONDS + BLANK_SECONDS + 40)
    db = Database(url)

    async def done() -> bool | None:
        async with db.session() as s:
            gone = await s.scalars(
                select(CandidateEvent).where(
                    CandidateEvent.candidate_id == cand_id,
                    CandidateEvent.kind.in_(("media_lost", "media_ended")),
                )
            )
            alert = await s.scalar(select(Alert).where(Alert.candidate_id == cand_id))
            views = {e.data.get("view") for e in gone}
            return True if views >= {"first", "second"} and alert is not None else None

    try:
        await eventually(done, 30, "the views' end and the absent alert recorded")
    finally:
        await db.dispose()


async def _facts(url: str, cand_id: int) -> tuple[Alert, list[Evidence]]:
    db = Database(url)
    try:
        async with db.session() as s:
            alert = await s.scalar(
                select(Alert).where(Alert.candidate_id == cand_id, Alert.type == "absent")
            )
            segs = list(
                await s.scalars(
                    select(Evidence)
                    .where(Evidence.candidate_id == cand_id, Evidence.kind == "recording")
                    .order_by(Evidence.captured_at)
                )
            )
            return alert, segs
    finally:
        await db.dispose()


async def _video(page, view: str) -> dict:
    return await page.locator(f"#rec-{view}").evaluate(
        "v => ({id: v.dataset.evidenceId || null, t: v.currentTime, ready: v.readyState,"
        " paused: v.paused, w: v.videoWidth, err: v.error ? v.error.code : null})"
    )


async def test_review_page_plays_the_recording_and_seeks_to_an_alert(
    recorded, chromium_path
) -> None:
    cand_id = recorded.seeded.candidates[0][0]
    alert, segs = await _facts(recorded.database_url, cand_id)
    assert alert is not None and segs
    holding = {
        s.view: s for s in segs if s.captured_at <= alert.started_at < (s.ended_at or s.captured_at)
    }
    assert "first" in holding, "the alert's moment is recorded in the first view"
    want = holding["first"]
    offset = (alert.started_at - want.captured_at).total_seconds()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            ctx = await browser.new_context(base_url=recorded.url)
            page = await ctx.new_page()
            await page.goto("/console/review.html")
            await page.fill("#review-username", STAFF["reviewer"][0])
            await page.fill("#review-password", STAFF["reviewer"][1])
            await page.click("#review-login-submit")
            row = page.locator(f'#queue tr.queue-row[data-candidate-id="{cand_id}"]')
            await row.click(timeout=15_000)
            await expect(page.locator("#recording")).to_be_visible(timeout=10_000)
            assert await page.locator("#rec-covered .rec-span").count() == len(segs)
            # a click on the alert on the timeline: both views at that moment
            mark = page.locator('#timeline-axis .lane[data-lane="alert"] .mark').first
            await mark.click()

            async def at_alert() -> dict | None:
                v = await _video(page, "first")
                ok = v["id"] == str(want.id) and v["ready"] >= 1 and abs(v["t"] - offset) < 1.0
                return v if ok else None

            await eventually(at_alert, 15, "the first view at the alert's moment")
            position = await page.locator("#recording").get_attribute("data-position")
            shown = datetime.fromisoformat(position.replace("Z", "+00:00"))
            assert abs((shown - alert.started_at).total_seconds()) < 0.5
            if "second" in holding:
                second = await _video(page, "second")
                assert second["id"] == str(holding["second"].id)
            # Play: the segment plays (decoded picture, time moving)
            start_t = (await _video(page, "first"))["t"]
            await page.click("#rec-play")

            async def playing() -> dict | None:
                v = await _video(page, "first")
                ok = v["err"] is None and v["w"] > 0 and v["t"] > start_t + 1.0
                return v if ok else None

            v = await eventually(playing, 20, "the first view playing")
            assert v["w"] == 320
            await page.click("#rec-play")  # pause
        finally:
            await browser.close()
