"""The candidate page's gaps (issue 23, item 8) in real headless Chromium against a real
server, at the issue's sizes (candidate 1366×768, phone 390×844): the face-position guide
on the photo check, the phone keeping its screen on (Screen Wake Lock), the exam rules
(考生须知) in the waiting room, the timer, save state, navigator, hand-in and the message
panel in view while the paper scrolls, questions flagged for review (navigator, "N
flagged" before the hand-in, kept over a reload); and a device check with a live
microphone meter, plain units, that ends as "check passed" (设备检测通过), not as an exam.

With ``PROCTOR_SCREENSHOTS_DIR`` set the candidate page's screenshots go there
(``docs/screenshots``: candidate-answering.png, candidate-waiting.png, phone.png)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e.conftest import candidate_login, chromium_args
from tests.e2e.test_console_room import screenshots_dir
from tests.e2e.test_flow_chromium import _details_and_pledge
from tests.flowkit import seed_exam, still_y4m
from tests.serverproc import served, sqlite_data
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

CANDIDATE = {"width": 1366, "height": 768}
# the wake locks the phone page takes, kept where the test can release one as the browser
# does when the page is hidden
KEEP_SENTINELS = """
window.__wakeSentinels = [];
if (window.WakeLock) {
  const request = WakeLock.prototype.request;
  WakeLock.prototype.request = async function (type) {
    const sentinel = await request.call(this, type);
    window.__wakeSentinels.push(sentinel);
    return sentinel;
  };
}
"""
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def page_server(models_dir, media_dir, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-candidate-page")
    photos = [media_dir / "images" / "obama.jpg"]
    formal = asyncio.run(
        seed_exam(
            url,
            data_dir,
            kind="formal",
            starts_in=timedelta(seconds=120),
            flow={"earliest_submit_minutes": 0.5},
            photos=photos,
        )
    )
    device = asyncio.run(
        seed_exam(
            url, data_dir, kind="device_check", starts_in=timedelta(minutes=-1), photos=photos
        )
    )
    yield from served(url, data_dir, models_dir, formal=formal, device=device)


@pytest.fixture(scope="module")
def camera(media_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("camera")
    return still_y4m(media_dir / "images" / "obama2.jpg", out / "obama2.y4m")


async def box(page: Page, selector: str) -> dict:
    found = await page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not shown"
    return found


async def in_view(page: Page, selector: str, height: int = CANDIDATE["height"]) -> None:
    b = await box(page, selector)
    assert b["y"] >= 0 and b["y"] + b["height"] <= height, (selector, b)


async def photo_and_phone(page: Page, browser, shots: Path):
    """The photo check (with its face guide) and the phone page at 390×844; returns the
    phone's page."""
    await expect(page.locator("#stream-status")).to_have_attribute(
        "data-state", "streaming", timeout=30_000
    )
    guide = page.locator("#face-guide")
    await expect(guide).to_be_visible()
    g, v = await box(page, "#face-guide"), await box(page, "#self-view")
    # an upright oval in the middle of the camera picture
    assert v["x"] < g["x"] and g["x"] + g["width"] < v["x"] + v["width"]
    assert g["height"] > g["width"] and v["y"] <= g["y"] < v["y"] + v["height"] / 3
    await page.screenshot(path=str(shots / "candidate-photo.png"))
    await page.click("#capture-photo")
    await expect(page.locator("#identity-result")).to_have_attribute(
        "data-result", "passed", timeout=90_000
    )
    await expect(page.locator("#flow")).to_have_attribute("data-step", "phone", timeout=10_000)
    await expect(guide).to_be_hidden()  # only on the photo check
    await expect(page.locator("#phone-qr svg")).to_be_visible(timeout=10_000)
    phone_url = await page.locator("#phone-link").get_attribute("href")
    phone_ctx = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    await phone_ctx.add_init_script(KEEP_SENTINELS)
    phone = await phone_ctx.new_page()
    await phone.goto(phone_url)
    await expect(phone.locator("#phone-stream-status")).to_have_attribute(
        "data-state", "streaming", timeout=30_000
    )
    return phone


async def test_exam_page_in_view_flags_rules_and_wake_lock(
    page_server, camera, chromium_path, tmp_path
):
    s = page_server.formal
    shots = screenshots_dir(tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, args=chromium_args(camera)
        )
        try:
            ctx = await browser.new_context(
                base_url=page_server.url, viewport=CANDIDATE, locale="zh-CN"
            )
            page = await ctx.new_page()
            await candidate_login(page, s.password, s.candidates[0].id_number)
            await _details_and_pledge(page)
            phone = await photo_and_phone(page, browser, shots)

            # -- the phone keeps its screen on, and takes the lock again when back in view
            wake = phone.locator("#phone-wake")
            await expect(wake).to_have_attribute("data-state", "on", timeout=10_000)
            await expect(wake).to_have_attribute("data-acquired", "1")
            await expect(wake).to_contain_text("屏幕常亮")
            await phone.screenshot(path=str(shots / "phone.png"))
            # the browser lets the lock go when the page is hidden (headless Chromium never
            # hides a page: the lock the page holds is released as the browser would, then
            # the page is told it is visible again) and the page takes it again
            await phone.evaluate("window.__wakeSentinels.at(-1).release()")
            await expect(wake).to_have_attribute("data-state", "released", timeout=5_000)
            await phone.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
            await expect(wake).to_have_attribute("data-acquired", "2", timeout=10_000)
            await expect(wake).to_have_attribute("data-state", "on")
            assert await phone.evaluate("window.__wakeSentinels.length") == 2

            # -- the waiting room: the exam rules of this sitting -------------------------
            flow = page.locator("#flow")
            await expect(flow).to_have_attribute("data-step", "waiting", timeout=20_000)
            rules = page.locator("#exam-rules")
            await expect(rules).to_be_visible()
            await expect(rules.locator("h3")).to_contain_text("考生须知")
            await expect(rules.locator("li")).to_have_count(8)
            # the sitting's own figures: hand in after 0.5 minutes, entry closes after 30
            await expect(rules).to_contain_text("0.5 分钟后方可交卷")
            await expect(rules).to_contain_text("30 minutes after the start")
            await page.screenshot(path=str(shots / "candidate-waiting.png"))

            # -- answering: the head and the side stay in view while the paper scrolls -----
            await expect(flow).to_have_attribute("data-step", "answering", timeout=120_000)
            questions = page.locator("#paper article.question")
            await expect(questions).to_have_count(25, timeout=10_000)
            await questions.nth(0).locator("input").first.check()
            await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            await eventually(
                lambda: page.evaluate("window.scrollY > 1000 || null"), 5, "the page scrolled"
            )
            for selector in (
                "#time-left",
                "#save-status",
                "#submit-button",
                "#question-nav",
                ".side .messages",
            ):
                await in_view(page, selector)

            # -- flag two questions: navigator, count, kept over a reload ----------------
            for i in (2, 6):
                await questions.nth(i).locator(".flag-button").click()
            nav_flags = page.locator('#question-nav li[data-flagged="true"]')
            await expect(nav_flags).to_have_count(2)
            await expect(page.locator("#flag-count")).to_have_text("已标记 2 题 · 2 flagged")
            await expect(questions.nth(2).locator(".flag-button")).to_have_attribute(
                "aria-pressed", "true"
            )
            # the navigator takes a question to just below the head, not under it
            await page.locator("#question-nav li a").nth(20).click()
            target = await box(page, "#paper article.question >> nth=20")
            head = await box(page, "#answer-head")
            await eventually(
                lambda: page.evaluate(
                    "(() => { const q = document.querySelectorAll('#paper article.question')[20];"
                    " const h = document.getElementById('answer-head');"
                    " const t = q.getBoundingClientRect().top;"
                    " return t >= h.getBoundingClientRect().bottom - 1 && t < 400 || null; })()"
                ),
                5,
                "question 21 below the head",
            )
            assert target and head
            await page.screenshot(path=str(shots / "candidate-answering.png"))
            # an unflag, then a reload: the flags come back from the server
            await questions.nth(6).locator(".flag-button").click()
            await questions.nth(11).locator(".flag-button").click()
            await expect(nav_flags).to_have_count(2)
            # acknowledged by the server (a change still on its way would be sent again
            # from localStorage after the reload)
            await expect(page.locator("#question-nav li[data-flag-save]")).to_have_count(0)
            await page.reload()
            await expect(flow).to_have_attribute("data-step", "answering")
            await expect(questions).to_have_count(25, timeout=10_000)
            await expect(nav_flags).to_have_count(2)
            flagged = [await nav_flags.nth(i).locator("a").text_content() for i in range(2)]
            assert flagged == ["3", "12"]

            # -- the hand-in names what is flagged ---------------------------------------
            await page.click("#submit-button")
            if await page.locator("#submit-confirm").is_hidden():
                await expect(page.locator("#submit-hint")).to_have_text("", timeout=40_000)
                await page.click("#submit-button")
            confirm = page.locator("#submit-confirm-text")
            await expect(confirm).to_have_attribute("data-flagged", "2")
            await expect(confirm).to_contain_text("2 题已标记待检查")
            await expect(confirm).to_contain_text("2 flagged for review")
            await in_view(page, "#submit-yes")
            await page.click("#submit-yes")
            await expect(flow).to_have_attribute("data-step", "submitted", timeout=10_000)
            # the exam is over: the phone lets its screen go
            await expect(phone.locator("#phone-stream-status")).to_have_attribute(
                "data-state", "finished", timeout=30_000
            )
            await expect(wake).to_be_hidden()
        finally:
            await browser.close()


async def test_phone_without_wake_lock_says_what_to_do(page_server, chromium_path):
    """A browser without the Screen Wake Lock: the phone page says at once (before it is
    paired) to set auto-lock to Never."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            ctx = await browser.new_context(
                base_url=page_server.url, viewport=PHONE, is_mobile=True, has_touch=True
            )
            await ctx.add_init_script(
                "Object.defineProperty(Navigator.prototype, 'wakeLock', {get: () => undefined});"
            )
            page = await ctx.new_page()
            await page.goto("/exam/phone.html")
            wake = page.locator("#phone-wake")
            await expect(wake).to_have_attribute("data-state", "unsupported", timeout=10_000)
            await expect(wake).to_be_visible()
            await expect(wake).to_contain_text("自动锁屏")
            await expect(wake).to_contain_text("set auto-lock to Never")
        finally:
            await browser.close()


async def test_device_check_meter_units_and_passed(page_server, camera, chromium_path, tmp_path):
    s = page_server.device
    shots = screenshots_dir(tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, args=chromium_args(camera)
        )
        try:
            ctx = await browser.new_context(
                base_url=page_server.url, viewport=CANDIDATE, locale="zh-CN"
            )
            page = await ctx.new_page()
            await candidate_login(page, s.password, s.candidates[0].id_number)
            await _details_and_pledge(page)
            phone = await photo_and_phone(page, browser, tmp_path)
            flow = page.locator("#flow")
            await expect(flow).to_have_attribute("data-step", "device_check", timeout=30_000)
            # the live meter moves with the (fake) microphone's sound before the check runs
            meter = page.locator("#mic-meter")
            await eventually(
                lambda: page.evaluate(
                    "Number(document.getElementById('mic-meter').dataset.peak || 0) > 5 || null"
                ),
                15,
                "the microphone meter moving",
            )
            assert await meter.evaluate("m => m.value") >= 0
            # units said plainly: the requirement in MB/s and in Mbit/s
            await expect(page.locator("#min-upload")).to_have_text("2.00 MB/s (16 Mbit/s)")
            await expect(page.locator("#step-device_check .units")).to_contain_text("8 Mbit/s")
            await page.click("#device-run")
            await expect(flow).to_have_attribute("data-step", "finished", timeout=60_000)
            title = page.locator("#finished-title")
            await expect(title).to_have_attribute("data-passed", "true")
            await expect(title).to_contain_text("设备检测通过")
            await expect(title).to_contain_text("Device check passed")
            status = page.locator("#stream-status")
            await expect(status).to_have_attribute("data-state", "checked")
            await expect(status).to_contain_text("设备检测已结束")
            assert "考试已结束" not in (await page.locator("body").inner_text())
            # the still test camera may have brought the console's "frozen picture" hint up
            hint = page.locator("#console-hint")
            if await hint.is_visible():
                await hint.locator("button").click()
                await expect(hint).to_be_hidden()
            await page.screenshot(path=str(shots / "candidate-device-check.png"))
            # a reload says the same (the verdict comes from the server)
            await page.reload()
            await expect(title).to_have_attribute("data-passed", "true", timeout=10_000)
            await expect(phone.locator("#phone-stream-status")).to_have_attribute(
                "data-state", "finished", timeout=30_000
            )
        finally:
            await browser.close()
