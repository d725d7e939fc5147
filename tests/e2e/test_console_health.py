"""The console says loudly when a model is missing: the health banner names the disabled
detector and why."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import chromium_args, console_login
from tests.serverproc import partial_models, seed, served, sqlite_data

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def degraded_server(models_dir, tmp_path_factory):
    partial = partial_models(models_dir, tmp_path_factory.mktemp("partial"))
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-degraded")
    seeded = asyncio.run(seed(url, data_dir))
    yield from served(url, data_dir, partial, seeded=seeded)


async def test_health_banner_names_disabled_detector(degraded_server, chromium_path):
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            page = await (await browser.new_context(base_url=degraded_server.url)).new_page()
            await console_login(page, degraded_server.seeded.staff)
            banner = page.locator("#health-banner")
            await expect(banner).to_be_visible(timeout=10_000)
            await expect(banner).to_contain_text("blazeface")
            await expect(banner).to_contain_text("isabled")
        finally:
            await browser.close()
