"""The detectors in a worker process (proctor.vision.pool, issue 22) give exactly what the
in-process analyser gives on real frames, carry each view's gate across frames (an
unchanged picture reuses the result), and a worker that died is replaced."""

from __future__ import annotations

import copy
import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.prepare import status
from proctor.vision.analyzer import build_analyzer
from proctor.vision.gate import ObjectGate
from proctor.vision.pool import PooledAnalyzer, analyse_frame
from tests.waiting import eventually

IMAGES = ["obama.jpg", "two_people.jpg", "rfphone_2_jpg.jpg", "densedepth_nyu_1.png"]
T0 = 1_700_000_000.0


def _read(media_dir: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(media_dir / "images" / name), cv2.IMREAD_COLOR)
    assert image is not None
    return cv2.resize(image, (640, 480))


@pytest.fixture(scope="module")
def pooled(models_dir: Path):
    paths = {s.name: s.path for s in status(models_dir)}
    pool = PooledAnalyzer(build_analyzer(paths), paths, processes=1)
    assert pool.warm_up()
    try:
        yield pool
    finally:
        pool.close()


def test_a_worker_sees_what_this_process_sees(pooled: PooledAnalyzer, media_dir: Path) -> None:
    for view in ("first", "second"):
        local_gate, pool_gate = ObjectGate(), ObjectGate()
        for i, name in enumerate(IMAGES):
            frame = _read(media_dir, name)
            ts = T0 + i
            here = analyse_frame(pooled.local, view, frame, ts, local_gate, 75, 320)
            there = pooled.analyse_frame(view, frame, ts, pool_gate, 75, 320)
            assert there.observation == here.observation, name
            assert there.ring_jpeg == here.ring_jpeg
            assert there.thumbnail == here.thumbnail and there.thumbnail is not None
            assert (pool_gate.runs, pool_gate.reuses) == (local_gate.runs, local_gate.reuses)
        assert pool_gate.runs == len(IMAGES)  # every picture differed from the one before


def test_the_gate_state_comes_back_from_the_worker(pooled: PooledAnalyzer, media_dir: Path) -> None:
    gate = ObjectGate(interval=2.0)
    frame = _read(media_dir, "two_people.jpg")
    first = pooled.analyse_frame("second", frame, T0, gate, 75, None)
    assert first.thumbnail is None
    assert (gate.runs, gate.reuses) == (1, 0)
    # the same picture half a second later: the detectors' result is reused
    again = pooled.analyse_frame("second", frame, T0 + 0.5, gate, 75, None)
    assert (gate.runs, gate.reuses) == (1, 1)
    assert again.observation.detections == first.observation.detections
    # past the gate's interval they run again
    pooled.analyse_frame("second", frame, T0 + 3.0, gate, 75, None)
    assert (gate.runs, gate.reuses) == (2, 1)
    # the caller's gate is the one updated, not a copy of it
    before = copy.copy(gate.__dict__)
    pooled.analyse_frame("second", _read(media_dir, "obama.jpg"), T0 + 3.5, gate, 75, None)
    assert gate.__dict__ != before


async def test_a_dead_worker_is_replaced(pooled: PooledAnalyzer, media_dir: Path) -> None:
    frame = _read(media_dir, "obama.jpg")
    expected = analyse_frame(pooled.local, "first", frame, T0, None, 75, None).observation
    pool = pooled._executor()
    pids = list(pool._processes)  # noqa: SLF001 - the worker to kill
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    async def gone() -> bool | None:
        return all(_zombie(pid) for pid in pids) or None

    await eventually(gone, timeout=10, what="the worker to die")
    got = pooled.analyse_frame("first", frame, T0, None, 75, None)
    assert got.observation == expected
    assert list(pooled._executor()._processes) != pids  # noqa: SLF001


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
