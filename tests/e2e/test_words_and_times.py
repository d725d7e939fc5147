"""Issue 23 gap 9 in real headless Chromium: every role's pages show words, not the
server's codes (``formal``, ``device_check``, ``submitted``, ``media_lost``, Pydantic's
validation strings, ``Steps {}``), and times in the sitting's time zone with the offset.

One formal sitting; a candidate walks it (photo check, phone, answering, hand-in) while
the invigilator's console, the exam-room record, the administrator's page and the
reviewer's page are read; the visible text of each page is checked for known raw codes
and any snake_case word."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import chromium_args, console_login
from tests.flowkit import ADMIN, INVIGILATOR, REVIEWER, seed_exam, still_y4m
from tests.serverproc import served, sqlite_data

pytestmark = pytest.mark.e2e

#: what a page shows when it prints a code or a value it did not format
RAW = [
    (re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b"), "a snake_case code"),
    (
        re.compile(r"(?<![A-Za-z])(formal|trial|submitted|refused|terminated)(?![A-Za-z])"),
        "a step or kind code",
    ),
    (re.compile(r"Steps[^\n]*\{"), "raw steps"),
    (re.compile(r"\{\}|\[object Object\]|\bundefined\b|\bNaN\b"), "an unformatted value"),
    (
        re.compile(r"Field required|should have at least|Input should be|value_error"),
        "a validation string",
    ),
]

#: the visible text of the page: text nodes shown on screen, outside form fields and the
#: rules table (whose rows are the rule names `proctor sitting --rule` takes, on purpose)
VISIBLE_TEXT = """() => {
  const skip = "textarea, input, select, option, script, style, pre, code, #rules";
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    if (!el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") continue;
    const text = n.textContent.trim();
    if (text) out.push(text);
  }
  return out.join("\\n");
}"""


async def assert_words(page, where: str, allowed: tuple[str, ...] = ()) -> str:
    text = await page.evaluate(VISIBLE_TEXT)
    checked = text
    for ok in allowed:
        checked = checked.replace(ok, "")
    found = [
        (what, m.group(0), checked[max(0, m.start() - 40) : m.end() + 40])
        for pattern, what in RAW
        for m in pattern.finditer(checked)
    ]
    assert not found, f"{where}: raw codes shown: {found}"
    return text


@pytest.fixture(scope="module")
def words_server(models_dir, media_dir, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-words")
    photos = [media_dir / "images" / "obama.jpg"] * 2
    sitting = asyncio.run(
        seed_exam(
            url,
            data_dir,
            kind="formal",
            starts_in=timedelta(minutes=-1),
            flow={"earliest_submit_minutes": 0},
            photos=photos,
            candidates=2,
        )
    )
    yield from served(url, data_dir, models_dir, sitting=sitting)


async def test_every_role_sees_words_and_the_sittings_time(
    words_server, media_dir, chromium_path, tmp_path
):
    s = words_server.sitting
    cand = s.candidates[0]
    name = "formal sitting"  # the sitting's name (tests.flowkit), not a code
    camera = still_y4m(media_dir / "images" / "obama2.jpg", tmp_path / "obama2.y4m")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, args=chromium_args(camera)
        )
        try:
            # the browser runs in UTC: the pages must still show Beijing time (UTC+8)
            ctx = await browser.new_context(base_url=words_server.url, timezone_id="UTC")
            page = await ctx.new_page()
            await page.goto("/exam/")
            await assert_words(page, "candidate login")
            await page.fill("#sitting-password", s.password)
            await page.fill("#id-number", cand.id_number)
            await page.click("#login-button")
            await page.wait_for_url("**/exam/exam.html")
            flow = page.locator("#flow")
            await expect(flow).to_have_attribute("data-step", "confirm", timeout=10_000)
            text = await assert_words(page, "candidate confirm", (name,))
            assert "GMT+8" in text, text  # the sitting's times with their offset
            await page.click("#confirm-info")
            await page.check("#pledge-read")
            await page.click("#pledge-accept")
            await expect(flow).to_have_attribute("data-step", "identity")
            await assert_words(page, "candidate identity", (name,))
            await expect(page.locator("#stream-status")).to_have_attribute(
                "data-state", "streaming", timeout=30_000
            )
            await page.click("#capture-photo")
            await expect(flow).to_have_attribute("data-step", "phone", timeout=90_000)
            await assert_words(page, "candidate phone step", (name,))
            phone = await (
                await browser.new_context(viewport={"width": 390, "height": 844}, timezone_id="UTC")
            ).new_page()
            await phone.goto(await page.locator("#phone-link").get_attribute("href"))
            status = phone.locator("#phone-stream-status")
            await expect(status).to_have_attribute("data-state", "streaming", timeout=30_000)
            await assert_words(phone, "phone streaming", (name,))
            await expect(flow).to_have_attribute("data-step", "answering", timeout=60_000)
            await expect(page.locator("#paper article.question").first).to_be_visible(
                timeout=10_000
            )
            await assert_words(page, "candidate answering", (name,))

            # the invigilator's console while the candidate answers
            console = await (
                await browser.new_context(base_url=words_server.url, timezone_id="UTC")
            ).new_page()
            await console_login(console, INVIGILATOR, "**/console/room.html**")
            await console.goto(f"/console/room.html?sitting={s.id}")
            tile = console.locator(f'.tile[data-candidate-id="{cand.id}"]')
            await expect(tile).to_have_attribute("data-connected", "true", timeout=30_000)
            await assert_words(console, "console, answering", (name,))

            # hand in
            await page.click("#submit-button")
            await page.click("#submit-yes")
            await expect(flow).to_have_attribute("data-step", "submitted", timeout=10_000)
            await assert_words(page, "candidate handed in", (name,))
            await expect(status).to_have_attribute("data-state", "finished", timeout=30_000)
            await assert_words(phone, "phone finished", (name,))
            await expect(tile.locator('.conn[data-view="first"]')).to_have_attribute(
                "data-ended", "true", timeout=30_000
            )
            await assert_words(console, "console, handed in", (name,))

            # the exam-room record
            record = await console.context.new_page()
            await record.goto(f"/console/record.html?sitting={s.id}")
            await expect(record.locator("#record-place")).to_contain_text(name, timeout=15_000)
            text = await assert_words(record, "exam-room record", (name,))
            assert "Asia/Shanghai (UTC+08:00)" in text and "GMT+8" in text, text

            # the administrator's page: sittings, candidates' steps, results
            admin = await (
                await browser.new_context(base_url=words_server.url, timezone_id="UTC")
            ).new_page()
            await admin.goto("/console/admin.html")
            await admin.fill("#admin-username", ADMIN[0])
            await admin.fill("#admin-password", ADMIN[1])
            await admin.click("#admin-login-form button[type=submit]")
            await expect(admin.locator("#admin-main")).to_be_visible(timeout=10_000)
            row = admin.locator(f'#sittings tr[data-sitting-id="{s.id}"]')
            await expect(row).to_contain_text("Formal exam 正式考试")
            await expect(row).to_contain_text("GMT+8")
            await row.locator("button").first.click()
            await expect(admin.locator("#sitting-panel")).to_be_visible()
            await expect(admin.locator("#candidates tbody tr")).to_have_count(2, timeout=15_000)
            await expect(admin.locator("#sitting-info")).to_contain_text("Handed in 已交卷 1")
            await expect(admin.locator("#results tbody tr")).to_have_count(2, timeout=15_000)
            await assert_words(admin, "administrator", (name,))

            # the reviewer: queue and the candidate's timeline
            review = await (
                await browser.new_context(base_url=words_server.url, timezone_id="UTC")
            ).new_page()
            await review.goto("/console/review.html")
            await review.fill("#review-username", REVIEWER[0])
            await review.fill("#review-password", REVIEWER[1])
            await review.click("#review-login-submit")
            rows = review.locator("#queue tbody tr.queue-row")
            await expect(rows).to_have_count(2, timeout=10_000)
            await assert_words(review, "review queue", (name,))
            await review.locator(f'#queue tr.queue-row[data-candidate-id="{cand.id}"]').click()
            await expect(review.locator("#timeline-list li.tl-item").first).to_be_visible(
                timeout=10_000
            )
            text = await assert_words(review, "review timeline", (name,))
            assert "Handed in 交卷" in text
        finally:
            await browser.close()
