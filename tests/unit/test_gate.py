"""The gate: the detectors (faces and their head poses, objects, phones) run again when the
picture changes or the result is too old, and their last result stands in otherwise
(proctor.vision.gate)."""

from __future__ import annotations

import numpy as np

from proctor.vision.analyzer import FrameAnalyzer
from proctor.vision.gate import ObjectGate, block_change
from proctor.vision.quality import QualityChecker
from proctor.vision.types import Detection, HeadPose


class Counting:
    """A detector that reports one fixed detection and counts its calls."""

    def __init__(self, name: str, label: str) -> None:
        self.name = name
        self.labels = frozenset({label})
        self.label = label
        self.calls = 0

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        self.calls += 1
        return [Detection(self.label, 0.9, (10.0, 10.0, 50.0, 50.0))]


def scene(seed: int = 0) -> np.ndarray:
    """A textured 480x640 picture (usable quality: not blocked, dark or blurred)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 220, size=(48, 64, 3), dtype=np.uint8)
    return np.kron(small, np.ones((10, 10, 1), dtype=np.uint8))


class Poses:
    """A face analyser that gives each face a pose and counts its calls."""

    name = "head_pose"
    labels = frozenset({"head_pose"})
    views = frozenset({"first"})

    def __init__(self) -> None:
        self.calls = 0

    def estimate(self, frame_bgr: np.ndarray, faces: list[Detection]) -> list[HeadPose]:
        self.calls += 1
        return [HeadPose(f.box, yaw=40.0, pitch=0.0, roll=0.0, presence=0.9) for f in faces]


def analyser() -> tuple[FrameAnalyzer, Counting, Counting]:
    faces, objects = Counting("faces", "face"), Counting("objects", "person")
    return FrameAnalyzer([faces, objects], [], quality=QualityChecker()), faces, objects


def test_block_change_sees_a_small_local_change() -> None:
    side = 32
    a = np.full((side, side), 100, np.uint8)
    b = a.copy()
    b[0:4, 0:4] = 140  # one block of 64 changed by 40: the mean over the picture is < 1
    assert block_change(a.tobytes(), b.tobytes()) == 40.0
    assert block_change(a.tobytes(), a.tobytes()) == 0.0
    assert block_change(a.tobytes(), b"") == float("inf")


def test_same_picture_reuses_faces_poses_and_objects() -> None:
    faces, objects, poses = Counting("faces", "face"), Counting("objects", "person"), Poses()
    analyse = FrameAnalyzer([faces, objects], [], quality=QualityChecker(), face_analysers=[poses])
    gate = ObjectGate(interval=2.0, change=12.0)
    frame = scene()
    observations = [analyse.analyse("first", frame, t, gate) for t in (0.0, 0.5, 1.0, 1.5)]
    assert (faces.calls, objects.calls, poses.calls) == (1, 1, 1)  # once, reused three times
    assert (gate.runs, gate.reuses) == (1, 3)
    assert all(o.count("person", 0.5) == 1 and o.count("face") == 1 for o in observations)
    assert all(o.poses == observations[0].poses and o.poses[0].yaw == 40.0 for o in observations)
    # the picture changes: everything runs again
    analyse.analyse("first", scene(seed=1), 2.0, gate)
    assert (faces.calls, objects.calls, poses.calls) == (2, 2, 2)


def test_a_failed_face_analyser_is_not_kept() -> None:
    faces, poses = Counting("faces", "face"), Poses()
    analyse = FrameAnalyzer([faces], [], quality=QualityChecker(), face_analysers=[poses])
    gate = ObjectGate(interval=10.0, change=12.0)
    broken = {"fail": True}
    estimate = poses.estimate

    def flaky(frame_bgr: np.ndarray, found: list[Detection]) -> list[HeadPose]:
        if broken["fail"]:
            poses.calls += 1
            raise RuntimeError("mesh crashed")
        return estimate(frame_bgr, found)

    poses.estimate = flaky  # type: ignore[method-assign]
    frame = scene()
    assert "head_pose" in analyse.analyse("first", frame, 0.0, gate).unavailable
    broken["fail"] = False
    again = analyse.analyse("first", frame, 0.5, gate)
    assert faces.calls == 2 and len(again.poses) == 1  # everything ran again


def test_old_result_runs_again() -> None:
    analyse, _, objects = analyser()
    gate = ObjectGate(interval=2.0, change=12.0)
    frame = scene()
    for t in (0.0, 1.0, 2.0, 3.0, 4.0):
        analyse.analyse("first", frame, t, gate)
    assert objects.calls == 3  # at 0, 2 and 4 s


def test_sparse_samples_reuse_a_result_for_its_samples_when_analysis_is_behind() -> None:
    """Samples 3 s apart (analysis behind) against a 2 s interval: an unchanged picture's
    result stands for the next 3 samples, then runs again; never past 4 intervals (8 s);
    a changed picture runs at once; with samples=0 every sparse sample runs (as before),
    and an interval of 0 still runs every frame."""
    analyse, _, objects = analyser()
    gate = ObjectGate(interval=2.0, change=12.0, samples=3)
    frame = scene()
    for t in (0.0, 3.0, 6.0, 9.0, 12.0, 15.0):
        analyse.analyse("first", frame, t, gate)
    assert objects.calls == 2  # at 0 (stands at 3, 6 and 9) and at 12 (stands at 15)
    assert (gate.runs, gate.reuses) == (2, 4)
    analyse.analyse("first", frame, 24.0, gate)  # 12 s after the last run: too old
    assert objects.calls == 3
    analyse.analyse("first", scene(seed=1), 27.0, gate)  # the picture changed
    assert objects.calls == 4
    # normal rate: samples within the interval count as before (and as samples stood)
    analyse, _, objects = analyser()
    gate = ObjectGate(interval=2.0, change=12.0, samples=3)
    for t in (0.0, 0.5, 1.0, 1.5, 2.0, 5.0, 9.0):
        analyse.analyse("first", frame, t, gate)
    # 0 runs and stands to 1.5 (3 samples); 2.0 is past the interval and past its
    # samples: runs; 5.0 stands for it (1 of 3, 3 s < 8 s); 9.0 is 7 s after: stands too
    assert objects.calls == 2
    for samples, interval, expected in ((0, 2.0, 6), (3, 0.0, 6)):
        analyse, _, objects = analyser()
        gate = ObjectGate(interval=interval, change=12.0, samples=samples)
        for t in (0.0, 3.0, 6.0, 9.0, 12.0, 15.0):
            analyse.analyse("first", frame, t, gate)
        assert objects.calls == expected, (samples, interval)


def test_changed_picture_runs_at_once() -> None:
    analyse, _, objects = analyser()
    gate = ObjectGate(interval=10.0, change=12.0)
    frame = scene()
    analyse.analyse("first", frame, 0.0, gate)
    moved = frame.copy()
    moved[0:60, 0:80] = 255  # a hand comes into one corner (1/64 of the picture)
    analyse.analyse("first", moved, 0.5, gate)
    assert objects.calls == 2
    analyse.analyse("first", scene(seed=1), 1.0, gate)  # another picture altogether
    assert objects.calls == 3


def test_interval_zero_and_no_gate_run_every_frame() -> None:
    analyse, _, objects = analyser()
    gate = ObjectGate(interval=0.0, change=12.0)
    frame = scene()
    for t in (0.0, 0.5, 1.0):
        analyse.analyse("first", frame, t, gate)
        analyse.analyse("first", frame, t)
    assert objects.calls == 6


def test_a_failed_detector_is_not_kept() -> None:
    analyse, _, objects = analyser()
    gate = ObjectGate(interval=10.0, change=12.0)
    broken = {"fail": True}

    def detect(frame_bgr: np.ndarray) -> list[Detection]:
        objects.calls += 1
        if broken["fail"]:
            raise RuntimeError("model crashed")
        return [Detection("person", 0.9, (0.0, 0.0, 5.0, 5.0))]

    objects.detect = detect  # type: ignore[method-assign]
    frame = scene()
    first = analyse.analyse("first", frame, 0.0, gate)
    assert first.count("person", 0.5) is None  # cannot tell
    broken["fail"] = False
    second = analyse.analyse("first", frame, 0.5, gate)  # not "reused" from the failure
    assert objects.calls == 2 and second.count("person", 0.5) == 1
