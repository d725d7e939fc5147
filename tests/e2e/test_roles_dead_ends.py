"""Issue 23's dead ends in real headless Chromium against a real server.

1. The end of the exam ends both views: after the hand-in the phone page says the exam is
   over and stops its camera; the console does not list the candidate as "connection
   lost"; the review counts no outage.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import chromium_args
from tests.flowkit import INVIGILATOR, REVIEWER, seed_exam, still_y4m
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def roles_server(models_dir, media_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("e2e-roles")
    url = f"sqlite+aiosqlite:///{data_dir / 'proctor.db'}"
    photos = [media_dir / "images" / "obama.jpg"] * 2
    formal = asyncio.run(
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
    trial = asyncio.run(
        seed_exam(url, data_dir, kind="trial", starts_in=timedelta(minutes=-1), photos=photos)
    )
    proc = ServerProcess(url, data_dir, models_dir).start()
    proc.formal, proc.trial = formal, trial
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def cameras(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cameras")
    return {
        name: still_y4m(media_dir / "images" / f"{name}.jpg", out / f"{name}.y4m")
        for name in ("obama2", "biden2")
    }


async def _login(page, password: str, id_number: str) -> None:
    await page.goto("/exam/")
    await page.fill("#sitting-password", password)
    await page.fill("#id-number", id_number)
    await page.click("#login-button")
    await page.wait_for_url("**/exam/exam.html")
    await expect(page.locator("#flow")).to_have_attribute("data-step", "confirm", timeout=10_000)


async def _pledge(page) -> None:
    await page.check("#pledge-read")
    await page.click("#pledge-accept")
    await expect(page.locator("#flow")).to_have_attribute("data-step", "identity")
    await expect(page.locator("#stream-status")).to_have_attribute(
        "data-state", "streaming", timeout=30_000
    )


async def _console(browser, base: str, sitting_id: int):
    page = await (await browser.new_context(base_url=base)).new_page()
    await page.goto("/console/")
    await page.fill("#username", INVIGILATOR[0])
    await page.fill("#password", INVIGILATOR[1])
    await page.click("#login-submit")
    await page.wait_for_url("**/console/room.html**")
    await page.goto(f"/console/room.html?sitting={sitting_id}")
    return page


async def _staff_http(base: str, who: tuple[str, str]) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=base, timeout=30)
    token = (
        await http.post("/api/staff/login", json={"username": who[0], "password": who[1]})
    ).json()["token"]
    http.headers["authorization"] = f"Bearer {token}"
    return http


# ----------------------------------------------------------------------------- 1


async def test_hand_in_ends_both_views_and_is_no_outage(
    roles_server, cameras, chromium_path, tmp_path
):
    s = roles_server.formal
    cand = s.candidates[0]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, args=chromium_args(cameras["obama2"])
        )
        try:
            page = await (await browser.new_context(base_url=roles_server.url)).new_page()
            await _login(page, s.password, cand.id_number)
            await page.click("#confirm-info")
            await _pledge(page)
            await page.click("#capture-photo")
            flow = page.locator("#flow")
            await expect(flow).to_have_attribute("data-step", "phone", timeout=90_000)
            await expect(page.locator("#phone-qr svg")).to_be_visible(timeout=10_000)
            phone = await (
                await browser.new_context(viewport={"width": 390, "height": 844})
            ).new_page()
            await phone.goto(await page.locator("#phone-link").get_attribute("href"))
            status = phone.locator("#phone-stream-status")
            await expect(status).to_have_attribute("data-state", "streaming", timeout=30_000)
            await expect(flow).to_have_attribute("data-step", "answering", timeout=60_000)

            console = await _console(browser, roles_server.url, s.id)
            tile = console.locator(f'.tile[data-candidate-id="{cand.id}"]')
            await expect(tile).to_have_attribute("data-connected", "true", timeout=30_000)

            # hand in
            await expect(page.locator("#paper article.question").first).to_be_visible(
                timeout=10_000
            )
            await page.click("#submit-button")
            await page.click("#submit-yes")
            await expect(flow).to_have_attribute("data-step", "submitted", timeout=10_000)

            # the phone is told, says so in both languages, and stops its camera
            await expect(status).to_have_attribute("data-state", "finished", timeout=30_000)
            finished = phone.locator("#phone-finished")
            await expect(finished).to_be_visible()
            await expect(finished).to_contain_text("可以关闭本页面")
            await expect(finished).to_contain_text("you may close this page")
            await expect(phone.locator("#phone-hints")).to_be_hidden()
            assert await phone.evaluate("document.getElementById('phone-view').srcObject") is None
            await phone.screenshot(path=str(tmp_path / "phone-finished.png"))

            # the console: both views ended, nobody under "Connection lost"
            for view in ("first", "second"):
                await expect(tile.locator(f'.conn[data-view="{view}"]')).to_have_attribute(
                    "data-ended", "true", timeout=30_000
                )
                await expect(tile.locator(f'.conn[data-view="{view}"]')).to_have_attribute(
                    "data-lost", "false"
                )
            await expect(console.locator('.filter[data-filter="lost"] .filter-count')).to_have_text(
                "0"
            )
            await console.screenshot(path=str(tmp_path / "console-ended.png"))
            # a reload (views from the server's state) says the same
            await console.reload()
            await expect(tile.locator('.conn[data-view="second"]')).to_have_attribute(
                "data-ended", "true", timeout=15_000
            )
            await expect(console.locator('.filter[data-filter="lost"] .filter-count')).to_have_text(
                "0"
            )
            # the phone page reloaded after the end does not start its camera again
            await phone.reload()
            await expect(status).to_have_attribute("data-state", "finished", timeout=15_000)
        finally:
            await browser.close()

    inv = await _staff_http(roles_server.url, INVIGILATOR)
    rev = await _staff_http(roles_server.url, REVIEWER)
    try:
        alerts = (await inv.get(f"/api/console/alerts?sitting_id={s.id}&limit=1000")).json()
        assert not [
            a for a in alerts if a["candidate_id"] == cand.id and a["type"] == "second_view_lost"
        ]
        timeline = (await rev.get(f"/api/review/candidates/{cand.id}/timeline")).json()
        assert not [i for i in timeline["items"] if i["kind"] == "connection_loss"], timeline
        ended = {
            i["data"]["view"]
            for i in timeline["items"]
            if i["kind"] == "event" and i["type"] == "media_ended"
        }
        assert ended == {"first", "second"}
    finally:
        await inv.aclose()
        await rev.aclose()
