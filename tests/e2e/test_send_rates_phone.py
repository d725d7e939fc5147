"""Issue 22 for the phone in real headless Chromium: the paired phone page sends its side
view at the analysis rate (the second view's, 1 fps) while nobody watches, at the full
rate (5 fps) while the console has the candidate open live, and back when closed — told
over /ws/phone, set with RTCRtpSender.setParameters."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import candidate_login, chromium_args, console_login
from tests.e2e.test_send_rates import PC_SPY, SERVER_ENV, video_fps
from tests.flowkit import INVIGILATOR, seed_exam, still_y4m
from tests.serverproc import served, sqlite_data

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def phone_server(models_dir, media_dir, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-phone-rates")
    exam = asyncio.run(
        seed_exam(
            url,
            data_dir,
            kind="formal",
            starts_in=timedelta(minutes=-1),
            photos=[media_dir / "images" / "obama.jpg"],
            candidates=1,
        )
    )
    yield from served(url, data_dir, models_dir, SERVER_ENV, exam=exam)


async def test_phone_at_the_analysis_rate_until_the_console_watches(
    phone_server, media_dir, chromium_path, tmp_path
):
    exam = phone_server.exam
    cand = exam.candidates[0]
    camera = still_y4m(media_dir / "images" / "obama2.jpg", tmp_path / "obama2.y4m")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, args=chromium_args(camera)
        )
        try:
            page = await (await browser.new_context(base_url=phone_server.url)).new_page()
            await candidate_login(page, exam.password, cand.id_number, timeout=60_000)
            await page.click("#confirm-info")
            await page.check("#pledge-read")
            await page.click("#pledge-accept")
            await expect(page.locator("#stream-status")).to_have_attribute(
                "data-state", "streaming", timeout=60_000
            )
            await page.click("#capture-photo")
            flow = page.locator("#flow")
            await expect(flow).to_have_attribute("data-step", "phone", timeout=90_000)
            await expect(page.locator("#phone-qr svg")).to_be_visible(timeout=30_000)
            link = await page.locator("#phone-link").get_attribute("href")

            phone_ctx = await browser.new_context(viewport={"width": 390, "height": 844})
            await phone_ctx.add_init_script(PC_SPY)
            phone = await phone_ctx.new_page()
            await phone.goto(link)
            await expect(phone.locator("#phone-stream-status")).to_have_attribute(
                "data-state", "streaming", timeout=60_000
            )
            # nobody watches: the side view at its analysis rate (1 fps), not 5
            await video_fps(phone, lambda f: f <= 2.0, "the phone at the analysis rate")

            con = await (await browser.new_context(base_url=phone_server.url)).new_page()
            await console_login(con, INVIGILATOR, "**/console/room.html**", timeout=60_000)
            await con.goto(f"/console/room.html?sitting={exam.id}")
            tile = con.locator(f'.tile[data-candidate-id="{cand.id}"]')
            await expect(tile.locator("img.thumb-second")).to_be_visible(timeout=60_000)
            await tile.locator(".open-button").click()
            await expect(con.locator("#live-second")).to_have_attribute(
                "data-state", "live", timeout=60_000
            )
            await video_fps(phone, lambda f: f >= 3.5, "the phone at the full rate")
            await con.click("#panel-close")
            await video_fps(phone, lambda f: f <= 2.0, "the phone back at the analysis rate")
        finally:
            await browser.close()
