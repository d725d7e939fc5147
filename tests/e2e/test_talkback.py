"""Issue 23, gap 6 — talking back — in real headless Chromium against a real server: the
candidate page (in the waiting room, camera streaming) and the invigilator's console.

- The candidate raises a hand (举手求助) with a short message; it reaches the console's
  "Needs you" panel live with the text; the invigilator replies (the reply reaches the
  candidate as a warning) and it is marked handled, with the times in the candidate's
  console timeline, the review and the exam-room record.
- Warnings stay on the candidate's screen, after a reload too, until the candidate presses
  "我已知晓 I understand"; the console shows each one as acknowledged, with the time.
- Notes on a candidate (author, time) in the panel; the room's handover note shown to an
  invigilator who opens the room afterwards.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import chromium_args
from tests.e2e.test_roles_dead_ends import _console, _login, _pledge, _staff_http, cameras
from tests.flowkit import INVIGILATOR, REVIEWER, seed_exam
from tests.serverproc import served, sqlite_data

pytestmark = pytest.mark.e2e

__all__ = ["cameras"]  # the fixture, shared with the dead-ends test


@pytest.fixture(scope="module")
def talk_server(models_dir, media_dir, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-talkback")
    sitting = asyncio.run(
        seed_exam(
            url,
            data_dir,
            kind="formal",
            starts_in=timedelta(minutes=20),  # the candidate waits in the waiting room
            flow={"require_phone": False},
            photos=[media_dir / "images" / "obama.jpg"] * 2,
            candidates=2,
        )
    )
    yield from served(url, data_dir, models_dir, sitting=sitting)


async def test_raise_hand_and_acknowledge_warnings(talk_server, cameras, chromium_path, tmp_path):
    s = talk_server.sitting
    cand = s.candidates[0]
    message = "摄像头画面很暗，怎么办？ My camera picture is dark"
    reply = "请打开台灯 Please switch on the desk lamp"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, args=chromium_args(cameras["obama2"])
        )
        try:
            console = await _console(browser, talk_server.url, s.id)
            tile = console.locator(f'.tile[data-candidate-id="{cand.id}"]')
            await expect(tile).to_be_visible(timeout=15_000)

            page = await (
                await browser.new_context(
                    base_url=talk_server.url, viewport={"width": 1366, "height": 768}
                )
            ).new_page()
            await _login(page, s.password, cand.id_number)
            await page.click("#confirm-info")
            await _pledge(page)
            await page.click("#capture-photo")
            await expect(page.locator("#flow")).to_have_attribute(
                "data-step", "waiting", timeout=90_000
            )

            # -- raise a hand from the waiting room; the length is bounded on the page
            await page.click("#help-button")
            await expect(page.locator("#help-dialog")).to_be_visible()
            assert await page.locator("#help-text").get_attribute("maxlength") == "200"
            await page.fill("#help-text", message)
            await expect(page.locator("#help-count")).to_have_text(f"{len(message)}/200")
            await page.click("#help-send")
            await expect(page.locator("#help-dialog")).to_be_hidden(timeout=10_000)
            status = page.locator("#help-status")
            await expect(status).to_have_attribute("data-state", "open")
            await expect(status).to_contain_text("监考老师已收到")
            # a second one while the first is open is refused, in both languages
            await page.click("#help-button")
            await page.fill("#help-text", "again")
            await page.click("#help-send")
            await expect(page.locator("#help-error")).to_contain_text("你已经举手求助")
            await expect(page.locator("#help-error")).to_contain_text("Your hand is raised")
            await page.click("#help-cancel")

            # -- the console: live in "Needs you", with the text
            item = console.locator(
                f'#request-list li.request[data-kind="help_request"][data-candidate-id="{cand.id}"]'
            )
            await expect(item).to_be_visible(timeout=15_000)
            await expect(item.locator(".request-text")).to_have_text(message)
            await expect(console.locator("#request-count")).to_have_text("1")
            await console.screenshot(path=str(tmp_path / "console-raised-hand.png"))
            await item.locator(".request-note").fill(reply)
            await item.locator(".request-reply-button").click()
            await expect(item).to_have_count(0, timeout=10_000)

            # -- the candidate: answered, and the reply is a warning kept until acknowledged
            await expect(status).to_have_attribute("data-state", "answered", timeout=15_000)
            warning = page.locator("#warning-list li.warning")
            await expect(warning).to_have_count(1, timeout=15_000)
            await expect(warning.locator(".warning-text")).to_have_text(reply)
            await expect(page.locator(".danmaku").first).to_be_attached(timeout=5_000)

            # a warning from the panel; neither is acknowledged by being shown
            await tile.locator(".open-button").click()
            panel = console.locator("#candidate-panel")
            warn = "请保持面部在画面中 Keep your face in the picture"
            await panel.locator("#panel-danmaku-input").fill(warn)
            await panel.locator("#panel-danmaku-send").click()
            await expect(warning).to_have_count(2, timeout=15_000)
            states = panel.locator("#panel-danmaku-list .danmaku-state")
            await expect(states).to_have_count(2, timeout=10_000)
            await expect(panel.locator('#panel-danmaku-list li[data-state="seen"]')).to_have_count(
                2, timeout=15_000
            )
            await expect(
                panel.locator('#panel-danmaku-list li[data-state="acknowledged"]')
            ).to_have_count(0)

            # after a reload both are still on the candidate's screen
            await page.reload()
            await expect(page.locator("#flow")).to_have_attribute(
                "data-step", "waiting", timeout=30_000
            )
            await expect(warning).to_have_count(2, timeout=15_000)
            await expect(page.locator("#warnings")).to_be_visible()
            await expect(status).to_have_attribute("data-state", "answered", timeout=15_000)
            await page.screenshot(path=str(tmp_path / "candidate-warnings.png"))
            # "我已知晓 I understand", one at a time
            first = warning.filter(has_text=warn)
            await expect(first.locator("button.warning-ack")).to_contain_text("我已知晓")
            await first.locator("button.warning-ack").click()
            await expect(warning).to_have_count(1, timeout=10_000)
            acked = panel.locator('#panel-danmaku-list li[data-state="acknowledged"]')
            await expect(acked).to_have_count(1, timeout=15_000)
            await expect(acked).to_contain_text(warn)
            await expect(acked.locator(".danmaku-state")).to_contain_text("已知晓")
            await warning.locator("button.warning-ack").click()
            await expect(page.locator("#warnings")).to_be_hidden(timeout=10_000)
            await expect(acked).to_have_count(2, timeout=15_000)
            await page.reload()
            await expect(page.locator("#flow")).to_have_attribute(
                "data-step", "waiting", timeout=30_000
            )
            await expect(page.locator("#ws-status")).to_have_attribute(
                "data-state", "open", timeout=15_000
            )
            await expect(page.locator("#warnings")).to_be_hidden()

            # the console timeline: the hand, its answer, the warnings acknowledged
            timeline = panel.locator("#timeline")
            raised = timeline.locator('li[data-event-kind="help_request"]')
            await expect(raised).to_contain_text(message, timeout=10_000)
            answered = timeline.locator('li[data-event-kind="help_request_resolved"]')
            await expect(answered).to_contain_text(reply)
            await expect(answered).to_contain_text(INVIGILATOR[0])
            await console.screenshot(path=str(tmp_path / "console-talkback-timeline.png"))
        finally:
            await browser.close()

    inv = await _staff_http(talk_server.url, INVIGILATOR)
    rev = await _staff_http(talk_server.url, REVIEWER)
    try:
        record = (await inv.get(f"/api/console/sittings/{s.id}/record")).json()
        (hand,) = [i for i in record["log"] if i["kind"] == "help_request"]
        assert message in hand["reason"] and reply in hand["reason"]
        assert hand["data"]["resolved_at"] and hand["data"]["replied"] is True
        warnings = [i for i in record["log"] if i["kind"] == "danmaku"]
        assert len(warnings) == 2 and all(w["data"]["acknowledged_at"] for w in warnings)
        timeline = (await rev.get(f"/api/review/candidates/{cand.id}/timeline")).json()
        types = [i["type"] for i in timeline["items"]]
        assert "help_request" in types and "help_request_resolved" in types
        assert all(i["acknowledged_at"] for i in timeline["items"] if i["type"] == "danmaku")
    finally:
        await inv.aclose()
        await rev.aclose()


async def test_notes_and_the_rooms_handover(talk_server, chromium_path, tmp_path):
    s = talk_server.sitting
    cand = s.candidates[1]
    note = "戴眼镜，已人工核对 Wears glasses, checked by hand"
    handover = "2号考生网络不稳，已延时 Candidate 2's network is flaky; time given back"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            console = await _console(browser, talk_server.url, s.id)
            tile = console.locator(f'.tile[data-candidate-id="{cand.id}"]')
            await expect(tile).to_be_visible(timeout=15_000)

            # -- notes on the candidate: several, with the author and the time
            await tile.locator(".open-button").click()
            panel = console.locator("#candidate-panel")
            await panel.locator("#note-add").click()
            await expect(panel.locator("#note-error")).to_be_visible(timeout=10_000)
            await panel.locator("#note-input").fill(note)
            await panel.locator("#note-add").click()
            notes = panel.locator("#note-list li.note-item")
            await expect(notes).to_have_count(1, timeout=10_000)
            await panel.locator("#note-input").fill("第二条 a second note")
            await panel.locator("#note-add").click()
            await expect(notes).to_have_count(2, timeout=10_000)
            await expect(notes.first).to_contain_text(note)
            await expect(notes.first.locator(".note-author")).to_have_text(INVIGILATOR[0])
            await expect(notes.first.locator("time")).not_to_have_text("")
            await expect(
                panel.locator('#timeline li[data-action-kind="note"]').filter(has_text=note)
            ).to_have_count(1, timeout=10_000)
            # after closing and opening again
            await panel.locator("#panel-close").click()
            await tile.locator(".open-button").click()
            await expect(notes).to_have_count(2, timeout=10_000)
            await panel.locator("#panel-close").click()

            # -- the handover note, then another console opens the room
            box = console.locator("#handover-panel")
            await expect(box).to_be_visible(timeout=10_000)
            await console.fill("#handover-input", handover)
            await console.click("#handover-add")
            await expect(box.locator("li.handover-item .handover-text")).to_have_text(
                handover, timeout=10_000
            )
            relief = await _console(browser, talk_server.url, s.id)
            shown = relief.locator("#handover-panel li.handover-item")
            await expect(shown).to_have_count(1, timeout=15_000)
            await expect(shown.locator(".handover-text")).to_have_text(handover)
            await expect(shown).to_contain_text(INVIGILATOR[0])
            await relief.screenshot(path=str(tmp_path / "console-handover.png"))
        finally:
            await browser.close()

    rev = await _staff_http(talk_server.url, REVIEWER)
    try:
        timeline = (await rev.get(f"/api/review/candidates/{cand.id}/timeline")).json()
        assert [i["reason"] for i in timeline["items"] if i["type"] == "note"] == [
            note,
            "第二条 a second note",
        ]
    finally:
        await rev.aclose()
