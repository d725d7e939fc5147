"""Pause, resume and terminate from the invigilator console in real headless Chromium
against a real server: the candidate's exam page (answering) shows the "paused by the
invigilator" overlay and loses it on resume; then the invigilator ends the exam with a
category of the documents (试卷作废 paper voided) after a confirmation, and the candidate's
page shows the exam ended with that category."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e.conftest import E2E_RULES, candidate_login, chromium_args, console_login
from tests.serverproc import seed, served, sqlite_data

pytestmark = pytest.mark.e2e


async def _paper_and_rules(url: str, sitting_id: int) -> None:
    """A paper for the seeded sitting, and no second-view phone required."""
    from proctor.sitting import bank, papers
    from proctor.store.db import Database
    from proctor.store.tables import Sitting
    from tests.flowkit import OBJECTIVE_SECTIONS, demo_questions

    db = Database(url)
    try:
        async with db.transaction() as s:
            name = f"bank-{uuid.uuid4().hex[:6]}"
            errors: list = []
            qs = [
                bank.validate_question(q, i, errors) for i, q in enumerate(demo_questions(name), 1)
            ]
            assert not errors, errors
            await bank.store(s, name, [q for q in qs if q])
            await papers.assemble(s, sitting_id, {"bank": name, "sections": OBJECTIVE_SECTIONS})
            sitting = await s.get(Sitting, sitting_id)
            sitting.flow = {**(sitting.flow or {}), "require_phone": False}
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def control_server(models_dir: Path, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "console-terminate")
    seeded = asyncio.run(seed(url, data_dir, n_candidates=2, rules=E2E_RULES))
    asyncio.run(_paper_and_rules(url, seeded.sitting_id))
    yield from served(url, data_dir, models_dir, seeded=seeded)


async def _to_answering(base: str, token: str, staff: tuple[str, str], cid: int) -> None:
    """The candidate's steps up to answering through the API (the page follows them)."""
    cand = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def ok(path: str, headers: dict, **kw) -> dict:
            resp = await http.post(path, headers=headers, **kw)
            assert resp.status_code == 200, f"{path}: {resp.text}"
            return resp.json()

        await ok("/api/flow/confirm", cand)
        await ok("/api/flow/pledge", cand, json={"accept": True})
        # no registered photo: the check goes to the invigilator, who admits by hand
        check = await ok("/api/flow/identity", cand, content=b"any picture")
        assert check["needs_invigilator"] is True
        login = await ok("/api/staff/login", {}, json={"username": staff[0], "password": staff[1]})
        inv = {"authorization": f"Bearer {login['token']}"}
        await ok(f"/api/invigilate/candidates/{cid}/admit", inv, json={"reason": "ID on camera"})
        await ok("/api/flow/phone/done", cand)
        # the start time has passed: the candidate's page, following the steps, may start
        # the exam itself before this call does (then the call is refused as wrong_step)
        started = await http.post("/api/flow/start", headers=cand)
        if started.status_code == 409:
            assert started.json()["error"]["code"] == "wrong_step", started.text
            started = await http.get("/api/flow/state", headers=cand)
        assert started.status_code == 200, started.text
        assert started.json()["step"] == "answering"


async def _candidate_page(page: Page, password: str, id_number: str) -> str:
    await candidate_login(page, password, id_number)
    await expect(page.locator("#flow")).to_have_attribute("data-step", "confirm", timeout=10_000)
    return await page.evaluate("sessionStorage.getItem('proctor.candidate.token')")


async def test_invigilator_pauses_resumes_and_ends_an_exam(control_server, chromium_path):
    s = control_server.seeded
    base = control_server.url
    cid, name, idn = s.candidates[0]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            # -- the candidate answers ----------------------------------------------------
            cand = await (await browser.new_context(base_url=base, locale="zh-CN")).new_page()
            token = await _candidate_page(cand, s.password, idn)
            await _to_answering(base, token, s.staff, cid)
            flow = cand.locator("#flow")
            await expect(flow).to_have_attribute("data-step", "answering", timeout=20_000)
            question = cand.locator('#paper article.question[data-type="single"]').first
            await expect(question).to_be_visible(timeout=10_000)
            await question.locator("input").first.check()
            await expect(question).to_have_attribute("data-save", "saved", timeout=10_000)

            # -- the invigilator opens the candidate -------------------------------------
            con_ctx = await browser.new_context(
                base_url=base, viewport={"width": 1600, "height": 1000}, locale="zh-CN"
            )
            con = await con_ctx.new_page()
            await console_login(con, s.staff, "**/console/room.html*")
            tile = con.locator(f'.tile[data-candidate-id="{cid}"]')
            await expect(tile).to_have_attribute("data-step", "answering", timeout=15_000)
            await tile.locator(".open-button").click()
            panel = con.locator("#candidate-panel")
            await expect(panel.locator("#panel-title")).to_have_text(name)
            pause = panel.locator("#pause-button")
            await expect(pause).to_be_enabled(timeout=10_000)

            # -- pause: the candidate's page shows the overlay; resume: it goes ------------
            await panel.locator("#pause-reason").fill("网络故障处理 network check")
            await pause.click()
            await expect(panel.locator("#flow-state")).to_have_attribute("data-state", "paused")
            await expect(pause).to_have_attribute("data-flow-action", "resume")
            overlay = cand.locator("#paused-overlay")
            await expect(overlay).to_be_visible(timeout=10_000)
            await expect(cand.locator("body")).to_have_attribute("data-paused", "true")
            await expect(tile.locator(".flow-chip")).to_have_attribute(
                "data-state", "paused", timeout=10_000
            )
            await pause.click()
            await expect(panel.locator("#flow-state")).to_have_attribute("data-state", "answering")
            await expect(overlay).to_be_hidden(timeout=10_000)
            await expect(question.locator("input").first).to_be_enabled()

            # -- end the exam: paper voided, with a reason and a confirmation --------------
            await panel.locator("#terminate-open").click()
            await panel.locator("#terminate-category").select_option("paper_voided")
            await panel.locator("#terminate-reason").fill("第二次使用手机 phone used again")
            await panel.locator("#terminate-submit").click()
            confirm = panel.locator("#terminate-confirm")
            await expect(confirm).to_be_visible()
            await expect(confirm).to_contain_text("试卷作废")
            await panel.locator("#terminate-yes").click()
            await expect(panel.locator("#flow-state")).to_have_attribute(
                "data-state", "terminated", timeout=10_000
            )
            await expect(panel.locator("#terminate-open")).to_be_disabled()
            await expect(
                panel.locator('#timeline li[data-action-kind="exam_terminated"]')
            ).to_have_count(1, timeout=10_000)

            # -- the candidate's page: the exam ended, with the category --------------------
            await expect(flow).to_have_attribute("data-step", "terminated", timeout=10_000)
            message = cand.locator("#terminated-message")
            await expect(message).to_be_visible()
            await expect(message).to_contain_text("试卷作废")
            await expect(message).to_have_attribute("data-category", "paper_voided")
            await expect(cand.locator("#timer")).to_be_hidden()
            await expect(tile.locator(".flow-chip")).to_have_attribute(
                "data-state", "terminated", timeout=10_000
            )
        finally:
            await browser.close()
