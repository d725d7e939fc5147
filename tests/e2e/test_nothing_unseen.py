"""Nothing unseen (issue 18), in real headless Chromium against a real server: a candidate
streams both views (the exam page's fake camera and the phone page), answers, leaves the
exam page twice (the first time is warned on the page, the second is a ``screen_left``
alert, and the console's tile counts both), then the webcam stops while the phone still
streams: ``first_view_lost`` is raised after the sitting's grace, shown as ongoing on the
console page."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import Route, async_playwright, expect

from proctor.rules import RuleSettings
from tests.e2e.conftest import candidate_login, chromium_args, console_login
from tests.flowkit import ADMIN, seed_exam, still_y4m
from tests.serverproc import served, sqlite_data
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

RULES = RuleSettings(screen_left_alert_count=2, first_view_lost_seconds=3.0)

#: keeps the page's camera streams reachable, so that the test can stop the camera as an
#: unplugged one would (the page itself is not changed)
KEEP_STREAMS = """
(() => {
  const get = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  window.__streams = [];
  navigator.mediaDevices.getUserMedia = async (c) => {
    const s = await get(c);
    window.__streams.push(s);
    return s;
  };
})();
"""


@pytest.fixture(scope="module")
def watch_server(models_dir, media_dir, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-unseen")
    info = asyncio.run(
        seed_exam(
            url,
            data_dir,
            kind="trial",
            starts_in=timedelta(minutes=-1),
            photos=[media_dir / "images" / "obama.jpg"],
            rules=RULES,
        )
    )
    yield from served(url, data_dir, models_dir, info=info)


@pytest.fixture(scope="module")
def camera(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cameras")
    return still_y4m(media_dir / "images" / "obama2.jpg", out / "obama2.y4m")


async def test_page_leaving_and_first_view_lost_are_raised(watch_server, camera, chromium_path):
    s = watch_server.info
    cid = s.candidates[0].id
    async with httpx.AsyncClient(base_url=watch_server.url, timeout=20) as http:
        token = (
            await http.post("/api/staff/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        ).json()["token"]
        h = {"authorization": f"Bearer {token}"}

        async def alerts_of(kind: str) -> list[dict] | None:
            rows = (await http.get(f"/api/console/alerts?sitting_id={s.id}", headers=h)).json()
            found = [a for a in rows if a["candidate_id"] == cid and a["type"] == kind]
            return found or None

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=chromium_path, args=chromium_args(camera)
            )
            try:
                ctx = await browser.new_context(base_url=watch_server.url)
                await ctx.add_init_script(KEEP_STREAMS)
                page = await ctx.new_page()
                await candidate_login(page, s.password, s.candidates[0].id_number)
                flow = page.locator("#flow")
                await page.click("#confirm-info")
                await page.check("#pledge-read")
                await page.click("#pledge-accept")
                await expect(page.locator("#stream-status")).to_have_attribute(
                    "data-state", "streaming", timeout=30_000
                )
                await page.click("#capture-photo")
                await expect(flow).to_have_attribute("data-step", "phone", timeout=90_000)
                await expect(page.locator("#phone-qr svg")).to_be_visible(timeout=10_000)
                phone = await (await browser.new_context()).new_page()
                await phone.goto(await page.locator("#phone-link").get_attribute("href"))
                await expect(phone.locator("#phone-stream-status")).to_have_attribute(
                    "data-state", "streaming", timeout=30_000
                )
                # the paper is held back until the candidate has left the page twice: a
                # leave while the paper loads counts too (CI once left the page before the
                # page listened, as it then did only once the paper had loaded)
                paper_held = asyncio.Event()

                async def hold_paper(route: Route) -> None:
                    await asyncio.wait_for(paper_held.wait(), 60)
                    await route.continue_()

                await page.route("**/api/flow/paper", hold_paper)
                await expect(flow).to_have_attribute("data-step", "answering", timeout=60_000)

                # -- leaving the exam page twice: warned, then reported ---------------
                for _ in range(2):
                    await page.evaluate("window.dispatchEvent(new Event('blur'))")
                    await page.evaluate("window.dispatchEvent(new Event('focus'))")
                paper_held.set()

                # raised at the second leave, closed by the return (which may land a moment
                # after the alert: wait for the closed state, not the first sight of it)
                async def closed_leave() -> list[dict] | None:
                    found = await alerts_of("screen_left")
                    return found if found and found[0]["ongoing"] is False else None

                left = await eventually(closed_leave, 20, "screen_left alert closed on return")
                assert len(left) == 1

                async def counted() -> dict | None:
                    rows = (
                        await http.get(f"/api/console/candidates?sitting_id={s.id}", headers=h)
                    ).json()
                    mine = next(r for r in rows if r["id"] == cid)["screen_left"]
                    return mine if mine["count"] == 2 else None

                await eventually(counted, 20, "two leaves counted")

                # the console's tile shows the count
                console = await (await browser.new_context(base_url=watch_server.url)).new_page()
                await console_login(console, ADMIN)
                tile = console.locator(f'.tile[data-candidate-id="{cid}"]')
                await expect(tile.locator(".screen-chip")).to_contain_text("2×", timeout=20_000)

                # -- the webcam stops (the phone still streams): first_view_lost ------
                await page.evaluate(
                    "window.__streams.forEach(s => s.getVideoTracks().forEach(t => t.stop()))"
                )
                lost = await eventually(
                    lambda: alerts_of("first_view_lost"), 40, "first_view_lost alert"
                )
                assert lost[0]["view"] == "first" and lost[0]["ongoing"] is True
                await expect(
                    console.locator('#alert-feed li.alert[data-type="first_view_lost"]')
                ).to_contain_text("ongoing since", timeout=20_000)
            finally:
                await browser.close()
