"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, against a real
server process; Chromium's fake camera plays a y4m built from a real clip."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import seed, served, sqlite_data

CHROMIUM = os.environ.get("PROCTOR_TEST_CHROMIUM", "/usr/bin/chromium")
E2E_RULES = {"absent_seconds": 3.0}


def chromium_args(y4m: Path | None = None, wav: Path | None = None) -> list[str]:
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
    ]
    if y4m is not None:
        args.append(f"--use-file-for-fake-video-capture={y4m}")
    if wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={wav}")
    return args


async def candidate_login(
    page: Any, password: str, id_number: str, timeout: float | None = None
) -> None:
    """The candidate's login page: sitting password and ID number, on to the exam page."""
    await page.goto("/exam/")
    await page.fill("#sitting-password", password)
    await page.fill("#id-number", id_number)
    await page.click("#login-button")
    await page.wait_for_url("**/exam/exam.html", timeout=timeout)


async def console_login(
    page: Any,
    who: tuple[str, str],
    lands: str = "**/console/room.html",
    timeout: float | None = None,
) -> None:
    """The console's login page: a staff member's (user, password), on to a URL ``lands``
    matches."""
    await page.goto("/console/")
    await page.fill("#username", who[0])
    await page.fill("#password", who[1])
    await page.click("#login-submit")
    await page.wait_for_url(lands, timeout=timeout)


async def staff_headers(http: Any, who: tuple[str, str]) -> dict[str, str]:
    """The authorization header of a staff member (user, password) logged in over ``http``."""
    body = (
        await http.post("/api/staff/login", json={"username": who[0], "password": who[1]})
    ).json()
    return {"authorization": f"Bearer {body['token']}"}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which(CHROMIUM) or CHROMIUM
    assert Path(path).exists(), f"Chromium not found at {CHROMIUM}: apt-get install chromium"
    return path


@pytest.fixture(scope="module")
def e2e_server(models_dir: Path, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "e2e-data")
    seeded = asyncio.run(seed(url, data_dir, rules=E2E_RULES))
    yield from served(url, data_dir, models_dir, seeded=seeded)
