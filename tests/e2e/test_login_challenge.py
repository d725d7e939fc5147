"""Issue 21 items 1 and 3 in real headless Chromium: past the rate limit the candidate's
and the invigilator's login pages solve the server's challenge (pow.js) and the right
credentials get in."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import async_playwright

from tests.e2e.conftest import candidate_login, console_login

pytestmark = pytest.mark.e2e


async def test_the_pages_pass_the_challenge(e2e_server, chromium_path):
    seeded = e2e_server.seeded
    idn = seeded.candidates[0][2]
    async with httpx.AsyncClient(base_url=e2e_server.url, timeout=20) as http:
        for i in range(5):  # this address typed wrong passwords for the ID and the user
            await http.post(
                "/api/candidate/login", json={"sitting_password": f"w{i}", "id_number": idn}
            )
            await http.post(
                "/api/staff/login", json={"username": seeded.staff[0], "password": f"w{i}"}
            )
        closed = await http.post(
            "/api/candidate/login", json={"sitting_password": seeded.password, "id_number": idn}
        )
        assert closed.status_code == 429 and closed.json()["error"]["challenge"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        try:
            page = await (await browser.new_context(base_url=e2e_server.url)).new_page()
            await candidate_login(page, seeded.password, idn, timeout=60_000)

            console = await (await browser.new_context(base_url=e2e_server.url)).new_page()
            await console_login(console, seeded.staff, "**/console/room.html**", timeout=60_000)
        finally:
            await browser.close()
