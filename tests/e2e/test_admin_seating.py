"""Issue 23 item 4 in real headless Chromium: candidates imported on the administration
page are in no room, so no invigilator sees them (the dead end: nothing on the page could
seat them). The page warns, seats them automatically in a new room without moving the
candidate already answering or touching their attempt, assigns the invigilator, moves one
candidate by hand; a staff account created on the page logs in, and a chief-only role is
refused with the server's message."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import chromium_args
from tests.e2e.test_console_room import screenshots_dir
from tests.e2e.test_words_and_times import assert_words
from tests.flowkit import ADMIN, INVIGILATOR, seed_exam
from tests.serverproc import served, sqlite_data

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def seating_server(models_dir, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-seating")
    sitting = asyncio.run(
        seed_exam(url, data_dir, starts_in=timedelta(minutes=-1), flow={"require_phone": False})
    )
    yield from served(url, data_dir, models_dir, sitting=sitting)


async def _staff(http: httpx.AsyncClient, who: tuple[str, str]) -> dict[str, str]:
    resp = await http.post("/api/staff/login", json={"username": who[0], "password": who[1]})
    assert resp.status_code == 200, resp.text
    return {"authorization": f"Bearer {resp.json()['token']}"}


async def _answering(http: httpx.AsyncClient, sitting, admin: dict[str, str]) -> tuple:
    """The seeded candidate walks to answering and saves one answer."""
    cand = sitting.candidates[0]
    login = await http.post(
        "/api/candidate/login",
        json={"sitting_password": sitting.password, "id_number": cand.id_number},
    )
    h = {"authorization": f"Bearer {login.json()['token']}"}
    assert (await http.post("/api/flow/confirm", headers=h)).status_code == 200
    await http.post("/api/flow/pledge", json={"accept": True}, headers=h)
    await http.post("/api/flow/identity", content=b"no registered photo", headers=h)
    admit = await http.post(
        f"/api/invigilate/candidates/{cand.id}/admit", json={"reason": "ID card"}, headers=admin
    )
    assert admit.status_code == 200, admit.text
    state = (await http.post("/api/flow/phone/done", headers=h)).json()  # phone not required
    assert state["step"] == "waiting", state
    started = await http.post("/api/flow/start", headers=h)
    assert started.json()["step"] == "answering", started.text
    paper = (await http.get("/api/flow/paper", headers=h)).json()
    q = next(q for q in paper["questions"] if q["type"] == "single")
    saved = await http.put(f"/api/flow/answers/{q['id']}", json={"value": "B", "seq": 1}, headers=h)
    assert saved.status_code == 200, saved.text
    return h, (await http.get("/api/flow/paper", headers=h)).json()["answers"]


async def _seen_by(http: httpx.AsyncClient, sitting_id: int, h: dict[str, str]) -> dict:
    resp = await http.get(f"/api/invigilate/candidates?sitting_id={sitting_id}", headers=h)
    return {c["candidate_id"]: c for c in resp.json()}


async def test_admin_seats_imported_candidates_and_creates_staff(
    seating_server, chromium_path, tmp_path
):
    sitting = seating_server.sitting
    first = sitting.candidates[0]
    async with httpx.AsyncClient(base_url=seating_server.url, timeout=30) as http:
        admin_h = await _staff(http, ADMIN)
        inv_h = await _staff(http, INVIGILATOR)
        cand_h, answers_before = await _answering(http, sitting, admin_h)
        roster = (
            await http.get(f"/api/admin/sittings/{sitting.id}/candidates", headers=admin_h)
        ).json()
        room_before = roster[0]["room"]
        assert room_before is not None
        seen_before = (await _seen_by(http, sitting.id, inv_h))[first.id]

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
            try:
                page = await (await browser.new_context(base_url=seating_server.url)).new_page()
                await page.goto("/console/admin.html")
                await page.fill("#admin-username", ADMIN[0])
                await page.fill("#admin-password", ADMIN[1])
                await page.click("#admin-login-form button[type=submit]")
                await page.click(f'#sittings tr[data-sitting-id="{sitting.id}"] .open-sitting')
                await expect(page.locator("#sitting-panel")).to_be_visible(timeout=10_000)
                await expect(page.locator("#rooms tbody tr")).to_have_count(1)
                await expect(page.locator("#unseated-warning")).to_be_hidden()

                # two candidates imported on the page: in no room, the page says so
                csv = "姓名,身份证号\n王五,110101199001012222\n赵六,110101199001013333\n"
                roster_form = page.locator("#roster-form")
                await roster_form.locator("[name=file]").set_input_files(
                    {"name": "roster.csv", "mimeType": "text/csv", "buffer": csv.encode()}
                )
                await roster_form.locator("[name=check_photos]").uncheck()
                await roster_form.locator("button[type=submit]").click()
                await expect(page.locator("#admin-message")).to_contain_text(
                    "2 added", timeout=30_000
                )
                await page.click("#refresh-candidates")
                warning = page.locator("#unseated-warning")
                await expect(warning).to_be_visible(timeout=10_000)
                await expect(warning).to_contain_text(
                    "2 candidates are not in any room — invigilators cannot see them"
                )
                await expect(page.locator('#seating tr[data-seated="false"]')).to_have_count(2)
                late = {
                    int(x)
                    for x in await page.locator('#seating tr[data-seated="false"]').evaluate_all(
                        "rows => rows.map(r => r.dataset.candidateId)"
                    )
                }
                assert not late & set(await _seen_by(http, sitting.id, inv_h))
                await assert_words(page, "admin page, unseated", ("formal sitting",))

                # seated automatically: a new room; the candidate answering stays put
                await page.click("#seat-auto")
                await expect(page.locator("#admin-message")).to_have_attribute("data-kind", "ok")
                await expect(warning).to_be_hidden(timeout=10_000)
                await expect(page.locator("#rooms tbody tr")).to_have_count(2)
                new_room = page.locator("#rooms tbody tr").nth(1)
                await expect(new_room).to_have_attribute("data-understaffed", "true")
                await expect(new_room).to_contain_text("2 / 30")

                # the invigilator is assigned to the new room on the page, and sees them
                await new_room.locator("select.room-staff").select_option(
                    label=f"{INVIGILATOR[0]} ({INVIGILATOR[0]})"
                )
                await new_room.locator("button", has_text="Save invigilators").click()
                await expect(page.locator("#admin-message")).to_contain_text("invigilators saved")
                seen = await _seen_by(http, sitting.id, inv_h)
                assert late <= set(seen)

                # a room made by hand (a duplicate name is refused with the server's words)
                room_form = page.locator("#room-form")
                await room_form.locator("[name=name]").fill("第9考场 Lab")
                await room_form.locator("[name=capacity]").fill("10")
                await room_form.locator("button[type=submit]").click()
                await expect(page.locator("#rooms tbody tr")).to_have_count(3, timeout=10_000)
                await expect(page.locator("#rooms tbody tr").nth(2)).to_contain_text("0 / 10")
                await room_form.locator("button[type=submit]").click()
                await expect(page.locator("#admin-message")).to_have_attribute("data-kind", "error")
                await expect(page.locator("#admin-message")).to_contain_text("already has a room")

                # one candidate moved by hand to the first room
                one = min(late)
                row = page.locator(f'#seating tr[data-candidate-id="{one}"]')
                await row.locator("button", has_text="Move").click()
                await expect(page.locator("#admin-message")).to_contain_text("seated")
                await expect(page.locator("#rooms tbody tr").nth(0)).to_contain_text("2 / 30")
                await assert_words(page, "admin page, all seated", ("formal sitting",))
                shots = screenshots_dir(tmp_path)  # PROCTOR_SCREENSHOTS_DIR=docs/screenshots
                shots.mkdir(parents=True, exist_ok=True)
                await page.locator("#rooms").scroll_into_view_if_needed()
                await page.screenshot(path=str(shots / "admin-seating.png"), full_page=True)

                # a rule of the sitting changed on the page; an unknown rule is refused
                await page.click("#sitting-panel details summary")
                rules_form = page.locator("#rules-form")
                await rules_form.locator("[name=flow]").fill('{"earliest_submit_minutes": 7}')
                await rules_form.locator("button[type=submit]").click()
                await expect(page.locator("#admin-message")).to_contain_text("Rules saved")
                await expect(
                    page.locator('#rules tr[data-rule="earliest_submit_minutes"] td').nth(1)
                ).to_have_text("7")
                await assert_words(page, "admin page, rules", ("formal sitting",))
                # (the refusal names the known rules by the names the JSON takes)
                await rules_form.locator("[name=flow]").fill('{"no_such_rule": 1}')
                await rules_form.locator("button[type=submit]").click()
                await expect(page.locator("#admin-message")).to_have_attribute("data-kind", "error")
                await expect(page.locator("#admin-message")).to_contain_text("Unknown rule")

                # staff: a reviewer made on the page logs in; the page shows the refusal
                # text the server gives when a role needs a chief examiner
                form = page.locator("#staff-form")
                await form.locator("[name=display_name]").fill("审核员 Reviewer Two")
                await form.locator("[name=username]").fill("reviewer-two")
                await form.locator("[name=password]").fill("review-two-pass")
                await form.locator("[name=role]").select_option("reviewer")
                await form.locator("button[type=submit]").click()
                await expect(page.locator("#admin-message")).to_contain_text("reviewer-two")
                await expect(
                    page.locator('#staff tr[data-username="reviewer-two"]')
                ).to_contain_text("Reviewer 审核员")
                await form.locator("[name=username]").fill("chief-two")
                await form.locator("[name=password]").fill("chief-two-pass")
                await form.locator("[name=role]").select_option("chief")
                await form.locator("button[type=submit]").click()
                await expect(page.locator("#admin-message")).to_have_attribute("data-kind", "error")
                await expect(page.locator("#admin-message")).to_contain_text(
                    "Only a chief examiner may create"
                )
                await expect(page.locator('#staff tr[data-username="chief-two"]')).to_have_count(0)
            finally:
                await browser.close()

        login = await http.post(
            "/api/staff/login", json={"username": "reviewer-two", "password": "review-two-pass"}
        )
        assert login.status_code == 200 and login.json()["user"]["role"] == "reviewer"

        # the candidate who was answering: same room and seat, same attempt and answers
        roster = (
            await http.get(f"/api/admin/sittings/{sitting.id}/candidates", headers=admin_h)
        ).json()
        assert next(c for c in roster if c["id"] == first.id)["room"] == room_before
        seen_after = (await _seen_by(http, sitting.id, inv_h))[first.id]
        assert seen_after["step"] == "answering" == seen_before["step"]
        assert seen_after["progress"] == seen_before["progress"]
        assert (await http.get("/api/flow/paper", headers=cand_h)).json()[
            "answers"
        ] == answers_before
