"""A missing or corrupt model disables only the detectors that need it: the server starts,
says so in /health, and a detector that cannot run never raises an alert ("cannot tell")."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from exam_client.headless import HeadlessCandidate
from tests.integration.conftest import RULES
from tests.mediatools import center_focus_absence
from tests.serverproc import partial_models, seed, served, sqlite_data
from tests.waiting import eventually


@pytest.fixture(scope="module")
def degraded_server(models_dir, tmp_path_factory):
    """Face models gone (one missing, one corrupt); the others intact."""
    partial = partial_models(models_dir, tmp_path_factory.mktemp("partial-models"))
    data_dir, url = sqlite_data(tmp_path_factory, "degraded-data")
    seeded = asyncio.run(seed(url, data_dir, rules=RULES))
    yield from served(url, data_dir, partial, seeded=seeded)


def test_health_reports_missing_and_corrupt_models(degraded_server):
    body = httpx.get(degraded_server.url + "/health").json()
    assert body["status"] == "degraded"
    models = body["models"]
    assert models["blazeface_short"]["present"] is False
    assert models["blazeface_short"]["problem"] == "missing"
    assert models["blazeface_full"]["present"] is False
    assert "sha256 mismatch" in models["blazeface_full"]["problem"]
    assert models["yolox_nano"]["present"] is True
    faces = body["detectors"]["faces"]
    assert faces["enabled"] is False and "blazeface" in faces["reason"]
    log = degraded_server.log()
    assert "model blazeface_short NOT AVAILABLE" in log
    assert "detector faces DISABLED" in log


async def test_no_face_model_means_no_absent_alert(degraded_server, media_dir, tmp_path):
    media = center_focus_absence(media_dir, tmp_path / "a.webm", 1.0, 12.0, (320, 568))
    seeded = degraded_server.seeded
    async with httpx.AsyncClient(base_url=degraded_server.url, timeout=10) as http:
        user, password = seeded.staff
        token = (
            await http.post("/api/staff/login", json={"username": user, "password": password})
        ).json()["token"]
        async with HeadlessCandidate(
            degraded_server.url, seeded.password, seeded.candidates[0][2]
        ) as cand:
            await cand.login()
            await cand.start_view("first", media.path)

            async def analysed_enough() -> float | None:
                text = (await http.get("/metrics")).text
                for line in text.splitlines():
                    if line.startswith('proctor_frames_analysed_total{view="first"}'):
                        n = float(line.split()[-1])
                        # the person left after 1 s; the rule would fire after 3 s more
                        return n if n >= 2 * (1 + RULES["absent_seconds"] + 3) else None
                return None

            await eventually(analysed_enough, 40, "enough analysed frames")
        alerts = await http.get(
            f"/api/console/alerts?sitting_id={seeded.sitting_id}",
            headers={"authorization": f"Bearer {token}"},
        )
        assert alerts.json() == []
