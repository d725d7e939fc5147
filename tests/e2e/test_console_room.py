"""The invigilator console in real headless Chromium against a real server, with a room of
30 candidates: the room view (30 tiles, sorted by urgency, filters), an alert with its
screenshot and the automatic hint on the candidate's page, one candidate opened (live
video), a danmaku delivered and shown as seen, a screenshot stored with its note, a voice
call carrying audio both ways (WebRTC stats on both pages), the alert acknowledged with a
reason, the exam-room record with an incident recorded from it; and an invigilator of
another room refused. Takes the screenshots console-room.png, console-candidate.png and
console-record.png into the test's temporary directory, or into ``PROCTOR_SCREENSHOTS_DIR``
when set (``PROCTOR_SCREENSHOTS_DIR=docs/screenshots`` updates the committed ones on
purpose: a test run never rewrites tracked files).

Candidates: A has a real candidate page in Chromium (the exam page with its console link)
while a headless client streams A's camera and microphone with A's session (the page has
not reached the step where it streams itself); B streams headless; the other 28 are on the
roster, not connected.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from exam_client.headless import HeadlessCandidate
from tests.e2e.conftest import E2E_RULES, candidate_login, chromium_args, console_login
from tests.mediatools import center_focus_absence, clip
from tests.serverproc import ROOT, seed, served, sqlite_data
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

INV2 = ("invigilator2", "invigilate-pass-2")


def with_tone(video: Path, out: Path, seconds: float) -> Path:
    """The clip with a 440 Hz tone as its sound (a microphone that hears something)."""
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(video),
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}",
            "-c:v",
            "copy",
            "-c:a",
            "libopus",
            "-shortest",
            str(out),
        ],
        check=True,
    )
    return out


async def _second_room(url: str, room2: int) -> None:
    from proctor.invigilation.rooms import assign_staff, get_room
    from proctor.sitting.sittings import create_staff
    from proctor.store.db import Database

    db = Database(url)
    try:
        async with db.transaction() as s:
            inv2 = await create_staff(
                s,
                username=INV2[0],
                password=INV2[1],
                display_name="Invigilator Two",
                role="invigilator",
            )
            await assign_staff(s, await get_room(s, room2), [inv2.id])
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def room_server(models_dir: Path, tmp_path_factory):
    """31 candidates: room 1 seats 30 (invigilator1), room 2 the last one (invigilator2)."""
    data_dir, url = sqlite_data(tmp_path_factory, "console-e2e")
    seeded = asyncio.run(seed(url, data_dir, n_candidates=31, rules=E2E_RULES))
    asyncio.run(_second_room(url, seeded.room_ids[1]))
    yield from served(url, data_dir, models_dir, seeded=seeded)


@pytest.fixture(scope="module")
def media(media_dir: Path, tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("console-media")
    src = media_dir / "clips" / "center_focus.mp4"
    leaving = center_focus_absence(media_dir, tmp / "leaving.webm", 8.0, 110.0, (480, 640))
    person = clip(src, tmp / "person.webm", 8.0, fps=10, size=(480, 640), fmt="webm")
    return {
        "leaving": with_tone(leaving.path, tmp / "leaving-tone.webm", 118.0),
        "person": person.path,
    }


async def login_candidate_page(page: Page, password: str, id_number: str) -> str:
    await candidate_login(page, password, id_number)
    await expect(page.locator("#console-hint")).to_have_attribute("data-link", "open")
    return await page.evaluate("sessionStorage.getItem('proctor.candidate.token')")


async def bytes_received(page: Page, selector: str) -> int:
    value = await page.locator(selector).get_attribute("data-bytes-received")
    return int(value or 0)


def screenshots_dir(tmp_path: Path) -> Path:
    """Where the screenshots go: PROCTOR_SCREENSHOTS_DIR (relative to the repository) when
    set, else the test's own temporary directory."""
    chosen = os.environ.get("PROCTOR_SCREENSHOTS_DIR")
    return ROOT / chosen if chosen else tmp_path


async def test_console_room_view_actions_and_voice(room_server, media, chromium_path, tmp_path):
    shots = screenshots_dir(tmp_path)
    s = room_server.seeded
    base = room_server.url
    a_id, a_name, a_idn = s.candidates[0]
    b_id, _, b_idn = s.candidates[1]
    shots.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            # -- candidate A: the exam page (console link) + A's media, headless -----------
            cand_ctx = await browser.new_context(base_url=base, locale="zh-CN")
            cand = await cand_ctx.new_page()
            token = await login_candidate_page(cand, s.password, a_idn)
            a_media = HeadlessCandidate(base, s.password, a_idn)
            a_media.token, a_media.candidate_id = token, a_id
            b_media = HeadlessCandidate(base, s.password, b_idn)
            await b_media.login()
            await b_media.start_view("first", media["person"], loop=True)

            # -- the invigilator's room view: 30 tiles ---------------------------------
            con_ctx = await browser.new_context(
                base_url=base, viewport={"width": 1600, "height": 1000}, locale="zh-CN"
            )
            con = await con_ctx.new_page()
            await console_login(con, s.staff, "**/console/room.html*")
            tiles = con.locator("#tile-grid .tile")
            await expect(tiles).to_have_count(30, timeout=15_000)
            await expect(con.locator("#room-select")).to_have_value(str(s.room_ids[0]))
            await a_media.start_view("first", media["leaving"], loop=False)
            b_tile = con.locator(f'.tile[data-candidate-id="{b_id}"]')
            await expect(b_tile.locator("img.thumb-first")).to_be_visible(timeout=30_000)

            # -- A leaves: the alert shows in the feed with its screenshot; the candidate's
            #    page shows the automatic hint (rung 1 of the ladder) -------------------------
            a_alerts = con.locator(f'#alert-feed li.alert[data-candidate-id="{a_id}"]')
            alert = a_alerts.and_(con.locator('[data-type="absent"]')).first
            await expect(alert).to_be_visible(timeout=60_000)
            await expect(alert.locator("img.alert-evidence-img")).to_be_visible()
            await expect(cand.locator("#console-hint")).to_be_visible(timeout=10_000)
            await expect(cand.locator("#console-hint")).to_have_attribute("data-code", "absent")
            a_tile = con.locator(f'.tile[data-candidate-id="{a_id}"]')
            await expect(a_tile).to_have_attribute("data-rank", "0")  # most urgent first
            await expect(a_tile.locator(".ladder-chip")).to_have_attribute(
                "data-state", "danmaku", timeout=10_000
            )
            # filters: "open alerts" shows A only; back to all
            await con.click('#filters .filter[data-filter="alerts"]')
            await expect(con.locator("#tile-grid .tile:visible")).to_have_count(1)
            await con.click('#filters .filter[data-filter="all"]')
            await expect(con.locator("#tile-grid .tile:visible")).to_have_count(30)
            # the whole room on one screen (small tiles) for the screenshot
            await con.select_option("#tile-size", "s")
            await con.set_viewport_size({"width": 1600, "height": 1200})
            await con.screenshot(path=str(shots / "console-room.png"))
            await con.set_viewport_size({"width": 1600, "height": 1000})

            # -- open A: live video of the first view -----------------------------------
            await a_tile.locator(".open-button").click()
            panel = con.locator("#candidate-panel")
            await expect(panel).to_be_visible()
            # the candidate's detail (a busy machine may take a while)
            await expect(panel.locator("#panel-title")).to_have_text(a_name, timeout=20_000)
            await expect(con.locator("#live-first")).to_have_attribute(
                "data-state", "live", timeout=20_000
            )
            # polled with evaluate: wait_for_function evaluates strings in the page, which
            # the pages' Content-Security-Policy (no 'unsafe-eval', issue 20) refuses
            await eventually(
                lambda: con.evaluate(
                    "document.querySelector('#live-first video').videoWidth > 0 || null"
                ),
                20,
                "live video of the first view",
            )
            await expect(con.locator("#live-second")).to_have_attribute(
                "data-state", "unavailable", timeout=20_000
            )

            # -- a danmaku from a saved phrase: delivered, shown, seen --------------------
            phrase = panel.locator(".phrase").nth(1)
            text = (await phrase.text_content()).strip()
            await phrase.click()
            await panel.locator("#panel-danmaku-send").click()
            await expect(
                cand.locator("#danmaku-layer .danmaku", has_text=text).first
            ).to_be_visible(timeout=5_000)
            await expect(
                panel.locator('#panel-danmaku-list .danmaku-state[data-state="seen"]')
            ).to_have_count(1, timeout=10_000)

            # -- a screenshot kept as a violation record with its note -------------------
            note = "离开座位，桌面无人 left the seat"
            await panel.locator("#screenshot-note").fill(note)
            await panel.locator("#screenshot-button").click()
            result = panel.locator("#screenshot-result")
            await expect(result).to_have_attribute("data-state", "saved", timeout=10_000)
            evidence_id = await result.get_attribute("data-evidence-id")
            await expect(
                panel.locator('#timeline li[data-action-kind="violation"]', has_text=note)
            ).to_be_visible()

            # -- a voice call: audio both ways (bytes received grow on both pages) ---------
            await panel.locator("#voice-button").click()
            await expect(panel.locator("#voice-status")).to_have_attribute(
                "data-state", "live", timeout=20_000
            )
            await expect(cand.locator("#console-voice")).to_have_attribute(
                "data-state", "live", timeout=20_000
            )
            await con.screenshot(path=str(shots / "console-candidate.png"))

            async def growing(page: Page, selector: str) -> int:
                async def some() -> int | None:
                    now = await bytes_received(page, selector)
                    return now if now > 0 else None

                first = await eventually(some, 15, f"audio bytes received on {selector}")

                async def more() -> int | None:
                    now = await bytes_received(page, selector)
                    return now if now > first else None

                return await eventually(more, 15, f"audio bytes received grow on {selector}")

            assert await growing(con, "#voice-status") > 0  # the candidate's microphone
            assert await growing(cand, "#console-voice") > 0  # the invigilator's voice
            await panel.locator("#voice-button").click()  # end the call
            await expect(cand.locator("#console-voice")).to_have_attribute(
                "data-state", "ended", timeout=10_000
            )
            await expect(
                panel.locator('#timeline li[data-action-kind="voice_ended"]')
            ).to_have_count(1, timeout=10_000)
            # ended by the invigilator, not "connection lost" (issue 23, item 10)
            await expect(
                panel.locator('#timeline li[data-action-kind="voice_ended"] .timeline-note')
            ).to_have_text("ended by the invigilator")

            # -- close the panel; acknowledge A's alerts with a reason ---------------------
            await panel.locator("#panel-close").click()
            await expect(panel).to_be_hidden()
            ack_all = a_alerts.first.locator(".alert-ack-all")  # shown from 2 open alerts
            if await ack_all.is_visible():
                await ack_all.click()
            else:
                await a_alerts.first.locator(".alert-ack").click()
            dialog = con.locator("#handle-dialog")
            await expect(dialog).to_be_visible()
            # "recorded as a violation" records one (issue 23, item 10)
            await dialog.locator(".reason-pick", has_text="Recorded as a violation").click()
            await expect(dialog.locator("#handle-record-violation")).to_be_checked()
            await dialog.locator("#handle-submit").click()
            await expect(dialog).to_be_hidden()
            await expect(  # handled alerts leave the open feed
                con.locator(f'#alert-feed li.alert[data-candidate-id="{a_id}"]:visible')
            ).to_have_count(0)
            await expect(a_tile).to_have_attribute("data-open-alerts", "0")

            # -- the exam-room record, live: an incident recorded from it ------------------
            record = await con_ctx.new_page()
            await record.goto(f"/console/record.html?sitting={s.sitting_id}&room={s.room_ids[0]}")
            await expect(record.locator("#attendance tbody tr")).to_have_count(30)
            await expect(
                record.locator(f'#attendance tr[data-candidate-id="{a_id}"][data-present="true"]')
            ).to_have_count(1)
            await expect(record.locator("#violations", has_text=note)).to_be_visible()
            await expect(record.locator("#record-draft")).to_be_visible()  # not over yet
            await record.select_option("#incident-category", "network")
            await record.fill("#incident-description", "网络中断2分钟 network down 2 min")
            await record.click("#incident-submit")
            await expect(
                record.locator("#incidents", has_text="network down 2 min")
            ).to_be_visible()
            await expect(record.locator("#export-csv")).to_have_attribute(
                "href", re.compile(r"record\.csv\?.*draft=1")
            )
            await record.evaluate("window.scrollTo(0, 0)")
            await record.screenshot(path=str(shots / "console-record.png"))
            await record.close()

            # -- what the server recorded ------------------------------------------------
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                login = await http.post(
                    "/api/staff/login", json={"username": s.staff[0], "password": s.staff[1]}
                )
                h = {"authorization": f"Bearer {login.json()['token']}"}
                image = await http.get(f"/api/evidence/{evidence_id}", headers=h)
                assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
                rec = (
                    await http.get(f"/api/console/sittings/{s.sitting_id}/record", headers=h)
                ).json()
            notes = [v["note"] for v in rec["violations"] if v["source"] == "invigilator"]
            assert note in notes
            from_alerts = [
                v
                for v in rec["violations"]
                if v["source"] == "invigilator"
                and v["note"].startswith("Recorded as a violation")
                and v["evidence_url"]
            ]
            assert from_alerts, rec["violations"]
            kinds = [i["kind"] for i in rec["log"]]
            assert {"hint", "danmaku", "voice_started", "voice_ended", "alert_acknowledged"} <= set(
                kinds
            )
            assert rec["summary"]["expected"] == 30 and rec["summary"]["present"] >= 2
            await a_media.close()
            await b_media.close()
        finally:
            await browser.close()


async def test_invigilator_of_another_room_is_refused(room_server, chromium_path):
    s = room_server.seeded
    a_id = s.candidates[0][0]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            page = await (await browser.new_context(base_url=room_server.url)).new_page()
            await console_login(page, INV2, "**/console/room.html*")
            # their room: the one candidate of room 2, nobody of room 1
            await expect(page.locator("#tile-grid .tile")).to_have_count(1, timeout=15_000)
            await expect(page.locator(f'.tile[data-candidate-id="{a_id}"]')).to_have_count(0)
            # asking for room 1 by its address: refused, nothing shown
            await page.goto(f"/console/room.html?sitting={s.sitting_id}&room={s.room_ids[0]}")
            await expect(page.locator("#tile-grid .tile")).to_have_count(1, timeout=15_000)
            await expect(page.locator("#room-select")).to_have_value(str(s.room_ids[1]))
            # the server refuses room 1's candidate on every route, with one code
            status = await page.evaluate(
                """async (id) => {
                    const token = sessionStorage.getItem('proctor.staff.token');
                    const r = await fetch(`/api/console/candidates/${id}`, {
                        headers: {Authorization: `Bearer ${token}`}});
                    return [r.status, (await r.json()).error.code];
                }""",
                a_id,
            )
            assert status == [403, "not_your_room"]
            record = await page.evaluate(
                """async ([sitting, room]) => {
                    const token = sessionStorage.getItem('proctor.staff.token');
                    const r = await fetch(
                        `/api/console/sittings/${sitting}/record?room_id=${room}`,
                        {headers: {Authorization: `Bearer ${token}`}});
                    return r.status;
                }""",
                [s.sitting_id, s.room_ids[0]],
            )
            assert record == 403
        finally:
            await browser.close()
