"""``proctor demo`` builds a device check, a trial and a formal sitting with content; a
(headless) newcomer runs the trial and the formal sitting from login to score: the trial's
score shows at once, the formal paper's short answer is graded by the administrator and
the results export (``proctor results``). Re-running the demo lets the candidates start
over. The administration commands (``proctor sitting set``) move the demo's start."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from exam_client.headless import HeadlessCandidate
from proctor import cli
from proctor.config import Settings
from tests.flowkit import still_y4m
from tests.serverproc import ServerProcess


@pytest.fixture(scope="module")
def demo(database_url, models_dir, media_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo")
    env = {
        "PROCTOR_DATABASE_URL": database_url,
        "PROCTOR_DATA_DIR": str(data_dir),
        "PROCTOR_MODELS_DIR": str(models_dir),
    }
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    photos = [media_dir / "images" / "obama.jpg", media_dir / "images" / "biden.jpg"]
    ids = asyncio.run(cli._seed_demo(Settings(), photos))
    proc = ServerProcess(database_url, data_dir, models_dir)
    proc.ids, proc.photos, proc.mp = ids, photos, mp
    yield proc
    proc.stop()
    mp.undo()


@pytest.fixture(scope="module")
def camera(media_dir, tmp_path_factory):
    return still_y4m(
        media_dir / "images" / "obama2.jpg",
        tmp_path_factory.mktemp("demo-media") / "obama2.webm",
        size=(320, 568),
        seconds=3,
        fmt="webm",
    )


async def _cli(*argv: str) -> int:
    """``proctor ...`` as a person runs it (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(cli.main, list(argv))


async def _move_to_now(sitting_id: int, capsys) -> None:
    """The administrator opens the sitting now and allows handing in at once."""
    starts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    code = await _cli(
        "sitting",
        "set",
        str(sitting_id),
        "--starts",
        starts,
        "--rule",
        "earliest_submit_minutes=0",
    )
    assert code == 0, capsys.readouterr().err


async def _run_paper(url: str, password: str, camera: Path) -> dict:
    async with HeadlessCandidate(url, password, cli.DEMO_CANDIDATES[0][1]) as cand:
        await cand.login()
        paper = await cand.walk_to_answering(camera, camera, timeout=120)
        for seq, q in enumerate(paper["questions"], start=1):
            if q["type"] == "short":
                value: object = "保护接地防止触电 earthing prevents shocks"
            elif q["type"] == "true_false":
                value = True
            elif q["type"] == "multiple":
                value = [o["key"] for o in q["options"][:2]]
            else:
                value = q["options"][0]["key"]
            await cand.answer(q["id"], value, seq)
        state = await cand.submit()
        assert (await cand.flow_state())["identity"]["method"] == "face"
        return state


async def test_demo_trial_and_formal_from_login_to_score(demo, camera, capsys, tmp_path):
    await _move_to_now(demo.ids["trial"], capsys)
    await _move_to_now(demo.ids["formal"], capsys)
    capsys.readouterr()
    demo.start()

    trial = await _run_paper(demo.url, cli.DEMO_TRIAL_PASSWORD, camera)
    assert trial["step"] == "submitted"
    result = trial["result"]  # the trial shows its score at once
    assert result["grading_pending"] is False and 0 <= result["total_score"] <= 100
    assert result["passed"] is (result["total_score"] >= 60)

    formal = await _run_paper(demo.url, cli.DEMO_PASSWORD, camera)
    assert formal["step"] == "submitted" and formal["result"] is None  # secret until graded

    async with httpx.AsyncClient(base_url=demo.url, timeout=20) as http:
        token = (
            await http.post(
                "/api/staff/login",
                json={"username": cli.DEMO_ADMIN[0], "password": cli.DEMO_ADMIN[1]},
            )
        ).json()["token"]
        h = {"authorization": f"Bearer {token}"}
        sid = demo.ids["formal"]
        queue = (await http.get(f"/api/admin/sittings/{sid}/grading", headers=h)).json()
        assert len(queue) == 1 and queue[0]["max_points"] == 10
        graded = await http.post(
            f"/api/admin/answers/{queue[0]['answer_id']}/grade",
            json={"points": 8, "note": "good"},
            headers=h,
        )
        assert graded.status_code == 200 and graded.json()["attempt"]["grading_pending"] is False
        total = graded.json()["attempt"]["total_score"]

    demo.stop()
    out = tmp_path / "results.csv"
    assert await _cli("results", "--sitting", str(demo.ids["formal"]), "-o", str(out)) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    zhang = next(r for r in rows if r["id_number"] == cli.DEMO_CANDIDATES[0][1])
    assert float(zhang["total_score"]) == total and zhang["identity"] == "face"
    li = next(r for r in rows if r["id_number"] == cli.DEMO_CANDIDATES[1][1])
    assert li["step"] == "absent"

    # a new demo run: the candidates start over
    await cli._seed_demo(Settings(), demo.photos)
    demo.start()
    async with HeadlessCandidate(demo.url, cli.DEMO_PASSWORD, cli.DEMO_CANDIDATES[0][1]) as c:
        body = await c.login()
        assert body["step"] == "confirm" and body["resumed"] is False
