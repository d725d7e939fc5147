"""``python -m exam_client`` walks the whole flow by itself against a real server process:
through a network that keeps cutting its HTTP connections it confirms, signs, passes the
photo check with a picture file, pairs its phone, waits for the start, answers every
question (one scripted, the others random) and hands in; in a device check it measures
the upload and sends the report, which passes with a camera, a phone, a microphone that
hears something and the bandwidth. (Before, the command only logged in and streamed, and
gave up on the first lost request: rehearsal candidates sat at "Confirming" forever.)"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from exam_client.headless import HeadlessCandidate
from tests.flowkit import seed_exam, still_y4m
from tests.serverproc import ROOT, free_port, served


class CuttingProxy:
    """A TCP relay to the server that cuts every open connection each time ``cut()`` is
    called (a flaky home network); counts the connections it cut while they were open."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.cut_open = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        for w in list(self._writers):
            if not w.is_closing():
                self.cut_open += 1
                w.transport.abort()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


@pytest.fixture(scope="module")
def sittings(database_url, models_dir, media_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("walk-cli")
    photo = media_dir / "images" / "obama.jpg"
    trial = asyncio.run(
        seed_exam(
            database_url,
            data_dir,
            kind="trial",
            starts_in=timedelta(seconds=5),
            flow={"earliest_submit_minutes": 0},
            photos=[photo],
        )
    )
    check = asyncio.run(
        seed_exam(database_url, data_dir, kind="device_check", photos=[photo], candidates=1)
    )
    yield from served(database_url, data_dir, models_dir, trial=trial, check=check)


@pytest.fixture(scope="module")
def media(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("walk-cli-media")
    face = still_y4m(
        media_dir / "images" / "obama2.jpg", out / "face.webm", (320, 568), seconds=3, fmt="webm"
    )
    side = still_y4m(
        media_dir / "images" / "two_people.jpg", out / "side.webm", (320, 568), 10, 3, "webm"
    )
    voiced = out / "voiced.webm"  # the face with a 440 Hz tone: a microphone that hears
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(face), "-f", "lavfi",
         "-i", "sine=frequency=440:duration=3", "-c:v", "copy", "-c:a", "libopus",
         "-shortest", str(voiced)],
        check=True,
    )  # fmt: skip
    return {
        "face": face,
        "side": side,
        "voiced": voiced,
        "photo": media_dir / "images" / "obama2.jpg",
    }


async def _db_counts(database_url: str, candidate_id: int) -> tuple[str, int, int]:
    from proctor.store.db import Database
    from proctor.store.tables import Answer, Attempt

    db = Database(database_url)
    try:
        async with db.session() as s:
            attempt = await s.scalar(select(Attempt).where(Attempt.candidate_id == candidate_id))
            answered = await s.scalar(
                select(func.count()).select_from(Answer).where(Answer.attempt_id == attempt.id)
            )
            return attempt.step, len(attempt.question_order or []), answered
    finally:
        await db.dispose()


async def test_the_cli_walks_a_trial_to_hand_in_through_a_network_that_cuts(
    sittings, media, database_url, tmp_path
) -> None:
    trial = sittings.trial
    cand = trial.candidates[0]
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"1": None}))  # question 1 scripted: left unanswered
    proxy = CuttingProxy(sittings.port)
    await proxy.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exam_client",
        "--server", f"http://127.0.0.1:{proxy.port}",
        "--password", trial.password, "--id-number", cand.id_number,
        "--video", str(media["face"]), "--phone-video", str(media["side"]),
        "--photo", str(media["photo"]), "--answers", str(answers),
        "--loop", "--duration", "2", "--retry-seconds", "120",
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip

    async def cut_while_running() -> None:
        while True:  # the connections are cut every second until the client exits
            try:
                await asyncio.wait_for(child.wait(), 1.0)
                return
            except TimeoutError:
                proxy.cut()

    cutter = asyncio.create_task(cut_while_running())
    try:
        out, err = await asyncio.wait_for(child.communicate(), 300)
    finally:
        cutter.cancel()
        await proxy.stop()
    log = err.decode(errors="replace")
    assert child.returncode == 0, log
    assert "handed in: submitted" in log, log
    assert proxy.cut_open > 0
    step, questions, answered = await _db_counts(database_url, cand.id)
    assert step == "submitted"
    assert questions > 1
    assert answered == questions - 1  # every question but the scripted blank one


async def test_the_walk_runs_a_device_check_to_its_report(sittings, media) -> None:
    check = sittings.check
    url = f"http://127.0.0.1:{sittings.port}"
    async with HeadlessCandidate(url, check.password, check.candidates[0].id_number) as c:
        await c.login()
        result = await c.walk_to_answering(media["voiced"], media["side"], timeout=90)
    report = result["report"]
    assert result["state"]["step"] == "finished"
    assert report["camera_ok"] and report["phone_ok"] and report["upload_ok"], report
    assert report["microphone_ok"], report
    assert report["passed"] is True
