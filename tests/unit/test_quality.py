"""proctor.vision.quality on real frames and real frames made unusable (darkened, blurred,
covered), as a camera would deliver them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from proctor.vision.quality import (
    FINGERPRINT_SIDE,
    QualityChecker,
    QualityThresholds,
    fingerprint_change,
)
from tests.conftest import shared_path


def labelled_images() -> list[str]:
    import json

    labels = shared_path() / "media" / "labels.json"
    if not labels.is_file():
        return []
    return [i["file"] for i in json.loads(labels.read_text())["images"]]


def read(media_dir: Path, file: str) -> np.ndarray:
    image = cv2.imread(str(media_dir / file), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def clip_frames(media_dir: Path, step: int = 12) -> list[np.ndarray]:
    """Every ``step``-th frame of the clip (24 fps: 12 = the server's 2 fps)."""
    capture = cv2.VideoCapture(str(media_dir / "clips/center_focus.mp4"))
    frames = []
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                frames.append(frame)
            index += 1
    finally:
        capture.release()
    return frames


@pytest.fixture(scope="module")
def checker() -> QualityChecker:
    return QualityChecker()


@pytest.mark.parametrize("file", labelled_images())
def test_every_real_photo_is_usable(checker: QualityChecker, media_dir: Path, file: str) -> None:
    quality = checker.measure(read(media_dir, file))
    assert quality.usable, (quality.problems, quality.highlights, quality.contrast)
    assert len(quality.fingerprint) == FINGERPRINT_SIDE**2


def test_every_clip_frame_is_usable(checker: QualityChecker, media_dir: Path) -> None:
    for frame in clip_frames(media_dir):
        assert checker.measure(frame).usable


def test_a_dark_background_portrait_is_not_dark(checker: QualityChecker, media_dir: Path) -> None:
    quality = checker.measure(read(media_dir, "images/obama-480p.jpg"))
    assert quality.brightness < 45  # a dark picture on average ...
    assert quality.highlights > 100  # ... with a well-lit face in it
    assert "dark" not in quality.problems


@pytest.mark.parametrize("file", ["images/rfphone_15_jpg.jpg", "clips/center_focus.mp4"])
def test_a_darkened_frame_is_dark(checker: QualityChecker, media_dir: Path, file: str) -> None:
    frame = clip_frames(media_dir)[5] if file.endswith(".mp4") else read(media_dir, file)
    dark = (frame.astype(np.float32) * 0.15).astype(np.uint8)
    quality = checker.measure(dark)
    assert "dark" in quality.problems
    assert not quality.usable


def test_a_strongly_blurred_frame_is_blurred(checker: QualityChecker, media_dir: Path) -> None:
    frame = read(media_dir, "images/rfphone_2_jpg.jpg")
    slightly = checker.measure(cv2.GaussianBlur(frame, (0, 0), 2))
    strongly = checker.measure(cv2.GaussianBlur(frame, (0, 0), 12))
    assert slightly.usable
    assert strongly.problems == {"blurred"}
    assert strongly.sharpness < 3 < slightly.sharpness


def test_a_covered_lens_is_blocked(checker: QualityChecker, media_dir: Path) -> None:
    # paper over the lens: its colour (here the mean colour of the real frame) with 5 % of
    # the scene showing through
    frame = clip_frames(media_dir)[3].astype(np.float32)
    paper = frame.reshape(-1, 3).mean(axis=0)
    covered = (0.95 * paper + 0.05 * frame).astype(np.uint8)
    quality = checker.measure(covered)
    assert "blocked" in quality.problems
    assert "blurred" not in quality.problems  # uniform: blocked says it all
    # dim and covered: blocked and dark
    dim = checker.measure((covered.astype(np.float32) * 0.2).astype(np.uint8))
    assert {"blocked", "dark"} <= dim.problems


def test_grey_and_bgra_frames(checker: QualityChecker, media_dir: Path) -> None:
    frame = read(media_dir, "images/obama.jpg")
    bgr = checker.measure(frame)
    grey = checker.measure(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    bgra = checker.measure(cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA))
    assert grey.fingerprint == bgr.fingerprint == bgra.fingerprint


def test_thresholds_are_settings(media_dir: Path) -> None:
    frame = read(media_dir, "images/obama-480p.jpg")
    strict = QualityChecker(QualityThresholds(dark_highlights=200.0))
    assert "dark" in strict.measure(frame).problems


def test_fingerprints_tell_a_frozen_picture_from_a_still_person(
    checker: QualityChecker, media_dir: Path
) -> None:
    frames = clip_frames(media_dir)
    prints = [checker.measure(f).fingerprint for f in frames]
    # consecutive samples of a person sitting still in front of the camera all change by
    # more than the rule's default threshold (0.3) ...
    changes = [fingerprint_change(a, b) for a, b in zip(prints, prints[1:], strict=False)]
    assert min(changes) > 0.3, changes
    # ... the same frame twice, or re-encoded as JPEG, does not
    again = checker.measure(frames[4].copy()).fingerprint
    assert fingerprint_change(prints[4], again) == 0.0
    jpeg = cv2.imdecode(cv2.imencode(".jpg", frames[4])[1], cv2.IMREAD_COLOR)
    assert fingerprint_change(prints[4], checker.measure(jpeg).fingerprint) < 0.3
    # fingerprints of different sizes never match
    assert fingerprint_change(prints[0], prints[0][:100]) == float("inf")
