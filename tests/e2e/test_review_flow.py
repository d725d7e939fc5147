"""The review after the exam, end to end in real headless Chromium against a real server:
a sitting whose alerts came from real photos through the real detectors and rules. An
invigilator is turned away; a reviewer finds the riskiest candidate first, sees how the
score was made, plays the alert clip on the timeline, confirms one alert and dismisses
another, records a violation resting on the confirmed alert, sees the dismissed rate, edits
the exam-room record; a chief examiner locks it; the evidence pack downloads with files
matching their sha256."""

from __future__ import annotations

import asyncio
import hashlib
import json
import zipfile

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import chromium_args
from tests.review_seed import seed_review
from tests.serverproc import served, sqlite_data

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def review_server(models_dir, media_dir, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-review")
    seeded = asyncio.run(seed_review(url, data_dir, models_dir, media_dir))
    yield from served(url, data_dir, models_dir, seeded=seeded)


async def login(page, username: str, password: str) -> None:
    await page.goto("/console/review.html")
    await expect(page.locator("#login-view")).to_be_visible()
    await page.fill("#review-username", username)
    await page.fill("#review-password", password)
    await page.click("#review-login-submit")


async def test_review_flow_in_chromium(review_server, chromium_path, tmp_path):
    seed = review_server.seeded
    risky, calm = seed.candidates["risky"], seed.candidates["calm"]
    two_people = next(i for i, t, _ in seed.alerts["risky"] if t == "multiple_persons")
    phone = next(i for i, t, _ in seed.alerts["risky"] if t == "device")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            # -- an invigilator may not review ----------------------------------------
            ctx = await browser.new_context(base_url=review_server.url)
            page = await ctx.new_page()
            await login(page, *seed.staff["invigilator"])
            await expect(page.locator("#page-error")).to_have_attribute(
                "data-code", "reviewers_only", timeout=10_000
            )
            await expect(page.locator("#page-error")).to_contain_text("reviewer")
            await expect(page.locator("#review-view")).to_be_hidden()
            await ctx.close()

            # -- the reviewer: queue ordered by risk ----------------------------------
            ctx = await browser.new_context(base_url=review_server.url, accept_downloads=True)
            page = await ctx.new_page()
            await login(page, *seed.staff["reviewer"])
            rows = page.locator("#queue tbody tr.queue-row")
            await expect(rows).to_have_count(3, timeout=10_000)
            ids = [
                int(x) for x in await rows.evaluate_all("rs => rs.map(r => r.dataset.candidateId)")
            ]
            assert ids[:2] == [risky, calm]
            scores = [
                float(x) for x in await rows.evaluate_all("rs => rs.map(r => r.dataset.score)")
            ]
            assert scores == sorted(scores, reverse=True) and scores[0] > 0

            # -- the riskiest candidate: breakdown, timeline, playable clip ----------
            await rows.first.click()
            detail = page.locator(f'#candidate-detail[data-candidate-id="{risky}"]')
            await expect(detail).to_be_visible()
            await page.locator("#risk-breakdown summary").click()
            breakdown = page.locator("#risk-breakdown tbody tr")
            await expect(breakdown).to_have_count(2)
            await expect(
                page.locator(f'#risk-breakdown tr[data-alert-id="{two_people}"]')
            ).to_contain_text("both")
            items = page.locator("#timeline-list li.tl-item")
            for kind, type_ in [
                ("alert", "multiple_persons"),
                ("alert", "device"),
                ("evidence", "alert_screenshot"),
                ("evidence", "alert_clip"),
                ("evidence", "snapshot"),
                ("staff_action", "danmaku"),
                ("event", "media_connected"),
            ]:
                await expect(
                    page.locator(
                        f'#timeline-list li[data-kind="{kind}"][data-type="{type_}"]'
                    ).first
                ).to_be_visible()
            for lane in ("alert", "evidence", "staff_action", "event"):
                assert (
                    await page.locator(f'#timeline-axis .lane[data-lane="{lane}"] .mark').count()
                    > 0
                )
            assert await items.count() >= 9
            # the snooze names the alert type; the device alert raised under it is marked
            await expect(
                page.locator('#timeline-list li[data-type="alerts_snoozed"] .tl-what')
            ).to_contain_text("电子设备")
            await expect(
                page.locator('#timeline-list li[data-type="device"][data-snoozed="true"]').first
            ).to_contain_text("静音期间")
            assert (
                await page.locator(
                    '#timeline-list li[data-type="multiple_persons"][data-snoozed="true"]'
                ).count()
                == 0
            )
            card = page.locator(f'.alert-card[data-alert-id="{two_people}"]')
            await expect(card.locator("img.evidence-img")).to_be_visible()
            clip = card.locator("video.evidence-video")
            await expect(clip).to_be_visible()
            playable = await clip.evaluate(
                """v => new Promise((resolve) => {
                    const done = () => resolve({ready: v.readyState, duration: v.duration,
                                                width: v.videoWidth});
                    if (v.readyState >= 1) return done();
                    v.addEventListener('loadedmetadata', done, {once: true});
                    v.addEventListener('error', () => resolve({error: v.error && v.error.code}),
                                       {once: true});
                    v.load();
                })"""
            )
            assert "error" not in playable, playable
            assert playable["width"] > 0 and playable["duration"] > 0
            # a screenshot really loaded (decoded by the browser)
            loaded = await card.locator("img.evidence-img").evaluate(
                "img => img.complete && img.naturalWidth > 0"
            )
            assert loaded

            # -- verdicts --------------------------------------------------------------
            await card.locator(".alert-note").fill("两人同框 a second person beside the candidate")
            await card.locator(".confirm-alert").click()
            await expect(card).to_have_attribute("data-decision", "confirmed")
            phone_card = page.locator(f'.alert-card[data-alert-id="{phone}"]')
            await phone_card.locator(".alert-note").fill("phone switched off on the shelf")
            await phone_card.locator(".dismiss-alert").click()
            await expect(phone_card).to_have_attribute("data-decision", "dismissed")
            await expect(
                page.locator('#dismissed-rates tr[data-type="device"] .rate')
            ).to_have_text("100%")
            await expect(
                page.locator('#dismissed-rates tr[data-type="multiple_persons"] .rate')
            ).to_have_text("0%")

            form = page.locator("#candidate-verdict-form")
            await form.locator('input[value="violation"]').check()
            await expect(page.locator("#category-field")).to_be_visible()
            # without a category the server refuses, and the page says why
            await page.fill("#verdict-note", "another person helped during the exam")
            await page.click("#verdict-submit")
            await expect(page.locator("#verdict-error")).to_have_attribute(
                "data-code", "category_required"
            )
            await form.locator('input[value="violation"]').check()
            await page.select_option("#verdict-category", "paper_voided")
            cited = page.locator(f'#cited-alerts input[value="{two_people}"]')
            await expect(cited).to_be_checked()
            await expect(page.locator(f'#cited-alerts input[value="{phone}"]')).to_have_count(0)
            await page.fill("#verdict-note", "another person helped during the exam")
            await page.click("#verdict-submit")
            row = page.locator(f'#queue tr.queue-row[data-candidate-id="{risky}"]')
            await expect(row).to_have_attribute("data-verdict", "violation")
            await expect(row.locator(".verdict")).to_contain_text("Paper voided")
            await expect(page.locator("#detail-verdict")).to_contain_text("Violation")
            await expect(
                page.locator('#verdict-history li[data-outcome="violation"]')
            ).to_have_count(1)

            # -- supervision and the exam-room record --------------------------------
            await expect(
                page.locator('#supervision tr[data-key="violations_caught"]')
            ).to_contain_text("5")
            await page.click('[data-record="room_record"]')
            panel = page.locator('#record-panel[data-kind="room_record"]')
            await expect(panel).to_be_visible()
            await expect(panel.locator('[data-field="violations"]')).to_contain_text("paper_voided")
            await expect(page.locator("#record-lock")).to_be_hidden()  # a reviewer does not lock
            await page.fill("#record-text-notes", "考场秩序良好 The room was orderly")
            await page.click("#record-save")
            await expect(page.locator("#record-state")).to_contain_text("Version 2")

            # -- the evidence pack -------------------------------------------------------
            async with page.expect_download() as info:
                await page.click("#evidence-pack")
            download = await info.value
            pack = tmp_path / "pack.zip"
            await download.save_as(pack)
            with zipfile.ZipFile(pack) as z:
                manifest = json.loads(z.read("manifest.json"))
                assert manifest["candidate"]["id"] == risky
                assert manifest["verdict"]["category"] == "paper_voided"
                for f in manifest["files"]:
                    assert hashlib.sha256(z.read(f["path"])).hexdigest() == f["recorded_sha256"]
            await page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
            await page.click("#logout-button")
            await expect(page.locator("#login-view")).to_be_visible()
            await ctx.close()

            # -- the chief examiner locks the record ---------------------------------
            ctx = await browser.new_context(base_url=review_server.url)
            page = await ctx.new_page()
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await login(page, *seed.staff["chief"])
            await expect(page.locator("#queue tbody tr.queue-row")).to_have_count(3, timeout=10_000)
            await page.click('[data-record="room_record"]')
            await expect(page.locator("#record-text-notes")).to_have_value(
                "考场秩序良好 The room was orderly"
            )
            await page.click("#record-lock")
            await expect(page.locator("#record-panel")).to_have_attribute("data-locked", "true")
            await expect(page.locator("#record-state")).to_contain_text("Locked")
            await expect(page.locator("#record-text-notes")).to_be_disabled()
            await expect(page.locator("#record-save")).to_be_hidden()
            await ctx.close()
        finally:
            await browser.close()
