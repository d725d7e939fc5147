"""A grid for 30 in the invigilator console (issue 23, item 7), in real headless Chromium
against a real server: 30 candidates in two rooms on one console; B walks the whole flow
headless and streams both views (real WebRTC), A streams a camera that loses the
candidate (a real ``absent`` alert), the other 28 are on the roster without video.

Checked: room labels on every tile while both rooms are shown; pages of 9 / 16 / 30 with
the choice kept in localStorage over a reload; the fixed seat order (an alert does not
move A's tile) against the urgency order (it does), kept over a reload; a long name beside
an alert badge shown whole at 30 tiles per page; a click on B's pictures zooms B with both
views live, large and side by side; no thumbnail request for a view without video, none
for a tile on another page, and not one 404.

With ``PROCTOR_SCREENSHOTS_DIR`` set the screenshots go there (``docs/screenshots``:
console-grid.png, console-zoom.png)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from exam_client.headless import HeadlessCandidate
from tests.e2e.conftest import E2E_RULES, chromium_args, console_login
from tests.e2e.test_console_room import screenshots_dir
from tests.mediatools import center_focus_absence, clip
from tests.serverproc import seed, served, sqlite_data
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

LONG_NAME = "欧阳娜娜 Ouyang Nana-Katharina Wilhelmina"
A_INDEX = 7  # seat 8 of room 1: far from the top in seat order
B_INDEX = 20  # seat 6 of room 2


async def _long_name(url: str, candidate_id: int) -> None:
    from proctor.store.db import Database
    from proctor.store.tables import Candidate

    db = Database(url)
    try:
        async with db.transaction() as s:
            (await s.get(Candidate, candidate_id)).name = LONG_NAME
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def grid_server(models_dir: Path, tmp_path_factory):
    """30 candidates, two rooms of 15, one invigilator watching both."""
    data_dir, url = sqlite_data(tmp_path_factory, "console-grid")
    seeded = asyncio.run(
        seed(url, data_dir, n_candidates=30, rules=E2E_RULES, room_size=15, watch_all_rooms=True)
    )
    asyncio.run(_long_name(url, seeded.candidates[A_INDEX][0]))
    yield from served(url, data_dir, models_dir, seeded=seeded)


@pytest.fixture(scope="module")
def media(media_dir: Path, tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("grid-media")
    src = media_dir / "clips" / "center_focus.mp4"
    leaving = center_focus_absence(media_dir, tmp / "leaving.webm", 6.0, 120.0, (480, 640))
    person = clip(src, tmp / "person.webm", 8.0, fps=10, size=(480, 640), fmt="webm")
    return {"leaving": leaving.path, "person": person.path}


THUMB = re.compile(r"/api/console/candidates/(\d+)/thumbnail/(first|second)\.jpg")


async def visible_ids(page: Page) -> list[int]:
    return [
        int(x)
        for x in await page.evaluate(
            "[...document.querySelectorAll('#tile-grid .tile:not([hidden])')]"
            ".map(t => t.dataset.candidateId)"
        )
    ]


async def test_grid_for_30_pages_order_zoom_and_no_request_storm(
    grid_server, media, chromium_path, tmp_path
):
    s = grid_server.seeded
    base = grid_server.url
    shots = screenshots_dir(tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    ids = [c[0] for c in s.candidates]
    a_id, b_id = ids[A_INDEX], ids[B_INDEX]
    # B walks the flow headless up to the waiting room and streams both views; A streams
    # a leaving camera
    b = HeadlessCandidate(base, s.password, s.candidates[B_INDEX][2])
    await b.login()
    # (this sitting has no paper: B stops in the waiting room, streaming both views)
    state = await b.flow_state()
    while state["step"] != "waiting":
        state = await b._step(state, media["person"], media["person"], True, False, s.staff, None)
    a = HeadlessCandidate(base, s.password, s.candidates[A_INDEX][2])
    await a.login()

    requests: list[tuple[int, str, int]] = []  # (candidate, view, status)

    def on_response(response) -> None:
        m = THUMB.search(response.url)
        if m:
            requests.append((int(m.group(1)), m.group(2), response.status))

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            ctx = await browser.new_context(
                base_url=base, viewport={"width": 1600, "height": 1000}, locale="zh-CN"
            )
            con = await ctx.new_page()
            con.on("response", on_response)
            await console_login(con, s.staff, "**/console/room.html*")
            tiles = con.locator("#tile-grid .tile")
            await expect(tiles).to_have_count(30, timeout=15_000)

            # -- both rooms shown: every tile names its room -------------------------------
            await expect(con.locator("#room-select")).to_have_value("")
            await expect(con.locator("#tile-grid")).to_have_attribute("data-multi-room", "true")
            a_tile = con.locator(f'.tile[data-candidate-id="{a_id}"]')
            b_tile = con.locator(f'.tile[data-candidate-id="{b_id}"]')
            await expect(a_tile.locator(".tile-room")).to_be_visible()
            rooms = await con.evaluate(
                "[...document.querySelectorAll('#tile-grid .tile-room')].map(r => r.textContent)"
            )
            assert len(set(rooms)) == 2 and all(rooms), rooms

            # -- A leaves the camera: an alert; urgency order puts A first -----------------
            await a.start_view("first", media["leaving"], loop=False)
            await expect(a_tile).to_have_attribute(
                "data-open-alerts", re.compile("[1-9]"), timeout=60_000
            )
            await expect(a_tile).to_have_attribute("data-rank", "0")
            # seat order: A keeps its seat (8th of room 1), whatever its alerts
            await con.select_option("#tile-order", "seat")
            await expect(a_tile).to_have_attribute("data-rank", str(A_INDEX))
            assert await visible_ids(con) == ids  # room 1 seats 1-15, then room 2

            # -- pages of 9 / 16 / 30, remembered -----------------------------------------
            await con.select_option("#tile-page-size", "9")
            await expect(con.locator("#tile-grid .tile:visible")).to_have_count(9)
            assert await visible_ids(con) == ids[:9]
            await expect(con.locator("#tile-pager")).to_have_attribute("data-pages", "4")
            await con.click("#page-next")
            await con.click("#page-next")
            await expect(con.locator("#tile-pager")).to_have_attribute("data-page", "3")
            assert await visible_ids(con) == ids[18:27]  # B (21st) is here
            # B's two views come in (a tile below the fold fetched nothing before)
            await expect(b_tile.locator("img.thumb-first")).to_be_visible(timeout=30_000)
            await expect(b_tile.locator("img.thumb-second")).to_be_visible(timeout=30_000)
            await con.select_option("#tile-page-size", "16")
            await expect(con.locator("#tile-grid .tile:visible")).to_have_count(16)
            await expect(con.locator("#tile-pager")).to_have_attribute("data-pages", "2")
            await con.reload()
            await expect(tiles).to_have_count(30, timeout=15_000)
            await expect(con.locator("#tile-page-size")).to_have_value("16")
            await expect(con.locator("#tile-order")).to_have_value("seat")
            await expect(con.locator("#tile-grid .tile:visible")).to_have_count(16)
            await expect(a_tile).to_have_attribute("data-rank", str(A_INDEX))

            # a tile on another page fetches nothing: page 1 (A's page, not B's) shown, B's
            # thumbnails stop while A's keep coming
            await expect(b_tile).to_be_hidden()
            b_before = sum(1 for c, _, _ in requests if c == b_id)
            await expect(a_tile.locator("img.thumb-first")).to_be_visible(timeout=30_000)
            a_before = sum(1 for c, _, _ in requests if c == a_id)

            async def more_of_a() -> bool | None:
                return sum(1 for c, _, _ in requests if c == a_id) >= a_before + 3 or None

            await eventually(more_of_a, 30, "three more thumbnails of A")
            assert sum(1 for c, _, _ in requests if c == b_id) == b_before

            # -- 30 per page: one screen, the long name whole beside A's alert badge -------
            await con.select_option("#tile-page-size", "30")
            await expect(con.locator("#tile-grid .tile:visible")).to_have_count(30)
            await expect(con.locator("#tile-pager")).to_be_hidden()
            await expect(a_tile.locator(".tile-name-text")).to_have_text(LONG_NAME)
            await expect(a_tile.locator(".alert-badge")).to_be_visible()
            clipped = await con.evaluate(
                """[...document.querySelectorAll('#tile-grid .tile')].filter(t => {
                    const name = t.querySelector('.tile-name');
                    const text = t.querySelector('.tile-name-text').getBoundingClientRect();
                    const tile = t.getBoundingClientRect();
                    const badge = t.querySelector('.alert-badge').getBoundingClientRect();
                    const overlaps = badge.width > 0 && badge.top < text.bottom
                        && badge.bottom > text.top && badge.left < text.right
                        && badge.right > text.left;
                    return name.scrollWidth > name.clientWidth + 1
                        || text.right > tile.right + 1 || overlaps;
                }).map(t => t.dataset.candidateId)"""
            )
            assert clipped == [], clipped
            await con.set_viewport_size({"width": 1600, "height": 1200})
            await con.screenshot(path=str(shots / "console-grid.png"))
            await con.set_viewport_size({"width": 1600, "height": 1000})

            # -- click-to-zoom: B's two views live, large, side by side --------------------
            await b_tile.locator(".tile-views").click()
            zoom = con.locator("#tile-zoom")
            await expect(zoom).to_be_visible()
            await expect(zoom).to_have_attribute("data-candidate-id", str(b_id))
            for view in ("first", "second"):
                await expect(con.locator(f"#zoom-{view}")).to_have_attribute(
                    "data-state", "live", timeout=30_000
                )
                await eventually(
                    lambda view=view: con.evaluate(
                        f"document.querySelector('#zoom-{view} video').videoWidth > 0 || null"
                    ),
                    20,
                    f"zoomed live video of the {view} view",
                )
            first = await con.locator("#zoom-first").bounding_box()
            second = await con.locator("#zoom-second").bounding_box()
            assert first and second
            assert abs(first["y"] - second["y"]) < 2 and first["x"] + first["width"] <= second["x"]
            assert first["width"] > 600 and second["width"] > 600  # large: half the screen
            await con.screenshot(path=str(shots / "console-zoom.png"))
            await con.keyboard.press("Escape")
            await expect(zoom).to_be_hidden()
            await expect(con.locator("#zoom-first")).to_have_attribute("data-state", "idle")

            # -- urgency order again: A moves to the top ----------------------------------
            await con.select_option("#tile-order", "urgency")
            await expect(a_tile).to_have_attribute("data-rank", "0")

            # -- no request storm ---------------------------------------------------------
            assert [r for r in requests if r[2] != 200] == []  # not one 404
            streaming = {a_id, b_id}
            assert {c for c, _, _ in requests} <= streaming, sorted({c for c, _, _ in requests})
            assert {v for c, v, _ in requests if c == a_id} == {"first"}  # A has no phone
        finally:
            await browser.close()
            await a.close()
            await b.close()
