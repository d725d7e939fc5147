"""The administration page in real headless Chromium: create a sitting, import a roster
(the bad rows listed with their line numbers, nothing imported; then the corrected file
with a ZIP of photos checked for one face), import a question bank, assemble the paper;
then a candidate's photo check fails three times and the invigilator admits them from the
page with a reason, gives the sitting time back, and the results table lists everyone."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import cv2
import httpx
import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import chromium_args, staff_headers
from tests.e2e.test_console_room import screenshots_dir
from tests.flowkit import ADMIN, demo_questions, seed_exam, zip_of
from tests.serverproc import served, sqlite_data

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def admin_server(models_dir, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-admin")
    asyncio.run(seed_exam(url, data_dir, starts_in=timedelta(minutes=-1)))  # staff accounts
    yield from served(url, data_dir, models_dir)


async def test_admin_page_sets_up_a_sitting(admin_server, media_dir, chromium_path, tmp_path):
    images = media_dir / "images"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            page = await (await browser.new_context(base_url=admin_server.url)).new_page()
            await page.goto("/console/admin.html")
            await page.fill("#admin-username", ADMIN[0])
            await page.fill("#admin-password", ADMIN[1])
            await page.click("#admin-login-form button[type=submit]")
            await expect(page.locator("#admin-main")).to_be_visible(timeout=10_000)

            # a new formal sitting that started a minute ago
            await page.click("#new-sitting summary")
            form = page.locator("#sitting-form")
            await form.locator("[name=name]").fill("Electrician L4 formal 电工四级")
            await form.locator("[name=password]").fill("elec-4-formal")
            start = await page.evaluate(
                "() => { const d = new Date(Date.now() - 60000 - new Date().getTimezoneOffset()"
                " * 60000); return d.toISOString().slice(0, 16); }"
            )
            end = await page.evaluate(
                "() => { const d = new Date(Date.now() + 7200000 - new Date().getTimezoneOffset()"
                " * 60000); return d.toISOString().slice(0, 16); }"
            )
            await form.locator("[name=starts_at]").fill(start)
            await form.locator("[name=ends_at]").fill(end)
            await form.locator("[name=flow]").fill('{"require_phone": false}')
            await form.locator("button[type=submit]").click()
            await expect(page.locator("#admin-message")).to_have_attribute("data-kind", "ok")
            await expect(page.locator("#sitting-panel")).to_be_visible()
            await expect(page.locator("#rules")).to_contain_text("earliest_submit_minutes")

            # the roster: two bad rows are listed with their lines; nothing is imported
            bad = (
                "姓名,身份证号,照片\n奥巴马,110101196108041234,obama.jpg\n"
                ",110101199001011111,\n拜登,12-34,\n"
            )
            roster = page.locator("#roster-form")
            await roster.locator("[name=file]").set_input_files(
                {"name": "roster.csv", "mimeType": "text/csv", "buffer": bad.encode()}
            )
            photos = zip_of({"obama.jpg": (images / "obama.jpg").read_bytes()})
            await roster.locator("[name=photos]").set_input_files(
                {"name": "photos.zip", "mimeType": "application/zip", "buffer": photos}
            )
            await roster.locator("button[type=submit]").click()
            errors = page.locator("#import-errors tbody tr")
            await expect(errors).to_have_count(2, timeout=20_000)
            assert await errors.nth(0).get_attribute("data-line") == "3"
            assert await errors.nth(1).get_attribute("data-line") == "4"
            await expect(page.locator("#candidates tbody tr")).to_have_count(0)
            good = (
                "姓名,身份证号,照片\n奥巴马,110101196108041234,obama.jpg\n"
                "李四,110101199001011111,\n"
            )
            await roster.locator("[name=file]").set_input_files(
                {"name": "roster.csv", "mimeType": "text/csv", "buffer": good.encode()}
            )
            await roster.locator("[name=photos]").set_input_files(
                {"name": "photos.zip", "mimeType": "application/zip", "buffer": photos}
            )
            await roster.locator("button[type=submit]").click()
            await expect(page.locator("#admin-message")).to_contain_text("2 added", timeout=30_000)
            await expect(page.locator("#import-errors")).to_be_hidden()
            await expect(page.locator("#candidates tbody tr")).to_have_count(2)

            # a question bank, then the paper
            bank = page.locator("#bank-form")
            await bank.locator("[name=bank]").fill("elec-2026")
            await bank.locator("[name=file]").set_input_files(
                {
                    "name": "bank.json",
                    "mimeType": "application/json",
                    "buffer": json.dumps(demo_questions("e")).encode(),
                }
            )
            await bank.locator("button[type=submit]").click()
            await expect(page.locator("#admin-message")).to_contain_text("27 added")
            blueprint = {
                "bank": "elec-2026",
                "sections": [
                    {"type": "single", "count": 10, "points": 4},
                    {"type": "multiple", "count": 5, "points": 6},
                    {"type": "true_false", "count": 10, "points": 2},
                    {"type": "short", "count": 1, "points": 10},
                ],
            }
            await page.locator("#paper-form [name=blueprint]").fill(json.dumps(blueprint))
            await page.click("#paper-form button[type=submit]")
            await expect(page.locator("#paper-summary")).to_have_text("26 questions, 100 points")

            # a candidate fails the photo check three times (biden2 against obama)
            sitting_id = int(
                await page.locator("#sittings tr[data-selected=true]").get_attribute(
                    "data-sitting-id"
                )
            )
            async with httpx.AsyncClient(base_url=admin_server.url, timeout=30) as http:
                token = (
                    await http.post(
                        "/api/candidate/login",
                        json={
                            "sitting_password": "elec-4-formal",
                            "id_number": "110101196108041234",
                        },
                    )
                ).json()["token"]
                h = {"authorization": f"Bearer {token}"}
                await http.post("/api/flow/confirm", headers=h)
                await http.post("/api/flow/pledge", json={"accept": True}, headers=h)
                biden = cv2.imread(str(images / "biden2.jpg"))
                for attempt in range(3):  # three captures (one picture again is one check)
                    capture = cv2.imencode(".jpg", biden, [cv2.IMWRITE_JPEG_QUALITY, 81 + attempt])
                    check = await http.post(
                        "/api/flow/identity", content=capture[1].tobytes(), headers=h
                    )
                    assert check.json()["reason"] == "mismatch"
            row = page.locator('#candidates tr[data-step="identity"]')
            await page.click("#refresh-candidates")
            await expect(row.locator('td[data-needs="true"]')).to_be_visible(timeout=10_000)
            await row.locator(".admit-reason").fill("ID card shown to the camera matches")
            await row.locator("button", has_text="Admit").click()
            await expect(page.locator("#admin-message")).to_contain_text("admitted")
            await expect(page.locator('#candidates tr[data-step="phone"]')).to_have_count(1)

            # time given back to the whole sitting, with a reason
            extend = page.locator("#extend-form")
            await extend.locator("[name=reason]").fill("network failure 网络故障")
            await extend.locator("button[type=submit]").click()
            await expect(page.locator("#admin-message")).to_contain_text("Time extended")
            await expect(page.locator("#results tbody tr")).to_have_count(2)
            shots = screenshots_dir(tmp_path)  # PROCTOR_SCREENSHOTS_DIR=docs/screenshots
            shots.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shots / "admin.png"), full_page=True)
        finally:
            await browser.close()
    async with httpx.AsyncClient(base_url=admin_server.url, timeout=10) as http:
        ext = await http.get(
            f"/api/invigilate/extensions?sitting_id={sitting_id}",
            headers=await staff_headers(http, ADMIN),
        )
        assert [(e["candidate_id"], e["seconds"], e["reason"]) for e in ext.json()] == [
            (None, 600, "network failure 网络故障")
        ]
