"""The foundation's end-to-end test in real headless Chromium: the candidate walks the
flow to the photo check, from where the page streams Chromium's fake camera (a real clip,
then seconds without anyone) to the server; the `absent` alert appears on the console
page; a danmaku typed on the console scrolls over the candidate page and the console shows
it seen."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import candidate_login, chromium_args, console_login
from tests.mediatools import center_focus_absence

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fake_camera(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("camera") / "absence.y4m"
    return center_focus_absence(media_dir, out, 6.0, 12.0, (480, 640))


async def test_absent_alert_and_danmaku_in_chromium(
    e2e_server, fake_camera, chromium_path, tmp_path
):
    seeded = e2e_server.seeded
    cand_id, _, id_number = seeded.candidates[0]
    base = e2e_server.url
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, args=chromium_args(fake_camera.path)
        )
        try:
            # -- the candidate logs in and streams --------------------------------------
            cand_ctx = await browser.new_context(base_url=base)
            cand = await cand_ctx.new_page()
            await candidate_login(cand, seeded.password, id_number)
            # the flow up to the photo check, where the camera starts streaming
            await cand.click("#confirm-info")
            await cand.check("#pledge-read")
            await cand.click("#pledge-accept")
            await expect(cand.locator("#flow")).to_have_attribute("data-step", "identity")
            await expect(cand.locator("#stream-status")).to_have_attribute(
                "data-state", "streaming", timeout=30_000
            )

            # -- the invigilator logs in to the console -------------------------------
            con_ctx = await browser.new_context(base_url=base)
            con = await con_ctx.new_page()
            await console_login(con, seeded.staff)
            tile = con.locator(f'.tile[data-candidate-id="{cand_id}"]')
            await expect(tile).to_be_visible(timeout=10_000)

            # -- the person leaves the picture: the alert shows without a reload -------
            alert = con.locator(
                f'#alert-feed li.alert[data-type="absent"][data-candidate-id="{cand_id}"]'
            )
            await expect(alert.first).to_be_visible(timeout=60_000)
            await expect(alert.first.locator("img.alert-evidence-img")).to_be_visible()
            await expect(tile.locator("img.thumb-first")).to_be_visible()
            await con.screenshot(path=str(tmp_path / "console.png"))

            # -- a danmaku from the console scrolls over the candidate page ------------
            text = "请勿离开座位 Please stay in your seat"
            await tile.locator(".danmaku-input").fill(text)
            await tile.locator(".danmaku-send").click()
            shown = cand.locator("#danmaku-layer .danmaku", has_text=text)
            await expect(shown.first).to_be_visible(timeout=2_000)
            await expect(tile.locator('.danmaku-state[data-state="seen"]').first).to_be_visible(
                timeout=5_000
            )
            await cand.screenshot(path=str(tmp_path / "candidate.png"))
        finally:
            await browser.close()
